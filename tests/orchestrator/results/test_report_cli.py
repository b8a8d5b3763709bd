"""`attnmel report show` with confidence intervals and Table 3, and `attnmel report compare`,
on fake finished sweeps whose per-image predictions and attention scores are known."""

from __future__ import annotations

import contextlib
import csv
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

import orchestrator.cli.results as commands_results
from orchestrator.cli import build_parser, main
from orchestrator.results.paper import paper_results

from _results_fixtures import paper_sweep, scored_sweep

REPO = Path(__file__).resolve().parents[3]
# Bootstrap resamples in these tests: the CLI's floor (1000) is lowered so that a show of
# nine settings-or-trials stays within a few seconds; the statistics are tested in test_stats.py.
RESAMPLES = 200
CI = re.compile(r"(\d\.\d{3}) \[(\d\.\d{3}), (\d\.\d{3})\]")
# The summary: "mean ± sd" of the trials, then "[low, high]" of the expected single-model metric.
SUMMARY_CI = re.compile(r"(\d\.\d{3}) ± (\d\.\d{3}) \[(\d\.\d{3}), (\d\.\d{3})\]")
LESION, PLAIN, GAP = "AttnMel-CNN-Lesion", "AttnMel-CNN", "VGG-16-GAP"


def _run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def scored(tmp_path_factory) -> tuple[Path, dict]:
    """Lesion (strong signal), VGG-16-GAP (weak), AttnMel-CNN (chance), 2 seeds each, plus
    Mel-CNN trials that stored no predictions (an older version)."""
    return scored_sweep(tmp_path_factory.mktemp("results"), unscored=(("melcnn", "none"),))


@pytest.fixture(scope="module")
def shown(scored) -> str:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(commands_results, "_MIN_RESAMPLES", RESAMPLES)
        code, out, err = _run(["report", "show", str(scored[0]), "--paper", "--per-trial",
                               "--resamples", str(RESAMPLES)])  # fmt: skip
    assert code == 0, err
    return out


@pytest.fixture(scope="module")
def lambdas(tmp_path_factory) -> tuple[Path, dict]:
    """Lesion at the paper's λ and at another, one seed each, attention on validation masks."""
    return scored_sweep(
        tmp_path_factory.mktemp("results"), "lambdas", signals={("attnmel", "lesion"): 2.0, ("attnmel", "none"): 0.0},
        lambdas=((0.001, 0.01), (0.01, 0.01)), seeds=1, mask_split="val", seed=9,
    )  # fmt: skip


def _model_lines(block: str, model: str) -> list[str]:
    return [line for line in block.splitlines() if line.split()[:1] == [model]]


def _test_probs(truth: dict, model: str) -> tuple[np.ndarray, pd.DataFrame]:
    """Labels and the (image × trial) test probabilities of one model's trials."""
    ids = [tid for tid, ident in truth["trials"].items() if ident["paper_name"] == model]
    preds = truth["predictions"]
    preds = preds[(preds["split"] == "test") & preds["trial_id"].isin(ids)]
    probs = preds.pivot(index="image_id", columns="trial_id", values="prob")
    labels = preds.drop_duplicates("image_id").set_index("image_id").loc[probs.index, "label"].to_numpy()
    return labels, probs


# --------------------------------------------------------------------------- show: intervals


def _summary_cells(line: str) -> list[tuple[float, float, float, float]]:
    """(mean, sd, low, high) of AP then AUC in a summary line (columns: test X, X 95% CI, ...)."""
    spaced = re.sub(r"\s+(?=\[)", " ", line)
    return [tuple(map(float, m)) for m in SUMMARY_CI.findall(spaced)]


