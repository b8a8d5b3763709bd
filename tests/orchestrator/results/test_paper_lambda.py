"""The one rule for "at the paper's λ" (orchestrator.results.paper): one tolerance, used by the
summary, the page, the sensitivity figure and the naming of a setting in comparisons."""

from __future__ import annotations

from orchestrator.results.paper import PAPER_LAMBDAS, at_paper_lambda, is_paper_lambda, same_lambdas


def test_the_papers_pair_and_no_other_is_at_the_papers_lambda():
    assert PAPER_LAMBDAS == (0.001, 0.01)
    assert is_paper_lambda(0.001, 0.01) and is_paper_lambda(float("1e-3"), 0.01 * (1 + 1e-9))
    assert not is_paper_lambda(0.001, 0.0) and not is_paper_lambda(0.0011, 0.01) and not is_paper_lambda(0.01, 0.001)
    assert at_paper_lambda("lesion", 0.001, 0.01) and not at_paper_lambda("lesion", 0.0, 0.0)
    assert at_paper_lambda("none", 0.0, 0.0)  # no ROI: the effective λ are 0, and the paper reports it


def test_same_lambdas_has_one_relative_tolerance_and_zero_is_only_zero():
    assert same_lambdas((0.0001, 0.0), (0.0001 * (1 + 5e-7), 0.0))
    assert not same_lambdas((0.0001, 0.0), (0.0001 * (1 + 5e-6), 0.0))
    assert not same_lambdas((0.0, 0.0), (1e-12, 0.0))  # 0 is a grid value of its own
