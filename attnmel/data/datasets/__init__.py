"""One declaration per dataset, and the registry of them (torch-free).

Each module states one collection's files, label rule, splits (given or carved), masks,
defaults and archives (see :mod:`attnmel.data.datasets.base`); adding a collection is one
module here and one line below.
"""

from __future__ import annotations

from attnmel.data.datasets import csvfolder, isic2016, isic2017, isic2018, isic2019, isic2020
from attnmel.data.datasets.base import SPLITS, Declaration
from attnmel.errors import UserError

__all__ = ["DECLARATIONS", "DATASETS", "SPLITS", "declaration"]

DECLARATIONS: dict[str, Declaration] = {
    d.name: d
    for d in (
        isic2016.DECLARATION, isic2017.DECLARATION, isic2018.DECLARATION, isic2019.DECLARATION,
        isic2020.DECLARATION, csvfolder.DECLARATION,
    )
}  # fmt: skip
DATASETS = tuple(DECLARATIONS)


def declaration(name: str) -> Declaration:
    """The declaration of ``name``; an unknown name is a ``UserError`` listing the known ones."""
    try:
        return DECLARATIONS[name]
    except KeyError:
        raise UserError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}") from None
