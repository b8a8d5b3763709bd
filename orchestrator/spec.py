"""Sweep specs: ``experiments/*.yaml`` → a typed, validated :class:`SweepSpec`.

A spec names a dataset, the training settings shared by every trial (any key of
:class:`attnmel.config.TrainConfig`), the grid (variants with their ROI, seeds, λ1, λ2, any
training key by dotted name), an optional Optuna search and ASHA scheduler, resources per
trial, storage and retries, plus a ``smoke`` block that shrinks it for CPU runs. Everything is
checked here, on the driver, before Ray starts: a problem is one :class:`UserError` line that
names the key. This module does not import Ray, so result readers can call
:func:`trial_config` cheaply.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from attnmel.config import TrainConfig, config_from_dict, config_to_dict, parse_override, set_nested
from attnmel.errors import UserError

__all__ = [
    "DatasetSpec",
    "Distribution",
    "SearchSpec",
    "SchedulerSpec",
    "ResourceSpec",
    "GridSpec",
    "SweepSpec",
    "METRIC",
    "MODE",
    "load_spec",
    "read_spec_file",
    "merged_raw",
    "spec_from_dict",
    "spec_to_dict",
    "split_variant",
    "trial_points",
    "trial_config",
    "sweep_path",
    "is_uri",
]

# Selection is always by validation AUC, never test (DESIGN.md, "Rules of thumb").
METRIC, MODE = "val_auc", "max"

# Shortcuts a ``smoke`` block may use, and the spec key each one sets.
SMOKE_KEYS = {
    "epochs": "train.optim.epochs",
    "batch_size": "train.optim.batch_size",
    "crop_size": "train.data.crop_size",
    "image_size": "train.data.image_size",
    "max_train": "train.data.max_train",
    "max_eval": "train.data.max_eval",
    "passes": "train.data.passes",
    "weights": "train.model.weights",
    "dataset_root": "dataset.root",
    "variants": "grid.variants",
    "seeds": "grid.seeds",
    "lambda1": "grid.lambda1",
    "lambda2": "grid.lambda2",
    "num_samples": "search.num_samples",
    "grace_period": "scheduler.grace_period",
    "cpus": "resources.cpus",
    "gpus": "resources.gpus",
    "name": "name",
}

# Training keys that the spec sets through its own sections; naming them under ``train`` is
# an error that points to the right place.
_OWNED_KEYS = {
    "data.dataset": "dataset.name",
    "data.root": "dataset.root",
    "data.roi_dir": "dataset.roi_dir",
    "data.roi": "grid.variants (e.g. attnmel+lesion)",
    "model.variant": "grid.variants",
    "runtime.seed": "grid.seeds",
}
_DISTRIBUTIONS = ("uniform", "loguniform", "choice", "randint")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class DatasetSpec:
    """Which ISIC dataset and where it lives (an absolute path once loaded)."""

    name: str
    root: str
    roi_dir: str | None = None
    # demo only: write a synthetic dataset there when ``root`` is absent
    synthetic: dict[str, Any] | None = None


@dataclass(frozen=True)
class Distribution:
    """One searched dimension: ``kind`` in uniform | loguniform | choice | randint."""

    kind: str
    values: tuple[Any, ...]


@dataclass(frozen=True)
class SearchSpec:
    """Optuna (TPE) search maximising validation AUC over ``space``."""

    algorithm: str = "optuna"
    num_samples: int = 16
    seed: int | None = None
    space: dict[str, Distribution] = field(default_factory=dict)


@dataclass(frozen=True)
class SchedulerSpec:
    """ASHA early stopping on validation AUC, one rung step per epoch."""

    kind: str = "asha"
    grace_period: int = 1
    reduction_factor: float = 3.0


@dataclass(frozen=True)
class ResourceSpec:
    """Per-trial resources; fractional GPUs let trials share a card."""

    cpus: float = 1.0
    gpus: float = 0.0


@dataclass(frozen=True)
class GridSpec:
    """The crossed dimensions. λ lists apply only to variants with a ROI."""

    variants: tuple[str, ...]
    seeds: tuple[int, ...] = (0,)
    lambda1: tuple[float, ...] = ()
    lambda2: tuple[float, ...] = ()
    params: dict[str, tuple[Any, ...]] = field(default_factory=dict)  # dotted training key → values


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep. ``train`` is the full resolved training config shared by all trials."""

    name: str
    dataset: DatasetSpec
    train: dict[str, Any]
    grid: GridSpec
    search: SearchSpec | None = None
    scheduler: SchedulerSpec | None = None
    resources: ResourceSpec = field(default_factory=ResourceSpec)
    storage: str = "results"
    retries: int = 2
    max_concurrent: int | None = None
    smoke: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- small checkers