def test_show_ci_is_of_the_expected_single_model_metric(scored, shown):
    summary_block = shown.split("test metrics per trial")[0]
    bounds = {}
    for model in (LESION, GAP, PLAIN):
        (line,) = _model_lines(summary_block, model)
        if model == PLAIN:  # chance, 2 seeds whose test AUCs agree exactly and share no test-set covariance
            assert re.search(r"0\.449 ± 0\.000\s+—", line) and f"no CI (—) for isic2017 {PLAIN}: its seeds' test" in shown
            continue
        (ap, _, ap_low, ap_high), (auc, auc_sd, auc_low, auc_high) = _summary_cells(line)
        labels, probs = _test_probs(scored[1], model)
        aucs = [roc_auc_score(labels, probs[c]) for c in probs]
        assert auc == pytest.approx(np.mean(aucs), abs=5e-4) and auc_sd == pytest.approx(np.std(aucs, ddof=1), abs=5e-4)
        assert ap == pytest.approx(np.mean([average_precision_score(labels, probs[c]) for c in probs]), abs=5e-4)
        assert auc_low <= auc <= auc_high and ap_low <= ap <= ap_high
        # Two seeds: the t interval on ≥ 1 df is wider than ±1.96 SD/√2 of the seeds alone.
        assert auc_high - auc_low > 2 * 1.96 * auc_sd / np.sqrt(2) - 2e-3 or auc_high == 1.0
        bounds[model] = (auc_low, auc_high)
    # Strong signal beats the weak one's lower bound.
    assert bounds[LESION][0] > bounds[GAP][0]
    assert "95% CI of the expected single-model metric: mean over seeds of each trial's metric on these images, the training split fixed; 95% t interval, Obuchowski–Rockette–Hillis" in shown
    assert f"stratified image bootstrap, {RESAMPLES} resamples, seed 0" in shown and "ensemble" not in summary_block


def test_show_paper_in_ci_says_whether_the_paper_value_lies_inside(shown):
    paper = paper_results().query("dataset == 'isic2017'").set_index("model")
    summary_block = shown.split("test metrics per trial")[0]
    verdicts = []
    for model in (LESION, GAP, PLAIN):
        (line,) = _model_lines(summary_block, model)
        cells = _summary_cells(line)
        words = [w for w in line.split() if w in ("yes", "no")]
        assert len(words) == len(cells) == (1 if model == PLAIN else 2), line  # no AUC CI for PLAIN (above)
        for (_, _, low, high), metric, word in zip(cells, ("ap", "auc"), words):
            value = paper.loc[model, metric]
            assert f"{value:.3f}" in line  # the paper's number beside ours
            assert word == ("yes" if low <= value <= high else "no"), (model, metric, line)
            verdicts.append(word)
    assert {"yes", "no"} <= set(verdicts)  # the fixture is built to give both answers
    assert "paper AUC in CI" in shown and "paper in CI: whether the paper's number" in shown


def test_show_per_trial_intervals_are_each_trials_own(scored, shown):
    block = shown.split("test metrics per trial")[1]
    truth = scored[1]
    for tid, ident in truth["trials"].items():
        if ident["paper_name"] == "Mel-CNN":
            assert tid not in block  # no predictions, no per-trial interval
            continue
        (line,) = [line for line in block.splitlines() if tid in line]
        labels, probs = _test_probs(truth, ident["paper_name"])
        (ap, ap_low, ap_high), (auc, auc_low, auc_high) = [tuple(map(float, m)) for m in CI.findall(line)]
        assert auc == pytest.approx(roc_auc_score(labels, probs[tid]), abs=5e-4)
        assert ap == pytest.approx(average_precision_score(labels, probs[tid]), abs=5e-4)
        assert auc_low <= auc <= auc_high and ap_low <= ap <= ap_high


def test_show_setting_without_predictions_gets_no_ci_and_says_why(shown):
    summary_block = shown.split("test metrics per trial")[0]
    (line,) = _model_lines(summary_block, "Mel-CNN")
    assert not _summary_cells(line) and "—" in line
    assert "no CI for isic2017 Mel-CNN: CIs need per-image predictions" in shown


def test_show_defaults_and_resample_floor(scored, capsys):
    args = build_parser().parse_args(["report", "show", "x"])
    assert args.resamples == 2000 and args.ci and not args.paper and not args.table3
    code = main(["report", "show", str(scored[0]), "--resamples", "999"])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert captured.err.count("\n") == 1 and "at least 1000" in captured.err and "got 999" in captured.err


def test_show_no_ci_prints_the_plain_table(scored, capsys):
    assert main(["report", "show", str(scored[0]), "--no-ci"]) == 0
    out = capsys.readouterr().out
    assert "[95% CI]" not in out and not CI.search(out) and "bootstrap" not in out
    assert _model_lines(out, LESION) and "mean ± sample SD over seeds" in out


# --------------------------------------------------------------------------- compare


def _compare_rows(out: str) -> dict[str, list[str]]:
    rows = {}
    for line in out.splitlines():
        match = re.match(r"\s*(seed \d+|expected single model|ensemble of \d+ seeds)\s+(\d.*)$", line)
        if match:
            rows[match.group(1)] = match.group(2).split()
    return rows


