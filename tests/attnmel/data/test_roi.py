"""Reference maps: lesion threshold, background inverse, the dermo union, ready-made maps, missing files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from attnmel.data.layout import LAYOUTS, Sample, load_splits
from attnmel.data.roi import dermo_map, load_roi, roi_available, superpixel_index
from attnmel.errors import UserError


def _encode(index: np.ndarray) -> np.ndarray:
    return np.stack([index & 255, (index >> 8) & 255, (index >> 16) & 255], axis=-1).astype(np.uint8)


@pytest.fixture
def hand_built(tmp_path) -> tuple[Path, Path]:
    """A 3×4 superpixel map using indices that need all three channels (256 → G, 65536 → B)."""
    index = np.array(
        [
            [0, 0, 1, 1],
            [256, 256, 1, 65536],
            [3, 3, 3, 65536],
        ]
    )
    sp = tmp_path / "ISIC_0000000_superpixels.png"
    Image.fromarray(_encode(index)).save(sp)
    n = 65537
    feats = {name: [0] * n for name in ("pigment_network", "negative_network", "streaks", "milia_like_cyst")}
    feats["pigment_network"][1] = 1  # top right block
    feats["streaks"][256] = 1  # middle left pair
    feats["milia_like_cyst"][65536] = 1  # right column, bottom two
    feats["negative_network"][2] = 1  # a superpixel no pixel uses: must not show up
    fj = tmp_path / "ISIC_0000000_features.json"
    fj.write_text(json.dumps(feats))
    return sp, fj


def test_superpixel_index_decodes_rgb(hand_built):
    sp, _ = hand_built
    np.testing.assert_array_equal(superpixel_index(sp)[1], [256, 256, 1, 65536])


def test_dermo_is_the_union_of_the_four_features(hand_built):
    sp, fj = hand_built
    expected = np.array(
        [
            [0, 0, 1, 1],
            [1, 1, 1, 1],
            [0, 0, 0, 1],
        ],
        dtype=np.uint8,
    )
    np.testing.assert_array_equal(dermo_map(sp, fj), expected)


def test_all_zero_dermo_map_is_valid(hand_built):
    sp, fj = hand_built
    feats = json.loads(fj.read_text())
    fj.write_text(json.dumps({k: [0] * len(v) for k, v in feats.items()}))
    out = dermo_map(sp, fj)
    assert out.shape == (3, 4) and out.dtype == np.uint8 and out.sum() == 0


def test_features_shorter_than_the_superpixels_name_the_file(hand_built):
    sp, fj = hand_built
    feats = json.loads(fj.read_text())
    fj.write_text(json.dumps({k: v[:10] for k, v in feats.items()}))
    with pytest.raises(UserError, match="ISIC_0000000_features.json"):
        dermo_map(sp, fj)


def _sample(tmp_path: Path, mask: np.ndarray) -> Sample:
    image = tmp_path / "ISIC_0000000.jpg"
    Image.new("RGB", mask.shape[::-1]).save(image)
    lesion = tmp_path / "ISIC_0000000_segmentation.png"
    Image.fromarray(mask).save(lesion)
    return Sample("ISIC_0000000", 0, image, lesion, None, None)


def test_lesion_thresholds_above_127_and_bkg_is_its_inverse(tmp_path):
    mask = np.array([[0, 127, 128, 255]], dtype=np.uint8)
    s = _sample(tmp_path, mask)
    np.testing.assert_array_equal(load_roi(s, "lesion"), [[0, 0, 1, 1]])
    np.testing.assert_array_equal(load_roi(s, "bkg"), [[1, 1, 0, 0]])


def test_ready_made_maps_take_precedence_and_are_united(tmp_path):
    s = _sample(tmp_path, np.zeros((2, 3), dtype=np.uint8))
    maps = tmp_path / "maps"
    maps.mkdir()
    Image.fromarray(np.array([[0, 7, 0], [0, 0, 0]], dtype=np.uint8)).save(maps / "ISIC_0000000_streaks.png")
    Image.fromarray(np.array([[0, 0, 0], [255, 0, 0]], dtype=np.uint8)).save(maps / "ISIC_0000000_network.png")
    Image.fromarray(np.full((2, 3), 255, dtype=np.uint8)).save(maps / "ISIC_00000001.png")  # another id
    for roi in ("lesion", "dermo", "bkg"):
        np.testing.assert_array_equal(load_roi(s, roi, roi_dir=maps), [[0, 1, 0], [1, 0, 0]])
    single = tmp_path / "single"
    single.mkdir()
    Image.fromarray(np.array([[1, 0, 0], [0, 0, 2]], dtype=np.uint8)).save(single / "ISIC_0000000.png")
    np.testing.assert_array_equal(load_roi(s, "lesion", roi_dir=single), [[1, 0, 0], [0, 0, 1]])


def test_missing_roi_is_reported_with_the_expected_file(synth2017):
    sample = load_splits("isic2017", synth2017)["train"][0]
    lay = LAYOUTS["isic2017"]["train"]
    assert roi_available(sample, "none") and roi_available(sample, "dermo")
    (synth2017 / lay.features / f"{sample.image_id}_features.json").unlink()
    (synth2017 / lay.masks / f"{sample.image_id}_segmentation.png").unlink()
    sample = load_splits("isic2017", synth2017)["train"][0]
    assert not roi_available(sample, "dermo") and not roi_available(sample, "lesion")
    with pytest.raises(UserError, match=f"{lay.features}/{sample.image_id}_features.json"):
        load_roi(sample, "dermo")
    with pytest.raises(UserError, match=f"{lay.masks}/{sample.image_id}_segmentation.png"):
        load_roi(sample, "bkg")
    with pytest.raises(UserError, match="unknown roi"):
        roi_available(sample, "tumour")


def test_synthetic_dermo_features_overlap_the_lesion(synth2017_ro):
    inside = total = 0
    for s in load_splits("isic2017", synth2017_ro)["train"]:
        d, m = load_roi(s, "dermo"), load_roi(s, "lesion")
        assert d.shape == m.shape
        inside += int((d & m).sum())
        total += int(d.sum())
    assert total > 0 and inside / total > 0.6
