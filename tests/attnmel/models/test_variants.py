"""Every registered variant: forward/backward, output contract, layouts, parameter counts.

Driven by ``list_models()`` so a newly registered variant is covered without editing this file.
Models are built once per module (VGG-16 with fc6/fc7 has 134M parameters).
"""

from __future__ import annotations

import math

import pytest
import torch

from attnmel.losses import batch_dice_loss, downsample_reference, focal_loss
from attnmel.model_names import has_attention, list_models
from attnmel.models import ModelOutput, create_model

NAMES = list_models()


@pytest.fixture(scope="module")
def build():
    cache: dict[str, torch.nn.Module] = {}

    def get(name: str) -> torch.nn.Module:
        if name not in cache:
            torch.manual_seed(0)
            cache[name] = create_model(name)
        return cache[name]

    return get


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parametrize("name", NAMES)
def test_forward_backward_reaches_every_parameter(build, name, size):
    model = build(name).train()
    model.zero_grad(set_to_none=True)
    torch.manual_seed(size)
    x = torch.randn(2, 3, size, size)
    out = model(x)
    loss = focal_loss(out.logits, torch.tensor([0, 1]))
    if has_attention(name):  # Eq. 5 with a random reference map
        ref = (torch.rand(2, 1, size, size) > 0.5).float()
        loss = loss + sum(batch_dice_loss(a, downsample_reference(ref, a.shape[-2:])) for a in (out.attn3, out.attn4))
    loss.backward()
    assert math.isfinite(loss.item())
    for pname, param in model.named_parameters():
        assert param.grad is not None, f"{name}: no gradient for {pname}"
        # A sum is finite iff every element is (an overflow could only fail, never pass, wrongly);
        # much cheaper than an elementwise check over fc6's 103M gradients.
        assert torch.isfinite(param.grad.sum()), f"{name}: non-finite gradient for {pname}"
    model.zero_grad(set_to_none=True)


@pytest.mark.parametrize(("height", "width"), [(32, 32), (64, 64), (64, 96)])
@pytest.mark.parametrize("name", NAMES)
def test_output_contract(build, name, height, width):
    model = build(name).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, height, width))
    assert isinstance(out, ModelOutput)
    assert out.logits.shape == (2, 2) and out.logits.dtype == torch.float32
    if has_attention(name):
        assert out.attn3.shape == (2, 1, height // 8, width // 8)
        assert out.attn4.shape == (2, 1, height // 16, width // 16)
        for attn in (out.attn3, out.attn4):
            assert ((attn > 0) & (attn < 1)).all()
    else:
        assert out.attn3 is None and out.attn4 is None


@pytest.mark.parametrize("name", NAMES)
def test_channels_last_gives_the_same_outputs(build, name):
    model = build(name).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        plain = model(x)
        model.to(memory_format=torch.channels_last)
        try:
            fast = model(x.contiguous(memory_format=torch.channels_last))
        finally:
            model.to(memory_format=torch.contiguous_format)
    for a, b in zip(plain, fast):
        if a is None:
            assert b is None
        else:
            torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_backbone_declares_its_stages(build, name):
    info = build(name).backbone.feature_info
    stages = [(i.name, i.channels, i.reduction) for i in info]
    assert stages == [("pool3", 256, 8), ("pool4", 512, 16), ("pool5", 512, 32)]
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        taps = build(name).eval().backbone(x)
    for stage, tap in zip(info, taps):
        assert tap.shape == (1, stage.channels, 64 // stage.reduction, 96 // stage.reduction)


def test_parameter_counts_follow_the_architecture(build):
    vgg16, attnmel = build("vgg16"), build("attnmel")
    backbone = _count(vgg16.backbone)
    assert backbone == _count(attnmel.backbone)
    fc6, fc7, out = 512 * 7 * 7 * 4096 + 4096, 4096 * 4096 + 4096, 4096 * 2 + 2
    assert _count(vgg16) == backbone + fc6 + fc7 + out
    assert 134.0e6 < _count(vgg16) < 134.5e6  # torchvision's 138.4M minus the 1000-way layer
    # Attention (Eq. 1, official code): W_f and W_g without bias, W (one channel) with, then 1280→2.
    gate3 = 256 * 256 + 512 * 256 + (256 + 1)
    gate4 = 512 * 256 + 512 * 256 + (256 + 1)
    assert _count(attnmel) == backbone + gate3 + gate4 + 1280 * 2 + 2
    # "around 100M fewer parameters" (Sect. 3.2): removing fc6/fc7 saves 119.5M, attention adds 0.46M.
    assert 100e6 < _count(vgg16) - _count(attnmel) < 125e6
    assert _count(build("vgg16_gap")) == backbone + 512 * 2 + 2
    assert _count(build("melcnn")) == backbone + 1280 * 2 + 2


@pytest.mark.parametrize("name", NAMES)
def test_new_linear_layers_start_small(build, name):
    head = build(name).head  # the output layer every variant adds: N(0, 0.01), zero bias
    assert torch.count_nonzero(head.bias) == 0
    tolerance = 4 * 0.01 / math.sqrt(2 * head.weight.numel())  # 4 standard errors of a sample std
    assert abs(head.weight.std().item() - 0.01) < tolerance


@pytest.mark.slow
def test_vgg16_loads_a_torchvision_state_dict(tmp_path):
    """A state dict in torchvision's VGG-16-BN layout gives our vgg16 its convs and fc6/fc7."""
    import torchvision

    # torchvision's exact key layout from a meta-device model (no memory, no slow init), filled
    # with random values: a stand-in for the ImageNet file, which has the same keys.
    with torch.device("meta"):
        layout = torchvision.models.vgg16_bn(weights=None, init_weights=False).state_dict()
    torch.manual_seed(7)
    state = {
        k: torch.randn(v.shape) * 0.01 if v.is_floating_point() else torch.zeros(v.shape, dtype=v.dtype)
        for k, v in layout.items()
    }
    for key in state:
        if key.endswith("running_var"):
            state[key] = torch.rand(state[key].shape) + 0.5  # a valid variance
    path = tmp_path / "torchvision_vgg16_bn.pt"
    torch.save(state, path)
    with torch.device("meta"):
        reference = torchvision.models.vgg16_bn(weights=None, init_weights=False)
    reference.load_state_dict(state, assign=True)
    reference.eval()
    model = create_model("vgg16", weights=str(path)).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = reference.classifier[:6](torch.flatten(reference.avgpool(reference.features(x)), 1))
        _, _, pool5 = model.backbone(x)
        got = model.classifier(torch.flatten(model.avgpool(pool5), 1))
    torch.testing.assert_close(got, expected)
