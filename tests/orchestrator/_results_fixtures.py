"""Sweep storage directories written file by file, in the layout Tune and `fit` produce.

Shared by the report, query and plot tests. The files mirror what Ray Tune 2.60 writes for a
function trainable (checked against a real run): ``params.json`` (the resolved param space),
``result.json`` (one JSON object per reported epoch: `fit`'s dict plus Tune's fields),
``error.txt`` ("Failure # N (occurred at …)" + traceback per failure) and the experiment's
``experiment_state-<date>.json``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from attnmel.selection import best_epoch_row

PAPER_NAMES = {
    ("vgg16", "none"): "VGG-16",
    ("vgg16_gap", "none"): "VGG-16-GAP",
    ("melcnn", "none"): "Mel-CNN",
    ("attnmel", "none"): "AttnMel-CNN",
    ("attnmel", "dermo"): "AttnMel-CNN-Dermo",
    ("attnmel", "lesion"): "AttnMel-CNN-Lesion",
    ("attnmel", "bkg"): "AttnMel-CNN-Bkg",
}
DATE = "2026-01-01_00-00-00"
# Tune params of a trial as orchestrator.sweep.tune lays them out: the shared training config and
# the trial's grid point (see orchestrator.spec.trial_config).
CRASHED_PARAMS = {
    "train": {"data": {"dataset": "isic2017"}, "optim": {"epochs": 4}},
    "point": {"variant": "attnmel+lesion", "runtime.seed": 9, "loss.lambda1": 0.001, "loss.lambda2": 0.01},
}


def identity(
    variant: str = "attnmel",
    roi: str = "none",
    seed: int = 0,
    lambda1: float = 0.001,
    lambda2: float = 0.01,
    dataset: str = "isic2017",
) -> dict[str, Any]:
    """The identity fields `fit` puts in every result (effective λ = 0 without ROI)."""
    regularised = roi != "none"
    return {
        "dataset": dataset,
        "variant": variant,
        "roi": roi,
        "paper_name": PAPER_NAMES[(variant, roi)],
        "seed": seed,
        "lambda1": lambda1 if regularised else 0.0,
        "lambda2": lambda2 if regularised else 0.0,
        "backbone": "vgg16_bn",
        "weights": "imagenet",
        "pretrained": True,
        "config_hash": hashlib.sha256(repr((variant, roi, seed, lambda1, lambda2, dataset)).encode()).hexdigest()[:12],
        "code_version": "0.1.0+test",
    }


def epoch_metrics(rng: np.random.Generator, epochs: int) -> list[dict[str, Any]]:
    """Plausible per-epoch training/validation/test numbers."""
    rows = []
    for epoch in range(1, epochs + 1):
        rows.append({
            "epoch": epoch,
            "lr": 0.01 * 0.1 ** ((epoch - 1) // 10),
            "train_loss": float(rng.uniform(0.1, 0.5)),
            "train_cls_loss": float(rng.uniform(0.05, 0.3)),
            "train_dice3": float(rng.uniform(0.3, 0.9)),
            "train_dice4": float(rng.uniform(0.3, 0.9)),
            "val_auc": float(rng.uniform(0.6, 0.95)),
            "val_ap": float(rng.uniform(0.3, 0.8)),
            "test_auc": float(rng.uniform(0.6, 0.95)),
            "test_ap": float(rng.uniform(0.3, 0.8)),
            "epoch_seconds": float(rng.uniform(1.0, 3.0)),
            "images_per_second": float(rng.uniform(50, 100)),
        })  # fmt: skip
    return rows


def replayed(row: dict[str, Any]) -> dict[str, Any]:
    """An epoch's numbers when run a second time after a restore (not bit-identical)."""
    return dict(row, val_auc=row["val_auc"] * 0.99, train_loss=row["train_loss"] * 1.01)


def _with_best(history: list[dict[str, Any]]) -> dict[str, Any]:
    best = best_epoch_row(history)
    return {
        "best_epoch": best["epoch"],
        "best_val_auc": best["val_auc"],
        "best_val_ap": best["val_ap"],
        "best_test_auc": best["test_auc"],
        "best_test_ap": best["test_ap"],
        "is_best": best is history[-1],
    }


