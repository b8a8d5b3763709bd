"""AttentionGate against Eq. 1–3 written out independently, plus its initialisation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from attnmel.models.attention import AttentionGate


def _features(*shape: int) -> torch.Tensor:
    return torch.relu(torch.randn(*shape))  # VGG pool outputs are non-negative


def _eq_1_to_3(gate: AttentionGate, local: torch.Tensor, guide_up: torch.Tensor):
    """Eq. 1–3 as einsums, given the guide's projection already at ``local``'s size."""
    w_f = gate.local_proj.weight[:, :, 0, 0]  # (256, C)
    w = gate.score.weight[0, :, 0, 0]  # (256,)
    hidden = torch.relu(torch.einsum("oc,bchw->bohw", w_f, local) + guide_up)
    response = torch.einsum("o,bohw->bhw", w, hidden).unsqueeze(1) + gate.score.bias.view(1, 1, 1, 1)
    attn = torch.sigmoid(response)
    return attn * local, attn


def _guide_projection(gate: AttentionGate, guide: torch.Tensor) -> torch.Tensor:
    w_g = gate.guide_proj.weight[:, :, 0, 0]
    projected = torch.einsum("oc,bchw->bohw", w_g, guide)
    return projected if gate.guide_proj.bias is None else projected + gate.guide_proj.bias.view(1, -1, 1, 1)


@pytest.mark.parametrize("guide_bias", [False, True])
def test_matches_the_equations_with_a_global_guide(guide_bias):
    torch.manual_seed(0)
    gate = AttentionGate(64, 32, inter_channels=16, guide_bias=guide_bias)
    for p in (gate.guide_proj.bias, gate.score.bias):  # non-zero biases so they are exercised
        if p is not None:
            torch.nn.init.normal_(p)
    local, guide = _features(2, 64, 4, 4), _features(2, 32, 1, 1)  # 32 px input: pool5 is 1×1
    attended, attn = gate(local, guide)
    # A 1×1 guide upsampled bilinearly is the same vector at every location: a broadcast.
    expected_attended, expected_attn = _eq_1_to_3(gate, local, _guide_projection(gate, guide))
    torch.testing.assert_close(attn, expected_attn)
    torch.testing.assert_close(attended, expected_attended)


def test_guide_is_upsampled_bilinearly_to_the_local_size():
    torch.manual_seed(1)
    gate = AttentionGate(8, 8, inter_channels=4)
    local, guide = _features(1, 8, 8, 6), _features(1, 8, 2, 3)
    _, attn = gate(local, guide)
    up = F.interpolate(_guide_projection(gate, guide), size=(8, 6), mode="bilinear", align_corners=False)
    torch.testing.assert_close(attn, _eq_1_to_3(gate, local, up)[1])


def test_shapes_range_and_per_location_scaling():
    torch.manual_seed(2)
    gate = AttentionGate(256, 512)
    local, guide = _features(2, 256, 8, 8), _features(2, 512, 2, 2)
    attended, attn = gate(local, guide)
    assert attended.shape == local.shape and attn.shape == (2, 1, 8, 8)
    assert ((attn > 0) & (attn < 1)).all()
    torch.testing.assert_close(attended, local * attn)  # one scalar per location, all channels


def test_he_fan_in_initialisation_and_zero_biases():
    torch.manual_seed(3)
    gate = AttentionGate(256, 512)
    # Eq. 1 and the official code: no bias on W_f or W_g, one on W
    assert gate.local_proj.bias is None and gate.guide_proj.bias is None and gate.score.bias is not None
    assert AttentionGate(256, 512, guide_bias=True).guide_proj.bias is not None  # the named option
    for conv in (gate.local_proj, gate.guide_proj, gate.score):
        fan_in = conv.weight.shape[1]
        expected = math.sqrt(2.0 / fan_in)
        assert abs(conv.weight.std().item() - expected) < 4 * expected / math.sqrt(2 * conv.weight.numel())
        if conv.bias is not None:
            assert torch.count_nonzero(conv.bias) == 0


def test_initial_attention_is_not_saturated():
    """The reason for fan_in: with fan_out, W (one output channel) would pin A at 0 or 1."""
    torch.manual_seed(4)
    gate = AttentionGate(256, 512)
    _, attn = gate(_features(4, 256, 8, 8), _features(4, 512, 2, 2))
    assert ((attn > 0.01) & (attn < 0.99)).float().mean() > 0.9


def test_gradients_reach_all_three_convolutions():
    gate = AttentionGate(16, 16, inter_channels=8)
    attended, attn = gate(_features(2, 16, 4, 4), _features(2, 16, 2, 2))
    (attended.mean() + attn.mean()).backward()
    for name, p in gate.named_parameters():
        assert p.grad is not None and torch.count_nonzero(p.grad) > 0, name


@pytest.mark.parametrize("size", [(4, 4), (8, 12)])
def test_channels_last_inputs(size):
    torch.manual_seed(5)
    gate = AttentionGate(32, 64, inter_channels=16)
    local, guide = _features(2, 32, *size), _features(2, 64, 1, 2)
    plain = gate(local, guide)
    gate.to(memory_format=torch.channels_last)
    cl = torch.channels_last
    fast = gate(local.contiguous(memory_format=cl), guide.contiguous(memory_format=cl))
    for a, b in zip(plain, fast):
        torch.testing.assert_close(b, a)
