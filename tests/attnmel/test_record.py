"""attnmel.record: the identity a run records has the fields and types the tables store, and its
λ are the effective ones."""

from __future__ import annotations

from attnmel.config import TrainConfig, apply_overrides
from attnmel.record import IDENTITY, IDENTITY_FIELDS, run_identity


def test_identity_has_every_field_with_its_declared_type():
    identity = run_identity(apply_overrides(TrainConfig(), ["data.roi=lesion", "runtime.seed=3"]))
    assert tuple(identity) == IDENTITY_FIELDS == tuple(IDENTITY)
    for name, kind in IDENTITY.items():
        assert type(identity[name]) is kind, name
    assert (identity["paper_name"], identity["seed"], identity["lambda1"]) == ("AttnMel-CNN-Lesion", 3, 0.001)


def test_lambdas_are_effective_zero_without_a_roi():
    identity = run_identity(apply_overrides(TrainConfig(), ["loss.lambda1=0.5", "loss.lambda2=0.5"]))
    assert (identity["roi"], identity["lambda1"], identity["lambda2"]) == ("none", 0.0, 0.0)