def write_trial(
    sweep_dir: Path,
    trial_id: str,
    index: int,
    ident: dict[str, Any],
    epochs: list[dict[str, Any]],
    *,
    total_epochs: int | None = None,
    restart: tuple[int, int] | None = None,
    error: str | None = None,
    failures: int = 1,
    params: dict[str, Any] | None = None,
) -> Path:
    """One Tune trial directory; returns it.

    ``epochs`` are the trial's final rows. ``restart=(f, k)`` reports epochs 1..f, fails,
    is restored from epoch k-1's checkpoint and reports k..end, epochs k..f again with new
    values (see :func:`replayed`), as a retried Tune trial does.
    ``error`` writes ``error.txt`` with ``failures`` failure blocks.
    """
    total = total_epochs if total_epochs is not None else len(epochs)
    params = params if params is not None else {"variant": ident["variant"], "roi": ident["roi"], "seed": ident["seed"]}
    tag = ",".join(f"{k}={v}" for k, v in sorted(params.items()))
    trial_dir = sweep_dir / f"attnmel_trial_{trial_id}_{index}_{tag}_{DATE}"
    trial_dir.mkdir(parents=True)
    (trial_dir / "params.json").write_text(json.dumps(params, indent=2))

    first, second = list(epochs), []
    if restart is not None:
        fail_after, restart_from = restart
        first = epochs[:fail_after]
        second = [replayed(row) if row["epoch"] <= fail_after else row for row in epochs[restart_from - 1:]]
    lines, history, clock, since_restore, restore_clock = [], [], 0.0, 0, 0.0
    for position, row in enumerate(first + second):
        if position == len(first):
            # Restored from the checkpoint before `restart_from`: history is cut there.
            history = [h for h in history if h["epoch"] < row["epoch"]]
            since_restore, restore_clock = 0, 0.0
        history.append(row)
        clock += row["epoch_seconds"]
        restore_clock += row["epoch_seconds"]
        since_restore += 1
        result = {
            **row,
            **_with_best(history),
            "done": row["epoch"] == total,
            **ident,
            "timestamp": 1767225600 + int(clock),
            "checkpoint_dir_name": f"checkpoint_{row['epoch'] - 1:06d}",
            "training_iteration": row["epoch"],
            "trial_id": trial_id,
            "date": DATE,
            "time_this_iter_s": row["epoch_seconds"],
            "time_total_s": clock,
            "pid": 4242,
            "hostname": "node-a",
            "node_ip": "10.0.0.1",
            "node_id": "f" * 56,
            "config": params,
            "time_since_restore": restore_clock,
            "iterations_since_restore": since_restore,
        }
        lines.append(json.dumps(result))
    if lines:
        (trial_dir / "result.json").write_text("\n".join(lines) + "\n")
    if error is not None:
        blocks = []
        for number in range(1, failures + 1):
            blocks.append(
                f"Failure # {number} (occurred at {DATE})\n"
                "\x1b[36mray::ImplicitFunc.train()\x1b[39m (pid=4242, ip=10.0.0.1, repr=attnmel_trial)\n"
                '  File "attnmel/train.py", line 300, in fit\n'
                f"{error}\n"
            )
        (trial_dir / "error.txt").write_text("".join(blocks))
    return trial_dir


def write_sweep_json(sweep_dir: Path, name: str) -> None:
    sweep_dir.mkdir(parents=True, exist_ok=True)
    meta = {"name": name, "spec": {"name": name}, "code_version": "0.1.0+test", "created": "2026-01-01T00:00:00"}
    (sweep_dir / "sweep.json").write_text(json.dumps(meta))


def write_experiment_state(sweep_dir: Path, statuses: dict[str, str]) -> None:
    """Tune's experiment checkpoint, reduced to the fields report reads (trial id, status)."""
    trial_data = [
        [json.dumps({"trial_id": tid, "status": status, "relative_logdir": tid}), json.dumps({"num_failures": 0})]
        for tid, status in statuses.items()
    ]
    (sweep_dir / f"experiment_state-{DATE}.json").write_text(json.dumps({"trial_data": trial_data}))


