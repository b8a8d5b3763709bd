"""Batched augmentation: equal to per-sample torch ops, image/ROI alignment, coverage of transforms."""

from __future__ import annotations

import pytest
import torch

from attnmel.data.augment import draw_augmentation, eval_batch, normalise, train_batch

S, C = 16, 9  # a 16×16 image has 256 pixels: each gets a unique uint8 value
IDENTITY = dict(mean=(0.0, 0.0, 0.0), std=(1 / 255, 1 / 255, 1 / 255))  # normalise(x) == x


def _position_images(batch: int) -> torch.Tensor:
    """(B, 3, S, S) uint8 where channel 0 is the pixel's flat index: outputs reveal their source."""
    pos = torch.arange(S * S, dtype=torch.uint8).view(1, 1, S, S).expand(batch, 1, S, S)
    noise = torch.randint(0, 256, (batch, 2, S, S), generator=torch.Generator().manual_seed(5), dtype=torch.uint8)
    return torch.cat([pos, noise], dim=1).contiguous()


def test_matches_per_sample_crop_rot90_and_flips():
    batch = 64
    images = _position_images(batch)
    out, _ = train_batch(images, None, crop=C, generator=torch.Generator().manual_seed(11), **IDENTITY)
    aug = draw_augmentation(batch, S, C, torch.Generator().manual_seed(11))  # the same draws
    for b in range(batch):
        t, l = int(aug.top[b]), int(aug.left[b])
        ref = torch.rot90(images[b, :, t : t + C, l : l + C], int(aug.k[b]), dims=(-2, -1))
        if aug.hflip[b]:
            ref = ref.flip(-1)
        if aug.vflip[b]:
            ref = ref.flip(-2)
        assert torch.equal(out[b].round().to(torch.uint8), ref), f"sample {b}: {aug}"


def test_roi_stays_aligned_with_its_image():
    """A ROI defined as a threshold of the image is still that threshold after augmentation."""
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (32, 3, 40, 40), generator=g, dtype=torch.uint8)
    rois = (images[:, :1] > 128).to(torch.uint8)
    mean, std = (0.3, 0.5, 0.7), (0.2, 0.25, 0.3)
    out, out_rois = train_batch(images, rois, crop=24, mean=mean, std=std, generator=g)
    assert out.shape == (32, 3, 24, 24) and out_rois.shape == (32, 1, 24, 24)
    assert out.dtype == out_rois.dtype == torch.float32
    red = (out[:, :1] * std[0] + mean[0]) * 255  # undo the normalisation
    assert torch.equal(out_rois, (red.round() > 128).float())


def test_crops_are_whole_windows_inside_the_image():
    batch = 200
    g = torch.Generator().manual_seed(3)
    out, _ = train_batch(_position_images(batch), None, crop=C, generator=g, **IDENTITY)
    src = out[:, 0].round().long().view(batch, -1)  # flat source index of every output pixel
    rows, cols = src // S, src % S
    for b in range(batch):
        r, c = rows[b].unique(), cols[b].unique()
        assert len(src[b].unique()) == C * C  # a permutation of a C×C window, no pixel repeated
        assert len(r) == len(c) == C and r.max() - r.min() == C - 1 and c.max() - c.min() == C - 1
    assert rows.min() >= 0 and rows.max() <= S - 1
    assert {int(rows[b].min()) for b in range(batch)} == set(range(S - C + 1))  # every offset reachable


def test_each_rotation_and_both_flips_occur():
    """All 8 distinct results of rot90·k with h/v flips show up in the outputs."""
    batch = 256
    g = torch.Generator().manual_seed(1)
    out, _ = train_batch(_position_images(batch), None, crop=C, generator=g, **IDENTITY)
    src = out[:, 0].round().long()  # (B, C, C) flat source index
    rows, cols = src // S, src % S
    seen = set()
    for b in range(batch):
        r0, c0 = rows[b].min(), cols[b].min()  # the window's top-left corner in the source
        where = lambda i, j: (int(rows[b, i, j] - r0), int(cols[b, i, j] - c0))  # noqa: E731
        seen.add((where(0, 0), where(0, C - 1)))  # where two output corners came from fixes the transform
    assert len(seen) == 8
    aug = draw_augmentation(batch, S, C, torch.Generator().manual_seed(1))
    assert set(aug.k.tolist()) == {0, 1, 2, 3}
    assert set(aug.hflip.tolist()) == set(aug.vflip.tolist()) == {0, 1}


def test_same_generator_state_same_batch():
    images = _position_images(8)
    a, _ = train_batch(images, None, crop=C, generator=torch.Generator().manual_seed(4), **IDENTITY)
    b, _ = train_batch(images, None, crop=C, generator=torch.Generator().manual_seed(4), **IDENTITY)
    c, _ = train_batch(images, None, crop=C, generator=torch.Generator().manual_seed(5), **IDENTITY)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_eval_batch_is_the_normalised_centre_crop():
    images = torch.randint(0, 256, (4, 3, 20, 20), dtype=torch.uint8)
    mean, std = (0.1, 0.2, 0.3), (0.5, 0.6, 0.7)
    out = eval_batch(images, crop=12, mean=mean, std=std)
    m, s = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    torch.testing.assert_close(out, (images[..., 4:16, 4:16].float() / 255 - m) / s)
    torch.testing.assert_close(normalise(images, mean, std), (images.float() / 255 - m) / s)


def test_bad_crop_sizes_are_rejected():
    images = torch.zeros(2, 3, 8, 8, dtype=torch.uint8)
    with pytest.raises(ValueError):
        train_batch(images, None, crop=9, generator=torch.Generator(), **IDENTITY)
    with pytest.raises(ValueError):
        eval_batch(images, crop=0, **IDENTITY)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_runs_on_the_gpu_with_a_gpu_generator():
    images = _position_images(16).cuda()
    rois = (images[:, :1] > 100).to(torch.uint8)
    out, out_rois = train_batch(images, rois, crop=C, generator=torch.Generator("cuda").manual_seed(0), **IDENTITY)
    assert out.is_cuda and out_rois.is_cuda
    assert torch.equal(out_rois, (out[:, :1].round() > 100).float())
