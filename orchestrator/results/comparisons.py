"""Statistics over a sweep's tables: per-setting intervals and paired comparisons.

Groups the ``trials`` table into model settings (``paper_table.SETTING_KEYS``), pairs their
trials by seed on the same images of the ``predictions`` table, and applies
:mod:`orchestrator.results.stats` to them (:mod:`orchestrator.results.text` prints them). Errors in the inputs (an
unknown or ambiguous setting name, unpaired seeds) are ``ValueError`` with one line.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from orchestrator.results.paper import PAPER_ORDER, SETTING_KEYS
from orchestrator.results.build import terminated
from orchestrator.results.stats import METRICS, bootstrap_ci, check_resampling, metric_function, paired_test
from attnmel.models.registry import split_token

__all__ = [
    "PREDICTION_COLUMNS",
    "SETTING_KEYS",
    "compare_settings",
    "setting_labels",
    "setting_names",
    "variant_intervals",
]

log = logging.getLogger(__name__)

PREDICTION_COLUMNS = ("sweep", "trial_id", "split", "image_id", "label", "prob")
_TRIAL_KEY = ["sweep", "trial_id"]


def _scored_trials(
    trials: pd.DataFrame, predictions: pd.DataFrame, split: str
) -> tuple[pd.DataFrame, dict[tuple[str, str], pd.DataFrame]]:
    """TERMINATED trials that have ``split`` predictions, and each one's (label, prob) by image id."""
    if split not in ("val", "test"):
        raise ValueError(f"split must be 'val' or 'test', got {split!r}")
    missing = [c for c in PREDICTION_COLUMNS if c not in predictions.columns]
    if missing:
        raise ValueError(f"the predictions table lacks column(s): {', '.join(missing)}")
    preds = predictions[predictions["split"] == split]
    duplicated = preds.duplicated([*_TRIAL_KEY, "image_id"])
    if duplicated.any():
        first = preds[duplicated].iloc[0]
        raise ValueError(f"trial {first['trial_id']} of sweep {first['sweep']} scores image {first['image_id']} twice")
    scored = {
        (str(sweep), str(trial)): part.set_index("image_id")[["label", "prob"]].sort_index()
        for (sweep, trial), part in preds.groupby(_TRIAL_KEY, sort=False)
    }
    done, _ = terminated(trials)
    keep = [(str(s), str(t)) in scored for s, t in zip(done["sweep"], done["trial_id"])]
    return done[keep].reset_index(drop=True), scored


def _key(row: pd.Series) -> tuple[str, str]:
    return str(row["sweep"]), str(row["trial_id"])


def _common(frames: list[pd.DataFrame], what: str) -> tuple[np.ndarray, list[np.ndarray]]:
    """Labels and each frame's probabilities on the images every frame scored."""
    ids = frames[0].index
    for frame in frames[1:]:
        ids = ids.intersection(frame.index)
    ids = ids.sort_values()
    if ids.empty:
        raise ValueError(f"{what}: the trials share no scored image")
    labels = frames[0].loc[ids, "label"].to_numpy()
    for frame in frames[1:]:
        if not np.array_equal(frame.loc[ids, "label"].to_numpy(), labels):
            raise ValueError(f"{what}: the trials disagree about the label of some images")
    return labels, [frame.loc[ids, "prob"].to_numpy(dtype=np.float64) for frame in frames]


def _settings(done: pd.DataFrame) -> list[tuple[dict, pd.DataFrame]]:
    """(setting keys, its trials sorted by seed) in the paper's order, then by λ and set-up."""
    rank = {name: i for i, name in enumerate(PAPER_ORDER)}
    out = []
    for values, part in done.groupby(list(SETTING_KEYS), dropna=False, sort=False):
        keys = dict(zip(SETTING_KEYS, values))
        out.append((keys, part.sort_values(["seed", "sweep", "trial_id"], kind="stable")))
    out.sort(key=lambda item: (str(item[0]["dataset"]), rank.get(item[0]["paper_name"], len(rank)),
                               str(item[0]["paper_name"]), float(item[0]["lambda1"]), float(item[0]["lambda2"]),
                               str(item[0]["backbone"]), str(item[0]["pretrained"])))  # fmt: skip
    return out


