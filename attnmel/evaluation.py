"""Scoring a trained model: melanoma probabilities, attention maps, CAM and Table 3.

Everything runs on the evaluation preprocessing (centre crop of the cached 256² images,
normalised by the run's statistics) in batches, without gradients. The maps follow section
3.3 of the paper: the attention maps A3 (pool-3) and A4 (pool-4) of AttnMel-CNN, and for
VGG-16-GAP the class activation map of Zhou et al. (CVPR 2016), i.e. the melanoma class's
classifier weights applied to the last convolutional features before global pooling.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from attnmel.attention_overlap import jaccard_per_image
from attnmel.data.augment import centre_crop, eval_batch
from attnmel.errors import UserError
from attnmel.metrics import ap_auc
from attnmel.models.variants import VGG16GAP
from attnmel.record import MAP_NAMES
from attnmel.runtime import Precision

__all__ = [
    "EVAL_BATCH_CAP", "NonFiniteError", "eval_batch_size", "predict_batches", "melanoma_probs", "evaluate", "maps_of",
    "attention_rows",
]

EVAL_BATCH_CAP = 64  # images per evaluation batch at most (measured on an H100: 256 is slower)


class NonFiniteError(UserError):
    """A loss or an output became NaN or infinite: the run diverged (lower optim.lr)."""


def eval_batch_size(sizes: Sequence[int], cap: int = EVAL_BATCH_CAP) -> int:
    """The evaluation batch size for splits of ``sizes`` images: among ``cap / 2 … cap`` (or up
    to the largest split when that is smaller) the one that pads the fewest images, the largest
    of equals. A size that divides every split pads none, so every batch has one shape without
    padding (ISIC 2017's 150 and 600 images: 50)."""
    top = max(1, min(cap, max(sizes, default=1)))
    return min(range(max(1, top // 2), top + 1), key=lambda b: (sum(-(-n // b) * b for n in sizes), -b))


def maps_of(model: nn.Module, images: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    """Logits and the model's spatial maps for a batch: ``{"pool3", "pool4"}`` for attention
    variants, ``{"cam"}`` for VGG-16-GAP (GAP of pool-5, then one linear layer), else ``{}``."""
    if isinstance(model, VGG16GAP):  # one backbone pass gives both the logits and the CAM
        pool5 = model.backbone(images)[-1]  # (B, 512, h, w): what GAP averages
        cam = torch.einsum("c,bchw->bhw", model.head.weight[1].to(pool5.dtype), pool5)[:, None]  # (B, 1, h, w)
        return model.head(pool5.mean(dim=(2, 3))), {"cam": cam}
    out = model(images)
    if out.attn3 is not None:
        return out.logits, {"pool3": out.attn3, "pool4": out.attn4}
    return out.logits, {}


def predict_batches(
    model: nn.Module,
    images_u8: Tensor,
    *,
    crop: int,
    mean: Sequence[float],
    std: Sequence[float],
    batch_size: int,
    precision: Precision = Precision(),
    with_maps: bool = False,
    fixed_shape: bool | None = None,
) -> Iterator[tuple[slice, Tensor, dict[str, Tensor]]]:
    """Batches of (rows, melanoma probabilities (B,), maps) over ``images_u8`` (N, 3, S, S).

    With ``fixed_shape`` (None: on CUDA) a short last batch is padded with copies of its first
    image up to ``batch_size`` and the padding dropped from the outputs, so the model sees one
    input shape: cuDNN autotunes (and torch.compile traces) once instead of once per split
    size. In eval mode every image's output depends on that image alone.
    """
    model.eval()
    device = images_u8.device
    fixed_shape = device.type == "cuda" if fixed_shape is None else fixed_shape
    with torch.no_grad():
        for start in range(0, len(images_u8), batch_size):
            rows = slice(start, min(start + batch_size, len(images_u8)))
            batch = images_u8[rows]
            n = len(batch)
            if fixed_shape and n < batch_size:
                batch = torch.cat([batch, batch[:1].expand(batch_size - n, *batch.shape[1:])])
            images = precision.layout(eval_batch(batch, crop=crop, mean=mean, std=std))
            with precision.autocast(device):
                if with_maps:
                    logits, maps = maps_of(model, images)
                else:
                    logits, maps = model(images).logits, {}
            yield rows, torch.softmax(logits[:n].float(), dim=1)[:, 1], {k: v[:n].float() for k, v in maps.items()}


def melanoma_probs(model: nn.Module, images_u8: Tensor, *, what: str = "outputs", **kw) -> np.ndarray:
    """Softmax melanoma probability of every image (float64 numpy); NaN/inf is a NonFiniteError."""
    probs = torch.cat([p for _, p, _ in predict_batches(model, images_u8, **kw)])
    bad = int((~torch.isfinite(probs)).sum())
    if bad:
        raise NonFiniteError(f"non-finite model {what}: {bad} of {len(probs)} images (the run diverged; lower optim.lr)")
    return probs.cpu().double().numpy()


def evaluate(model: nn.Module, images_u8: Tensor, labels: Tensor, *, what: str, **kw) -> tuple[float, float, np.ndarray]:
    """(AP, AUC, probabilities) of one split; ``what`` names it in errors ("validation outputs at epoch 3")."""
    prob = melanoma_probs(model, images_u8, what=what, **kw)
    ap, auc = ap_auc(labels.cpu().numpy(), prob)
    return ap, auc, prob


def attention_rows(model: nn.Module, images_u8: Tensor, masks_u8: Tensor, *, crop: int, **kw) -> list[dict]:
    """Table 3 for one model: per map, the mean and sample std of the per-image Jaccard index
    with the lesion masks (N, 1, S, S), on the same centre crop the model sees."""
    scores: dict[str, list[Tensor]] = {}
    for rows, _, maps in predict_batches(model, images_u8, crop=crop, with_maps=True, **kw):
        masks = centre_crop(masks_u8[rows], crop)  # (B, 1, crop, crop)
        for name, attn in maps.items():
            scores.setdefault(name, []).append(jaccard_per_image(attn, masks))
    out = []
    for name in MAP_NAMES:
        if name in scores:
            values = torch.cat(scores[name]).numpy()
            std = float(values.std(ddof=1)) if len(values) > 1 else float("nan")
            out.append({"map": name, "n_images": len(values), "jaccard_mean": float(values.mean()), "jaccard_std": std})
    return out
