"""How many trials fit on one GPU: one trial's device memory, estimated or measured, and the
packing rule (the most trials whose memory fits in 90 % of the card; ``resources.gpus`` 1/n).

The estimate (no torch, no card needed) adds four parts:

``context``   the CUDA context of the trial's process (outside PyTorch's allocator)
``data``      what ``fit`` moves onto the device: every image of the three splits (uint8,
              3 × S²), the training ROI maps and the evaluation splits' lesion masks (S² each),
              and, at the end, the largest external test set while it is scored
``step``      weights, gradients, momentum and the activations of one training step (the
              activations scale with the batch and the crop's area), and the copy of the best
              epoch's weights ``fit`` keeps on the device
``other``     evaluation, cuDNN's autotuning workspaces and the allocator's slack

Its anchors are the H100 run of 2026-11-28 (``docs/gpu/2026-11-28_h100_check.json``): the step
peaks at batch 32 and 224 px per variant and precision, and one whole AttnMel-CNN-Lesion trial on
ISIC 2017 (8.35 GiB reserved, 762 MiB more per process in nvidia-smi). It is an estimate: a table
measured by ``python -m benchmarks.gpu --parts capacity`` (``capacity.json``, found through
``$ATTNMEL_CAPACITY`` or beside this module) replaces it wherever it has the case.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from attnmel.errors import UserError

__all__ = ["GIB", "HEADROOM", "SCHEMA", "MEASURED_ENV", "CARD_MEMORY_ENV", "DEFAULT_CARD_GIB",
           "TrialShape", "TrialMemory", "MeasuredTrial", "MeasuredTable", "data_bytes",
           "estimate_trial_memory", "trials_that_fit", "fraction_for", "trials_per_card",
           "load_measured"]

GIB = 2**30
HEADROOM = 0.10  # a card is planned to 90 % of its memory
RAY_UNITS = 10_000  # Ray counts fractional resources in steps of 1/10,000
SCHEMA = "attnmel-capacity/1"
MEASURED_ENV = "ATTNMEL_CAPACITY"  # path of a capacity.json measured by the benchmark
CARD_MEMORY_ENV = "ATTNMEL_GPU_MEMORY_GIB"  # the card's memory when the driver cannot see one
DEFAULT_CARD_GIB = 80.0  # the H100 80GB the project's numbers come from
PACKAGED = Path(__file__).with_name("capacity.json")  # committed once measured on a card

# The estimate's anchors (H100 80GB HBM3, torch 2.11, 2026-11-28): one training step at 224 px,
# batch 32, peak allocated GiB (weights, gradients, momentum, activations), bf16 autocast +
# channels_last and fp32; variants without a row use the largest.
STEP_PEAK_GIB = {
    "bf16": {"vgg16": 3.953, "vgg16_gap": 2.391, "melcnn": 2.393, "attnmel": 2.468},
    "fp32": {"vgg16": 5.390, "vgg16_gap": 4.055, "melcnn": 4.057, "attnmel": 4.114},
}
STEP_ANCHOR = (32, 224)  # (batch, crop) of the step peaks
# A whole AttnMel-CNN-Lesion trial, batch 32, bf16, ISIC 2017 on the device: its peak reserved
# GiB, and its (training images with ROI maps, evaluation images, lesion masks).
TRIAL_RESERVED_GIB = 8.352
TRIAL_DATA = (2000, 750, 750)
CONTEXT_GIB = 0.744  # nvidia-smi's 9,272 MiB for that process minus its 8,510 MiB reserved


@dataclass(frozen=True)
class TrialShape:
    """What one trial's device memory depends on."""

    variant: str  # a registered model name ("attnmel", "vgg16_gap", ...)
    roi: str  # "none" or the ROI of a regularised variant
    batch_size: int
    train_images: int
    eval_images: int  # validation + test
    eval_masks: int = 0  # evaluation images with a lesion mask on the device
    external_images: int = 0  # the largest external test set (on the device while scored)
    image_size: int = 256
    crop_size: int = 224
    bf16: bool = True  # training precision (bf16 autocast, CUDA's default)

    @property
    def family(self) -> str:
        """The measured table's key: the variant, ``+roi`` for any ROI (ROI maps weigh the same)."""
        return self.variant + ("+roi" if self.roi != "none" else "")

    @property
    def precision(self) -> str:
        return "bf16" if self.bf16 else "fp32"


@dataclass(frozen=True)
class TrialMemory:
    """One trial's device memory in bytes, by part, and where the number comes from."""

    context: int
    data: int
    step: int
    other: int
    source: str  # "estimated" or "measured on <card>"

    @property
    def total(self) -> int:
        return self.context + self.data + self.step + self.other


def data_bytes(shape: TrialShape) -> int:
    """Bytes ``fit`` holds on the device for the data at its peak (the last external set scored)."""
    pixels = shape.image_size**2
    images = shape.train_images + shape.eval_images + shape.external_images
    maps = (shape.train_images if shape.roi != "none" else 0) + shape.eval_masks
    return images * 3 * pixels + maps * pixels + 8 * images  # uint8 images and maps, int64 labels


def _step_bytes(shape: TrialShape, weight_bytes: int) -> int:
    peaks = STEP_PEAK_GIB[shape.precision]
    peak = peaks.get(shape.variant, max(peaks.values())) * GIB
    fixed = 3 * weight_bytes  # weights, gradients, SGD momentum (fp32), in the step peaks
    batch, crop = STEP_ANCHOR
    scale = shape.batch_size / batch * (shape.crop_size / crop) ** 2
    return int(fixed + max(peak - fixed, 0.0) * scale + weight_bytes)  # + the best epoch's copy


