"""The real ISIC 2017 copy in ../shared/isic2017: the data path on real images (its official
counts through ``attnmel data check``: tests/orchestrator/cli/test_data.py)."""

from __future__ import annotations

import pytest
import torch

from attnmel.config import DataConfig
from attnmel.data.augment import train_batch
from attnmel.data.bundle import load_bundle

pytestmark = pytest.mark.realdata


def test_bundle_on_real_images_keeps_lesion_masks_aligned(real_isic2017, tmp_path):
    cfg = DataConfig(
        dataset="isic2017", root=str(real_isic2017), roi="lesion", image_size=64, crop_size=64,
        max_train=64, max_eval=16, cache_dir=str(tmp_path),
    )
    bundle = load_bundle(cfg)
    assert bundle.train.images.shape == (64, 3, 64, 64) and bundle.train.rois.shape == (64, 1, 64, 64)
    assert set(bundle.train.labels.tolist()) == set(bundle.test.labels.tolist()) == {0, 1}
    assert bundle.info["counts_before_limits"]["train"] == {"images": 2000, "melanoma": 374, "other": 1626}
    # Dermoscopic lesions are darker than the skin around them, so the brightness contrast
    # across a correctly placed mask beats the contrast across a misplaced one (another
    # image's mask, a rotated or a mirrored one) for nearly every image.
    images, rois = train_batch(
        bundle.train.images, bundle.train.rois, crop=48, mean=bundle.mean, std=bundle.std,
        generator=torch.Generator().manual_seed(0),
    )
    brightness = images.mean(dim=1, keepdim=True)  # (B, 1, 48, 48)

    def contrast(maps: torch.Tensor) -> torch.Tensor:  # (B,): mean outside − mean inside
        inside = (brightness * maps).sum((1, 2, 3)) / maps.sum((1, 2, 3)).clamp_min(1)
        outside = (brightness * (1 - maps)).sum((1, 2, 3)) / (1 - maps).sum((1, 2, 3)).clamp_min(1)
        return outside - inside

    aligned = contrast(rois)
    assert (aligned > 0).float().mean() > 0.9
    for misplaced in (torch.roll(rois, 1, dims=0), torch.rot90(rois, 1, dims=(-2, -1)), rois.flip(-1)):
        assert (aligned > contrast(misplaced)).float().mean() > 0.8