def test_compare_auc_better_setting_has_positive_delta_and_small_p(scored, capsys):
    assert main(["report", "compare", str(scored[0]), LESION, "attnmel"]) == 0
    out = capsys.readouterr().out
    rows = _compare_rows(out)
    assert set(rows) == {"expected single model", "seed 0", "seed 1", "ensemble of 2 seeds"}
    labels, lesion = _test_probs(scored[1], LESION)
    _, plain = _test_probs(scored[1], PLAIN)
    for seed in (0, 1):
        images, melanoma, auc_a, auc_b, delta, low, high, z, p = rows[f"seed {seed}"]
        assert (int(images), int(melanoma)) == (len(labels), int(labels.sum()))
        assert float(auc_a) == pytest.approx(roc_auc_score(labels, lesion.iloc[:, seed]), abs=5e-4)
        assert float(auc_b) == pytest.approx(roc_auc_score(labels, plain.iloc[:, seed]), abs=5e-4)
        assert float(delta) > 0 and float(z) > 0 and float(p) < 1e-3
        assert float(low.strip("[,")) <= float(delta) <= float(high.strip("]"))
    assert "DeLong" in out


def test_compare_is_antisymmetric_and_ap_uses_the_paired_bootstrap(scored, capsys, monkeypatch):
    path = str(scored[0])
    assert main(["report", "compare", path, LESION, PLAIN]) == 0
    forward = _compare_rows(capsys.readouterr().out)
    assert main(["report", "compare", path, PLAIN, LESION]) == 0
    backward = _compare_rows(capsys.readouterr().out)
    for pair in forward:
        assert float(forward[pair][4]) == -float(backward[pair][4])  # Δ
        assert forward[pair][8] == backward[pair][8]  # p

    monkeypatch.setattr(commands_results, "_MIN_RESAMPLES", RESAMPLES)
    assert main(["report", "compare", path, "attnmel+lesion", "attnmel", "--metric", "ap",
                 "--resamples", str(RESAMPLES)]) == 0  # fmt: skip
    out = capsys.readouterr().out
    labels, lesion = _test_probs(scored[1], LESION)
    _, plain = _test_probs(scored[1], PLAIN)
    averaged = _compare_rows(out)["ensemble of 2 seeds"]
    ap = {name: average_precision_score(labels, probs.mean(axis=1)) for name, probs in (("a", lesion), ("b", plain))}
    expected = ap["a"] - ap["b"]
    assert float(averaged[4]) == pytest.approx(expected, abs=5e-4) and expected > 0
    assert float(averaged[8]) < 0.05 and f"paired stratified bootstrap, {RESAMPLES} resamples" in out


def test_compare_unknown_setting_is_one_line_listing_the_choices(scored, capsys):
    code = main(["report", "compare", str(scored[0]), "VGG-16", PLAIN])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert captured.err.count("\n") == 1 and captured.err.startswith("attnmel: error:")
    for choice in ("vgg16_gap", "attnmel", "attnmel+lesion@0.001,0.01"):
        assert choice in captured.err
    assert "Mel-CNN" not in captured.err and "melcnn" not in captured.err  # no predictions, not a choice


def test_compare_ambiguous_setting_names_the_candidates(lambdas, capsys):
    path = str(lambdas[0])
    code = main(["report", "compare", path, "attnmel+lesion", "attnmel"])
    captured = capsys.readouterr()
    assert code == 2 and captured.err.count("\n") == 1 and "ambiguous" in captured.err
    assert "attnmel+lesion@0.001,0.01" in captured.err and "attnmel+lesion@0.01,0.01" in captured.err
    assert main(["report", "compare", path, "attnmel+lesion@0.01,0.01", "AttnMel-CNN"]) == 0
    out = capsys.readouterr().out
    assert set(_compare_rows(out)) == {"expected single model", "seed 0"}  # one seed: no ensemble row
    assert "A and B ran one seed, so the expected single-model interval covers test images only" in out


# --------------------------------------------------------------------------- Table 3

TABLE3_ROW = re.compile(
    r"^\s*(?P<model>\S+)\s+(?P<lambdas>—|\S+, \S+)\s+(?P<map>pool3|pool4|CAM)\s+(?P<masks>test|validation) masks\s+"
    r"(?P<mean>\d\.\d{4}) ± (?P<std>\S+)\s+(?P<paper>\S+)\s+(?P<diff>\S+)\s+(?P<n>\d+)\s+(?P<images>\S+)\s*$"
)


