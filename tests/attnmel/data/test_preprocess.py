"""Deterministic preprocessing: crop geometry, resampling, map alignment, the disk cache, statistics."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from PIL import Image

from attnmel.data.layout import Sample, load_splits
from attnmel.data.preprocess import (
    center_crop_box,
    channel_stats,
    default_cache_dir,
    load_images,
    load_rois,
    preprocess_image,
    preprocess_map,
)
from attnmel.errors import UserError


def test_center_crop_box():
    assert center_crop_box(400, 300, 0.8) == (80, 30, 320, 270)
    assert center_crop_box(300, 400, 0.5) == (75, 125, 225, 275)
    assert center_crop_box(256, 256, 0.8) == (26, 26, 231, 231)  # side round(204.8) = 205
    left, top, right, bottom = center_crop_box(767, 1022, 0.8)
    assert right - left == bottom - top == 614 and abs((767 - right) - left) <= 1


def _two_colour_image(path: Path, width: int, height: int, fraction: float) -> None:
    """Blue inside the centre crop, red outside: any misplaced crop shows red."""
    img = np.zeros((height, width, 3), dtype=np.uint8)
    img[..., 0] = 255
    left, top, right, bottom = center_crop_box(width, height, fraction)
    img[top:bottom, left:right] = (0, 0, 255)
    Image.fromarray(img).save(path)  # PNG: lossless


@pytest.mark.parametrize("width,height", [(500, 300), (300, 500), (250, 250)])
def test_preprocess_image_keeps_exactly_the_centre_square(tmp_path, width, height):
    path = tmp_path / "x.png"
    _two_colour_image(path, width, height, 0.8)
    out = preprocess_image(path, size=64, fraction=0.8)
    assert out.shape == (3, 64, 64) and out.dtype == np.uint8
    assert out[0].max() <= 2 and out[2].min() >= 253  # no red leaks in, all of it is blue


def test_preprocess_image_matches_torchvision_antialiased_bilinear(tmp_path):
    rng = np.random.default_rng(0)
    smooth = Image.fromarray(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)).resize((800, 600), Image.BICUBIC)
    path = tmp_path / "x.png"
    smooth.save(path)
    ours = preprocess_image(path, size=96, fraction=0.8).astype(np.float64)
    # independent reference: integer crop (box 160..640, 60..540) then torchvision's antialiased resize
    crop = torch.from_numpy(np.array(smooth)[60:540, 160:640]).permute(2, 0, 1)
    ref = TF.resize(crop, [96, 96], interpolation=TF.InterpolationMode.BILINEAR, antialias=True).double().numpy()
    assert np.abs(ours - ref).mean() < 1.0


def test_maps_follow_the_image_geometry(tmp_path):
    """A map derived from the image (a threshold of it) stays derived after preprocessing."""
    yy, xx = np.mgrid[0:300, 0:420]
    blob = (((yy - 140) / 70.0) ** 2 + ((xx - 230) / 110.0) ** 2 < 1) | ((yy > 200) & (xx > 150) & (xx < 190))
    img = np.where(blob[..., None], 240, 20).astype(np.uint8).repeat(3, axis=-1)
    path = tmp_path / "x.png"
    Image.fromarray(img).save(path)
    image = preprocess_image(path, size=64, fraction=0.8)
    roi = preprocess_map(blob.astype(np.uint8), size=64, fraction=0.8)
    assert set(np.unique(roi)) == {0, 1}
    agree = (roi == (image[0] >= 130)).mean()
    assert agree == 1.0


def _rewrite(path: Path, colour) -> None:
    Image.new("RGB", Image.open(path).size, colour).save(path, quality=95)
    os.utime(path, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))  # a visibly newer mtime


def test_image_cache_is_reused_and_invalidated(synth2017, tmp_path):
    cache = tmp_path / "cache"
    samples = load_splits("isic2017", synth2017)["val"]
    a, key_a = load_images(samples, image_size=32, cache_dir=cache)
    files = sorted(cache.glob("*.npy"))
    assert len(files) == 1 and files[0].stat().st_size > 0 and len(list(cache.glob("*.ids.json"))) == 1
    assert not [p for p in cache.iterdir() if ".tmp" in p.name]  # written via a temporary + rename
    stamp = files[0].stat().st_mtime_ns
    b, key_b = load_images(samples, image_size=32, cache_dir=cache)
    assert key_b == key_a and files[0].stat().st_mtime_ns == stamp  # read back, not rebuilt
    assert torch.equal(a, b)
    expected = np.stack([preprocess_image(s.image, 32, 0.8) for s in samples])
    assert np.array_equal(b.numpy(), expected)

    _, key_c = load_images(samples, image_size=40, cache_dir=cache)  # a parameter changed
    _, key_d = load_images(samples, image_size=32, crop_fraction=0.7, cache_dir=cache)
    assert len({key_a, key_c, key_d}) == 3

    _rewrite(samples[2].image, (255, 255, 255))  # a file changed
    e, key_e = load_images(samples, image_size=32, cache_dir=cache)
    assert key_e != key_a
    assert e[2].min() >= 250 and torch.equal(e[:2], a[:2])


def test_roi_cache_is_invalidated_when_a_mask_changes(synth2017, tmp_path):
    cache = tmp_path / "cache"
    samples = load_splits("isic2017", synth2017)["val"]
    a, key_a = load_rois(samples, "lesion", image_size=32, cache_dir=cache)
    assert a.shape == (len(samples), 1, 32, 32) and set(a.unique().tolist()) == {0, 1}
    b, key_b = load_rois(samples, "bkg", image_size=32, cache_dir=cache)
    assert key_b != key_a and torch.equal(b, 1 - a)
    mask = samples[0].lesion
    Image.new("L", Image.open(mask).size, 0).save(mask)
    os.utime(mask, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    c, key_c = load_rois(samples, "lesion", image_size=32, cache_dir=cache)
    assert key_c != key_a and c[0].sum() == 0 and torch.equal(c[1:], a[1:])


def test_default_cache_dir_honours_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("ATTNMEL_CACHE", str(tmp_path / "here"))
    assert default_cache_dir() == tmp_path / "here"
    monkeypatch.delenv("ATTNMEL_CACHE")
    assert default_cache_dir() == Path("~/.cache/attnmel").expanduser()


def test_channel_stats_match_a_float64_reference():
    x = torch.randint(0, 256, (7, 3, 9, 11), dtype=torch.uint8)
    x[:, 1] //= 3  # different statistics per channel
    mean, std = channel_stats(x)
    ref = x.double().div(255).permute(1, 0, 2, 3).reshape(3, -1)
    np.testing.assert_allclose(mean, ref.mean(1).numpy(), rtol=1e-12)
    np.testing.assert_allclose(std, ref.std(1, unbiased=False).numpy(), rtol=1e-10)


def test_map_of_another_size_than_its_image_is_a_user_error(tmp_path):
    image = tmp_path / "ISIC_0000000.jpg"
    Image.new("RGB", (40, 30)).save(image)
    mask = tmp_path / "ISIC_0000000_segmentation.png"
    Image.new("L", (20, 15)).save(mask)
    s = Sample("ISIC_0000000", 0, image, mask, None, None)
    with pytest.raises(UserError, match="ISIC_0000000_segmentation.png"):
        load_rois([s], "lesion", image_size=16, cache_dir=tmp_path / "cache")
    assert not list((tmp_path / "cache").glob("*"))  # nothing half-written


def test_cache_is_read_through_a_memory_map_of_its_file(synth2017_ro, tmp_path):
    """Trials on one node share the cache's pages: the tensor maps the file, it is not a copy."""
    samples = load_splits("isic2017", synth2017_ro)["train"]
    cache = tmp_path / "cache"
    load_images(samples, image_size=32, cache_dir=cache)  # build
    images, _ = load_images(samples, image_size=32, cache_dir=cache)  # read back
    (path,) = cache.glob("*.npy")
    mapped = {line.split(maxsplit=5)[-1] for line in Path("/proc/self/maps").read_text().splitlines() if len(line.split()) == 6}
    assert str(path.resolve()) in mapped
    assert images.dtype == torch.uint8 and int(images.sum()) == int(np.load(path).astype(np.int64).sum())
