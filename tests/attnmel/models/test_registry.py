"""Registry, paper names and backbone weights loading (none / imagenet cache / state-dict file)."""

from __future__ import annotations

import time

import pytest
import torch

from attnmel.errors import UserError
from attnmel.model_names import PAPER_NAMES, ROI_SUFFIXES, list_models, paper_name
from attnmel.models import create_model, register_model
from attnmel.models.backbone import BACKBONES, OFFLINE_ENV, check_weights, imagenet_weights_path, make_backbone


def test_list_models_sorted_and_has_the_paper_variants():
    names = list_models()
    assert names == sorted(names)
    assert {"vgg16", "vgg16_gap", "melcnn", "attnmel"} <= set(names)
    assert set(PAPER_NAMES) == set(names)


def test_unknown_model_error_lists_every_name():
    with pytest.raises(UserError) as info:
        create_model("attnmell")
    message = str(info.value)
    assert "attnmell" in message and "\n" not in message
    assert all(name in message for name in list_models())


def test_duplicate_registration_is_an_error_and_keeps_the_original():
    before = PAPER_NAMES["attnmel"]

    def attnmel():  # same code name as the real variant
        raise AssertionError("must never be registered")

    with pytest.raises(ValueError, match="already registered") as info:
        register_model(attnmel)
    assert all(name in str(info.value) for name in list_models())
    assert PAPER_NAMES["attnmel"] == before
    assert type(create_model("attnmel")).__name__ == "AttnMelCNN"


@pytest.mark.parametrize(
    ("variant", "roi", "expected"),
    [
        ("vgg16", "none", "VGG-16"),
        ("vgg16_gap", "none", "VGG-16-GAP"),
        ("melcnn", "none", "Mel-CNN"),
        ("attnmel", "none", "AttnMel-CNN"),
        ("attnmel", "lesion", "AttnMel-CNN-Lesion"),
        ("attnmel", "dermo", "AttnMel-CNN-Dermo"),
        ("attnmel", "bkg", "AttnMel-CNN-Bkg"),
    ],
)
def test_paper_names(variant, roi, expected):
    assert paper_name(variant, roi) == expected


@pytest.mark.parametrize("variant", ["vgg16", "vgg16_gap", "melcnn"])
def test_roi_on_a_variant_without_attention_is_a_user_error(variant):
    with pytest.raises(UserError, match="attention"):
        paper_name(variant, "lesion")


def test_unknown_roi_is_a_user_error():
    with pytest.raises(UserError, match="lesions"):
        paper_name("attnmel", "lesions")


def test_roi_names_match_the_data_layer():
    data = pytest.importorskip("attnmel.data", reason="attnmel.data not available")
    assert set(ROI_SUFFIXES) == set(data.ROIS)


def test_unknown_backbone_error_lists_the_valid_ones():
    with pytest.raises(UserError) as info:
        create_model("vgg16_gap", backbone="resnet50")
    assert all(name in str(info.value) for name in BACKBONES)


# --- weights ---------------------------------------------------------------------------


def _features_of(model) -> dict[str, torch.Tensor]:
    return model.backbone.features.state_dict()


