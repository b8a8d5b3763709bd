"""VGG-16(-BN) backbone: the five conv blocks, tapped after pool-3, pool-4 and pool-5.

The convolutional layers are VGG-16's configuration "D" laid out exactly as torchvision's
``features`` Sequential (same modules, same indices), so a torchvision VGG state dict, our
backbone's own state dict and the ImageNet checkpoint all load without renaming keys.
torchvision itself is imported only for ImageNet weights: it costs seconds of start-up in every
fresh sweep worker.

Weights (``weights=``):

- ``"none"``: random, initialised exactly as torchvision initialises an untrained VGG.
- ``"imagenet"``: torchvision's ``IMAGENET1K_V1`` checkpoint from the torch.hub cache
  (``torch.hub.get_dir()/checkpoints/<file>``), downloaded there when missing. With no
  network (or ``ATTNMEL_OFFLINE=1``) and no cached file this is a ``UserError`` that names the
  expected path; it never falls back to random weights.
- a path to a state dict: a full torchvision VGG (``features.*``, ``classifier.*``), our
  backbone's (``features.*``) or a whole attnmel model's (``backbone.features.*``).

Convolutions followed by batch norm (``vgg16_bn``) carry no bias. In training, batch norm
subtracts the batch mean, so such a bias changes no output and gets a zero gradient; in
evaluation ``BN(x + b)`` with running mean ``m`` is ``BN(x)`` with running mean ``m - b``. A
state dict that has those biases (torchvision's and the ImageNet file, checkpoints written before
they were folded) gets each one folded into the running mean of its batch norm when it is loaded
(:func:`fold_conv_biases`), so it computes the same function with two kernels fewer per layer.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import Tensor, nn
from attnmel.errors import UserError
from attnmel.config import BACKBONES as _BACKBONE_NAMES

__all__ = [
    "BACKBONES",
    "FeatureInfo",
    "VGGBackbone",
    "build_dense",
    "check_weights",
    "fold_conv_biases",
    "imagenet_weights_path",
    "load_weights",
    "make_backbone",
]

BACKBONES = _BACKBONE_NAMES
# VGG-16 (Simonyan & Zisserman, configuration D): conv widths, "M" = 2×2 max pooling
_VGG16_LAYERS = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


def _imagenet_weights(backbone: str):  # -> torchvision WeightsEnum
    """torchvision's ``IMAGENET1K_V1`` weights entry of ``backbone`` (imports torchvision)."""
    from torchvision.models import VGG16_BN_Weights, VGG16_Weights

    return {"vgg16_bn": VGG16_BN_Weights.IMAGENET1K_V1, "vgg16": VGG16_Weights.IMAGENET1K_V1}[backbone]