def paper_sweep(root: Path, name: str = "paper17", seeds: int = 3, epochs: int = 4, crashed: bool = True) -> Path:
    """All seven ISIC 2017 models × ``seeds`` (one of them restored after a failure), one errored
    trial and, with ``crashed``, one that died before its first epoch (reading its identity
    from ``params.json`` imports the training stack, so fast tests leave it out)."""
    sweep_dir = root / name
    write_sweep_json(sweep_dir, name)
    rng = np.random.default_rng(7)
    index = 0
    for variant, roi in PAPER_NAMES:
        for seed in range(seeds):
            tid = f"ab12c_{index:05d}"
            kw: dict[str, Any] = {}
            if (variant, roi, seed) == ("melcnn", "none", 1):  # failed once after epoch 3, retried
                kw = {"restart": (3, 2), "error": "RuntimeError: CUDA error: an illegal memory access"}
            write_trial(sweep_dir, tid, index, identity(variant, roi, seed), epoch_metrics(rng, epochs), **kw)
            index += 1
    # Errored after two epochs (retried, failed again); crashed before its first epoch.
    fail_after = max(1, epochs - 2)
    write_trial(sweep_dir, f"ab12c_{index:05d}", index, identity("vgg16", "none", 9), epoch_metrics(rng, fail_after),
                total_epochs=epochs, error=f"RuntimeError: injected failure at epoch {fail_after + 1}",
                failures=2)  # fmt: skip
    if crashed:
        write_trial(sweep_dir, f"ab12c_{index + 1:05d}", index + 1, identity("attnmel", "lesion", 9), [],
                    total_epochs=epochs, params=CRASHED_PARAMS)  # fmt: skip
    return sweep_dir


def lambda_sweep(root: Path, name: str = "lambda", seeds: int = 2, epochs: int = 3) -> tuple[Path, list[float]]:
    """λ1 × λ2 grid for the lesion and dermo ROIs, plus the unregularised reference."""
    sweep_dir = root / name
    write_sweep_json(sweep_dir, name)
    rng = np.random.default_rng(11)
    grid = [0.0, 0.001, 0.01]
    index = 0
    for roi in ("lesion", "dermo"):
        for l1 in grid:
            for l2 in grid:
                for seed in range(seeds):
                    ident = identity("attnmel", roi, seed, l1, l2)
                    write_trial(sweep_dir, f"cd34e_{index:05d}", index, ident, epoch_metrics(rng, epochs),
                                params={"roi": roi, "lambda1": l1, "lambda2": l2, "seed": seed})  # fmt: skip
                    index += 1
    for seed in range(seeds):
        write_trial(sweep_dir, f"cd34e_{index:05d}", index, identity("attnmel", "none", seed),
                    epoch_metrics(rng, epochs))  # fmt: skip
        index += 1
    return sweep_dir, grid


# --------------------------------------------------------------------------- final artefacts

# Settings of `scored_sweep`: how strongly each model's score separates the classes (0: chance).
SCORED_SIGNALS = {("attnmel", "lesion"): 3.0, ("vgg16_gap", "none"): 1.0, ("attnmel", "none"): 0.0}
_MAPS = {"vgg16_gap": ("cam",), "attnmel": ("pool3", "pool4")}


def write_final(
    trial_dir: Path,
    predictions: list[tuple[str, str, int, float]],
    attention: list[dict[str, Any]] | None = None,
    *,
    checkpoint: str = "checkpoint_000001",
    best_epoch: int | None = None,
    epochs: list[dict[str, Any]] | None = None,
) -> Path:
    """A finished trial's final checkpoint folder, as `fit` leaves it: ``predictions.csv``
    (split, image_id, label, prob), ``attention.json`` (one dict per map), ``epochs.jsonl``
    (``epochs``, when given) and, last, ``final.json`` with the sizes of the others and
    ``best_epoch`` (default: the best of ``epochs`` by validation, else 1)."""
    from attnmel import checkpoint as ckpt

    folder = trial_dir / checkpoint
    folder.mkdir(parents=True, exist_ok=True)
    ckpt.write_predictions(folder, predictions)
    if attention is not None:
        (folder / ckpt.ATTENTION).write_text(json.dumps(attention, indent=1))
    if epochs is not None:
        ckpt.write_epochs(folder, epochs)
    splits = {row.get("split") for row in attention or []}
    if best_epoch is None:
        best_epoch = best_epoch_row(epochs)["epoch"] if epochs else 1
    ckpt.write_final(folder, {"best_epoch": best_epoch, "mask_split": splits.pop() if splits else None})
    return folder


