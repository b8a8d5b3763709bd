"""Names the whole project shares, stated once, importable without torch or numpy.

The modules that give each name its meaning (``attnmel.data.layout``, ``attnmel.data.roi``,
``attnmel.models.backbone``) re-export these, and the configuration validates against them.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["DATASETS", "ROIS", "BACKBONES", "RESULTS_ENV", "results_root"]

DATASETS = ("isic2016", "isic2017")
ROIS = ("none", "lesion", "dermo", "bkg")  # "none" = no regularisation
BACKBONES = ("vgg16_bn", "vgg16")  # VGG-16 with and without batch norm (section 3.1)

RESULTS_ENV = "ATTNMEL_RESULTS"  # where sweeps write and `query`/`predict` look by default


def results_root(path: str | Path | None = None) -> Path:
    """The results root: ``path``, else ``$ATTNMEL_RESULTS``, else ``./results``."""
    return Path(path or os.environ.get(RESULTS_ENV) or "results").expanduser()
