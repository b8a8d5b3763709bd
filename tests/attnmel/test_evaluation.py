"""attnmel.evaluation: the CAM of VGG-16-GAP and Table 3 rows on maps whose answer is known."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from attnmel.evaluation import attention_rows, maps_of, predict_batches
from attnmel.models import ModelOutput, create_model

NORM = {"mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)}


def test_cam_is_the_melanoma_weights_over_pool5_and_averages_to_the_logit():
    torch.manual_seed(0)
    model = create_model("vgg16_gap").eval()
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        logits, maps = maps_of(model, images)
        torch.testing.assert_close(logits, model(images).logits)  # one pass gives the same logits
    cam = maps["cam"]
    assert cam.shape == (2, 1, 2, 2)  # pool-5 resolution: 64 / 32
    # GAP is linear: the CAM's spatial mean plus the bias is the melanoma logit
    torch.testing.assert_close(cam.mean(dim=(2, 3))[:, 0] + model.head.bias[1], logits[:, 1])


class _MaskReader(nn.Module):
    """A stand-in network whose 'attention' is the lesion drawn into channel 0 (or its inverse)."""

    def __init__(self, inverse: bool) -> None:
        super().__init__()
        self.inverse = inverse

    def forward(self, x: torch.Tensor) -> ModelOutput:
        on = (x[:, :1] > 0).float()  # (B, 1, H, W): 1 where the image is bright
        attn = 1 - on if self.inverse else on
        return ModelOutput(torch.zeros(len(x), 2), attn, attn[..., ::2, ::2])


@pytest.mark.parametrize(("inverse", "expected"), [(False, 1.0), (True, 0.0)])
def test_table3_rows_of_known_maps(inverse, expected):
    masks = torch.zeros(4, 1, 40, 40, dtype=torch.uint8)
    masks[:, :, 10:30, 12:28] = 1
    images = (masks.expand(-1, 3, -1, -1) * 255).to(torch.uint8)  # bright lesion on black
    rows = attention_rows(_MaskReader(inverse), images, masks, crop=32, batch_size=3, **NORM)
    by_map = {row["map"]: row for row in rows}
    assert set(by_map) == {"pool3", "pool4"} and by_map["pool3"]["n_images"] == 4
    assert by_map["pool3"]["jaccard_mean"] == pytest.approx(expected)
    assert by_map["pool3"]["jaccard_std"] == pytest.approx(0.0)


class _ShapeRecorder(nn.Module):
    """Wraps a model and records the batch size of every input it is given."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner, self.batch_sizes = inner, []

    def forward(self, images):
        self.batch_sizes.append(images.shape[0])
        return self.inner(images)


def test_fixed_shape_evaluation_pads_the_last_batch_and_returns_the_same_outputs():
    torch.manual_seed(0)
    model = _ShapeRecorder(create_model("attnmel", backbone="vgg16_bn", weights="none"))
    images = torch.randint(0, 256, (11, 3, 36, 36), dtype=torch.uint8)
    kw = dict(crop=32, batch_size=4, with_maps=True, **NORM)

    def run(fixed):
        model.batch_sizes.clear()
        rows, probs, maps = zip(*predict_batches(model, images, fixed_shape=fixed, **kw))
        return rows, torch.cat(probs), {k: torch.cat([m[k] for m in maps]) for k in maps[0]}, list(model.batch_sizes)

    rows, probs, maps, sizes = run(False)
    assert sizes == [4, 4, 3]
    padded_rows, padded_probs, padded_maps, padded_sizes = run(True)
    assert padded_sizes == [4, 4, 4]  # one input shape
    assert padded_rows == rows and padded_probs.shape == (11,)
    torch.testing.assert_close(padded_probs, probs)  # padding never leaks into the real rows
    for name in maps:
        torch.testing.assert_close(padded_maps[name], maps[name])


def test_evaluation_batch_size_divides_the_splits_when_it_can():
    from attnmel.evaluation import EVAL_BATCH_CAP, eval_batch_size

    def padded(size, sizes):
        return sum(-(-n // size) * size for n in sizes)

    assert eval_batch_size([150, 600]) == 50  # ISIC 2017: 3 + 12 full batches, no padding
    assert padded(50, [150, 600]) == 750 < padded(EVAL_BATCH_CAP, [150, 600]) == 832
    isic2016 = [180, 379]  # a validation split carved from training, a prime test split
    chosen = eval_batch_size(isic2016)
    assert EVAL_BATCH_CAP // 2 <= chosen <= EVAL_BATCH_CAP
    assert all(padded(chosen, isic2016) <= padded(b, isic2016) for b in range(32, 65))
    assert eval_batch_size([8, 8]) == 8 and eval_batch_size([16, 8]) == 8  # small splits: one batch shape
    assert eval_batch_size([600], cap=16) == 15