def _table3(out: str) -> list[dict[str, str]]:
    return [m.groupdict() for m in map(TABLE3_ROW.match, out.splitlines()) if m]


def _paper_jaccard() -> dict[tuple[str, str], float]:
    with open(REPO / "orchestrator" / "results" / "paper_jaccard.csv", newline="") as handle:
        return {(r["model"], r["map"]): float(r["jaccard"]) for r in csv.DictReader(handle)}


def _expected_table3(truth: dict) -> pd.DataFrame:
    attention = truth["attention"].copy()
    for key in ("paper_name", "lambda1", "lambda2"):
        attention[key] = attention["trial_id"].map(lambda tid, key=key: truth["trials"][tid][key])
    grouped = attention.groupby(["paper_name", "lambda1", "lambda2", "map"])["jaccard_mean"]
    return pd.DataFrame({"mean": grouped.mean(), "std": grouped.std(ddof=1), "n": grouped.size()}).reset_index()


def test_table3_is_mean_and_std_over_seeds_beside_the_paper(scored, capsys):
    assert main(["report", "show", str(scored[0]), "--table3"]) == 0
    out = capsys.readouterr().out
    rows = _table3(out)
    expected = _expected_table3(scored[1])
    assert len(rows) == len(expected) == 5  # pool3/pool4 × 2 AttnMel models, CAM of VGG-16-GAP
    paper = _paper_jaccard()
    for want in expected.itertuples():
        shown_map = "CAM" if want.map == "cam" else want.map
        (row,) = [r for r in rows if r["model"] == want.paper_name and r["map"] == shown_map]
        assert float(row["mean"]) == pytest.approx(want.mean, abs=5e-5)
        assert float(row["std"]) == pytest.approx(want.std, abs=5e-5)
        assert int(row["n"]) == want.n == 2 and row["masks"] == "test" and row["images"] == "45"
        assert float(row["paper"]) == paper[(want.paper_name, shown_map)]
        assert float(row["diff"]) == pytest.approx(want.mean - paper[(want.paper_name, shown_map)], abs=1e-4)
    assert "AUC" not in out and "validation masks" not in out


def test_table3_on_validation_masks_says_so_and_other_lambdas_have_no_paper_value(lambdas, capsys):
    assert main(["report", "show", str(lambdas[0]), "--table3"]) == 0
    out = capsys.readouterr().out
    rows = _table3(out)
    expected = _expected_table3(lambdas[1])
    assert len(rows) == len(expected) == 6
    assert all(r["masks"] == "validation" and r["n"] == "1" and r["std"] == "—" for r in rows)
    paper = _paper_jaccard()
    for row in rows:
        at_paper = row["lambdas"] in ("—", "0.001, 0.01")
        assert (row["paper"] != "—") == at_paper, row
        if at_paper:
            assert float(row["paper"]) == paper[(row["model"], row["map"])]
    assert "scored on the validation split" in out