def _vgg16_features(batch_norm: bool) -> nn.Sequential:
    """The conv blocks as torchvision's ``features`` (conv, [batch norm,] ReLU per layer); with
    batch norm the convolutions have no bias, and loading a state dict folds any it carries."""
    layers: list[nn.Module] = []
    channels = 3
    for width in _VGG16_LAYERS:
        if width == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        layers.append(nn.Conv2d(channels, width, kernel_size=3, padding=1, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm2d(width))
        layers.append(nn.ReLU(inplace=True))
        channels = width
    features = nn.Sequential(*layers)
    if batch_norm:  # every load path (weights=, checkpoints, predict) meets the biases here
        features.register_load_state_dict_pre_hook(_fold_on_load)
    return features


def fold_conv_biases(features: nn.Sequential, state: MutableMapping[str, Tensor], prefix: str = "") -> None:
    """Fold into ``state`` (keys ``prefix + "<index>.<name>"``) each bias of a bias-free
    convolution of ``features`` that feeds a batch norm: the bias is removed and subtracted from
    that batch norm's running mean, which gives the same outputs in evaluation and in training
    (where the batch mean cancels the bias). Tensors are replaced, never changed in place."""
    for i, (conv, norm) in enumerate(zip(features, list(features)[1:])):
        if not (isinstance(conv, nn.Conv2d) and conv.bias is None and isinstance(norm, nn.BatchNorm2d)):
            continue
        mean_key = f"{prefix}{i + 1}.running_mean"
        bias = state.get(f"{prefix}{i}.bias")
        if bias is None or mean_key not in state:  # nothing to fold, or a state the key check will refuse
            continue
        del state[f"{prefix}{i}.bias"]
        state[mean_key] = state[mean_key] - bias.to(state[mean_key].dtype)


def _fold_on_load(module: nn.Module, state: dict[str, Tensor], prefix: str, *_: object) -> None:
    # A load_state_dict pre-hook: ``state`` is load_state_dict's own shallow copy of the caller's dict.
    fold_conv_biases(module, state, prefix)  # type: ignore[arg-type]
OFFLINE_ENV = "ATTNMEL_OFFLINE"  # "1": never try to download, use the cache or fail


@dataclass(frozen=True)
class FeatureInfo:
    """One tapped stage: its name, channel count and stride relative to the input."""

    name: str
    channels: int
    reduction: int


class VGGBackbone(nn.Module):
    """VGG-16 conv blocks returning ``(pool3, pool4, pool5)``.

    For an input of H×W (divisible by 32): pool3 (B, 256, H/8, W/8), pool4 (B, 512, H/16, W/16),
    pool5 (B, 512, H/32, W/32). ``feature_info`` lists those three stages.
    """

    def __init__(self, features: nn.Sequential) -> None:
        super().__init__()
        self.features = features
        taps, info, channels, pools = [], [], 0, 0
        for i, layer in enumerate(features):
            if isinstance(layer, nn.Conv2d):
                channels = layer.out_channels
            elif isinstance(layer, nn.MaxPool2d):
                pools += 1
                if pools >= 3:  # each pooling halves the resolution: pool-k is at stride 2**k
                    taps.append(i)
                    info.append(FeatureInfo(f"pool{pools}", channels, 2**pools))
        if pools != 5:
            raise ValueError(f"expected the 5 max-pooling layers of VGG-16, found {pools}")
        self._taps = frozenset(taps)
        self.feature_info: tuple[FeatureInfo, ...] = tuple(info)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        taps = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self._taps:
                taps.append(x)
        pool3, pool4, pool5 = taps  # (B, 256, H/8, W/8), (B, 512, H/16, W/16), (B, 512, H/32, W/32)
        return pool3, pool4, pool5


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _check_backbone(backbone: str) -> None:
    if backbone not in BACKBONES:
        raise UserError(f"unknown backbone {backbone!r}; choose one of: {', '.join(BACKBONES)}")


def _init_like_torchvision(module: nn.Module) -> None:
    # The same initialisation torchvision gives an untrained VGG, so weights="none" means
    # "torchvision's default" whether or not we build the dense layers.
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01)
            nn.init.zeros_(m.bias)


def build_dense(dropout: float = 0.5) -> nn.Sequential:
    """VGG's fc6 and fc7 with their ReLU and dropout, laid out as torchvision's ``classifier[:6]``."""
    dense = nn.Sequential(
        nn.Linear(512 * 7 * 7, 4096),  # fc6
        nn.ReLU(inplace=True),
        nn.Dropout(p=dropout),
        nn.Linear(4096, 4096),  # fc7
        nn.ReLU(inplace=True),
        nn.Dropout(p=dropout),
    )
    _init_like_torchvision(dense)
    return dense


def imagenet_weights_path(backbone: str) -> Path:
    """Where torch.hub keeps (or would keep) the ImageNet checkpoint of ``backbone``."""
    _check_backbone(backbone)
    filename = os.path.basename(urlparse(_imagenet_weights(backbone).url).path)
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def _imagenet_state_dict(backbone: str) -> dict[str, Tensor]:
    path = imagenet_weights_path(backbone)
    if path.is_file():
        return _file_state_dict(str(path))
    weights = _imagenet_weights(backbone)
    if os.environ.get(OFFLINE_ENV) == "1":
        reason = f"{OFFLINE_ENV}=1 forbids downloading"
    else:
        try:
            # torchvision's weights API: downloads into the same torch.hub cache, checks the hash.
            return weights.get_state_dict(progress=False, check_hash=True)
        except (OSError, RuntimeError) as exc:  # URLError is an OSError; a bad hash a RuntimeError
            reason = f"download failed: {_first_line(exc)}"
    raise UserError(
        f"ImageNet weights for {backbone} not found at {path} ({reason}); copy {weights.url} "
        f"to that path (or set TORCH_HOME), or pass weights=<path to a state dict>"
    )


