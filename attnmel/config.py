"""Typed training configuration: frozen dataclasses loaded from YAML, validated on every build.

Defaults are the paper's settings (Yan et al., IPMI 2019, section 3.1). Each constraint sits on
its field (``setting(224, above=0, multiple_of=32)``) and :class:`Checked` enforces it whenever
an instance is made, from YAML or in code; :meth:`Checked.from_mapping` adds the coercion of
parsed YAML and the unknown-key errors. The sweep spec sections (``orchestrator/sweep/spec.py``)
use the same machinery, so a bad value is one :class:`UserError` line naming the key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from attnmel.atomic import atomic_write
from attnmel.data.datasets import DATASETS, DECLARATIONS, csvfolder, declaration
from attnmel.data.datasets.base import SPLIT_CHOICES, chosen_splits
from attnmel.errors import UserError
from attnmel.typed_config import Checked, parse_override, read_yaml, set_nested, setting

__all__ = [
    "DATASETS",
    "ROIS",
    "BACKBONES",
    "DataSource",
    "ExternalSet",
    "DataConfig",
    "ModelConfig",
    "LossConfig",
    "OptimConfig",
    "RuntimeConfig",
    "TrainConfig",
    "load_config",
    "config_from_dict",
    "config_to_dict",
    "apply_overrides",
    "config_hash",
    "save_config",
    "DEFAULT_PASSES",
    "EXTERNAL_SPLITS",
    "CSV_KEYS",
]

# The values some settings choose among, stated here (the datasets by their declarations) and
# imported wherever they are needed; this module imports no torch, so a spec or a config
# validates without it.
ROIS = ("none", "lesion", "dermo", "bkg")  # "none" = no regularisation; section 2.2's reference maps
BACKBONES = ("vgg16_bn", "vgg16")  # VGG-16 with and without batch norm (section 3.1)
DEFAULT_PASSES = {name: d.passes for name, d in DECLARATIONS.items()}
# Which images of another dataset an external test set scores: one split, or all of them.
EXTERNAL_SPLITS = SPLIT_CHOICES
# The keys only a folder with a CSV (``dataset: csv``) reads.
CSV_KEYS = csvfolder.SOURCE_KEYS
_LABEL = re.compile(r"[a-z0-9][a-z0-9_]*")

# --------------------------------------------------------------------------- the training config


@dataclass(frozen=True)
class DataSource(Checked):
    """One dataset's files: the declaration that reads them (``attnmel.data.datasets``), where
    they are, and how carved splits are made. Relative paths are relative to ``root``."""

    SECTION = "data"

    dataset: str = setting(choices=DATASETS)
    root: str = setting()
    masks: str | None = None  # folder of lesion masks (<id>_segmentation.png or <id>.png), e.g. HAM10000's
    # dataset csv only (see attnmel/data/datasets/csvfolder.py)
    images: str | None = None  # image folder (default: the root)
    labels: str | None = None  # the CSV
    id_column: str | None = None  # default "image"
    label_column: str | None = None
    positive: str | None = None  # the label value meaning melanoma (default "1")
    group_column: str | None = None  # lesion or patient: never in two splits
    split_column: str | None = None  # train / val / test; without it val and test are carved
    # carved splits (ISIC 2016 val; 2019 val by lesion; 2020 val and test by patient; csv without split column)
    val_fraction: float = setting(0.2, above=0, below=1)
    test_fraction: float = setting(0.2, above=0, below=1)
    val_seed: int = 0  # seeds every carving (and the max_train / max_eval subsets)

    def check(self) -> None:
        """CSV keys only for ``csv`` (which needs ``labels`` and ``label_column``); carved
        shares that leave a training split."""
        decl = declaration(self.dataset)
        given = [k for k in CSV_KEYS if getattr(self, k) is not None]
        if self.dataset != "csv" and given:
            raise UserError(f"config key '{self.key(given[0])}' is read by dataset csv only (dataset is {self.dataset})")
        if self.dataset == "csv":
            for needed in ("labels", "label_column"):
                if getattr(self, needed) is None:
                    raise UserError(f"config key '{self.key(needed)}' is required for dataset csv")
        carved = {c.fraction for c in decl.bound(self).carve}
        if carved == {"val_fraction", "test_fraction"} and self.val_fraction + self.test_fraction >= 1:
            raise UserError(f"config keys '{self.key('val_fraction')}' + '{self.key('test_fraction')}' "
                            f"({self.val_fraction} + {self.test_fraction}) must leave a training split (< 1)")  # fmt: skip


@dataclass(frozen=True)
class ExternalSet(DataSource):
    """A split of another dataset that each trial's best model scores once, at the end."""

    SECTION = "data.external"

    split: str = setting("test", choices=EXTERNAL_SPLITS)
    label: str | None = None  # names it in the tables; default "<dataset>_<split>"

    def check(self) -> None:
        """The source's checks; a label usable in a column name."""
        super().check()
        if self.label is not None and not _LABEL.fullmatch(self.label):
            raise UserError(f"config key '{self.key('label')}' must be lower-case letters, digits and _, got {self.label!r}")

    @property
    def name(self) -> str:
        """How the tables name this set (``ext_<name>_auc``)."""
        return self.label or f"{self.dataset}_{self.split}"

    @property
    def splits(self) -> tuple[str, ...]:
        """The splits it scores (and the only ones it needs on disk)."""
        return chosen_splits(self.split)