def variant_intervals(
    trials: pd.DataFrame,
    predictions: pd.DataFrame,
    *,
    split: str = "test",
    n_resamples: int = 2000,
    seed: int = 0,
    level: float = 0.95,
    per_trial: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Bootstrap intervals of AUC and AP per model setting and (``per_trial``) per trial.

    Only TERMINATED trials with ``split`` predictions count. Returns ``(per_setting, per_trial)``:

    - ``per_setting``: the ``SETTING_KEYS``, ``split``, ``n_trials``, ``n_images``, ``n_pos``,
      ``auc_mean_prob``, ``auc_low``, ``auc_high``, ``ap_mean_prob``, ``ap_low``, ``ap_high``,
      ``method`` — the metrics of the seed-averaged prediction (mean probability over the
      setting's trials, on the images every one of them scored), a seed ensemble.
    - ``per_trial``: the ``SETTING_KEYS``, ``split``, ``sweep``, ``trial_id``, ``seed``,
      ``n_images``, ``n_pos``, ``auc``, ``auc_low``, ``auc_high``, ``ap``, ``ap_low``,
      ``ap_high``, ``method``.
    """
    check_resampling(n_resamples, level)
    done, scored = _scored_trials(trials, predictions, split)
    setting_rows, trial_rows = [], []

    def intervals(y: np.ndarray, p: np.ndarray) -> dict:
        row: dict = {"n_images": int(y.size), "n_pos": int(y.sum())}
        for metric in METRICS:
            ci = bootstrap_ci(y, p, metric, n_resamples=n_resamples, seed=seed, level=level)
            row.update({metric: ci.estimate, f"{metric}_low": ci.low, f"{metric}_high": ci.high})
        row["method"] = ci.method
        return row

    for keys, part in _settings(done):
        frames = []
        for _, trial in part.iterrows():
            frame = scored[_key(trial)]
            frames.append(frame)
            if not per_trial:
                continue
            try:
                row = intervals(frame["label"].to_numpy(), frame["prob"].to_numpy(dtype=np.float64))
            except ValueError as error:
                raise ValueError(f"trial {trial['trial_id']} ({keys['paper_name']}): {error}") from None
            trial_rows.append({**keys, "split": split, "sweep": trial["sweep"], "trial_id": trial["trial_id"],
                               "seed": trial["seed"], **row})  # fmt: skip
        name = _setting_label(keys, with_dataset=True, with_setup=True)
        y, probs = _common(frames, name)
        try:
            row = intervals(y, np.mean(probs, axis=0))
        except ValueError as error:
            raise ValueError(f"{name}: {error}") from None
        row = {f"{k}_mean_prob" if k in METRICS else k: v for k, v in row.items()}
        setting_rows.append({**keys, "split": split, "n_trials": len(part), **row})

    per_setting_columns = [*SETTING_KEYS, "split", "n_trials", "n_images", "n_pos", "auc_mean_prob", "auc_low",
                           "auc_high", "ap_mean_prob", "ap_low", "ap_high", "method"]  # fmt: skip
    per_trial_columns = [*SETTING_KEYS, "split", "sweep", "trial_id", "seed", "n_images", "n_pos", "auc", "auc_low",
                         "auc_high", "ap", "ap_low", "ap_high", "method"]  # fmt: skip
    return (
        pd.DataFrame(setting_rows, columns=per_setting_columns),
        pd.DataFrame(trial_rows, columns=per_trial_columns),
    )


# --------------------------------------------------------------------------- naming settings


def _token(keys: dict) -> str:
    return keys["variant"] if keys["roi"] == "none" else f"{keys['variant']}+{keys['roi']}"


def _setting_label(keys: dict, *, with_dataset: bool = False, with_setup: bool = False) -> str:
    """``[DATASET:]TOKEN[@λ1,λ2]`` (λ only for regularised settings), plus ``[backbone, weights]``."""
    label = _token(keys)
    if keys["roi"] != "none":
        label += f"@{keys['lambda1']:g},{keys['lambda2']:g}"
    if with_dataset:
        label = f"{keys['dataset']}:{label}"
    if with_setup:
        label += f" [{keys['backbone']}, {_weights(keys['pretrained'])}]"
    return label


def _weights(pretrained: object) -> str:
    return "weights ?" if pd.isna(pretrained) else ("pretrained" if pretrained else "scratch")


def setting_labels(settings: list[dict]) -> list[str]:
    """Labels that tell the given settings apart: dataset and set-up only where they vary."""
    datasets = {k["dataset"] for k in settings}
    setups = {(k["backbone"], _weights(k["pretrained"])) for k in settings}
    return [_setting_label(k, with_dataset=len(datasets) > 1, with_setup=len(setups) > 1) for k in settings]


def setting_names(trials: pd.DataFrame, predictions: pd.DataFrame, *, split: str = "test") -> list[str]:
    """The settings ``compare_settings`` can name (TERMINATED trials with ``split`` predictions)."""
    done, _ = _scored_trials(trials, predictions, split)
    return setting_labels([keys for keys, _ in _settings(done)])


def _parse_name(text: str) -> tuple[str | None, str, tuple[float, float] | None]:
    dataset, _, rest = text.strip().rpartition(":")
    name, at, lambdas = rest.partition("@")
    parsed = None
    if at:
        parts = lambdas.split(",")
        try:
            if len(parts) != 2:
                raise ValueError
            parsed = (float(parts[0]), float(parts[1]))
        except ValueError:
            raise ValueError(f"setting {text!r}: write λ as NAME@λ1,λ2, e.g. attnmel+lesion@0.001,0.01") from None
    return dataset.strip() or None, name.strip(), parsed


def _resolve(text: str, settings: list[tuple[dict, pd.DataFrame]]) -> tuple[dict, pd.DataFrame]:
    """The one setting ``[DATASET:]NAME[@λ1,λ2]`` names; NAME is a paper name or a variant token."""
    dataset, name, lambdas = _parse_name(text)
    token = split_token(name.lower())
    matches = [
        (keys, part)
        for keys, part in settings
        if (str(keys["paper_name"]).lower() == name.lower() or (keys["variant"], keys["roi"]) == token)
        and (dataset is None or keys["dataset"] == dataset)
        and (lambdas is None or bool(np.allclose((keys["lambda1"], keys["lambda2"]), lambdas, rtol=1e-6, atol=0)))
    ]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        available = ", ".join(setting_labels([keys for keys, _ in settings])) or "none"
        raise ValueError(f"no finished setting {text!r} with predictions; available: {available}")
    found = [keys for keys, _ in matches]
    if len({(k["dataset"], k["lambda1"], k["lambda2"]) for k in found}) < len(found):
        hint = "they differ in backbone or weights; compare trials of one set-up"
    else:
        hint = "add @λ1,λ2 and/or a DATASET: prefix"
    raise ValueError(f"setting {text!r} is ambiguous, it matches {', '.join(setting_labels(found))}; {hint}")


def _by_seed(text: str, part: pd.DataFrame) -> dict[int, pd.Series]:
    out: dict[int, pd.Series] = {}
    for _, trial in part.iterrows():
        seed = int(trial["seed"])
        if seed in out:
            raise ValueError(
                f"setting {text!r} has several finished trials with seed {seed} ({out[seed]['trial_id']}, "
                f"{trial['trial_id']}); pairing by seed needs one, so pass the trials of one sweep"
            )
        out[seed] = trial
    return out


def compare_settings(
    trials: pd.DataFrame,
    predictions: pd.DataFrame,
    a: str,
    b: str,
    *,
    metric: str = "auc",
    split: str = "test",
    n_resamples: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> pd.DataFrame:
    """Paired comparison of setting ``a`` against setting ``b``, seed by seed.

    A setting is named ``[DATASET:]NAME[@λ1,λ2]``: NAME is a paper name ("AttnMel-CNN-Lesion",
    any case) or a variant token ("attnmel+lesion", "vgg16_gap"); ``@λ1,λ2`` picks one λ
    setting of a regularised variant; ``DATASET:`` one dataset. An unknown or ambiguous name
    is a ``ValueError`` that lists the settings. Trials pair by seed (seeds of one side only
    are left out, with a logged warning), each pair on the images both scored; a last row
    "seed-averaged" compares the mean probabilities over the paired trials when there are two
    or more pairs. AUC uses DeLong's test, AP the paired bootstrap (``n_resamples``, ``seed``).

    Columns: pair, split, seed (<NA> for the seed-averaged row), n_images, n_pos, metric_a,
    metric_b, delta (a − b), se, ci_low, ci_high, z, p, method.
    """
    metric_function(metric)
    check_resampling(n_resamples, level)
    done, scored = _scored_trials(trials, predictions, split)
    settings = _settings(done)
    keys_a, part_a = _resolve(a, settings)
    keys_b, part_b = _resolve(b, settings)
    if keys_a is keys_b:
        raise ValueError(f"{a!r} and {b!r} name the same setting; nothing to compare")
    if keys_a["dataset"] != keys_b["dataset"]:
        raise ValueError(f"{a!r} ({keys_a['dataset']}) and {b!r} ({keys_b['dataset']}) ran on different datasets")
    seeds_a, seeds_b = _by_seed(a, part_a), _by_seed(b, part_b)
    common = sorted(set(seeds_a) & set(seeds_b))
    if not common:
        raise ValueError(f"{a!r} (seeds {sorted(seeds_a)}) and {b!r} (seeds {sorted(seeds_b)}) share no seed")
    unpaired = sorted(set(seeds_a) ^ set(seeds_b))
    if unpaired:
        log.warning("seeds %s ran for only one of %r and %r; left out of the comparison", unpaired, a, b)

    rows = []

    def add(pair: str, seed_value: object, frames_a: list[pd.DataFrame], frames_b: list[pd.DataFrame]) -> None:
        y, probs = _common(frames_a + frames_b, f"{a} vs {b}, {pair}")
        k = len(frames_a)
        result = paired_test(metric, y, np.mean(probs[:k], axis=0), np.mean(probs[k:], axis=0), n_resamples, seed, level)
        rows.append({"pair": pair, "split": split, "seed": seed_value, "n_images": int(y.size), "n_pos": result.n_pos,
                     "metric_a": result.value_a, "metric_b": result.value_b, "delta": result.delta, "se": result.se,
                     "ci_low": result.ci_low, "ci_high": result.ci_high, "z": result.z, "p": result.p,
                     "method": result.method})  # fmt: skip

    for s in common:
        add(f"seed {s}", s, [scored[_key(seeds_a[s])]], [scored[_key(seeds_b[s])]])
    if len(common) > 1:
        add("seed-averaged", pd.NA, [scored[_key(seeds_a[s])] for s in common],
            [scored[_key(seeds_b[s])] for s in common])  # fmt: skip
    frame = pd.DataFrame(rows)
    frame["seed"] = frame["seed"].astype("Int64")
    return frame


# --------------------------------------------------------------------------- text


