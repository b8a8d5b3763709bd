"""The paper's four networks (Sect. 3.2), all on the VGG-16(-BN) backbone.

=============  ===========  ================================================================
code name      paper name   head
=============  ===========  ================================================================
``vgg16``      VGG-16       VGG's own avgpool (7×7) and fc6, fc7, then a new 4096→2 layer
``vgg16_gap``  VGG-16-GAP   GAP(pool5) → linear 512→2
``melcnn``     Mel-CNN      GAP(pool3) ‖ GAP(pool4) ‖ GAP(pool5) (1280) → linear
``attnmel``    AttnMel-CNN  GAP(A3·pool3) ‖ GAP(A4·pool4) ‖ GAP(pool5) (1280) → linear
=============  ===========  ================================================================

Every forward returns ``ModelOutput(logits, attn3, attn4)``; the attention maps are ``None``
for variants without attention. New linear layers start from N(0, 0.01) with zero bias.
Pooling uses ``mean``/``flatten`` (never ``view``) so channels-last inputs work unchanged.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from attnmel.models.attention import AttentionGate
from attnmel.models.backbone import VGGBackbone, make_backbone
from attnmel.models.registry import register_model

__all__ = ["AttnMelCNN", "MelCNN", "ModelOutput", "VGG16", "VGG16GAP"]


class ModelOutput(NamedTuple):
    logits: Tensor  # (B, num_classes)
    attn3: Tensor | None  # (B, 1, H/8, W/8) in (0, 1), attention on pool-3
    attn4: Tensor | None  # (B, 1, H/16, W/16) in (0, 1), attention on pool-4


def _new_linear(in_features: int, out_features: int) -> nn.Linear:
    layer = nn.Linear(in_features, out_features)
    nn.init.normal_(layer.weight, 0.0, 0.01)
    nn.init.zeros_(layer.bias)
    return layer


def _gap(x: Tensor) -> Tensor:
    return x.mean(dim=(2, 3))  # (B, C, H, W) → (B, C); layout-agnostic, unlike view()


class VGG16(nn.Module):
    """The original VGG-16 with its 1000-way output layer replaced by a 2-way one."""

    def __init__(self, backbone: VGGBackbone, dense: nn.Sequential, num_classes: int = 2) -> None:
        super().__init__()
        self.backbone = backbone
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))  # torchvision's: small inputs still give 7×7
        self.classifier = dense  # fc6, ReLU, dropout, fc7, ReLU, dropout (torchvision indices)
        self.head = _new_linear(4096, num_classes)

    def forward(self, x: Tensor) -> ModelOutput:
        _, _, pool5 = self.backbone(x)  # (B, 512, H/32, W/32)
        pooled = torch.flatten(self.avgpool(pool5), 1)  # (B, 512·7·7) in NCHW order, as fc6 expects
        return ModelOutput(self.head(self.classifier(pooled)), None, None)


class VGG16GAP(nn.Module):
    """VGG-16 without dense layers: global average pooling of pool-5, then a linear layer."""

    def __init__(self, backbone: VGGBackbone, num_classes: int = 2) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = _new_linear(backbone.feature_info[-1].channels, num_classes)

    def forward(self, x: Tensor) -> ModelOutput:
        _, _, pool5 = self.backbone(x)  # (B, 512, H/32, W/32)
        return ModelOutput(self.head(_gap(pool5)), None, None)


class MelCNN(nn.Module):
    """AttnMel-CNN without attention: GAP of pool-3, pool-4 and pool-5, concatenated."""

    def __init__(self, backbone: VGGBackbone, num_classes: int = 2) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = _new_linear(sum(info.channels for info in backbone.feature_info), num_classes)

    def forward(self, x: Tensor) -> ModelOutput:
        pool3, pool4, pool5 = self.backbone(x)  # (B, 256, H/8, W/8), (B, 512, H/16, W/16), (B, 512, H/32, W/32)
        features = torch.cat([_gap(pool3), _gap(pool4), _gap(pool5)], dim=1)  # (B, 1280)
        return ModelOutput(self.head(features), None, None)


class AttnMelCNN(nn.Module):
    """The proposed network (Fig. 1): pool-3 and pool-4 attended under pool-5's guidance."""

    def __init__(self, backbone: VGGBackbone, num_classes: int = 2, *, gate_bias: bool = False) -> None:
        super().__init__()
        self.backbone = backbone
        c3, c4, c5 = (info.channels for info in backbone.feature_info)
        self.attn3 = AttentionGate(c3, c5, guide_bias=gate_bias)
        self.attn4 = AttentionGate(c4, c5, guide_bias=gate_bias)
        self.head = _new_linear(c3 + c4 + c5, num_classes)

    def forward(self, x: Tensor) -> ModelOutput:
        pool3, pool4, pool5 = self.backbone(x)  # (B, 256, H/8, W/8), (B, 512, H/16, W/16), (B, 512, H/32, W/32)
        attended3, a3 = self.attn3(pool3, pool5)  # (B, 256, H/8, W/8), (B, 1, H/8, W/8)
        attended4, a4 = self.attn4(pool4, pool5)  # (B, 512, H/16, W/16), (B, 1, H/16, W/16)
        features = torch.cat([_gap(attended3), _gap(attended4), _gap(pool5)], dim=1)  # (B, 1280)
        return ModelOutput(self.head(features), a3, a4)


# Registered builders: the function name is the code name used in configs.


@register_model
def vgg16(*, backbone: str = "vgg16_bn", weights: str = "none", num_classes: int = 2) -> VGG16:
    """VGG-16 with fc6/fc7 (from ``weights`` when they hold them) and a new output layer."""
    body, dense = make_backbone(backbone, weights, with_dense=True)
    return VGG16(body, dense, num_classes)


@register_model
def vgg16_gap(*, backbone: str = "vgg16_bn", weights: str = "none", num_classes: int = 2) -> VGG16GAP:
    """VGG-16 conv blocks, global average pooling, linear."""
    return VGG16GAP(make_backbone(backbone, weights)[0], num_classes)


@register_model
def melcnn(*, backbone: str = "vgg16_bn", weights: str = "none", num_classes: int = 2) -> MelCNN:
    """Multi-scale GAP features without attention (the paper's attention ablation)."""
    return MelCNN(make_backbone(backbone, weights)[0], num_classes)


@register_model
def attnmel(
    *, backbone: str = "vgg16_bn", weights: str = "none", num_classes: int = 2, gate_bias: bool = False
) -> AttnMelCNN:
    """The paper's AttnMel-CNN; trained with an ROI it becomes -Lesion/-Dermo/-Bkg.
    ``gate_bias`` adds a bias to the gates' W_g (not in Eq. 1 nor the official code)."""
    return AttnMelCNN(make_backbone(backbone, weights)[0], num_classes, gate_bias=gate_bias)
