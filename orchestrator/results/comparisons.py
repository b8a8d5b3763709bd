"""Statistics over a sweep's tables: per-setting intervals, paired comparisons, families.

Groups the ``trials`` table into model settings (``paper.SETTING_KEYS``), lines up their
trials' probabilities on the same images of the ``predictions`` table, and applies
:mod:`orchestrator.results.stats` to them; :mod:`orchestrator.results.text` and the plots only
format what these functions return. A setting's number is the expected single-model metric
(the mean over its seeds) with an interval over seeds and test images; per-seed DeLong rows
answer the narrower question whether two trained models differ on these images; the seed
ensemble appears only as its own labelled row. Errors in the inputs (an unknown or ambiguous
setting name, unpaired seeds) are ``ValueError`` with one line.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from orchestrator.results.paper import PAPER_ORDER, SETTING_KEYS, same_lambdas
from orchestrator.results.build import terminated
from orchestrator.results.orh import DEFAULT_COVARIANCE, covariance_text, error_covariance, orh_pairwise, orh_test
from orchestrator.results.stats import (
    DEFAULT_RESAMPLES, METRIC_LABELS, METRICS, benjamini_hochberg, bootstrap_ci, check_resampling, holm, metric_function,
    paired_test, resampled_metric, setting_difference, setting_interval,
)
from attnmel.model_names import split_token
from attnmel.record import is_scored_split

__all__ = [
    "COMPARE_COLUMNS",
    "FAMILY_COLUMNS",
    "SENSITIVITY_FAMILY",
    "PREDICTION_COLUMNS",
    "ROW_ANSWERS",
    "SETTING_KEYS",
    "common_images",
    "compare_family",
    "compare_settings",
    "paired_matrices",
    "scored_trials",
    "sensitivity_family",
    "setting_intervals",
    "setting_labels",
    "setting_names",
]

log = logging.getLogger(__name__)

PREDICTION_COLUMNS = ("sweep", "trial_id", "split", "image_id", "label", "prob")
_TRIAL_KEY = ["sweep", "trial_id"]


def scored_trials(
    trials: pd.DataFrame, predictions: pd.DataFrame, split: str
) -> tuple[pd.DataFrame, dict[tuple[str, str], pd.DataFrame]]:
    """TERMINATED trials that have ``split`` predictions, and each one's (label, prob) by image id.
    ``split`` is ``val``, ``test`` or an external test set's (``ext_<name>``)."""
    if not is_scored_split(split):
        raise ValueError(f"split must be 'val', 'test' or an external set's 'ext_<name>', got {split!r}")
    missing = [c for c in PREDICTION_COLUMNS if c not in predictions.columns]
    if missing:
        raise ValueError(f"the predictions table lacks column(s): {', '.join(missing)}")
    preds = predictions[predictions["split"] == split]
    prob = pd.to_numeric(preds["prob"], errors="coerce")
    bad = ~(prob.between(0.0, 1.0)) | prob.isna()
    if bad.any():
        first = preds[bad].iloc[0]
        raise ValueError(f"trial {first['trial_id']} of sweep {first['sweep']}: {int(bad.sum())} {split} "
                         f"probabilities are NaN or outside [0, 1] (image {first['image_id']}: {first['prob']!r})")
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


def common_images(frames: list[pd.DataFrame], what: str) -> tuple[np.ndarray, list[np.ndarray]]:
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


def _matrix(frames: list[pd.DataFrame], what: str) -> tuple[np.ndarray, np.ndarray]:
    """Labels and the (trials, images) probabilities on the images every frame scored."""
    y, probs = common_images(frames, what)
    return y, np.stack(probs)


_INTERVAL_COLUMNS = [f"{m}{suffix}" for m in METRICS for suffix in ("", "_low", "_high", "_se", "_df", "_seed_sd",
                                                                   "_image_se")]  # fmt: skip
_ENSEMBLE_COLUMNS = [f"ensemble_{m}{suffix}" for m in METRICS for suffix in ("", "_low", "_high")]