def _mapping(value: Any, key: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UserError(f"spec key '{key}' must be a mapping, got {value!r}")
    return value


def _no_unknown(given: dict[str, Any], allowed: set[str] | dict, where: str) -> None:
    bad = sorted(set(given) - set(allowed))
    if bad:
        prefix = f"{where}." if where else ""
        raise UserError(f"unknown spec key '{prefix}{bad[0]}' (known: {', '.join(sorted(allowed))})")


def _number(value: Any, key: str) -> float:
    """A float; YAML 1.1 reads ``1e-4`` (no dot) as a string, so numeric strings are accepted."""
    if isinstance(value, bool):
        raise UserError(f"spec key '{key}' must be a number, got {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    raise UserError(f"spec key '{key}' must be a number, got {value!r}")


def _integer(value: Any, key: str, *, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UserError(f"spec key '{key}' must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise UserError(f"spec key '{key}' must be >= {minimum}, got {value}")
    return value


def _string(value: Any, key: str) -> str:
    if not isinstance(value, str) or not value:
        raise UserError(f"spec key '{key}' must be a non-empty string, got {value!r}")
    return value


def _as_list(value: Any, key: str) -> list[Any]:
    if isinstance(value, (list, tuple)):
        if not value:
            raise UserError(f"spec key '{key}' must not be empty")
        return list(value)
    return [value]


def is_uri(path: str) -> bool:
    """``s3://…``, ``gs://…`` and friends are handed to Ray untouched."""
    return "://" in path


def _local_path(text: str) -> str:
    return str(Path(text).expanduser().resolve())


def split_variant(token: str) -> tuple[str, str]:
    """``"attnmel+lesion"`` → ``("attnmel", "lesion")``; ``"vgg16"`` → ``("vgg16", "none")``."""
    variant, _, roi = token.partition("+")
    return variant, roi or "none"


# --------------------------------------------------------------------------- sections


def _dataset(raw: Any) -> DatasetSpec:
    raw = _mapping(raw, "dataset")
    _no_unknown(raw, {"name", "root", "roi_dir", "synthetic"}, "dataset")
    from attnmel.data import DATASETS

    name = _string(raw.get("name"), "dataset.name")
    if name not in DATASETS:
        raise UserError(f"spec key 'dataset.name' must be one of {', '.join(DATASETS)}, got {name!r}")
    root = _string(raw.get("root"), "dataset.root")
    roi_dir = raw.get("roi_dir")
    if roi_dir is not None:
        roi_dir = _local_path(_string(roi_dir, "dataset.roi_dir"))
    synthetic = raw.get("synthetic")
    if synthetic is not None:
        synthetic = _mapping(synthetic, "dataset.synthetic")
        _no_unknown(synthetic, {"n_train", "n_val", "n_test", "size", "seed", "melanoma_fraction"}, "dataset.synthetic")
        for key, value in synthetic.items():
            if key == "melanoma_fraction":
                _number(value, f"dataset.synthetic.{key}")
            else:
                _integer(value, f"dataset.synthetic.{key}", minimum=0)
    return DatasetSpec(name=name, root=_local_path(root), roi_dir=roi_dir, synthetic=synthetic)


def _train(raw: Any, dataset: DatasetSpec, resources: ResourceSpec) -> dict[str, Any]:
    """The shared training config, fully resolved (paper defaults filled in)."""
    raw = copy.deepcopy(_mapping(raw, "train"))
    for section, keys in raw.items():
        for key in _mapping(keys, f"train.{section}"):
            owner = _OWNED_KEYS.get(f"{section}.{key}")
            if owner:
                raise UserError(f"spec key 'train.{section}.{key}' is set by '{owner}', not under train")
    raw = {section: dict(keys or {}) for section, keys in raw.items()}  # `runtime:` alone reads as None
    set_nested(raw, ["data", "dataset"], dataset.name)
    set_nested(raw, ["data", "root"], dataset.root)
    set_nested(raw, ["data", "roi_dir"], dataset.roi_dir)
    runtime = raw.setdefault("runtime", {})
    # torch threads per trial = CPUs reserved for it, so co-located trials do not oversubscribe
    runtime.setdefault("num_threads", max(1, int(resources.cpus)))
    if resources.gpus == 0:
        runtime.setdefault("device", "cpu")  # never touch a GPU the trial did not reserve
    cache_dir = raw.get("data", {}).get("cache_dir")
    if isinstance(cache_dir, str):
        raw["data"]["cache_dir"] = _local_path(cache_dir)  # trials run in their own working dirs
    try:
        cfg = config_from_dict(raw)
    except UserError as exc:
        raise UserError(f"spec section 'train': {exc}") from None
    return config_to_dict(cfg)


def _values(raw: Any, key: str, *, numeric: bool = False, integer: bool = False) -> tuple[Any, ...]:
    values = _as_list(raw, key)
    if integer:
        return tuple(_integer(v, key) for v in values)
    if numeric:
        return tuple(_number(v, key) for v in values)
    return tuple(values)


def _grid(raw: Any) -> GridSpec:
    raw = _mapping(raw, "grid")
    known = {"variants", "seeds", "lambda1", "lambda2"}
    _no_unknown({k: v for k, v in raw.items() if "." not in k}, known, "grid")
    from attnmel.models import list_models, paper_name

    if "variants" not in raw:
        raise UserError("spec key 'grid.variants' is required (e.g. [vgg16_gap, attnmel, attnmel+lesion])")
    variants = tuple(_string(v, "grid.variants") for v in _as_list(raw["variants"], "grid.variants"))
    for token in variants:
        variant, roi = split_variant(token)
        if variant not in list_models():
            raise UserError(f"spec key 'grid.variants': unknown variant {variant!r} (known: {', '.join(list_models())})")
        try:
            paper_name(variant, roi)
        except UserError as exc:
            raise UserError(f"spec key 'grid.variants': {token!r}: {exc}") from None
    if len(set(variants)) != len(variants):
        raise UserError("spec key 'grid.variants' lists a variant twice")
    lambdas = {}
    for key in ("lambda1", "lambda2"):
        values = _values(raw[key], f"grid.{key}", numeric=True) if key in raw else ()
        for value in values:
            if value < 0 or not math.isfinite(value):
                raise UserError(f"spec key 'grid.{key}' must hold finite values >= 0, got {value}")
        lambdas[key] = values
    params = {}
    for key, value in raw.items():
        if "." in key:
            if key in _OWNED_KEYS or key in ("loss.lambda1", "loss.lambda2"):
                raise UserError(f"spec key 'grid.{key}': use {_OWNED_KEYS.get(key, 'grid.' + key.split('.')[1])}")
            params[key] = _values(value, f"grid.{key}")
    seeds = _values(raw.get("seeds", [0]), "grid.seeds", integer=True)
    return GridSpec(variants=variants, seeds=seeds, params=params, **lambdas)


def _search(raw: Any) -> SearchSpec | None:
    if raw is None:
        return None
    raw = _mapping(raw, "search")
    _no_unknown(raw, {"algorithm", "num_samples", "seed", "space", "metric", "mode"}, "search")
    algorithm = raw.get("algorithm", "optuna")
    if algorithm != "optuna":
        raise UserError(f"spec key 'search.algorithm' must be optuna, got {algorithm!r}")
    # accepted for readability, but selection is on validation AUC only
    if raw.get("metric", METRIC) != METRIC or raw.get("mode", MODE) != MODE:
        raise UserError(f"spec keys 'search.metric/mode' must be {METRIC}/{MODE}: selection uses validation AUC only")
    num_samples = _integer(raw.get("num_samples", 16), "search.num_samples", minimum=1)
    seed = raw.get("seed")
    if seed is not None:
        seed = _integer(seed, "search.seed")
    space_raw = _mapping(raw.get("space"), "search.space")
    if not space_raw:
        raise UserError("spec key 'search.space' must name at least one distribution")
    space = {}
    for name, dist in space_raw.items():
        key = f"search.space.{name}"
        if name not in ("lambda1", "lambda2") and "." not in name:
            raise UserError(f"spec key '{key}': search lambda1, lambda2 or a dotted training key (e.g. optim.lr)")
        dist = _mapping(dist, key)
        if len(dist) != 1 or next(iter(dist)) not in _DISTRIBUTIONS:
            raise UserError(f"spec key '{key}' must be one of {{{'|'.join(_DISTRIBUTIONS)}: [...]}}, got {dist!r}")
        kind, values = next(iter(dist.items()))
        values = _as_list(values, f"{key}.{kind}")
        if kind == "choice":
            values = tuple(values)
        else:
            if len(values) != 2:
                raise UserError(f"spec key '{key}.{kind}' must be [low, high], got {values!r}")
            low, high = (_number(v, f"{key}.{kind}") for v in values)
            if kind == "randint":
                low, high = int(low), int(high)
            if not low < high:
                raise UserError(f"spec key '{key}.{kind}' needs low < high, got [{low}, {high}]")
            if kind == "loguniform" and low <= 0:
                raise UserError(f"spec key '{key}.loguniform' needs low > 0, got {low}")
            values = (low, high)
        if name in ("lambda1", "lambda2"):
            numbers = [_number(v, f"{key}.{kind}") for v in values]
            if min(numbers) < 0:
                raise UserError(f"spec key '{key}': λ must be >= 0, got {min(numbers)}")
        space[name] = Distribution(kind=kind, values=values)
    return SearchSpec(algorithm=algorithm, num_samples=num_samples, seed=seed, space=space)


def _scheduler(raw: Any, epochs: int) -> SchedulerSpec | None:
    if raw is None:
        return None
    raw = _mapping(raw, "scheduler")
    _no_unknown(raw, {"kind", "grace_period", "reduction_factor", "metric", "mode"}, "scheduler")
    if raw.get("kind", "asha") != "asha":
        raise UserError(f"spec key 'scheduler.kind' must be asha, got {raw.get('kind')!r}")
    if raw.get("metric", METRIC) != METRIC or raw.get("mode", MODE) != MODE:
        raise UserError(f"spec keys 'scheduler.metric/mode' must be {METRIC}/{MODE}: stopping uses validation AUC only")
    grace = _integer(raw.get("grace_period", 1), "scheduler.grace_period", minimum=1)
    if grace > epochs:
        raise UserError(f"spec key 'scheduler.grace_period' ({grace}) exceeds the epochs per trial ({epochs})")
    factor = _number(raw.get("reduction_factor", 3), "scheduler.reduction_factor")
    if factor <= 1:
        raise UserError(f"spec key 'scheduler.reduction_factor' must be > 1, got {factor}")
    return SchedulerSpec(grace_period=grace, reduction_factor=factor)


def _resources(raw: Any) -> ResourceSpec:
    raw = _mapping(raw, "resources")
    _no_unknown(raw, {"cpus", "gpus"}, "resources")
    cpus = _number(raw.get("cpus", 1), "resources.cpus")
    gpus = _number(raw.get("gpus", 0), "resources.gpus")
    if cpus <= 0:
        raise UserError(f"spec key 'resources.cpus' must be > 0, got {cpus}")
    if gpus < 0 or (gpus > 1 and gpus != int(gpus)):
        raise UserError(f"spec key 'resources.gpus' must be a fraction in [0, 1] or a whole number, got {gpus}")
    return ResourceSpec(cpus=cpus, gpus=gpus)


# --------------------------------------------------------------------------- loading


def _apply_smoke(raw: dict[str, Any]) -> dict[str, Any]:
    smoke = _mapping(raw.get("smoke"), "smoke")
    _no_unknown(smoke, SMOKE_KEYS, "smoke")
    raw = copy.deepcopy(raw)
    raw["name"] = f"{raw.get('name')}-smoke"  # never mix smoke trials into the real sweep's folder
    for key, value in smoke.items():
        parts = SMOKE_KEYS[key].split(".")
        if parts[0] in ("search", "scheduler") and raw.get(parts[0]) is None:
            continue
        set_nested(raw, parts, value)
    return raw


def merged_raw(
    raw: dict[str, Any], *, smoke: bool = False, overrides: list[str] | tuple[str, ...] = ()
) -> dict[str, Any]:
    """Plain spec data with the smoke block (when ``smoke``) and then ``overrides``
    (``key.path=value``, the value parsed as YAML) applied; not yet validated."""
    if not isinstance(raw, dict):
        raise UserError(f"a sweep spec must be a mapping, got {type(raw).__name__}")
    top = {f.name for f in dataclasses.fields(SweepSpec)}
    _no_unknown(raw, top, "")
    if smoke:
        if not raw.get("smoke"):
            raise UserError("--smoke: this spec has no 'smoke' block")
        raw = _apply_smoke(raw)
    raw = copy.deepcopy(raw)
    for item in overrides:
        parts, value = parse_override(item)
        if parts[0] not in top:
            raise UserError(f"--set {item}: unknown spec key '{parts[0]}' (known: {', '.join(sorted(top))})")
        if parts[0] == "grid" and len(parts) > 2:  # grid keys are dotted training keys themselves
            parts = ["grid", ".".join(parts[1:])]
        set_nested(raw, parts, value)
    return raw


def spec_from_dict(
    raw: dict[str, Any], *, smoke: bool = False, overrides: list[str] | tuple[str, ...] = ()
) -> SweepSpec:
    """Validate plain spec data (as read from YAML), after :func:`merged_raw`."""
    original, raw = raw, merged_raw(raw, smoke=smoke, overrides=overrides)
    _no_unknown(raw, {f.name for f in dataclasses.fields(SweepSpec)}, "")

    name = _string(raw.get("name"), "name")
    if not _NAME.match(name):
        raise UserError(f"spec key 'name' must use letters, digits, '.', '_' or '-', got {name!r}")
    dataset = _dataset(raw.get("dataset"))
    resources = _resources(raw.get("resources"))
    train = _train(raw.get("train"), dataset, resources)
    grid = _grid(raw.get("grid"))
    search = _search(raw.get("search"))
    scheduler = _scheduler(raw.get("scheduler"), train["optim"]["epochs"])
    # the results root `attnmel query` reads by default
    storage = _string(raw.get("storage", os.environ.get("ATTNMEL_RESULTS", "results")), "storage")
    retries = _integer(raw.get("retries", 2), "retries", minimum=0)
    max_concurrent = raw.get("max_concurrent")
    if max_concurrent is not None:
        max_concurrent = _integer(max_concurrent, "max_concurrent", minimum=1)
    spec = SweepSpec(
        name=name,
        dataset=dataset,
        train=train,
        grid=grid,
        search=search,
        scheduler=scheduler,
        resources=resources,
        storage=storage if is_uri(storage) else _local_path(storage),
        retries=retries,
        max_concurrent=max_concurrent,
        smoke=_mapping(raw.get("smoke"), "smoke"),
    )
    if search is not None:
        clash = sorted(k for k in search.space if (k in ("lambda1", "lambda2") and getattr(grid, k)) or k in grid.params)
        if clash:
            raise UserError(f"spec key 'search.space.{clash[0]}' is also in grid; list it in one place only")
    _check_trials(spec)
    if not smoke and spec.smoke:
        try:  # a broken smoke block should fail now, not on the day someone passes --smoke
            spec_from_dict(original, smoke=True)
        except UserError as exc:
            raise UserError(f"smoke block: {exc}") from None
    return spec


def read_spec_file(path: str | Path) -> dict[str, Any]:
    """The plain data of a spec file (YAML, ``safe_load``)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"sweep spec not found: {path}")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise UserError(f"sweep spec {path} is not valid YAML: {str(exc).splitlines()[0]}") from None


def load_spec(path: str | Path, *, smoke: bool = False, overrides: list[str] | tuple[str, ...] = ()) -> SweepSpec:
    """Read and validate a spec file (see :func:`spec_from_dict`)."""
    return spec_from_dict(read_spec_file(path), smoke=smoke, overrides=overrides)


def spec_to_dict(spec: SweepSpec) -> dict[str, Any]:
    """Plain JSON/YAML data that :func:`spec_from_dict` reads back to an equal spec."""

    def plain(value: Any) -> Any:
        if isinstance(value, tuple):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    grid = {"variants": plain(spec.grid.variants), "seeds": plain(spec.grid.seeds)}
    for key in ("lambda1", "lambda2"):
        if getattr(spec.grid, key):
            grid[key] = plain(getattr(spec.grid, key))
    grid.update({k: plain(v) for k, v in spec.grid.params.items()})
    train = copy.deepcopy(spec.train)
    for owned in ("dataset", "root", "roi_dir", "roi"):
        train["data"].pop(owned, None)
    train["model"].pop("variant", None)
    train["runtime"].pop("seed", None)
    out: dict[str, Any] = {
        "name": spec.name,
        "dataset": {k: v for k, v in dataclasses.asdict(spec.dataset).items() if v is not None},
        "train": train,
        "grid": grid,
        "resources": dataclasses.asdict(spec.resources),
        "storage": spec.storage,
        "retries": spec.retries,
    }
    if spec.search is not None:
        out["search"] = {
            "algorithm": spec.search.algorithm,
            "num_samples": spec.search.num_samples,
            "seed": spec.search.seed,
            "space": {k: {d.kind: plain(d.values)} for k, d in spec.search.space.items()},
        }
    if spec.scheduler is not None:
        out["scheduler"] = dataclasses.asdict(spec.scheduler)
    if spec.max_concurrent is not None:
        out["max_concurrent"] = spec.max_concurrent
    if spec.smoke:
        out["smoke"] = copy.deepcopy(spec.smoke)
    return out


# --------------------------------------------------------------------------- trials


def trial_points(spec: SweepSpec) -> list[dict[str, Any]]:
    """The grid as an explicit list of trial points (seed-major, so seed 0 completes first).

    A point maps ``"variant"`` (``attnmel+lesion``) and dotted training keys to values. λ1/λ2
    are crossed only into variants with a ROI: an unregularised variant runs once per seed and
    setting, since λ has no effect on it.
    """
    extra_keys = list(spec.grid.params)
    extra_values = [spec.grid.params[k] for k in extra_keys]
    points = []
    for seed in spec.grid.seeds:
        for token in spec.grid.variants:
            regularised = split_variant(token)[1] != "none"
            lambda1 = spec.grid.lambda1 if regularised and spec.grid.lambda1 else (None,)
            lambda2 = spec.grid.lambda2 if regularised and spec.grid.lambda2 else (None,)
            for combo in itertools.product(*extra_values):
                for l1, l2 in itertools.product(lambda1, lambda2):
                    point: dict[str, Any] = {"variant": token, "runtime.seed": seed}
                    point.update(zip(extra_keys, combo))
                    if l1 is not None:
                        point["loss.lambda1"] = l1
                    if l2 is not None:
                        point["loss.lambda2"] = l2
                    points.append(point)
    return points


def trial_config(params: dict[str, Any]) -> TrainConfig:
    """A trial's full training config from its Tune params (``params.json``):
    ``{"train": <shared config>, "point": {"variant": ..., "<section.key>": value, ...}}``."""
    raw = copy.deepcopy(params["train"])
    for key, value in params.get("point", {}).items():
        if key == "variant":
            variant, roi = split_variant(value)
            set_nested(raw, ["model", "variant"], variant)
            set_nested(raw, ["data", "roi"], roi)
        elif key in ("lambda1", "lambda2"):
            set_nested(raw, ["loss", key], value)
        else:
            set_nested(raw, key.split("."), value)
    return config_from_dict(raw)


def _check_trials(spec: SweepSpec) -> None:
    """Build every trial's TrainConfig once, so a bad grid value fails here, naming the key."""
    if spec.search is None:
        points = trial_points(spec)
    else:
        # each grid value and each end of each searched range must make a valid config
        points = trial_points(dataclasses.replace(spec, grid=dataclasses.replace(spec.grid, lambda1=(), lambda2=())))
        probes = []
        for key, dist in spec.search.space.items():
            for value in dist.values:
                probes.append({**points[0], key: value})
        points = points + probes
    for point in points:
        try:
            trial_config({"train": spec.train, "point": point})
        except UserError as exc:
            where = ", ".join(f"{k}={v}" for k, v in point.items())
            raise UserError(f"spec grid/search point ({where}): {exc}") from None


# --------------------------------------------------------------------------- storage


def sweep_path(spec: SweepSpec) -> str:
    """``<storage>/<name>``: the sweep's Tune experiment directory (a path or a URI)."""
    return f"{spec.storage.rstrip('/')}/{spec.name}" if is_uri(spec.storage) else str(Path(spec.storage) / spec.name)


def dump_yaml(spec: SweepSpec) -> str:
    """The resolved spec as YAML (what ``sweep run --dry-run`` prints)."""
    return yaml.safe_dump(spec_to_dict(spec), sort_keys=False)
