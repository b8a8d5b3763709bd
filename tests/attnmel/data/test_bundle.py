"""load_bundle: tensors per split, ROI only for training, limits, statistics, validation before work."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from attnmel.config import DataConfig
from attnmel.data.bundle import load_bundle
from attnmel.data.layout import LAYOUTS, load_splits
from attnmel.data.preprocess import channel_stats, preprocess_image, preprocess_map
from attnmel.data.roi import load_roi
from attnmel.errors import UserError


def _cfg(root, tmp_path, **kw) -> DataConfig:
    return DataConfig(
        dataset="isic2017", root=str(root), image_size=40, crop_size=32, cache_dir=str(tmp_path / "cache"), **kw
    )


def test_bundle_holds_every_split_as_uint8_tensors(synth2017_ro, tmp_path):
    bundle = load_bundle(_cfg(synth2017_ro, tmp_path, roi="dermo"))
    splits = load_splits("isic2017", synth2017_ro)
    for name in ("train", "val", "test"):
        part = getattr(bundle, name)
        assert part.ids == [s.image_id for s in splits[name]]
        assert part.images.shape == (len(part.ids), 3, 40, 40) and part.images.dtype == torch.uint8
        assert part.labels.tolist() == [s.label for s in splits[name]] and part.labels.dtype == torch.int64
        assert not part.images.is_cuda
    assert bundle.val.rois is None and bundle.test.rois is None  # ROI maps: training split only
    assert bundle.train.rois.shape == (12, 1, 40, 40) and bundle.train.rois.dtype == torch.uint8
    first = splits["train"][0]
    np.testing.assert_array_equal(bundle.train.images[0].numpy(), preprocess_image(first.image, 40))
    np.testing.assert_array_equal(bundle.train.rois[0, 0].numpy(), preprocess_map(load_roi(first, "dermo"), 40))
    assert bundle.mean == channel_stats(bundle.train.images)[0]
    assert all(0 < m < 1 for m in bundle.mean) and all(0 < s < 1 for s in bundle.std)
    n_mel = sum(s.label for s in splits["train"])
    assert bundle.info["counts"]["train"] == {"images": 12, "melanoma": n_mel, "other": 12 - n_mel}
    # evaluation splits with a lesion mask for every image also get them (Table 3)
    assert bundle.info["cache_keys"].keys() == {
        "train_images", "val_images", "test_images", "train_rois", "val_lesion", "test_lesion"
    }
    assert bundle.mask_split == "test" and bundle.test.lesion.shape == (len(bundle.test.ids), 1, 40, 40)
    assert bundle.train.lesion is None


def test_no_roi_tensors_when_roi_is_none(synth2017_ro, tmp_path):
    assert load_bundle(_cfg(synth2017_ro, tmp_path)).train.rois is None


def test_limits_are_stratified_and_seeded(synth2016_ro, tmp_path):
    cfg = dataclasses.replace(_cfg(synth2016_ro, tmp_path), dataset="isic2016", max_train=5, max_eval=3, val_seed=4)
    a, b = load_bundle(cfg), load_bundle(cfg)
    assert len(a.train) == 5 and len(a.val) == len(a.test) == 3
    for part in (a.train, a.val, a.test):
        assert set(part.labels.tolist()) == {0, 1}  # both classes survive the cut
    assert a.train.ids == b.train.ids
    info = a.info
    assert info["val_seed"] == 4 and info["val_fraction"] == 0.2 and info["val_source"] == "stratified from training"
    assert info["counts_before_limits"]["test"]["images"] == 8


def test_missing_roi_fails_before_any_preprocessing(synth2017, tmp_path):
    lay = LAYOUTS["isic2017"]["train"]
    victim = load_splits("isic2017", synth2017)["train"][3].image_id
    (synth2017 / lay.masks / f"{victim}_segmentation.png").unlink()
    cfg = _cfg(synth2017, tmp_path, roi="bkg")
    with pytest.raises(UserError, match=f"{victim}_segmentation.png") as e:
        load_bundle(cfg)
    assert "\n" not in str(e.value)
    assert not (tmp_path / "cache").exists()  # failed before decoding anything
    load_bundle(dataclasses.replace(cfg, roi="dermo"))  # the dermo sources are all there


def test_bad_config_values_are_user_errors(synth2017_ro, tmp_path):
    with pytest.raises(UserError, match="data.roi"):
        load_bundle(_cfg(synth2017_ro, tmp_path, roi="tumour"))
    with pytest.raises(UserError, match="crop_size"):
        load_bundle(dataclasses.replace(_cfg(synth2017_ro, tmp_path), crop_size=40))
