"""Typed training configuration: frozen dataclasses loaded from YAML.

Defaults are the paper's settings (Yan et al., IPMI 2019, section 3.1). A YAML file lists only
what differs from them; unknown keys and wrong types are errors that name the key, and
``--set section.key=value`` overrides apply on top.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from attnmel.errors import UserError

__all__ = [
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
]

DEFAULT_PASSES = {"isic2017": 2, "isic2016": 5}


@dataclass(frozen=True)
class DataConfig:
    """Where the data is and how it is prepared (section 3.1)."""

    dataset: str = "isic2017"
    root: str = "../shared/isic2017"
    roi: str = "none"  # none | lesion | dermo | bkg
    roi_dir: str | None = None  # folder of ready-made binary ROI maps, overrides the official ones
    image_size: int = 256  # side after the deterministic centre crop + resize
    crop_size: int = 224  # random crop for training, centre crop for evaluation
    crop_fraction: float = 0.8  # centre square crop side = crop_fraction * min(H, W)
    oversample: int = 4  # each melanoma appears this many times per pass
    passes: int | None = None  # passes over the training index per epoch; None: 2 (2017) / 5 (2016)
    val_fraction: float = 0.2  # ISIC 2016 only: stratified validation split carved from training
    val_seed: int = 0
    max_train: int | None = None  # smoke runs: keep at most this many training images (stratified)
    max_eval: int | None = None  # smoke runs: at most this many validation and test images each
    cache_dir: str | None = None  # None: $ATTNMEL_CACHE or ~/.cache/attnmel

    def resolved_passes(self) -> int:
        """Passes per epoch, with the paper's per-dataset default filled in."""
        return self.passes if self.passes is not None else DEFAULT_PASSES.get(self.dataset, 2)


@dataclass(frozen=True)
class ModelConfig:
    """Which network to build (see ``attnmel.models.list_models()``)."""

    variant: str = "attnmel"
    backbone: str = "vgg16_bn"  # vgg16_bn | vgg16
    weights: str = "imagenet"  # imagenet | none | path to a state dict


@dataclass(frozen=True)
class LossConfig:
    """Eq. 5: focal loss + lambda1 * Dice(A3) + lambda2 * Dice(A4)."""

    kind: str = "focal"  # focal | ce
    gamma: float = 2.0
    lambda1: float = 0.001
    lambda2: float = 0.01


@dataclass(frozen=True)
class OptimConfig:
    """SGD with Nesterov momentum, lr x0.1 every ``lr_step`` epochs."""

    lr: float = 0.01
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 1e-4
    lr_step: int = 10
    lr_gamma: float = 0.1
    batch_size: int = 32
    epochs: int = 50


@dataclass(frozen=True)
class RuntimeConfig:
    """Device and reproducibility settings; None means "the right choice for the device"."""

    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    bf16: bool | None = None  # None: on for CUDA, off for CPU
    channels_last: bool | None = None  # None: on for CUDA, off for CPU
    eval_batch_size: int = 64
    num_threads: int | None = None  # torch intra-op threads on CPU; None leaves torch's default
    fail_at_epoch: int | None = None  # fault injection: raise at the start of this epoch (retry tests)


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run needs."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)


_CHOICES: dict[tuple[str, str], tuple[str, ...]] = {
    ("data", "dataset"): ("isic2016", "isic2017"),
    ("data", "roi"): ("none", "lesion", "dermo", "bkg"),
    ("model", "backbone"): ("vgg16_bn", "vgg16"),
    ("loss", "kind"): ("focal", "ce"),
}
_POSITIVE = {
    ("data", "image_size"), ("data", "crop_size"), ("data", "oversample"), ("data", "passes"),
    ("data", "max_train"), ("data", "max_eval"), ("optim", "batch_size"), ("optim", "epochs"),
    ("optim", "lr_step"), ("runtime", "eval_batch_size"), ("runtime", "num_threads"),
}
_NON_NEGATIVE = {
    ("loss", "gamma"), ("loss", "lambda1"), ("loss", "lambda2"), ("optim", "lr"),
    ("optim", "momentum"), ("optim", "weight_decay"), ("optim", "lr_gamma"),
}


