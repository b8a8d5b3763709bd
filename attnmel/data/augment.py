"""Batched augmentation on the model's device (CPU or GPU).

Training (per sample, drawn from ``generator``): a random ``crop``×``crop`` window, a
rotation by k·90° (k ∈ {0, 1, 2, 3}), a horizontal and a vertical flip, each on or off;
normalisation by the training set's mean/std last. The image and its ROI map get the same
transform. Evaluation: the centre crop, normalised.

All four steps are one coordinate map: for every output pixel we know which pixel of the
256² source it comes from. The 16 (rotation, flip) combinations each have a fixed table of
offsets from the crop corner, built once per shape; a batch's index is a row lookup plus
the corner, and one ``torch.gather`` fetches every sample and channel. There is no Python
loop over samples, and ROI maps reuse the index.

Conventions (match ``torch.rot90(x, k, dims=(-2, -1))`` then ``flip(-1)`` then
``flip(-2)``): with n = crop − 1, output pixel (i, j) reads crop pixel
    k=0: (i, j)    k=1: (j, n−i)    k=2: (n−i, n−j)    k=3: (n−j, i)
after (i, j) ← (n−i if vflip, n−j if hflip).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["Augmentation", "draw_augmentation", "source_index", "train_batch", "eval_batch", "centre_crop", "normalise"]


@dataclass(frozen=True)
class Augmentation:
    """Per-sample transform parameters, each a (B,) int64 tensor."""

    top: Tensor  # crop offset (rows), in [0, S − crop]
    left: Tensor  # crop offset (columns)
    k: Tensor  # quarter turns counter-clockwise, in {0, 1, 2, 3}
    hflip: Tensor  # {0, 1}
    vflip: Tensor  # {0, 1}


def draw_augmentation(batch: int, size: int, crop: int, generator: torch.Generator) -> Augmentation:
    """Draw per-sample parameters on the generator's device."""
    if not 0 < crop <= size:
        raise ValueError(f"crop {crop} must be in [1, {size}] for {size}x{size} inputs")
    kw = {"generator": generator, "device": generator.device}
    top = torch.randint(0, size - crop + 1, (batch,), **kw)
    left = torch.randint(0, size - crop + 1, (batch,), **kw)
    k = torch.randint(0, 4, (batch,), **kw)
    flips = torch.randint(0, 2, (2, batch), **kw)
    return Augmentation(top=top, left=left, k=k, hflip=flips[0], vflip=flips[1])


@functools.lru_cache(maxsize=16)
def _transform_table(size: int, crop: int, device: torch.device) -> Tensor:
    """(16, crop·crop) int64: for transform t = 4k + 2·hflip + vflip, the offset of each
    output pixel's source from the crop's top-left corner in the S×S image (u·S + v)."""
    n = crop - 1
    ar = torch.arange(crop, device=device)
    rows = []
    for k in range(4):
        for hflip in (0, 1):
            for vflip in (0, 1):
                i = (n - ar if vflip else ar)[:, None].expand(crop, crop)
                j = (n - ar if hflip else ar)[None, :].expand(crop, crop)
                u, v = ((i, j), (j, n - i), (n - i, n - j), (n - j, i))[k]  # undo k quarter turns
                rows.append((u * size + v).reshape(-1))
    return torch.stack(rows)


def source_index(aug: Augmentation, size: int, crop: int, device: torch.device) -> Tensor:
    """(B, crop·crop) int64: flat index into the S×S source of every output pixel."""
    device = torch.device(device)
    table = _transform_table(size, crop, device)  # (16, crop·crop), built once per shape
    t = (aug.k * 4 + aug.hflip * 2 + aug.vflip).to(device)  # (B,)
    corner = (aug.top * size + aug.left).to(device)  # (B,)
    return table[t] + corner[:, None]  # (B, crop·crop)


def _gather(x: Tensor, index: Tensor, crop: int) -> Tensor:
    b, c, s, _ = x.shape
    flat = x.reshape(b, c, s * s)  # (B, C, S·S), a view
    out = torch.gather(flat, 2, index[:, None, :].expand(b, c, index.shape[1]))  # (B, C, crop·crop)
    return out.reshape(b, c, crop, crop)


def normalise(x_u8: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """uint8 (B, 3, H, W) → float32 ((x / 255) − mean) / std, as one scale and shift in place."""
    mean_t = torch.tensor(mean, dtype=torch.float64).view(1, -1, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float64).view(1, -1, 1, 1)
    scale = (1.0 / (255.0 * std_t)).to(device=x_u8.device, dtype=torch.float32)
    shift = (-mean_t / std_t).to(device=x_u8.device, dtype=torch.float32)
    return x_u8.to(torch.float32).mul_(scale).add_(shift)


def train_batch(
    images_u8: Tensor,
    rois_u8: Tensor | None,
    *,
    crop: int,
    mean: Sequence[float],
    std: Sequence[float],
    generator: torch.Generator,
) -> tuple[Tensor, Tensor | None]:
    """Random crop, rot90·k, h/v flips per sample; the ROI gets the identical transform.

    images_u8: (B, 3, S, S) uint8; rois_u8: (B, 1, S, S) uint8 {0, 1} or None.
    Returns images (B, 3, crop, crop) float32 normalised and rois (B, 1, crop, crop) float32.
    """
    b, _, s, s2 = images_u8.shape
    if s != s2:
        raise ValueError(f"expected square inputs, got {s}x{s2}")
    if rois_u8 is not None and rois_u8.shape != (b, 1, s, s):
        raise ValueError(f"rois shape {tuple(rois_u8.shape)} does not match images {(b, 1, s, s)}")
    aug = draw_augmentation(b, s, crop, generator)
    index = source_index(aug, s, crop, images_u8.device)  # (B, crop·crop)
    images = normalise(_gather(images_u8, index, crop), mean, std)  # (B, 3, crop, crop)
    rois = _gather(rois_u8, index.to(rois_u8.device), crop).float() if rois_u8 is not None else None
    return images, rois


def centre_crop(x: Tensor, crop: int) -> Tensor:
    """The centre ``crop``×``crop`` window of (..., S, S) maps: what evaluation sees."""
    s = x.shape[-1]
    if not 0 < crop <= s:
        raise ValueError(f"crop {crop} must be in [1, {s}] for {s}x{s} inputs")
    o = (s - crop) // 2
    return x[..., o : o + crop, o : o + crop]


def eval_batch(images_u8: Tensor, *, crop: int, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """Centre crop and normalise: (B, 3, S, S) uint8 → (B, 3, crop, crop) float32."""
    return normalise(centre_crop(images_u8, crop), mean, std)
