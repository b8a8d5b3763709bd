"""Reading a file of tensors handed to us as data only: the one ``torch.load`` of the project
(checkpoints, weight files). Below :mod:`attnmel.checkpoint` and :mod:`attnmel.models`, which
both read through it."""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path
from typing import Any

import torch

from attnmel.errors import UserError

__all__ = ["read_tensors"]


def read_tensors(path: Path, what: str) -> Any:
    """``torch.load(path, weights_only=True)``: tensors and plain types only, never code. Any
    failure (damaged file, foreign format, a pickle that would need code) is a ``UserError``
    naming the file and ``what`` it should have been."""
    try:
        with warnings.catch_warnings():  # torch warns about legacy pickles before refusing them
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors have no common base class
        # Not torch's own advice: it suggests weights_only=False, which would run the file's code.
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        if isinstance(exc, pickle.UnpicklingError) or "weights_only" in text or "Weights only" in text:
            reason = "it holds Python objects that only code could rebuild (refused: files are data, never code)"
        else:
            reason = f"{type(exc).__name__}: {text}"[:200]
        raise UserError(f"{path} is not readable as {what}: {reason}") from None
