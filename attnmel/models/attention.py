"""The attention module of Yan et al. (Eq. 1–3, Fig. 2): a global feature gates a local one.

    R = W ⊛ ReLU(W_f ⊛ F + up(W_g ⊛ G))     (1)   1×1 convolutions, W_f and W_g with 256 filters
    A = sigmoid(R)                           (2)   one attention value per location of F
    F̂ = A · F                               (3)   every feature vector f_i scaled by a_i
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["AttentionGate"]


class AttentionGate(nn.Module):
    """Attention of a local feature map ``F`` guided by a coarser global one ``G``.

    ``forward(local, guide)`` returns ``(F̂, A)``: the attended features, shaped like
    ``local``, and the attention map (B, 1, h, w) in (0, 1) at ``local``'s resolution.
    """

    def __init__(
        self, local_channels: int, guide_channels: int, inter_channels: int = 256, *, guide_bias: bool = False
    ) -> None:
        super().__init__()
        # Biases: Eq. 1 writes none on W_f and W_g, and the official code has none there (only
        # on W, which sets the sigmoid's offset). A bias on W_g is not redundant: it sits inside
        # the ReLU and shifts each channel's threshold. ``guide_bias=True`` adds it as an option
        # (this project's earlier default); bilinear upsampling keeps a constant constant, so
        # one bias on the coarse map covers the W_f + W_g sum.
        self.local_proj = nn.Conv2d(local_channels, inter_channels, kernel_size=1, bias=False)  # W_f
        self.guide_proj = nn.Conv2d(guide_channels, inter_channels, kernel_size=1, bias=guide_bias)  # W_g
        self.score = nn.Conv2d(inter_channels, 1, kernel_size=1, bias=True)  # W
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # He initialisation (the paper's choice) with fan_in: it keeps the forward variance, so R
        # starts at the scale of its inputs. fan_out would give W (one output channel) a weight
        # std of sqrt(2) and saturate the sigmoid from the first step. Every conv here reads
        # ReLU outputs (pooled VGG features, the ReLU of Eq. 1), hence the ReLU gain.
        for conv in (self.local_proj, self.guide_proj, self.score):
            nn.init.kaiming_normal_(conv.weight, mode="fan_in", nonlinearity="relu")
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)

    def forward(self, local: Tensor, guide: Tensor) -> tuple[Tensor, Tensor]:
        size = local.shape[-2:]
        guide_up = F.interpolate(self.guide_proj(guide), size=size, mode="bilinear", align_corners=False)
        # (B, 256, h, w): W_f ⊛ F + up(W_g ⊛ G)
        hidden = F.relu(self.local_proj(local) + guide_up)
        attn = torch.sigmoid(self.score(hidden))  # (B, 1, h, w)
        return attn * local, attn  # (B, C, h, w), (B, 1, h, w)