@dataclass(frozen=True)
class DataConfig(DataSource):
    """Where the data is and how it is prepared (section 3.1)."""

    SECTION = "data"

    dataset: str = setting("isic2017", choices=DATASETS)
    root: str = "../shared/isic2017"
    roi: str = setting("none", choices=ROIS)
    roi_dir: str | None = None  # folder of ready-made binary ROI maps, overrides the official ones
    image_size: int = setting(256, above=0)  # side after the deterministic centre crop + resize
    # random crop for training, centre crop for evaluation; VGG halves it five times
    crop_size: int = setting(224, above=0, multiple_of=32)
    crop_fraction: float = setting(0.8, above=0, max=1)  # centre square crop side = crop_fraction * min(H, W)
    oversample: int = setting(4, above=0)  # each melanoma appears this many times per pass (README: ISIC 2020)
    passes: int | None = setting(None, above=0)  # passes over the training index per epoch; None: the dataset's
    max_train: int | None = setting(None, above=0)  # smoke runs: at most this many training images (stratified)
    max_eval: int | None = setting(None, above=0)  # smoke runs: at most this many validation and test images each
    cache_dir: str | None = None  # None: $ATTNMEL_CACHE or ~/.cache/attnmel
    # "train": the training split's channel statistics; "official": the official code's constants
    normalization: str = setting("train", choices=("train", "official"))
    external: tuple[ExternalSet, ...] | None = None  # other datasets' splits scored by the best model at the end

    def check(self) -> None:
        """The source's checks; the evaluation centre crop must fit in the resized image;
        official constants exist; external sets have distinct names."""
        super().check()
        if self.crop_size > self.image_size:
            raise UserError(
                f"config key '{self.key('crop_size')}' ({self.crop_size}) must not exceed "
                f"'{self.key('image_size')}' ({self.image_size})"
            )
        if self.normalization == "official" and declaration(self.dataset).normalization is None:
            with_constants = ", ".join(n for n, d in DECLARATIONS.items() if d.normalization is not None)
            raise UserError(f"config key '{self.key('normalization')}': {self.dataset} has no official constants "
                            f"(only {with_constants}); use 'train'")  # fmt: skip
        names = [e.name for e in self.external or ()]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise UserError(f"config key '{self.key('external')}' names {twice[0]!r} twice (give one a 'label')")

    def resolved_passes(self) -> int:
        """Passes per epoch, with the dataset's default (the paper's for ISIC 2016/2017) filled in."""
        return self.passes if self.passes is not None else DEFAULT_PASSES[self.dataset]


