"""The VGG-16-BN backbone with its convolution biases folded into batch norm computes what
torchvision's biased VGG-16-BN computes: outputs, gradients and SGD trajectories in float64."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from attnmel.models.backbone import VGGBackbone, fold_conv_biases, make_backbone



def _close(got: torch.Tensor, expected: torch.Tensor, what: str = "") -> None:
    """Equal to 1e-10 of the tensor's scale: float64 rounding, amplified through 13 layers of
    a network whose evaluation outputs reach 1e6 after a few steps from random statistics."""
    scale = expected.abs().max().clamp(min=1e-30)
    assert (got - expected).abs().max() <= 1e-10 * scale, (what, float((got - expected).abs().max() / scale))


def _torchvision_features(seed: int, *, biases: bool) -> nn.Sequential:
    """torchvision's VGG-16-BN ``features`` (our reference: convolutions with biases), with
    random batch-norm affine parameters and running statistics; random conv biases when asked,
    else the zeros torchvision's VGG starts from."""
    from torchvision.models.vgg import cfgs, make_layers

    torch.manual_seed(seed)
    features = make_layers(cfgs["D"], batch_norm=True)  # VGG-16-BN's features, without the 120M-weight head
    with torch.no_grad():
        for layer in features:
            if isinstance(layer, nn.Conv2d):
                layer.bias.normal_(0.0, 0.5) if biases else layer.bias.zero_()
            elif isinstance(layer, nn.BatchNorm2d):
                layer.weight.uniform_(0.5, 1.5)
                layer.bias.normal_(0.0, 0.1)
                layer.running_mean.normal_(0.0, 0.5)
                layer.running_var.uniform_(0.5, 2.0)
    return features


def _pair(seed: int, *, biases: bool) -> tuple[VGGBackbone, VGGBackbone]:
    """(reference with biases, ours with its float64 state dict loaded), both float64: the load
    folds the biases in float64 (a float32 file would round each folded mean by ~1e-8)."""
    reference = VGGBackbone(_torchvision_features(seed, biases=biases)).double()
    ours = make_backbone("vgg16_bn")[0].double()
    ours.load_state_dict(reference.state_dict())  # torchvision's keys: features.<i>.{weight,bias,...}
    return reference, ours


def _loss(taps: tuple[torch.Tensor, ...], weights: list[torch.Tensor]) -> torch.Tensor:
    return sum((w * t).sum() for w, t in zip(weights, taps))


def _sgd(model: nn.Module, *, decay_pre_bn_biases: bool) -> torch.optim.SGD:
    """The paper's SGD (momentum 0.9, Nesterov, weight decay 1e-4); the reference's pre-BN biases,
    the parameters folding removes, in a group of their own."""
    biases = [m.bias for m in model.modules() if isinstance(m, nn.Conv2d) and m.bias is not None]
    others = [p for p in model.parameters() if all(p is not b for b in biases)]
    groups = [{"params": others}]
    if biases:
        groups.append({"params": biases, "weight_decay": 1e-4 if decay_pre_bn_biases else 0.0})
    return torch.optim.SGD(groups, lr=0.01, momentum=0.9, nesterov=True, weight_decay=1e-4)


def test_our_bn_convolutions_have_no_bias_and_plain_vgg_keeps_its_biases():
    bn, _ = make_backbone("vgg16_bn")
    plain, _ = make_backbone("vgg16")
    convs = [m for m in bn.features if isinstance(m, nn.Conv2d)]
    assert len(convs) == 13 and all(c.bias is None for c in convs)
    assert all(m.bias is not None for m in plain.features if isinstance(m, nn.Conv2d))


def test_folding_moves_each_bias_into_the_running_mean_and_leaves_the_input_alone():
    features, _ = make_backbone("vgg16_bn")
    state = {"0.weight": torch.ones(64, 3, 3, 3), "0.bias": torch.full((64,), 2.0), "1.running_mean": torch.ones(64)}
    original = dict(state)
    fold_conv_biases(features.features, state)
    assert "0.bias" not in state and torch.equal(state["1.running_mean"], torch.full((64,), -1.0))
    assert torch.equal(original["1.running_mean"], torch.ones(64))  # replaced, not changed in place