def _allowed_types(annotation: Any) -> tuple[type, ...]:
    """Python types a dataclass field annotation admits (``int | None`` → (int, NoneType))."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return tuple(a for a in typing.get_args(annotation))
    return (annotation,)


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _coerce(key: str, value: Any, annotation: Any) -> Any:
    allowed = _allowed_types(annotation)
    if value is None:
        if type(None) in allowed:
            return None
        raise UserError(f"config key '{key}' must not be null")
    if isinstance(value, bool):
        if bool in allowed:
            return value
    elif int in allowed and isinstance(value, int):
        return value
    elif float in allowed and isinstance(value, (int, float)):
        return float(value)
    elif float in allowed and isinstance(value, str) and _is_float(value):
        return float(value)  # YAML 1.1 reads "1e-3" (no dot) as a string
    elif str in allowed and isinstance(value, str):
        return value
    names = " or ".join("null" if t is type(None) else t.__name__ for t in allowed)
    raise UserError(f"config key '{key}' must be {names}, got {value!r}")


def _check_value(section: str, name: str, value: Any) -> None:
    key = f"{section}.{name}"
    choices = _CHOICES.get((section, name))
    if choices is not None and value not in choices:
        raise UserError(f"config key '{key}' must be one of {', '.join(choices)}, got {value!r}")
    if value is None or isinstance(value, (bool, str)):
        return
    if (section, name) in _POSITIVE and value <= 0:
        raise UserError(f"config key '{key}' must be > 0, got {value!r}")
    if (section, name) in _NON_NEGATIVE and value < 0:
        raise UserError(f"config key '{key}' must be >= 0, got {value!r}")


def config_from_dict(raw: dict[str, Any] | None) -> TrainConfig:
    """Build a validated TrainConfig from nested plain data (as parsed from YAML)."""
    raw = raw or {}
    if not isinstance(raw, dict):
        raise UserError(f"config must be a mapping of sections, got {type(raw).__name__}")
    sections = {f.name: f for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(raw) - set(sections))
    if unknown:
        raise UserError(f"unknown config section '{unknown[0]}' (known: {', '.join(sections)})")
    built: dict[str, Any] = {}
    for section_name, section_field in sections.items():
        cls = section_field.default_factory  # type: ignore[misc]
        given = raw.get(section_name) or {}
        if not isinstance(given, dict):
            raise UserError(f"config section '{section_name}' must be a mapping")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        hints = typing.get_type_hints(cls)  # resolves the postponed (string) annotations
        bad = sorted(set(given) - set(fields))
        if bad:
            raise UserError(
                f"unknown config key '{section_name}.{bad[0]}' (known: {', '.join(fields)})"
            )
        values = {}
        for name, value in given.items():
            value = _coerce(f"{section_name}.{name}", value, hints[name])
            _check_value(section_name, name, value)
            values[name] = value
        built[section_name] = cls(**values)
    cfg = TrainConfig(**built)
    if cfg.data.crop_size > cfg.data.image_size:
        raise UserError(
            f"config key 'data.crop_size' ({cfg.data.crop_size}) must not exceed "
            f"'data.image_size' ({cfg.data.image_size})"
        )
    if cfg.data.crop_size % 32:
        raise UserError(f"config key 'data.crop_size' must be a multiple of 32, got {cfg.data.crop_size}")
    return cfg


def config_to_dict(cfg: TrainConfig) -> dict[str, Any]:
    """Nested plain-data form of a config (YAML/JSON serialisable)."""
    return dataclasses.asdict(cfg)


def load_config(path: str | Path) -> TrainConfig:
    """Read a YAML config file (only the keys that differ from the defaults need be given)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise UserError(f"config file {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    return config_from_dict(raw)


def parse_override(item: str) -> tuple[list[str], Any]:
    """Split ``a.b=value`` into (["a", "b"], value), the value parsed as YAML scalar."""
    if "=" not in item:
        raise UserError(f"override '{item}' must look like section.key=value")
    key, text = item.split("=", 1)
    parts = key.strip().split(".")
    if not all(parts):
        raise UserError(f"override '{item}' must look like section.key=value")
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError:
        value = text
    return parts, value


def set_nested(raw: dict[str, Any], parts: list[str], value: Any) -> None:
    """Set ``raw[parts[0]][parts[1]]... = value``, creating mappings on the way."""
    node = raw
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise UserError(f"cannot set '{'.'.join(parts)}': '{part}' is not a section")
        node = child
    node[parts[-1]] = value


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
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
    tmp.replace(path)