def _file_state_dict(path_str: str) -> dict[str, Tensor]:
    path = Path(path_str).expanduser()
    if not path.is_file():
        raise UserError(f"weights file not found: {path_str} (weights must be 'none', 'imagenet' or a state-dict path)")
    from attnmel.tensor_file import read_tensors

    state = read_tensors(path, "a PyTorch state dict of weights")
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise UserError(f"weights file {path} does not hold a state dict (a mapping of names to tensors)")
    return dict(state)


def _load_part(module: nn.Module, state: Mapping[str, Tensor], prefix: str, source: str, backbone: str) -> None:
    """Load ``state[prefix + key]`` into ``module``; a mismatch is a one-line UserError."""
    part = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    if isinstance(module, nn.Sequential):
        fold_conv_biases(module, part)  # before the key check: folded biases are expected keys
    expected = module.state_dict()
    for key in expected:
        # Checkpoints saved before PyTorch 0.4 (torchvision's VGG-BN file among them) have no
        # BatchNorm step counters; it only matters for momentum=None, so start it from zero.
        if key.endswith("num_batches_tracked"):
            part.setdefault(key, expected[key])
    missing = sorted(set(expected) - set(part))
    unexpected = sorted(set(part) - set(expected))
    wrong_shape = sorted(k for k in set(expected) & set(part) if expected[k].shape != part[k].shape)
    if missing or unexpected or wrong_shape:
        problems = [
            f"{len(keys)} {what} (e.g. {prefix}{keys[0]})"
            for what, keys in (
                ("missing keys", missing),
                ("unexpected keys", unexpected),
                ("keys of the wrong shape", wrong_shape),
            )
            if keys
        ]
        raise UserError(f"weights {source} do not fit backbone {backbone!r}: {'; '.join(problems)}")
    module.load_state_dict(part, strict=True)


def load_weights(features: nn.Sequential, dense: nn.Sequential | None, *, backbone: str, weights: str) -> None:
    """Load ``weights`` into torchvision-layout ``features`` (and fc6/fc7 ``dense`` when given).

    fc6/fc7 are taken from the state dict when it has them (``classifier.0``, ``classifier.3``)
    and keep their torchvision initialisation otherwise; VGG's 1000-way output layer is never used.
    """
    _check_backbone(backbone)
    if weights == "none":
        return
    if weights == "imagenet":
        state, source = _imagenet_state_dict(backbone), f"imagenet ({imagenet_weights_path(backbone)})"
    else:
        state, source = _file_state_dict(weights), str(weights)
    # A whole attnmel model's state dict keeps the backbone under "backbone.".
    state = {k.removeprefix("backbone."): v for k, v in state.items()}
    if not any(k.startswith("features.") for k in state):
        raise UserError(f"weights {source} hold no 'features.*' tensors; expected a torchvision VGG state dict")
    _load_part(features, state, "features.", source, backbone)
    if dense is not None and "classifier.0.weight" in state:
        fc67 = {f"classifier.{i}.{p}": state[f"classifier.{i}.{p}"] for i in (0, 3) for p in ("weight", "bias")}
        _load_part(dense, fc67, "classifier.", source, backbone)


def check_weights(backbone: str, weights: str) -> None:
    """Fail now (``UserError``) if ``weights`` cannot be loaded for ``backbone``.

    Meant for drivers that validate before scheduling work: it fetches ImageNet weights into
    the cache when they are missing and reads a state-dict file's keys.
    """
    make_backbone(backbone, weights)


def make_backbone(
    backbone: str = "vgg16_bn", weights: str = "none", *, with_dense: bool = False
) -> tuple[VGGBackbone, nn.Sequential | None]:
    """The VGG backbone with ``weights`` loaded, and fc6/fc7 too when ``with_dense``."""
    _check_backbone(backbone)
    features = _vgg16_features(batch_norm=backbone == "vgg16_bn")
    _init_like_torchvision(features)
    dense = build_dense() if with_dense else None
    load_weights(features, dense, backbone=backbone, weights=weights)
    return VGGBackbone(features), dense