def test_table3_with_per_trial_is_an_error(scored, capsys):
    assert main(["report", "show", str(scored[0]), "--table3", "--per-trial"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


# --------------------------------------------------------------------------- older sweeps


def test_old_sweep_without_predictions_still_shows_its_table(tmp_path, capsys):
    sweep = paper_sweep(tmp_path, crashed=False)
    assert main(["report", "show", str(sweep), "--paper"]) == 0
    out = capsys.readouterr().out
    assert _model_lines(out, LESION) and "paper AUC" in out and "Δ AUC" in out
    assert "[95% CI]" not in out and "in CI" not in out
    assert out.rstrip().splitlines()[-1].startswith("confidence intervals need per-image predictions")

    assert main(["report", "show", str(sweep), "--table3"]) == 0
    assert capsys.readouterr().out.startswith("no attention scores")

    assert main(["report", "compare", str(sweep), LESION, PLAIN]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith("attnmel: error: no per-image predictions")


# --------------------------------------------------------------------------- families, seeds, power, operating points


@pytest.fixture(scope="module")
def uneven(tmp_path_factory) -> Path:
    """A results root: AttnMel-CNN-Lesion with one seed in one sweep, AttnMel-CNN with three in another."""
    root = tmp_path_factory.mktemp("uneven")
    scored_sweep(root, "one", signals={("attnmel", "lesion"): 2.0}, seeds=1, seed=3)
    scored_sweep(root, "three", signals={("attnmel", "none"): 1.0}, seeds=3, seed=4)
    return root


def test_compare_one_seed_against_three_says_what_the_interval_cannot_cover(uneven, capsys, monkeypatch):
    monkeypatch.setattr(commands_results, "_MIN_RESAMPLES", RESAMPLES)
    assert main(["report", "compare", str(uneven), LESION, PLAIN, "--resamples", str(RESAMPLES)]) == 0
    out = capsys.readouterr().out
    assert set(_compare_rows(out)) == {"expected single model", "seed 0"}
    assert ("A ran one seed, so the expected single-model interval covers test images and the seeds of the side "
            "with several (one side has one seed): it cannot include A's training randomness") in out  # fmt: skip
    assert "mean over A's 1 seed(s) − mean over B's 3 (seeds unpaired)" in out


def test_compare_family_prints_raw_holm_and_bh(scored, capsys, monkeypatch):
    from statsmodels.stats.multitest import multipletests

    monkeypatch.setattr(commands_results, "_MIN_RESAMPLES", RESAMPLES)
    assert main(["report", "compare", str(scored[0]), "all", PLAIN, "--resamples", str(RESAMPLES)]) == 0
    out = capsys.readouterr().out
    assert "family: every other setting vs attnmel (isic2017, test AUC): 2 comparisons" in out
    rows = [line.split() for line in out.splitlines() if line.split()[:1] in (["vgg16_gap"], ["attnmel+lesion@0.001,0.01"])]
    p, holm, bh = (np.array([float(r[k]) for r in rows]) for k in (-3, -2, -1))
    assert np.allclose(holm, multipletests(p, method="holm")[1], rtol=5e-3)
    assert np.allclose(bh, multipletests(p, method="fdr_bh")[1], rtol=5e-3)


def test_power_from_a_sweep_and_from_the_paper(scored, capsys):
    assert main(["report", "power", str(scored[0]), GAP, PLAIN]) == 0
    out = capsys.readouterr().out
    assert "power: AUC of A = VGG-16-GAP − B = AttnMel-CNN" in out and "(observed)" in out
    assert "error covariances by the stratified image bootstrap" in out and "seeds per setting to detect Δ" in out
    assert "over the 80 % range of the pilot's seed variance" in out or "none up to" in out
    assert main(["report", "power", "paper", "AttnMel-CNN-Lesion", "AttnMel-CNN", "--seed-sd", "0.01",
                 "--correlation", "0.8"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "+0.011 (the paper's)" in out and "600 images (117 melanoma)" in out
    assert "more test images, not seeds, are needed" in out  # 0.011 is below what 600 images resolve
    code = main(["report", "power", "paper", "AttnMel-CNN-Lesion", "AttnMel-CNN"])
    err = capsys.readouterr().err
    assert code == 2 and "needs --seed-sd and --correlation" in err and err.count("\n") == 1


def test_show_operating_points_are_the_trials_means(scored, capsys):
    from attnmel.metrics import sensitivity_at_specificity, specificity_at_sensitivity

    assert main(["report", "show", str(scored[0]), "--operating-points"]) == 0
    out = capsys.readouterr().out
    labels, probs = _test_probs(scored[1], LESION)
    sens = [sensitivity_at_specificity(labels, probs[c], 0.89) for c in probs]
    spec = [specificity_at_sensitivity(labels, probs[c], 0.95) for c in probs]
    (line,) = _model_lines(out, LESION)
    assert f"{np.mean(sens):.3f} ± {np.std(sens, ddof=1):.3f}" in line
    assert f"{np.mean(spec):.3f} ± {np.std(spec, ddof=1):.3f}" in line
    assert out.index("spec @ sens 82%") < out.index("sens @ spec 82%") and "ECE (10 bins)" in out
    assert "the ISIC 2017 challenge's secondary metrics, specificity at the first ROC point" in out


def test_plot_calibration_and_marked_sensitivity(scored, tmp_path, capsys):
    assert main(["plot", "calibration", str(scored[0]), "--out", str(tmp_path / "c.png")]) == 0
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["plot", "calibration", str(scored[0]), "--out", str(tmp_path / "c.gif")]) == 2