def _assert_same_tensors(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_imagenet_without_cache_and_network_fails_fast_with_the_path(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setenv(OFFLINE_ENV, "1")
    expected = imagenet_weights_path("vgg16_bn")
    assert str(expected).startswith(str(tmp_path))
    start = time.monotonic()
    with pytest.raises(UserError) as info:
        create_model("attnmel", weights="imagenet")
    assert time.monotonic() - start < 30  # refused without trying; generous bound, not a benchmark
    message = str(info.value)
    assert "\n" not in message and str(expected) in message and "state dict" in message
    assert not expected.exists()  # nothing half-written into the cache


def test_imagenet_is_read_from_the_torch_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setenv(OFFLINE_ENV, "1")  # so a pass proves the cache was used, not a download
    torch.manual_seed(1)
    features, _ = make_backbone("vgg16", "none")
    cached = imagenet_weights_path("vgg16")
    cached.parent.mkdir(parents=True)
    torch.save(features.state_dict(), cached)  # keys "features.*", as in torchvision's file
    model = create_model("vgg16_gap", backbone="vgg16", weights="imagenet")
    _assert_same_tensors(_features_of(model), features.features.state_dict())


def test_backbone_state_dict_round_trip(tmp_path):
    torch.manual_seed(2)
    source = create_model("attnmel")
    path = tmp_path / "backbone.pt"
    torch.save(source.backbone.state_dict(), path)
    torch.manual_seed(3)  # a different random init, so equality comes from loading
    loaded = create_model("attnmel", weights=str(path))
    _assert_same_tensors(_features_of(loaded), _features_of(source))
    source.eval(), loaded.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(source.backbone(x), loaded.backbone(x)):
            assert torch.equal(a, b)


def test_checkpoints_without_batchnorm_counters_load(tmp_path):
    """Pre-0.4 checkpoints (torchvision's VGG-16-BN file among them) lack num_batches_tracked."""
    torch.manual_seed(6)
    source = create_model("vgg16_gap")
    state = {k: v for k, v in source.backbone.state_dict().items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "old.pt"
    torch.save(state, path)
    loaded = create_model("vgg16_gap", weights=str(path))
    _assert_same_tensors(_features_of(loaded), _features_of(source))


def test_whole_model_state_dict_loads_its_backbone(tmp_path):
    torch.manual_seed(4)
    source = create_model("melcnn")
    path = tmp_path / "model.pt"
    torch.save(source.state_dict(), path)  # keys "backbone.features.*", "head.*"
    torch.manual_seed(5)
    loaded = create_model("vgg16_gap", weights=str(path))
    _assert_same_tensors(_features_of(loaded), _features_of(source))


def test_missing_weights_file_is_a_user_error(tmp_path):
    missing = tmp_path / "nope.pt"
    with pytest.raises(UserError, match="nope.pt"):
        create_model("attnmel", weights=str(missing))
    with pytest.raises(UserError, match="nope.pt"):
        check_weights("vgg16_bn", str(missing))


def test_weights_for_the_other_backbone_are_a_user_error(tmp_path):
    path = tmp_path / "plain_vgg16.pt"
    torch.save(create_model("vgg16_gap", backbone="vgg16").state_dict(), path)
    with pytest.raises(UserError) as info:
        create_model("vgg16_gap", backbone="vgg16_bn", weights=str(path))
    message = str(info.value)
    assert "\n" not in message and "vgg16_bn" in message and "missing" in message


def test_a_file_that_is_no_state_dict_is_a_user_error(tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="garbage.pt"):
        create_model("vgg16_gap", weights=str(garbage))
    no_features = tmp_path / "other.pt"
    torch.save({"layer.weight": torch.zeros(2)}, no_features)
    with pytest.raises(UserError, match="features"):
        create_model("vgg16_gap", weights=str(no_features))


@pytest.mark.parametrize("batch_norm", [True, False])
def test_features_are_torchvisions_vgg16_layout(batch_norm):
    """Our own layer list (no torchvision import at start-up) builds torchvision's modules, index
    for index; with batch norm less the convolutions' biases, which it folds (test_backbone.py)."""
    from torchvision.models.vgg import cfgs, make_layers

    from attnmel.models.backbone import _vgg16_features

    ours, theirs = _vgg16_features(batch_norm), make_layers(cfgs["D"], batch_norm=batch_norm)
    folded = {f"{i}.bias" for i, m in enumerate(theirs) if batch_norm and isinstance(m, torch.nn.Conv2d)}
    assert repr(ours) == (repr(theirs).replace("padding=(1, 1))", "padding=(1, 1), bias=False)") if batch_norm
                          else repr(theirs))
    assert [(k, v.shape) for k, v in ours.state_dict().items()] == [
        (k, v.shape) for k, v in theirs.state_dict().items() if k not in folded]


def test_a_builder_of_an_undeclared_name_is_refused():
    """The names are attnmel.model_names' (torch-free); the registry only binds builders to them."""

    def resnet50():
        raise AssertionError("must never be registered")

    with pytest.raises(UserError, match="resnet50"):
        register_model(resnet50)
    with pytest.raises(UserError, match="resnet50"):
        create_model("resnet50")