def _other_bytes() -> int:
    train, evaluation, masks = TRIAL_DATA
    anchor = TrialShape("attnmel", "lesion", STEP_ANCHOR[0], train, evaluation, masks)
    step = STEP_PEAK_GIB["bf16"]["attnmel"] * GIB
    return int(max(TRIAL_RESERVED_GIB * GIB - step - data_bytes(anchor), 0.0))


def estimate_trial_memory(shape: TrialShape, weight_bytes: int = 0) -> TrialMemory:
    """One trial's device memory from the anchors above; ``weight_bytes``: the model's fp32
    state (``attnmel.checkpoint_sizes.checkpoint_sizes(cfg).model``), which does not scale with the
    batch."""
    return TrialMemory(context=int(CONTEXT_GIB * GIB), data=data_bytes(shape),
                       step=_step_bytes(shape, weight_bytes), other=_other_bytes(),
                       source="estimated")


def trials_that_fit(trial_bytes: float, card_bytes: float, headroom: float = HEADROOM) -> int:
    """The most trials of ``trial_bytes`` each whose sum stays within ``(1 - headroom)`` of
    the card (0 when not even one does)."""
    if trial_bytes <= 0:
        raise ValueError(f"a trial's memory must be positive, got {trial_bytes}")
    budget = (1.0 - headroom) * card_bytes
    n = max(int(budget // trial_bytes), 0)
    while (n + 1) * trial_bytes <= budget:  # floor division of floats can land one short
        n += 1
    while n > 0 and n * trial_bytes > budget:
        n -= 1
    return n


def fraction_for(n: int) -> float:
    """The ``resources.gpus`` that packs ``n`` trials on a card: 1/n rounded down to Ray's step."""
    if n < 1:
        raise ValueError(f"no fraction packs {n} trials")
    return math.floor(RAY_UNITS / n) / RAY_UNITS


def trials_per_card(gpus: float) -> int:
    """How many trials asking ``gpus`` each Ray places on one card (0 for CPU-only trials)."""
    if gpus <= 0:
        return 0
    if gpus >= 1:
        return 1
    return RAY_UNITS // max(round(gpus * RAY_UNITS), 1)


@dataclass(frozen=True)
class MeasuredTrial:
    """One row of ``capacity.json``: a trial's peak device memory measured on a card."""

    family: str  # TrialShape.family
    batch_size: int
    precision: str
    crop_size: int
    images: int  # on the device
    data_bytes: int
    max_allocated_bytes: int
    max_reserved_bytes: int


@dataclass(frozen=True)
class MeasuredTable:
    """``capacity.json``: what ``python -m benchmarks.gpu --parts capacity`` measured on a card."""

    card: str
    card_memory_bytes: int
    context_bytes: int | None
    rows: tuple[MeasuredTrial, ...]
    path: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "card": self.card, "card_memory_bytes": self.card_memory_bytes,
                "context_bytes": self.context_bytes, "rows": [asdict(r) for r in self.rows]}

    @classmethod
    def from_dict(cls, raw: Any, path: str = "") -> MeasuredTable:
        """The table; a file of another kind or shape is one ``UserError`` line."""
        name = path or "capacity table"
        if not isinstance(raw, dict) or raw.get("schema") != SCHEMA:
            raise UserError(f"{name}: not a capacity table (expected schema {SCHEMA!r})")
        try:
            rows = tuple(MeasuredTrial(**r) for r in raw["rows"])
            context = raw.get("context_bytes")
            return cls(str(raw["card"]), int(raw["card_memory_bytes"]),
                       None if context is None else int(context), rows, path)
        except (KeyError, TypeError, ValueError) as exc:
            why = f"{type(exc).__name__}: {exc}"
            raise UserError(f"{name}: damaged capacity table ({why})") from None

    def trial_memory(self, shape: TrialShape) -> TrialMemory | None:
        """The measured memory of ``shape`` (its own data counted exactly), None when the table
        lacks its family, batch, precision or crop."""
        key = (shape.family, shape.batch_size, shape.precision, shape.crop_size)
        rows = [r for r in self.rows if (r.family, r.batch_size, r.precision, r.crop_size) == key]
        if not rows:
            return None
        beyond_data = max(r.max_reserved_bytes - r.data_bytes for r in rows)
        context = self.context_bytes if self.context_bytes is not None else int(CONTEXT_GIB * GIB)
        return TrialMemory(context=int(context), data=data_bytes(shape), step=int(beyond_data),
                           other=0, source=f"measured on {self.card}")


def load_measured(path: str | os.PathLike | None = None) -> MeasuredTable | None:
    """The measured table: ``path``, else ``$ATTNMEL_CAPACITY``, else the packaged one; None when
    there is none. A named file that is missing or damaged is one ``UserError`` line."""
    chosen = path or os.environ.get(MEASURED_ENV) or None
    if chosen is None:
        if not PACKAGED.is_file():
            return None
        chosen = PACKAGED
    file = Path(chosen).expanduser()
    if not file.is_file():
        raise UserError(f"capacity table {file} (${MEASURED_ENV}) does not exist")
    try:
        raw = json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        why = f"{type(exc).__name__}: {exc}"
        raise UserError(f"capacity table {file}: cannot read it ({why})") from None
    return MeasuredTable.from_dict(raw, str(file))