@dataclass(frozen=True)
class ModelConfig(Checked):
    """Which network to build (``attnmel.models.list_models()``, checked when it is built)."""

    SECTION = "model"

    variant: str = "attnmel"
    backbone: str = setting("vgg16_bn", choices=BACKBONES)
    weights: str = "imagenet"  # imagenet | none | path to a state dict
    gate_bias: bool = False  # a bias on the attention gate's W_g (the official code has none)


@dataclass(frozen=True)
class LossConfig(Checked):
    """Eq. 5: focal loss + lambda1 * Dice(A3) + lambda2 * Dice(A4); the λ defaults are the paper's."""

    SECTION = "loss"

    kind: str = setting("focal", choices=("focal", "ce"))
    gamma: float = setting(2.0, min=0)
    lambda1: float = setting(0.001, min=0)
    lambda2: float = setting(0.01, min=0)


@dataclass(frozen=True)
class OptimConfig(Checked):
    """SGD with Nesterov momentum, lr x0.1 every ``lr_step`` epochs."""

    SECTION = "optim"

    lr: float = setting(0.01, min=0)
    momentum: float = setting(0.9, min=0)
    nesterov: bool = True
    weight_decay: float = setting(1e-4, min=0)
    lr_step: int = setting(10, above=0)
    lr_gamma: float = setting(0.1, min=0)
    batch_size: int = setting(32, above=0)
    epochs: int = setting(50, above=0)


@dataclass(frozen=True)
class RuntimeConfig(Checked):
    """Device and reproducibility settings; None means "the right choice for the device"."""

    SECTION = "runtime"

    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    bf16: bool | None = None  # None: on for CUDA, off for CPU
    channels_last: bool | None = None  # None: on for CUDA, off for CPU
    compile: bool | None = None  # torch.compile the model; None: off until measured worth it on CUDA
    cudnn_benchmark: bool | None = None  # cuDNN autotunes each new input shape; None: on for CUDA
    eval_bf16: bool = False  # evaluation stays in fp32 unless set
    # None: the size in 32..64 that pads the fewest evaluation images (one that divides the splits)
    eval_batch_size: int | None = setting(None, above=0)
    # "every": test scored each epoch (the curves show it); "best": once, with the best epoch's
    # weights, at the end (the same numbers; the epochs' test columns are then null)
    eval_test: str = setting("every", choices=("every", "best"))
    checkpoint_every: int = setting(1, above=0)  # resumable checkpoint every N epochs (the best is always kept)
    background_checkpoint: bool = True  # write checkpoints on a background thread during the next epoch
    num_threads: int | None = setting(None, above=0)  # torch intra-op threads on CPU; None: torch's default
    fail_at_epoch: int | None = None  # fault injection: raise at the start of this epoch (retry tests)


@dataclass(frozen=True)
class TrainConfig(Checked):
    """Everything one training run needs."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)


def config_from_dict(raw: dict[str, Any] | None) -> TrainConfig:
    """Build a validated TrainConfig from nested plain data (as parsed from YAML)."""
    return TrainConfig.from_mapping(raw)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def config_to_dict(cfg: TrainConfig) -> dict[str, Any]:
    """Nested plain-data form of a config (YAML/JSON serialisable: lists, not tuples)."""
    return _plain(dataclasses.asdict(cfg))


def load_config(path: str | Path) -> TrainConfig:
    """Read a YAML config file (only the keys that differ from the defaults need be given)."""
    return config_from_dict(read_yaml(path, "config file"))


def apply_overrides(cfg: TrainConfig, overrides: list[str] | tuple[str, ...]) -> TrainConfig:
    """Return a new config with ``section.key=value`` overrides applied and validated."""
    raw = config_to_dict(cfg)
    for item in overrides:
        parts, value = parse_override(item)
        if len(parts) != 2:
            raise UserError(f"override '{item}' must name section.key (e.g. optim.lr=0.1)")
        set_nested(raw, parts, value)
    return config_from_dict(raw)


def config_hash(cfg: TrainConfig) -> str:
    """Stable 12-hex-digit digest of the whole config (seed included)."""
    blob = json.dumps(config_to_dict(cfg), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def save_config(cfg: TrainConfig, path: str | Path) -> None:
    """Write the resolved config as YAML, atomically."""
    atomic_write(path, yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
