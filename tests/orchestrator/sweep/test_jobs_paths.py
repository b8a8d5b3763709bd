"""``sweep submit`` refuses paths the cluster cannot resolve before it submits; a spec without
storage writes under the results root ($ATTNMEL_RESULTS, else ./results), as ``sweep run`` does."""

from __future__ import annotations

import pytest

from attnmel.errors import UserError
from orchestrator.layout.root import RESULTS_ENV
from orchestrator.sweep.jobs import _check_cluster_paths


def test_a_spec_without_storage_is_checked_against_the_results_root(monkeypatch):
    raw = {"dataset": {"root": "/data/isic2017"}}
    monkeypatch.delenv(RESULTS_ENV, raising=False)
    with pytest.raises(UserError, match="spec key 'storage' is the relative path 'results'"):
        _check_cluster_paths(raw, None)
    monkeypatch.setenv(RESULTS_ENV, "/shared/results")
    _check_cluster_paths(raw, None)  # an absolute results root: nothing to refuse
    monkeypatch.setenv(RESULTS_ENV, "relative/results")
    with pytest.raises(UserError, match="'relative/results'"):
        _check_cluster_paths(raw, None)
    _check_cluster_paths({**raw, "storage": "/shared/elsewhere"}, None)  # the spec's own wins
