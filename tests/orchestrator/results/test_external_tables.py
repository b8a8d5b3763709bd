"""External test sets in the result tables: one AUC/AP column pair per set in `trials`, their
rows in `predictions` with the dataset named, and `report show`'s mean ± sd table."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from attnmel.checkpoint import FINAL, PREDICTIONS, final_checkpoint, read_predictions, write_final, write_predictions
from orchestrator.results.build import build_tables, write_tables
from orchestrator.results.external import external_names, external_summary
from orchestrator.results.summary import summary_report
from orchestrator.layout import folders

from _results_fixtures import scored_sweep


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """A scored sweep whose finished trials also scored two external sets, as `fit` leaves them."""
    sweep_dir, truth = scored_sweep(tmp_path_factory.mktemp("ext"), seeds=3)
    rng = np.random.default_rng(1)
    scores = {}
    for trial_dir in folders.trial_dirs(sweep_dir):
        final = final_checkpoint(trial_dir)
        if final is None:
            continue
        rows = [(r["split"], r["image_id"], r["label"], r["prob"], "isic2017") for r in read_predictions(final / PREDICTIONS)]
        external = {}
        for name, dataset, n in (("isic2018_test", "isic2018", 30), ("clinic", "csv", 20)):
            y = (np.arange(n) % 4 == 0).astype(int)
            p = 1 / (1 + np.exp(-(2 * y - 1 + rng.normal(size=n))))
            rows += [(f"ext_{name}", f"{dataset}_{i}", int(a), float(b), dataset) for i, (a, b) in enumerate(zip(y, p))]
            external[name] = {"dataset": dataset, "split": "test", "auc": roc_auc_score(y, p),
                              "ap": average_precision_score(y, p), "images": n, "melanoma": int(y.sum())}  # fmt: skip
        write_predictions(final, rows)
        meta = json.loads((final / FINAL).read_text())
        meta.pop("files", None)
        write_final(final, {**meta, "external": external})  # records the new predictions.csv's size
        scores[trial_dir.name] = external
    return sweep_dir, scores


def test_trials_gain_one_auc_ap_pair_per_external_set(sweep):
    sweep_dir, scores = sweep
    tables = build_tables(sweep_dir)
    trials = tables.trials
    assert external_names(trials) == ["clinic", "isic2018_test"]
    for _, row in trials.iterrows():
        if row["trial_dir"] in scores:
            for name, s in scores[row["trial_dir"]].items():
                assert row[f"ext_{name}_auc"] == s["auc"] and row[f"ext_{name}_ap"] == s["ap"]
        else:
            assert np.isnan(row["ext_clinic_auc"])  # trials of an older version: no score, no error
    ext = tables.predictions[tables.predictions["split"] == "ext_isic2018_test"]
    assert set(ext["dataset"]) == {"isic2018"} and len(ext) == 30 * len(scores)
    assert set(tables.predictions[tables.predictions["split"] == "test"]["dataset"]) == {"isic2017"}
    paths, _ = write_tables(sweep_dir)  # and the columns survive Parquet
    assert {"ext_clinic_auc", "ext_clinic_ap", "ext_isic2018_test_auc"} <= set(pq.read_schema(paths["trials"]).names)


def test_report_show_prints_mean_and_sd_over_seeds_per_external_set(sweep):
    sweep_dir, _ = sweep
    tables = build_tables(sweep_dir)
    summary = external_summary(tables.trials)
    done = tables.trials[tables.trials["status"] == "TERMINATED"]
    for _, row in summary.iterrows():
        part = done[(done["paper_name"] == row["paper_name"]) & (done["lambda1"] == row["lambda1"])]
        values = part[f"ext_{row['external']}_auc"].dropna()
        assert row["n"] == len(values) and row["auc_mean"] == pytest.approx(values.mean())
        assert row["auc_std"] == pytest.approx(values.std(ddof=1))
    text, _ = summary_report(tables, intervals=False)
    assert "isic2017 → external test set isic2018_test" in text and "isic2017 → external test set clinic" in text
    first = summary.iloc[0]
    assert f"{first['auc_mean']:.3f} ± {first['auc_std']:.3f}" in text


def test_external_intervals_are_the_setting_interval_of_each_sets_images(sweep):
    """Each setting's external interval is stats.setting_interval on the (seeds, images) matrix of
    that set's rows, lined up here from the raw predictions; the report prints it."""
    from orchestrator.results.stats import setting_interval

    sweep_dir, _ = sweep
    tables = build_tables(sweep_dir)
    summary = external_summary(tables.trials, tables.predictions, n_resamples=300)
    assert summary["auc_low"].notna().all() and (summary["ci_trials"] == summary["n"]).all()
    done = tables.trials[tables.trials["status"] == "TERMINATED"]
    preds = tables.predictions
    for _, row in summary.iterrows():
        ids = done[(done["variant"] == row["variant"]) & (done["roi"] == row["roi"])
                   & (done["lambda1"] == row["lambda1"])].sort_values("seed")["trial_id"]  # fmt: skip
        rows = preds[(preds["split"] == f"ext_{row['external']}") & preds["trial_id"].isin(ids)]
        wide = rows.pivot(index="image_id", columns="trial_id", values="prob")[list(ids)].sort_index()
        labels = rows.drop_duplicates("image_id").set_index("image_id").loc[wide.index, "label"].to_numpy()
        for metric in ("auc", "ap"):
            est = setting_interval(labels, wide.to_numpy().T, metric, n_resamples=300)
            assert (row[f"{metric}_low"], row[f"{metric}_high"]) == pytest.approx((est.low, est.high))
            assert row[f"{metric}_low"] <= row[f"{metric}_mean"] <= row[f"{metric}_high"]
    text, problem = summary_report(tables, n_resamples=300)
    first = summary.iloc[0]
    assert problem is None and "AUC 95% CI" in text.split("external test set")[1]
    assert f"[{first['auc_low']:.3f}, {first['auc_high']:.3f}]" in text
    no_ci, _ = summary_report(tables, intervals=False)
    assert "95% CI" not in no_ci.split("external test set")[1]


def test_compare_on_an_external_set_pairs_its_images(sweep, capsys):
    from orchestrator.cli import main

    sweep_dir, _ = sweep
    assert main(["report", "compare", str(sweep_dir), "attnmel+lesion", "attnmel", "--split", "ext_clinic",
                 "--resamples", "1000"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "ext_clinic" in out and " 20 " in out  # the clinic set's 20 images, not the test set's
    assert main(["report", "compare", str(sweep_dir), "attnmel+lesion", "attnmel", "--split", "ext_nowhere"]) == 2
    assert "no predictions for --split ext_nowhere" in capsys.readouterr().err
