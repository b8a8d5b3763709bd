"""The overlay PNG of ``attnmel predict --overlay``: an input, its evaluated crop and each
attention map (or CAM) blended over it as a heat map, with the lesion outline when a mask is given."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from attnmel.data.augment import centre_crop
from attnmel.data.preprocess import center_crop_box, preprocess_map
from attnmel.errors import UserError
from attnmel.record import MAP_TITLES
from attnmel.config import DataConfig

__all__ = ["PANEL", "read_mask", "overlay_image"]

PANEL = 256  # overlay panel height in pixels
_GAP, _HEADER = 6, 44


def read_mask(path: Path, size: tuple[int, int]) -> np.ndarray:
    """(H, W) bool lesion mask of an image of ``size`` (W, H); ``UserError`` when it does not fit."""
    try:
        with Image.open(path) as im:
            mask = np.asarray(im.convert("L")) > 0
    except Exception as exc:
        raise UserError(f"{path}: unreadable mask ({type(exc).__name__}: {exc})") from None
    if mask.shape != (size[1], size[0]):
        raise UserError(f"{path}: mask is {mask.shape[1]}x{mask.shape[0]} but its image is {size[0]}x{size[1]}")
    return mask


def _heat(crop_rgb: np.ndarray, amap: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend a [0, 1] map (P, P) as a jet heat map over an RGB panel (P, P, 3) uint8."""
    colours = matplotlib.colormaps["jet"](amap)[..., :3] * 255.0
    return (crop_rgb * (1 - alpha) + colours * alpha).round().clip(0, 255).astype(np.uint8)


def _contour(panel: Image.Image, mask: np.ndarray, colour=(255, 255, 255)) -> None:
    """Draw the outline of a bool mask (panel-sized) on ``panel`` in place."""
    inside = Image.fromarray(mask.astype(np.uint8) * 255)
    edge = np.asarray(inside.filter(ImageFilter.MaxFilter(3))) != np.asarray(inside.filter(ImageFilter.MinFilter(3)))
    pixels = np.asarray(panel).copy()
    pixels[edge] = colour
    panel.paste(Image.fromarray(pixels))


def _resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize(size, Image.Resampling.BILINEAR)) >= 128


def overlay_image(
    path: Path, data: DataConfig, model_name: str, crop_u8: np.ndarray, maps: dict[str, np.ndarray], prob: float,
    mask: np.ndarray | None = None,
) -> Image.Image:  # fmt: skip
    """One PNG-ready picture: the whole input (its own aspect; the evaluated square outlined),
    the evaluated crop, then each map (``PANEL``² in [0, 1]) blended over the crop; the lesion
    outline in white on every panel when ``mask`` (H, W) is given. ``data`` is the model's data
    config (the geometry of its evaluation crop), ``model_name`` goes in the title."""
    with Image.open(path) as im:
        im.draft("RGB", (PANEL * 4, PANEL * 4))  # JPEG: decode at reduced scale, enough for a thumbnail
        width, height = im.size  # the draft size; the geometry below is scale-free
        full = im.convert("RGB")
    thumb_w = max(1, round(PANEL * width / height))
    thumb = full.resize((thumb_w, PANEL), Image.Resampling.BILINEAR)
    left, top, right, _ = center_crop_box(width, height, data.crop_fraction)
    scale = (right - left) / data.image_size * PANEL / height  # resized pixels → thumbnail pixels
    offset = (data.image_size - data.crop_size) // 2
    x0, y0 = left * PANEL / height + offset * scale, top * PANEL / height + offset * scale
    side = data.crop_size * scale
    crop = Image.fromarray(np.ascontiguousarray(crop_u8.transpose(1, 2, 0))).resize((PANEL, PANEL), Image.Resampling.BILINEAR)
    panels = [thumb, crop] + [Image.fromarray(_heat(np.asarray(crop, dtype=np.float64), m)) for m in maps.values()]
    if mask is not None:
        _contour(thumb, _resize_mask(mask, (thumb_w, PANEL)))
        crop_mask = centre_crop(preprocess_map(mask, data.image_size, data.crop_fraction), data.crop_size)
        shown = _resize_mask(crop_mask.astype(bool), (PANEL, PANEL))
        for panel in panels[1:]:
            _contour(panel, shown)
    ImageDraw.Draw(thumb).rectangle([x0, y0, x0 + side - 1, y0 + side - 1], outline=(255, 255, 0), width=2)

    titles = ["input (box: evaluated)", "evaluated crop"] + [MAP_TITLES.get(k, k) for k in maps]
    font = ImageFont.load_default(size=13)
    # A narrow input keeps its aspect; its slot widens to fit the title, the panel centred in it.
    slots = [max(p.width, int(font.getlength(t)) + 4) for p, t in zip(panels, titles)]
    out = Image.new("RGB", (sum(slots) + _GAP * (len(panels) - 1), _HEADER + PANEL), "white")
    draw = ImageDraw.Draw(out)
    draw.text((2, 2), f"{path.name} · P(melanoma) = {prob:.3f} · {model_name}", fill="black", font=font)
    x = 0
    for panel, title, slot in zip(panels, titles, slots):
        out.paste(panel, (x + (slot - panel.width) // 2, _HEADER))
        draw.text((x + 2, _HEADER - 17), title, fill="black", font=font)
        x += slot + _GAP
    return out
