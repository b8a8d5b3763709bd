"""Names the whole project shares, stated once, importable without torch or numpy.

The modules that give each name its meaning (``attnmel.data.layout``, ``attnmel.data.roi``,
``attnmel.models.backbone``) re-export these, and the configuration validates against them.
"""

from __future__ import annotations

__all__ = ["DATASETS", "ROIS", "BACKBONES"]

DATASETS = ("isic2016", "isic2017")
ROIS = ("none", "lesion", "dermo", "bkg")  # "none" = no regularisation
BACKBONES = ("vgg16_bn", "vgg16")  # VGG-16 with and without batch norm (section 3.1)
