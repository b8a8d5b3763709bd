"""Batch Dice regulariser (Eq. 4) and the reference-map downsampling."""

from __future__ import annotations

import pytest
import torch

from attnmel.losses import batch_dice_loss, downsample_reference


def test_identical_binary_maps_give_zero():
    gen = torch.Generator().manual_seed(0)
    ref = (torch.rand(4, 1, 7, 7, generator=gen) > 0.5).float()
    assert batch_dice_loss(ref.clone(), ref).item() == pytest.approx(0.0, abs=1e-6)


def test_disjoint_maps_give_one():
    a = torch.zeros(2, 1, 4, 4)
    a[..., :2, :] = 1
    assert batch_dice_loss(a, 1 - a).item() == pytest.approx(1.0, abs=1e-7)


def test_all_zero_reference_is_finite():
    attn = torch.full((3, 1, 4, 4), 0.3, requires_grad=True)
    zero = torch.zeros(3, 1, 4, 4)
    loss = batch_dice_loss(attn, zero)
    loss.backward()
    assert loss.item() == pytest.approx(1.0) and torch.isfinite(attn.grad).all()
    both_zero = batch_dice_loss(zero, zero)
    assert torch.isfinite(both_zero)


def test_is_one_value_over_the_batch_not_a_mean_of_images():
    """Hand case. Image 1: map = reference = one pixel. Image 2: map = three pixels, empty reference.

    Batch: 1 - 2·1 / (1 + 1 + 3) = 0.6. Per image it would be mean(0, 1) = 0.5.
    """
    attn, ref = torch.zeros(2, 1, 2, 2), torch.zeros(2, 1, 2, 2)
    attn[0, 0, 0, 0] = ref[0, 0, 0, 0] = 1
    attn[1, 0].view(-1)[:3] = 1
    assert batch_dice_loss(attn, ref).item() == pytest.approx(1 - 2 * 1 / 5)
    per_image = torch.stack([batch_dice_loss(attn[i : i + 1], ref[i : i + 1]) for i in range(2)]).mean()
    assert per_image.item() == pytest.approx(0.5, abs=1e-6)


def test_soft_maps_follow_equation_4():
    gen = torch.Generator().manual_seed(1)
    attn, ref = torch.rand(3, 1, 5, 5, generator=gen), torch.rand(3, 1, 5, 5, generator=gen)
    expected = 1 - 2 * (attn.double() * ref.double()).sum() / (attn.double() + ref.double()).sum()
    assert batch_dice_loss(attn, ref).item() == pytest.approx(expected.item(), rel=1e-6)
    assert batch_dice_loss(attn.bfloat16(), ref).dtype == torch.float32


def test_shape_mismatch_is_rejected():
    with pytest.raises(ValueError, match="shape"):
        batch_dice_loss(torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 8, 8))


def test_downsample_reference_gives_block_fractions():
    gen = torch.Generator().manual_seed(2)
    ref = (torch.rand(2, 1, 16, 24, generator=gen) > 0.5).to(torch.uint8)
    small = downsample_reference(ref, (4, 6))
    assert small.shape == (2, 1, 4, 6) and small.dtype == torch.float32
    blocks = ref.float().reshape(2, 1, 4, 4, 6, 4).mean(dim=(3, 5))  # 4×4 blocks, independently
    torch.testing.assert_close(small, blocks)
    assert ((small > 0) & (small < 1)).any()  # soft values, not re-binarised


def test_downsample_reference_accepts_a_torch_size():
    attn = torch.rand(1, 1, 7, 7)
    ref = torch.ones(1, 1, 56, 56)
    assert downsample_reference(ref, attn.shape[-2:]).shape == attn.shape