@pytest.mark.slow
@pytest.mark.parametrize("biases", [False, True], ids=["torchvision-init", "nonzero-biases"])
def test_folded_and_biased_backbones_agree_in_float64_through_sgd_steps(tmp_path, biases):
    """Train mode, eval mode and every gradient agree to 1e-10 at the start and after three SGD
    steps with weight decay. The reference's biases get weight decay when they start at zero
    (as torchvision initialises them: they stay zero, their gradient being zero). Nonzero ones
    decay slowly while the running mean keeps a lagging memory of them, a difference of order
    lr·wd·b/BN-momentum that is the reference's own artefact; they are left out of weight decay
    here, so the comparison is exact."""
    reference, ours = _pair(3, biases=biases)
    torch.manual_seed(4)
    x = torch.randn(4, 3, 32, 32, dtype=torch.float64)
    weights = [torch.randn(t.shape[1:], dtype=torch.float64) for t in ours.eval()(x)]

    reference.eval(), ours.eval()
    with torch.no_grad():
        for a, b in zip(reference(x), ours(x)):
            _close(b, a, "evaluation output")
    opt_ref, opt_ours = _sgd(reference, decay_pre_bn_biases=not biases), _sgd(ours, decay_pre_bn_biases=True)
    ref_params, our_params = dict(reference.named_parameters()), dict(ours.named_parameters())
    conv_biases = {f"features.{i}.bias" for i, m in enumerate(reference.features) if isinstance(m, nn.Conv2d)}
    assert set(our_params) == set(ref_params) - conv_biases
    for _ in range(3):
        outputs = {}
        for name, model, opt in (("reference", reference, opt_ref), ("ours", ours, opt_ours)):
            model.train()
            opt.zero_grad(set_to_none=True)
            outputs[name] = model(x)
            _loss(outputs[name], weights).backward()
        for a, b in zip(outputs["reference"], outputs["ours"]):
            _close(b, a, "training output")
        for name, param in our_params.items():
            _close(param.grad, ref_params[name].grad, name)
        for name in conv_biases:  # batch norm cancels a pre-BN bias: its gradient is zero
            assert ref_params[name].grad.abs().max() < 1e-10, name
        opt_ref.step(), opt_ours.step()
        reference.eval(), ours.eval()
        with torch.no_grad():
            for a, b in zip(reference(x), ours(x)):
                _close(b, a, "evaluation output after a step")
    for name, param in our_params.items():
        _close(param, ref_params[name], name)


def test_a_torchvision_state_dict_file_with_biases_round_trips(tmp_path):
    """A file in torchvision's layout (nonzero biases) → ``weights=<path>`` → our backbone's own
    state dict → a fresh backbone: the same function (to float32 rounding of the folded means)
    and the second load exact."""
    reference = VGGBackbone(_torchvision_features(5, biases=True))
    path = tmp_path / "torchvision_vgg16_bn.pt"
    torch.save(reference.state_dict(), path)  # keys features.<i>.*, as torchvision's files
    ours, _ = make_backbone("vgg16_bn", str(path))
    assert not any(k.startswith("features.") and k.endswith(".bias") and k.replace("bias", "running_mean")
                   not in ours.state_dict() for k in ours.state_dict())  # only batch norms keep a bias
    again_path = tmp_path / "ours.pt"
    torch.save(ours.state_dict(), again_path)
    again, _ = make_backbone("vgg16_bn", str(again_path))
    for key, value in ours.state_dict().items():
        assert torch.equal(again.state_dict()[key], value), key
    x = torch.randn(2, 3, 64, 64)
    reference.eval(), ours.eval(), again.eval()
    with torch.no_grad():
        for a, b, c in zip(reference(x), ours(x), again(x)):
            torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)
            assert torch.equal(c, b)


def test_a_whole_model_checkpoint_written_with_biases_loads_into_the_folded_model():
    """best.pt files written before the fold hold ``backbone.features.<i>.bias``: a plain
    ``load_state_dict`` of the whole model folds them (what ``predict`` and resume call)."""
    from attnmel.models import create_model

    torch.manual_seed(6)
    old = create_model("attnmel")
    biased = VGGBackbone(_torchvision_features(7, biases=True))
    old.backbone = biased
    state = old.state_dict()
    assert "backbone.features.0.bias" in state
    new = create_model("attnmel")
    new.load_state_dict(state)  # strict: no key left over, none missing
    old.eval(), new.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        a, b = old(x), new(x)
    torch.testing.assert_close(b.logits, a.logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(b.attn3, a.attn3, rtol=1e-5, atol=1e-5)