def setting_intervals(
    trials: pd.DataFrame,
    predictions: pd.DataFrame,
    *,
    split: str = "test",
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = 0.95,
    per_trial: bool = True,
    ensemble: bool = False,
    covariance: str = DEFAULT_COVARIANCE,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each setting's expected single-model AUC and AP with intervals over seeds and test
    images (``stats.setting_interval``), and (``per_trial``) each trial's own bootstrap interval.

    Only TERMINATED trials with ``split`` predictions count. Returns ``(per_setting, per_trial)``:

    - ``per_setting``: the ``SETTING_KEYS``, ``split``, ``n_trials``, ``n_images``, ``n_pos``, per
      metric (``auc``, ``ap``) the mean over seeds and ``_low``, ``_high``, ``_se``, ``_df``,
      ``_seed_sd`` (sample SD of the trials' metrics, NaN for one seed), ``_image_se`` (the
      test-set part of the SE), then ``covers`` (what the interval includes) and ``method``;
      with ``ensemble`` also ``ensemble_auc``/``ensemble_ap`` with ``_low``/``_high``: the metric
      of the mean probability over the seeds (a seed ensemble, its own number) and its
      stratified bootstrap interval, and ``ensemble_method``. Each setting is scored on the
      images all its trials scored.
    - ``per_trial``: the ``SETTING_KEYS``, ``split``, ``sweep``, ``trial_id``, ``seed``,
      ``n_images``, ``n_pos``, ``auc``, ``auc_low``, ``auc_high``, ``ap``, ``ap_low``,
      ``ap_high``, ``method``.
    """
    check_resampling(n_resamples, level)
    done, scored = scored_trials(trials, predictions, split)
    setting_rows, trial_rows = [], []
    for keys, part in _settings(done):
        frames = [scored[_key(trial)] for _, trial in part.iterrows()]
        if per_trial:
            for (_, trial), frame in zip(part.iterrows(), frames):
                y, p = frame["label"].to_numpy(), frame["prob"].to_numpy(dtype=np.float64)
                row: dict = {"n_images": int(y.size), "n_pos": int(y.sum())}
                try:
                    for metric in METRICS:
                        ci = bootstrap_ci(y, p, metric, n_resamples=n_resamples, seed=seed, level=level)
                        row.update({metric: ci.estimate, f"{metric}_low": ci.low, f"{metric}_high": ci.high})
                except ValueError as error:
                    raise ValueError(f"trial {trial['trial_id']} ({keys['paper_name']}): {error}") from None
                trial_rows.append({**keys, "split": split, "sweep": trial["sweep"], "trial_id": trial["trial_id"],
                                   "seed": trial["seed"], **row, "method": ci.method})  # fmt: skip
        name = _setting_label(keys, with_dataset=True, with_setup=True)
        y, probs = _matrix(frames, name)
        row = {"n_images": int(y.size), "n_pos": int(y.sum())}
        methods: dict[str, None] = {}
        try:
            for metric in METRICS:
                est = setting_interval(y, probs, metric, n_resamples=n_resamples, seed=seed, level=level,
                                       covariance=_covariance_for(metric, covariance))
                methods.setdefault(est.method, None)
                spread = float(np.std([METRICS[metric](y, p) for p in probs], ddof=1)) if len(probs) > 1 else np.nan
                row.update({metric: est.estimate, f"{metric}_low": est.low, f"{metric}_high": est.high,
                            f"{metric}_se": est.se, f"{metric}_df": est.df, f"{metric}_seed_sd": spread,
                            f"{metric}_image_se": float(np.sqrt(max(est.image_var, 0.0)))})  # fmt: skip
                if ensemble:
                    ci = bootstrap_ci(y, probs.mean(axis=0), metric, n_resamples=n_resamples, seed=seed, level=level)
                    row.update({f"ensemble_{metric}": ci.estimate, f"ensemble_{metric}_low": ci.low,
                                f"ensemble_{metric}_high": ci.high, "ensemble_method": ci.method})  # fmt: skip
        except ValueError as error:
            raise ValueError(f"{name}: {error}") from None
        method = " | ".join(f"{METRIC_LABELS[m]}: {text}" for m, text in zip(METRICS, methods)) if len(methods) > 1 \
            else next(iter(methods))
        setting_rows.append({**keys, "split": split, "n_trials": len(part), **row, "covers": est.covers,
                             "method": method})

    per_setting_columns = [*SETTING_KEYS, "split", "n_trials", "n_images", "n_pos", *_INTERVAL_COLUMNS, "covers",
                           "method", *((*_ENSEMBLE_COLUMNS, "ensemble_method") if ensemble else ())]  # fmt: skip
    per_trial_columns = [*SETTING_KEYS, "split", "sweep", "trial_id", "seed", "n_images", "n_pos", "auc", "auc_low",
                         "auc_high", "ap", "ap_low", "ap_high", "method"]  # fmt: skip
    return (
        pd.DataFrame(setting_rows, columns=per_setting_columns),
        pd.DataFrame(trial_rows, columns=per_trial_columns),
    )


def _covariance_for(metric: str, covariance: str) -> str:
    """DeLong's covariances are the AUC's: a table asked for them takes AP's from the bootstrap."""
    return "bootstrap" if covariance == "delong" and metric != "auc" else covariance


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
    done, _ = scored_trials(trials, predictions, split)
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
        and (lambdas is None or same_lambdas((keys["lambda1"], keys["lambda2"]), lambdas))
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


# What each row of a comparison answers (printed under the table).
ROW_ANSWERS = {
    "expected single model": "does a model trained as A beat one trained as B, over training randomness "
                             "(seeds) and test-set sampling?",
    "seed": "do these two trained models (one seed each) differ on these test images?",
    "ensemble": "does A's seed ensemble (mean probability over its seeds) beat B's on these test images?",
}  # fmt: skip


def _pairing(text_a: str, text_b: str, part_a: pd.DataFrame, part_b: pd.DataFrame, *,
             warn: bool = True) -> tuple[list[int], bool]:  # fmt: skip
    """The seeds both settings ran, and whether the expected-single-model Δ pairs them (two or
    more shared seeds: the grid ran both with the same seeds)."""
    seeds_a, seeds_b = _by_seed(text_a, part_a), _by_seed(text_b, part_b)
    common = sorted(set(seeds_a) & set(seeds_b))
    paired = len(common) > 1
    unpaired = sorted(set(seeds_a) ^ set(seeds_b))
    if unpaired and paired and warn:
        log.warning("seeds %s ran for only one of %r and %r; left out of the comparison", unpaired, text_a, text_b)
    return common, paired


def _difference_row(metric: str, y: np.ndarray, probs_a: np.ndarray, probs_b: np.ndarray, paired: bool,
                    n_resamples: int, seed: int, level: float, covariance: str) -> dict:
    """The expected-single-model columns of a comparison row (``stats.setting_difference``)."""
    est = setting_difference(y, probs_a, probs_b, metric, paired=paired, n_resamples=n_resamples, seed=seed,
                             level=level, covariance=covariance)
    mean_b = float(np.mean([METRICS[metric](y, p) for p in probs_b]))
    return {"metric_a": mean_b + est.estimate, "metric_b": mean_b, "delta": est.estimate, "se": est.se,
            "ci_low": est.low, "ci_high": est.high, "z": est.t, "df": est.df, "p": est.p, "seeds_a": len(probs_a),
            "seeds_b": len(probs_b), "paired": paired, "covers": est.covers, "method": est.method}  # fmt: skip


def _expected_difference(text_a: str, text_b: str, part_a: pd.DataFrame, part_b: pd.DataFrame,
                         scored: dict, metric: str, n_resamples: int, seed: int, level: float,
                         covariance: str) -> dict:
    """Δ of the expected single-model metric of two settings' trials, seeds paired where they
    share two or more; with ``n_images``/``n_pos`` of the images all the trials scored."""
    common, paired = _pairing(text_a, text_b, part_a, part_b)
    seeds_a, seeds_b = _by_seed(text_a, part_a), _by_seed(text_b, part_b)
    frames_a = [scored[_key(seeds_a[s])] for s in (common if paired else sorted(seeds_a))]
    frames_b = [scored[_key(seeds_b[s])] for s in (common if paired else sorted(seeds_b))]
    y, probs = _matrix(frames_a + frames_b, f"{text_a} vs {text_b}")
    k = len(frames_a)
    return {"n_images": int(y.size), "n_pos": int(y.sum()),
            **_difference_row(metric, y, probs[:k], probs[k:], paired, n_resamples, seed, level, covariance)}


COMPARE_COLUMNS = ["pair", "kind", "split", "seed", "n_images", "n_pos", "metric_a", "metric_b", "delta", "se",
                   "ci_low", "ci_high", "z", "df", "p", "seeds_a", "seeds_b", "paired", "covers", "method"]  # fmt: skip


def compare_settings(
    trials: pd.DataFrame,
    predictions: pd.DataFrame,
    a: str,
    b: str,
    *,
    metric: str = "auc",
    split: str = "test",
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = 0.95,
    covariance: str = DEFAULT_COVARIANCE,
) -> pd.DataFrame:
    """Setting ``a`` against setting ``b`` on the same images: one row per question.

    A setting is named ``[DATASET:]NAME[@λ1,λ2]``: NAME is a paper name ("AttnMel-CNN-Lesion",
    any case) or a variant token ("attnmel+lesion", "vgg16_gap"); ``@λ1,λ2`` picks one λ
    setting of a regularised variant; ``DATASET:`` one dataset. An unknown or ambiguous name
    is a ``ValueError`` that lists the settings. Rows (``kind``, see :data:`ROW_ANSWERS`):

    - "expected single model": Δ of the mean over seeds, its interval and p from
      ``stats.setting_difference``; seeds paired when the settings share two or more (seeds of
      one side only are then left out, with a logged warning), else each side's seeds as they are.
    - "seed": one per shared seed, the two trials on the images both scored: DeLong's test for
      AUC, the paired stratified bootstrap for AP (``n_resamples``, ``seed``).
    - "ensemble": with two or more shared seeds, the mean probabilities of the paired trials
      (each side's seed ensemble) under the same test as the seed rows.

    Columns: :data:`COMPARE_COLUMNS` (``z`` is the t statistic on the expected-single-model row;
    ``df`` its degrees of freedom; ``seed`` <NA> except on seed rows).
    """
    metric_function(metric)
    check_resampling(n_resamples, level)
    done, scored = scored_trials(trials, predictions, split)
    settings = _settings(done)
    keys_a, part_a = _resolve(a, settings)
    keys_b, part_b = _resolve(b, settings)
    if keys_a is keys_b:
        raise ValueError(f"{a!r} and {b!r} name the same setting; nothing to compare")
    if keys_a["dataset"] != keys_b["dataset"]:
        raise ValueError(f"{a!r} ({keys_a['dataset']}) and {b!r} ({keys_b['dataset']}) ran on different datasets")
    rows = [{"pair": "expected single model", "kind": "expected single model", "split": split, "seed": pd.NA,
             **_expected_difference(a, b, part_a, part_b, scored, metric, n_resamples, seed, level, covariance)}]
    common, paired = _pairing(a, b, part_a, part_b, warn=False)
    seeds_a, seeds_b = _by_seed(a, part_a), _by_seed(b, part_b)
    what = f"{a} vs {b}"

    def add(pair: str, kind: str, seed_value: object, frames_1: list[pd.DataFrame], frames_2: list[pd.DataFrame]):
        y, probs = common_images(frames_1 + frames_2, f"{what}, {pair}")
        k = len(frames_1)
        result = paired_test(metric, y, np.mean(probs[:k], axis=0), np.mean(probs[k:], axis=0), n_resamples, seed,
                             level)  # fmt: skip
        rows.append({"pair": pair, "kind": kind, "split": split, "seed": seed_value, "n_images": int(y.size),
                     "n_pos": result.n_pos, "metric_a": result.value_a, "metric_b": result.value_b,
                     "delta": result.delta, "se": result.se, "ci_low": result.ci_low, "ci_high": result.ci_high,
                     "z": result.z, "df": np.inf if metric == "auc" else np.nan, "p": result.p, "seeds_a": k,
                     "seeds_b": len(frames_2), "paired": True, "covers": "test images (trained models fixed)",
                     "method": result.method})  # fmt: skip

    for s in common:
        add(f"seed {s}", "seed", s, [scored[_key(seeds_a[s])]], [scored[_key(seeds_b[s])]])
    if paired:
        add(f"ensemble of {len(common)} seeds", "ensemble", pd.NA, [scored[_key(seeds_a[s])] for s in common],
            [scored[_key(seeds_b[s])] for s in common])  # fmt: skip
    frame = pd.DataFrame(rows, columns=COMPARE_COLUMNS)
    frame["seed"] = frame["seed"].astype("Int64")
    return frame


def paired_matrices(
    trials: pd.DataFrame, predictions: pd.DataFrame, a: str, b: str, *, split: str = "test"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels and the (seeds, images) probabilities of settings ``a`` and ``b`` over the seeds
    both ran, row k of each the same seed, on the images all those trials scored. A
    ``ValueError`` when they share fewer than two seeds (no seed variance to see)."""
    done, scored = scored_trials(trials, predictions, split)
    settings = _settings(done)
    (keys_a, part_a), (keys_b, part_b) = _resolve(a, settings), _resolve(b, settings)
    if keys_a is keys_b:
        raise ValueError(f"{a!r} and {b!r} name the same setting; nothing to compare")
    seeds_a, seeds_b = _by_seed(a, part_a), _by_seed(b, part_b)
    common = sorted(set(seeds_a) & set(seeds_b))
    if len(common) < 2:
        raise ValueError(f"{a!r} (seeds {sorted(seeds_a)}) and {b!r} (seeds {sorted(seeds_b)}) share "
                         f"{len(common)} seed(s); the seed variance needs at least 2 shared seeds")  # fmt: skip
    frames = [scored[_key(seeds_a[s])] for s in common] + [scored[_key(seeds_b[s])] for s in common]
    y, probs = _matrix(frames, f"{a} vs {b}")
    return y, probs[: len(common)], probs[len(common):]


# --------------------------------------------------------------------------- families

FAMILY_COLUMNS = ["family", "setting", *SETTING_KEYS, "split", "metric", "n_images", "seeds", "paired", "metric_a",
                  "metric_ref", "delta", "ci_low", "ci_high", "p", "in_family", "p_holm", "q_bh", "covers", "method",
                  "f", "f_df1", "f_ddf", "f_p", "f_seeds"]
# The global test of a family's settings (``f`` … ``f_seeds``, the same on every row of a family).
_F_COLUMNS = ["f", "f_df1", "f_ddf", "f_p", "f_seeds"]


def _resolve_many(text: str, reference: dict, settings: list[tuple[dict, pd.DataFrame]]) -> list[tuple[dict, pd.DataFrame]]:
    """The settings a family pattern names: "all" (every other setting of the reference's dataset
    and set-up) or ``[DATASET:]NAME@*`` (every λ setting of NAME)."""
    same = [(k, p) for k, p in settings if k is not reference and k["dataset"] == reference["dataset"]
            and k["backbone"] == reference["backbone"] and k["pretrained"] == reference["pretrained"]]  # fmt: skip
    if text.strip().lower() == "all":
        found = same
    elif text.strip().endswith("@*"):
        dataset, _, name = text.strip()[:-2].rpartition(":")
        token = split_token(name.strip().lower())
        found = [(k, p) for k, p in same if (str(k["paper_name"]).lower() == name.strip().lower()
                                             or (k["variant"], k["roi"]) == token)
                 and (not dataset or k["dataset"] == dataset)]  # fmt: skip
    else:
        return [_resolve(text, settings)]
    if not found:
        available = ", ".join(setting_labels([k for k, _ in same])) or "none"
        raise ValueError(f"{text!r} names no finished setting beside the reference; available: {available}")
    return found


def _family_analysis(members: list[tuple[str, pd.DataFrame]], scored: dict, metric: str, n_resamples: int,
                     seed: int, level: float, covariance: str) -> tuple[dict, list, np.ndarray, int, int]:
    """The ORH analysis of a family over the seeds all ``members`` (label, trials; the reference
    last) ran, on the images all those trials scored: Hillis's F test of equal settings and each
    member − the reference on the family's error term (``orh.orh_pairwise``). Returns (F-test
    columns, pairwise estimates, each member's mean, images, seeds); NaN and [] where fewer than
    2 members share 2 or more seeds."""
    none = {"f": np.nan, "f_df1": np.nan, "f_ddf": np.nan, "f_p": np.nan, "f_seeds": 0}
    by_seed = [_by_seed(label, part) for label, part in members]
    common = sorted(set.intersection(*(set(s) for s in by_seed))) if by_seed else []
    if len(members) < 2 or len(common) < 2:
        return none, [], np.array([]), 0, len(common)
    frames = [scored[_key(seeds[s])] for seeds in by_seed for s in common]
    y, probs = _matrix(frames, "the family")
    fn = metric_function(metric)
    theta = np.array([fn(y, p) for p in probs]).reshape(len(members), len(common))
    boot = resampled_metric(metric, y, probs, n_resamples, seed) if covariance == "bootstrap" else None
    cov = error_covariance(metric, y, probs, covariance, bootstrap=boot)
    test = orh_test(theta, cov)
    pairs = orh_pairwise(theta, cov, len(members) - 1, level=level)
    columns = {"f": test.f, "f_df1": test.df1, "f_ddf": test.ddf, "f_p": test.p, "f_seeds": len(common)}
    return columns, pairs, theta.mean(axis=1), int(y.size), len(common)


def _family(found: list[tuple[dict, pd.DataFrame]], keys_ref: dict, part_ref: pd.DataFrame, name: str,
            scored: dict, metric: str, split: str, n_resamples: int, seed: int, level: float,
            covariance: str) -> pd.DataFrame:
    """Each member against the reference on the family's ORH error term (over the seeds every
    member and the reference ran), Holm and BH over them, and the global F test. A member with
    fewer than 2 seeds paired with the reference stays in the table with its own comparison
    (test images only) but out of the family; so does every member, with its own two-setting
    analysis, when the family shares fewer than 2 seeds."""
    labels = setting_labels([k for k, _ in found] + [keys_ref])
    rows, members = [], []
    for (keys, part), label in zip(found, labels):
        diff = _expected_difference(label, labels[-1], part, part_ref, scored, metric, n_resamples, seed, level,
                                    covariance)
        in_family = bool(diff["paired"]) and min(diff["seeds_a"], diff["seeds_b"]) >= 2
        if in_family:
            members.append((label, part))
        rows.append({"setting": label, **keys, "split": split, "metric": metric, "n_images": diff["n_images"],
                     "seeds": f"{diff['seeds_a']}/{diff['seeds_b']}", "paired": diff["paired"],
                     "metric_a": diff["metric_a"], "metric_ref": diff["metric_b"], "delta": diff["delta"],
                     "ci_low": diff["ci_low"], "ci_high": diff["ci_high"], "p": diff["p"], "in_family": in_family,
                     "covers": diff["covers"], "method": diff["method"]})
    frame = pd.DataFrame(rows, columns=[c for c in FAMILY_COLUMNS if c not in ("family", "p_holm", "q_bh",
                                                                              *_F_COLUMNS)])
    f_test, pairs, means, images, shared = _family_analysis([*members, (labels[-1], part_ref)] if members else [], scored,
                                                     metric, n_resamples, seed, level, covariance)
    if pairs:
        where = frame.index[frame["in_family"]]
        pooled = (f"Δ over the family's {shared} shared seeds, the family's ORH error term (MS(T×R) and covariances "
                  f"over its {len(pairs) + 1} settings; {covariance_text(covariance, n_resamples, seed)}), Hillis df")
        frame.loc[where, "delta"] = [e.estimate for e in pairs]
        frame.loc[where, "ci_low"] = [max(e.low, -1.0) for e in pairs]
        frame.loc[where, "ci_high"] = [min(e.high, 1.0) for e in pairs]
        frame.loc[where, "p"] = [e.p for e in pairs]
        frame.loc[where, "n_images"] = images
        frame.loc[where, "seeds"] = f"{shared}/{shared}"
        frame.loc[where, "metric_a"] = means[:-1]
        frame.loc[where, "metric_ref"] = means[-1]
        frame.loc[where, "method"] = [f"{m.split('; ', 1)[0]}; {pooled}" for m in frame.loc[where, "method"]]
    left_out = frame.loc[~frame["in_family"], "setting"].tolist()
    if left_out:
        log.warning("left out of the family %r (fewer than 2 paired seeds: test images only): %s", name,
                    ", ".join(left_out))
    family_p = frame["p"].where(frame["in_family"]).to_numpy(dtype=float)
    frame["p_holm"] = holm(family_p)
    frame["q_bh"] = benjamini_hochberg(family_p)
    counted = int(frame["in_family"].sum())
    frame["family"] = (f"{name} vs {labels[-1]} ({keys_ref['dataset']}, {split} {metric.upper()}): "
                       f"{counted} comparison{'s' if counted != 1 else ''}"
                       + (f" ({len(left_out)} more left out: one seed)" if left_out else ""))
    for column, value in f_test.items():
        frame[column] = value
    return frame[FAMILY_COLUMNS]


def compare_family(
    trials: pd.DataFrame,
    predictions: pd.DataFrame,
    members: str,
    reference: str,
    *,
    metric: str = "auc",
    split: str = "test",
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = 0.95,
    covariance: str = DEFAULT_COVARIANCE,
) -> pd.DataFrame:
    """Every setting ``members`` names ("all", ``NAME@*`` or one name) against ``reference``:
    Δ of the expected single-model metric (as :func:`compare_settings`' first row), raw p,
    Holm-adjusted p (family-wise error) and Benjamini–Hochberg q (false discovery rate) over the
    family, which the ``family`` column names, and Hillis's F test of equal settings over the
    family (``f`` … ``f_seeds``). Members with fewer than 2 paired seeds are shown with
    ``in_family`` False and no adjusted p. Columns: :data:`FAMILY_COLUMNS`."""
    metric_function(metric)
    check_resampling(n_resamples, level)
    covariance_text(covariance, n_resamples, seed)
    done, scored = scored_trials(trials, predictions, split)
    settings = _settings(done)
    keys_ref, part_ref = _resolve(reference, settings)
    found = [(k, p) for k, p in _resolve_many(members, keys_ref, settings) if k is not keys_ref]
    name = "every other setting" if members.strip().lower() == "all" else members.strip()
    return _family(found, keys_ref, part_ref, name, scored, metric, split, n_resamples, seed, level, covariance)


SENSITIVITY_FAMILY = "every regularised AttnMel-CNN λ cell (all ROIs)"


def sensitivity_family(
    trials: pd.DataFrame, predictions: pd.DataFrame, *, metric: str = "auc", n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0, level: float = 0.95, covariance: str = DEFAULT_COVARIANCE,
) -> pd.DataFrame:
    """The family the sensitivity heat map marks: per dataset, set-up and split (val, test),
    :data:`SENSITIVITY_FAMILY` against the unregularised AttnMel-CNN (:func:`compare_family`'s
    columns; empty when no split has predictions for both)."""
    metric_function(metric)
    frames = []
    for split in ("val", "test"):
        done, scored = scored_trials(trials, predictions, split)
        settings = _settings(done)
        for keys_ref, part_ref in settings:
            if (keys_ref["variant"], keys_ref["roi"]) != ("attnmel", "none"):
                continue
            found = [(k, p) for k, p in settings if k["variant"] == "attnmel" and k["roi"] != "none"
                     and all(k[c] == keys_ref[c] for c in ("dataset", "backbone", "pretrained"))]  # fmt: skip
            if found:
                frames.append(_family(found, keys_ref, part_ref, SENSITIVITY_FAMILY, scored, metric, split,
                                      n_resamples, seed, level, covariance))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=FAMILY_COLUMNS)