def _images(split: str, n: int) -> tuple[list[str], np.ndarray]:
    """Image ids and labels of a split: every third image a melanoma."""
    return [f"ISIC_{split}_{i:04d}" for i in range(n)], (np.arange(n) % 3 == 0).astype(int)


def scored_sweep(
    root: Path,
    name: str = "scored",
    *,
    signals: dict[tuple[str, str], float] | None = None,
    lambdas: tuple[tuple[float, float], ...] = ((0.001, 0.01),),
    seeds: int = 2,
    n_test: int = 45,
    n_val: int = 15,
    mask_split: str = "test",
    unscored: tuple[tuple[str, str], ...] = (),
    epochs: int = 3,
    seed: int = 5,
) -> tuple[Path, dict[str, Any]]:
    """A finished sweep whose trials stored per-image predictions and attention scores.

    Each (variant, roi) in ``signals`` (default :data:`SCORED_SIGNALS`) runs once per seed and,
    when regularised, per λ pair in ``lambdas``; its melanoma probability on an image is
    sigmoid(signal·(label − ½) + N(0, 1)), fresh noise per trial, so a larger signal ranks the
    images better. Attention rows (pool3/pool4, or cam for VGG-16-GAP) are scored on
    ``mask_split``. The best epoch's test AUC/AP are those of the stored probabilities.
    ``unscored`` settings run too but store nothing, as trials of an older version.
    Returns the sweep directory and ``truth``: ``predictions`` and ``attention`` frames of
    everything written, keyed by trial_id, and ``trials`` (trial_id → identity).
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    import pandas as pd

    signals = SCORED_SIGNALS if signals is None else signals
    sweep_dir = root / name
    write_sweep_json(sweep_dir, name)
    rng = np.random.default_rng(seed)
    splits = {"val": _images("val", n_val), "test": _images("test", n_test)}
    truth: dict[str, Any] = {"predictions": [], "attention": [], "trials": {}}
    index = 0
    settings = [(v, r, s) for (v, r), s in signals.items()] + [(v, r, None) for v, r in unscored]
    for variant, roi, signal in settings:
        for l1, l2 in lambdas if roi != "none" else lambdas[:1]:
            for trial_seed in range(seeds):
                tid = f"ef56a_{index:05d}"
                ident = identity(variant, roi, trial_seed, l1, l2)
                history = epoch_metrics(rng, epochs)
                rows, attention = [], None
                if signal is not None:
                    for split, (ids, labels) in splits.items():
                        probs = 1 / (1 + np.exp(-(signal * (labels - 0.5) + rng.normal(size=labels.size))))
                        rows += [(split, i, int(y), float(p)) for i, y, p in zip(ids, labels, probs)]
                        if split == "test":  # the tables' best-epoch numbers are these probabilities'
                            best = best_epoch_row(history)
                            best.update(test_auc=float(roc_auc_score(labels, probs)),
                                        test_ap=float(average_precision_score(labels, probs)))  # fmt: skip
                    attention = [
                        {"map": m, "n_images": len(splits[mask_split][0]), "split": mask_split,
                         "jaccard_mean": float(rng.uniform(0.2, 0.7)), "jaccard_std": float(rng.uniform(0.05, 0.2))}
                        for m in _MAPS[variant]
                    ]  # fmt: skip
                params = {"variant": variant, "roi": roi, "seed": trial_seed, "lambda1": l1, "lambda2": l2}
                trial_dir = write_trial(sweep_dir, tid, index, ident, history, params=params)
                if signal is not None:
                    write_final(trial_dir, rows, attention, epochs=history)
                    truth["predictions"] += [dict(zip(("trial_id", "split", "image_id", "label", "prob"), (tid, *r)))
                                             for r in rows]  # fmt: skip
                    truth["attention"] += [{"trial_id": tid, **a} for a in attention]
                truth["trials"][tid] = ident
                index += 1
    truth["predictions"] = pd.DataFrame(truth["predictions"])
    truth["attention"] = pd.DataFrame(truth["attention"])
    return sweep_dir, truth
