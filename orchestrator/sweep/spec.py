"""Sweep specs: ``experiments/*.yaml`` → a typed, validated :class:`SweepSpec`.

A spec names a dataset, the training settings shared by every trial (a :class:`TrainConfig`),
the grid, an optional Optuna search and ASHA scheduler, resources, storage and retries, plus a
``smoke`` block that shrinks it for CPU runs. Its sections are :class:`Checked` dataclasses,
checked like the training config, on the driver before Ray starts. Search and grid keys are
normalised once, here, to dotted training keys (``lambda1`` → ``loss.lambda1``); the grid
expands to trial points here (:meth:`GridSpec.points`), and :func:`orchestrator.layout.params.trial_config`
turns each point into its trial's config. Each value's constraint lives on its training config
field; the spec only says where a bad value came from. No Ray import here.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import inspect
import itertools
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from attnmel.config import CSV_KEYS, DATASETS, ExternalSet, TrainConfig, config_from_dict, config_to_dict
from attnmel.errors import UserError
from attnmel.model_names import split_token
from attnmel.typed_config import Checked, as_mapping, check_keys, coerce, parse_override, read_yaml, set_nested, setting
from orchestrator.layout.params import trial_config
from orchestrator.layout.root import results_root
from orchestrator.sweep.storage import is_uri

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
    "sweep_path",
    "dump_yaml",
]

# Selection is always by validation AUC, never test (DESIGN.md, "Rules of thumb").
# Search and early stopping score a trial by its best validation AUC so far: the same number
# the best-epoch rule and the tables use (the last epoch's AUC would disagree with them).
METRIC, MODE = "best_val_auc", "max"
_METRIC_NAMES = (METRIC, "val_auc")  # both mean validation AUC at the best epoch here

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

# Training keys that the spec sets through its own sections; naming them under ``train`` (or as
# a grid key) is an error that points to the right place, and ``spec_to_dict`` leaves them out.
_OWNED_KEYS = {
    "data.dataset": "dataset.name",
    "data.root": "dataset.root",
    "data.roi_dir": "dataset.roi_dir",
    **{f"data.{key}": f"dataset.{key}" for key in ("masks", *CSV_KEYS)},
    "data.external": "external",
    "data.roi": "grid.variants (e.g. attnmel+lesion)",
    "model.variant": "grid.variants",
    "runtime.seed": "grid.seeds",
}
_DISTRIBUTIONS = ("uniform", "loguniform", "choice", "randint")
# The spec's short names for the regulariser weights, and the training keys they stand for.
LAMBDA_KEYS = {"lambda1": "loss.lambda1", "lambda2": "loss.lambda2"}
_SHORT_NAMES = {key: name for name, key in LAMBDA_KEYS.items()}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_SPEC = "spec"


class _Section(Checked):
    """A spec section: messages say "spec key '…'"."""

    KIND = _SPEC


@dataclass(frozen=True)
class DatasetSpec(_Section):
    """Which dataset and where it lives (an absolute path once loaded); ``masks`` and, for a
    folder with a CSV, its keys (``attnmel.config.CSV_KEYS``) go to ``train.data`` as they are."""

    SECTION = "dataset"

    name: str = setting(choices=DATASETS)
    root: str = setting()
    roi_dir: str | None = None
    masks: str | None = None  # relative to root, like every key below
    images: str | None = None
    labels: str | None = None
    id_column: str | None = None
    label_column: str | None = None
    positive: str | None = None
    group_column: str | None = None
    split_column: str | None = None
    # demo only: write a synthetic dataset there when ``root`` is absent (write_synthetic's keywords)
    synthetic: dict[str, Any] | None = None


@dataclass(frozen=True)
class Distribution:
    """One searched dimension: ``kind`` in uniform | loguniform | choice | randint."""

    kind: str
    values: tuple[Any, ...]


@dataclass(frozen=True)
class SearchSpec(_Section):
    """Optuna (TPE) search maximising validation AUC over ``space`` (dotted training keys)."""

    SECTION = "search"

    algorithm: str = setting("optuna", choices=("optuna",))
    num_samples: int = setting(16, min=1)
    seed: int | None = None
    space: dict[str, Distribution] = field(default_factory=dict)


@dataclass(frozen=True)
class SchedulerSpec(_Section):
    """ASHA early stopping on validation AUC, one rung step per epoch."""

    SECTION = "scheduler"

    kind: str = setting("asha", choices=("asha",))
    grace_period: int = setting(1, min=1)
    reduction_factor: float = setting(3.0, above=1)


@dataclass(frozen=True)
class ResourceSpec(_Section):
    """Per-trial resources; fractional GPUs let trials share a card."""

    SECTION = "resources"

    cpus: float = setting(1.0, above=0)
    gpus: float = setting(0.0, min=0)

    def check(self) -> None:
        """Ray shares a GPU between trials only as fractions of one card."""
        if self.gpus > 1 and self.gpus != int(self.gpus):
            raise UserError(f"spec key '{self.key('gpus')}' must be a fraction in [0, 1] or a whole number, got {self.gpus}")


@dataclass(frozen=True)
class GridSpec(_Section):
    """The crossed dimensions. λ lists apply only to variants with a ROI."""

    SECTION = "grid"

    variants: tuple[str, ...]
    seeds: tuple[int, ...] = (0,)
    lambda1: tuple[float, ...] = ()
    lambda2: tuple[float, ...] = ()
    params: dict[str, tuple[Any, ...]] = field(default_factory=dict)  # dotted training key → values

    def dimensions(self) -> dict[str, tuple[Any, ...]]:
        """Each crossed dimension as spec key → values (the point key is :func:`point_key`)."""
        dims: dict[str, tuple[Any, ...]] = {"seeds": self.seeds, "lambda1": self.lambda1, "lambda2": self.lambda2}
        return {**{k: v for k, v in dims.items() if v}, **self.params}

    def points(self) -> list[dict[str, Any]]:
        """The grid as an explicit list of trial points (seed-major, so seed 0 completes first).

        A point maps ``"variant"`` (``attnmel+lesion``) and dotted training keys to values. λ1/λ2
        are crossed only into variants with a ROI: an unregularised variant runs once per seed and
        setting, since λ has no effect on it.
        """
        extra_keys = list(self.params)
        points = []
        for seed in self.seeds:
            for token in self.variants:
                regularised = split_token(token)[1] != "none"
                lambdas = {key: values for key, values in (("loss.lambda1", self.lambda1), ("loss.lambda2", self.lambda2))
                           if regularised and values}  # fmt: skip
                for combo in itertools.product(*self.params.values()):
                    for weights in itertools.product(*lambdas.values()):
                        points.append({"variant": token, "runtime.seed": seed, **dict(zip(extra_keys, combo)),
                                       **dict(zip(lambdas, weights))})  # fmt: skip
        return points


def point_key(grid_key: str) -> str:
    """The training key a grid or search key sets: ``seeds`` → ``runtime.seed``, ``lambda1`` →
    ``loss.lambda1``; dotted keys are training keys already."""
    return "runtime.seed" if grid_key == "seeds" else LAMBDA_KEYS.get(grid_key, grid_key)


@dataclass(frozen=True)
class SweepSpec(_Section):
    """A validated sweep. ``train`` is the full resolved training config shared by all trials
    (dataset, root and ROI folder from ``dataset``; variant, ROI and seed come from each point)."""

    name: str
    dataset: DatasetSpec
    train: TrainConfig
    grid: GridSpec
    search: SearchSpec | None = None
    scheduler: SchedulerSpec | None = None
    resources: ResourceSpec = field(default_factory=ResourceSpec)
    storage: str = "results"
    retries: int = setting(2, min=0)
    max_concurrent: int | None = setting(None, min=1)
    # other datasets' splits each trial's best model scores at the end: {name, root, split, …}
    external: tuple[ExternalSet, ...] | None = None
    smoke: dict[str, Any] = field(default_factory=dict)

    def check(self) -> None:
        """The name becomes a folder name."""
        if not _NAME.fullmatch(self.name):
            raise UserError(f"spec key 'name' must use letters, digits, '.', '_' or '-', got {self.name!r}")

    @functools.cached_property
    def points(self) -> list[dict[str, Any]]:
        """The grid's trial points (with a search: the grid dimensions Optuna chooses among)."""
        return self.grid.points()

    @property
    def n_trials(self) -> int:
        """How many trials the sweep runs."""
        return self.search.num_samples if self.search is not None else len(self.points)


# --------------------------------------------------------------------------- paths and names


def _local_path(text: str) -> str:
    return str(Path(text).expanduser().resolve())


# --------------------------------------------------------------------------- sections


def _synthetic(raw: dict[str, Any]) -> dict[str, Any]:
    """``dataset.synthetic``: the keyword-only parameters of ``write_synthetic`` (its signature
    is the one list of them), each value checked against the parameter's annotation."""
    from attnmel.data.synth import write_synthetic

    hints = typing.get_type_hints(write_synthetic)
    params = {
        p.name: hints[p.name]
        for p in inspect.signature(write_synthetic).parameters.values()
        if p.kind is p.KEYWORD_ONLY and p.name != "overwrite"  # never overwrite files in a sweep
    }
    check_keys(raw, params, "dataset.synthetic", _SPEC)
    return {k: coerce(_SPEC, f"dataset.synthetic.{k}", v, params[k]) for k, v in raw.items()}


def _dataset(raw: Any) -> DatasetSpec:
    spec = DatasetSpec.from_mapping(raw)
    given = [k for k in CSV_KEYS if getattr(spec, k) is not None]
    if given and spec.name != "csv":
        raise UserError(f"spec key 'dataset.{given[0]}' is read by dataset csv only (dataset.name is {spec.name})")
    return dataclasses.replace(
        spec,
        root=_local_path(spec.root),
        roi_dir=None if spec.roi_dir is None else _local_path(spec.roi_dir),
        synthetic=None if spec.synthetic is None else _synthetic(spec.synthetic),
    )


def _external(raw: Any) -> tuple[ExternalSet, ...] | None:
    """``external``: a list of {name, root, split, …}; ``name`` is the training key ``dataset``."""
    if raw is None:
        return None
    items = raw if isinstance(raw, list) else [raw]
    if not items:
        raise UserError("spec key 'external' must not be empty (leave it out instead)")
    out = []
    for i, item in enumerate(items, start=1):
        entry = dict(as_mapping(item, f"external[{i}]", _SPEC))
        if "dataset" in entry:
            raise UserError(f"spec key 'external[{i}].dataset': write 'name', as under 'dataset'")
        if "name" in entry:
            entry["dataset"] = entry.pop("name")
        if isinstance(entry.get("root"), str):
            entry["root"] = _local_path(entry["root"])
        try:
            out.append(ExternalSet.from_mapping(entry, where="external"))
        except UserError as exc:
            raise UserError(f"spec key 'external[{i}]': {str(exc).replace('external.dataset', 'external.name')}") from None
    return tuple(out)


def _train(raw: Any, dataset: DatasetSpec, resources: ResourceSpec, external: tuple[ExternalSet, ...] | None = None
           ) -> TrainConfig:  # fmt: skip
    """The shared training config, fully resolved (paper defaults filled in)."""
    raw = copy.deepcopy(as_mapping(raw, "train", _SPEC))
    for section, keys in raw.items():
        for key in as_mapping(keys, f"train.{section}", _SPEC):
            owner = _OWNED_KEYS.get(f"{section}.{key}")
            if owner:
                raise UserError(f"spec key 'train.{section}.{key}' is set by '{owner}', not under train")
    raw = {section: dict(keys or {}) for section, keys in raw.items()}  # `runtime:` alone reads as None
    set_nested(raw, ["data", "dataset"], dataset.name)
    set_nested(raw, ["data", "root"], dataset.root)
    set_nested(raw, ["data", "roi_dir"], dataset.roi_dir)
    for key in ("masks", *CSV_KEYS):
        set_nested(raw, ["data", key], getattr(dataset, key))
    if external is not None:
        set_nested(raw, ["data", "external"], [dataclasses.asdict(e) for e in external])
    runtime = raw.setdefault("runtime", {})
    # torch threads per trial = CPUs reserved for it, so co-located trials do not oversubscribe
    runtime.setdefault("num_threads", max(1, int(resources.cpus)))
    if resources.gpus == 0:
        runtime.setdefault("device", "cpu")  # never touch a GPU the trial did not reserve
    cache_dir = raw.get("data", {}).get("cache_dir")
    if isinstance(cache_dir, str):
        raw["data"]["cache_dir"] = _local_path(cache_dir)  # trials run in their own working dirs
    try:
        return config_from_dict(raw)
    except UserError as exc:
        raise UserError(f"spec section 'train': {exc}") from None


def _grid(raw: Any) -> GridSpec:
    raw = as_mapping(raw, "grid", _SPEC)
    plain = {k: v for k, v in raw.items() if "." not in k}
    check_keys(plain, ("variants", "seeds", *LAMBDA_KEYS), "grid", _SPEC)
    params = {}
    for key, value in raw.items():
        if "." in key:
            if key in _OWNED_KEYS or key in _SHORT_NAMES:
                raise UserError(f"spec key 'grid.{key}': use {_OWNED_KEYS.get(key) or 'grid.' + _SHORT_NAMES[key]}")
            params[key] = coerce(_SPEC, f"grid.{key}", value, tuple[Any, ...])
    grid = GridSpec.from_mapping(plain, params=params)
    from attnmel.model_names import list_models, paper_name

    for token in grid.variants:
        variant, roi = split_token(token)
        if variant not in list_models():
            raise UserError(f"spec key 'grid.variants': unknown variant {variant!r} (known: {', '.join(list_models())})")
        try:
            paper_name(variant, roi)
        except UserError as exc:
            raise UserError(f"spec key 'grid.variants': {token!r}: {exc}") from None
    if len(set(grid.variants)) != len(grid.variants):
        raise UserError("spec key 'grid.variants' lists a variant twice")
    return grid


def _selection_only(raw: dict[str, Any], where: str, use: str) -> dict[str, Any]:
    """Drop ``metric``/``mode``, accepted for readability, after checking they name validation AUC."""
    rest = {k: v for k, v in raw.items() if k not in ("metric", "mode")}
    if raw.get("metric", METRIC) not in _METRIC_NAMES or raw.get("mode", MODE) != MODE:
        raise UserError(f"spec keys '{where}.metric/mode' must be {METRIC}/{MODE}: {use} uses validation AUC only")
    return rest


def _distribution(name: str, raw: Any) -> Distribution:
    key = f"search.space.{name}"
    if name not in LAMBDA_KEYS and "." not in name:
        raise UserError(f"spec key '{key}': search lambda1, lambda2 or a dotted training key (e.g. optim.lr)")
    raw = as_mapping(raw, key, _SPEC)
    if len(raw) != 1 or next(iter(raw)) not in _DISTRIBUTIONS:
        raise UserError(f"spec key '{key}' must be one of {{{'|'.join(_DISTRIBUTIONS)}: [...]}}, got {raw!r}")
    kind, values = next(iter(raw.items()))
    key = f"{key}.{kind}"
    if kind == "choice":
        values = coerce(_SPEC, key, values, tuple[Any, ...])
        if point_key(name) in _SHORT_NAMES:  # λ are numbers; read "1e-3" as one
            values = coerce(_SPEC, key, values, tuple[float, ...])
    else:
        numbers = coerce(_SPEC, key, values, tuple[float, ...])
        if len(numbers) != 2:
            raise UserError(f"spec key '{key}' must be [low, high], got {values!r}")
        values = tuple(map(int, numbers)) if kind == "randint" else numbers
        low, high = values
        if not low < high:
            raise UserError(f"spec key '{key}' needs low < high, got [{low}, {high}]")
        if kind == "loguniform" and low <= 0:
            raise UserError(f"spec key '{key}' needs low > 0, got {low}")
    return Distribution(kind=kind, values=values)


def _search(raw: Any) -> SearchSpec | None:
    if raw is None:
        return None
    raw = _selection_only(as_mapping(raw, "search", _SPEC), "search", "selection")
    space = as_mapping(raw.get("space"), "search.space", _SPEC)
    if not space:
        raise UserError("spec key 'search.space' must name at least one distribution")
    return SearchSpec.from_mapping(raw, space={point_key(name): _distribution(name, dist) for name, dist in space.items()})


def _scheduler(raw: Any, epochs: int) -> SchedulerSpec | None:
    if raw is None:
        return None
    raw = _selection_only(as_mapping(raw, "scheduler", _SPEC), "scheduler", "stopping")
    scheduler = SchedulerSpec.from_mapping(raw)
    if scheduler.grace_period > epochs:
        raise UserError(
            f"spec key 'scheduler.grace_period' ({scheduler.grace_period}) exceeds the epochs per trial ({epochs})"
        )
    return scheduler


def _check_points(spec: SweepSpec) -> None:
    """Build trial configs from every value the sweep can give a trial, so a bad one fails here.

    Each grid value and each end of each searched range alone first, so that the message names
    the spec key it came from (the constraint itself is the training config field's); then every
    whole grid point, for constraints between fields.
    """
    first = spec.points[0]

    def check(where: str, point: dict[str, Any]) -> None:
        try:
            trial_config(spec.train, point)
        except UserError as exc:
            raise UserError(f"spec {where}: {exc}") from None

    for name, values in spec.grid.dimensions().items():
        for value in values:
            check(f"key 'grid.{name}'", {**first, point_key(name): value})
    for key, dist in (spec.search.space.items() if spec.search else ()):
        for value in dist.values:
            check(f"key 'search.space.{_SHORT_NAMES.get(key, key)}'", {**first, key: value})
    for point in spec.points:
        check(f"grid point ({', '.join(f'{k}={v}' for k, v in point.items())})", point)


# --------------------------------------------------------------------------- loading


def _apply_smoke(raw: dict[str, Any]) -> dict[str, Any]:
    smoke = as_mapping(raw.get("smoke"), "smoke", _SPEC)
    check_keys(smoke, SMOKE_KEYS, "smoke", _SPEC)
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
    top = [f.name for f in dataclasses.fields(SweepSpec)]
    check_keys(raw, top, "", _SPEC)
    if smoke:
        if not raw.get("smoke"):
            raise UserError("--smoke: this spec has no 'smoke' block")
        raw = _apply_smoke(raw)
    raw = copy.deepcopy(raw)
    for item in overrides:
        parts, value = parse_override(item)
        if parts[0] not in top:
            raise UserError(f"--set {item}: unknown spec key '{parts[0]}' (known: {', '.join(top)})")
        if parts[0] == "grid" and len(parts) > 2:  # grid keys are dotted training keys themselves
            parts = ["grid", ".".join(parts[1:])]
        set_nested(raw, parts, value)
    return raw


def spec_from_dict(
    raw: dict[str, Any], *, smoke: bool = False, overrides: list[str] | tuple[str, ...] = ()
) -> SweepSpec:
    """Validate plain spec data (as read from YAML), after :func:`merged_raw`."""
    original, raw = raw, merged_raw(raw, smoke=smoke, overrides=overrides)
    check_keys(raw, [f.name for f in dataclasses.fields(SweepSpec)], "", _SPEC)
    dataset = _dataset(raw.get("dataset"))
    resources = ResourceSpec.from_mapping(raw.get("resources"))
    external = _external(raw.get("external"))
    train = _train(raw.get("train"), dataset, resources, external)
    # the default storage is the results root `attnmel query` reads by default
    spec = SweepSpec.from_mapping(
        {"storage": str(results_root()), **raw},
        dataset=dataset,
        train=train,
        grid=_grid(raw.get("grid")),
        search=_search(raw.get("search")),
        scheduler=_scheduler(raw.get("scheduler"), train.optim.epochs),
        resources=resources,
        external=external,
    )
    if not is_uri(spec.storage):
        spec = dataclasses.replace(spec, storage=_local_path(spec.storage))
    if spec.search is not None:
        gridded = {point_key(name) for name in spec.grid.dimensions()}
        clash = sorted(_SHORT_NAMES.get(k, k) for k in spec.search.space if k in gridded)
        if clash:
            raise UserError(f"spec key 'search.space.{clash[0]}' is also in grid; list it in one place only")
    _check_points(spec)
    if not smoke and spec.smoke:
        try:  # a broken smoke block should fail now, not on the day someone passes --smoke
            spec_from_dict(original, smoke=True)
        except UserError as exc:
            raise UserError(f"smoke block: {exc}") from None
    return spec


def read_spec_file(path: str | Path) -> dict[str, Any]:
    """The plain data of a spec file (YAML, ``safe_load``)."""
    return read_yaml(path, "sweep spec")


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

    grid = {"variants": plain(spec.grid.variants), **{k: plain(v) for k, v in spec.grid.dimensions().items()}}
    train = config_to_dict(spec.train)
    for owned in _OWNED_KEYS:
        section, key = owned.split(".")
        train[section].pop(key, None)
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
    if spec.external is not None:
        out["external"] = [
            {"name": e.dataset, **{k: v for k, v in dataclasses.asdict(e).items() if k != "dataset" and v is not None}}
            for e in spec.external
        ]
    if spec.smoke:
        out["smoke"] = copy.deepcopy(spec.smoke)
    return out


# --------------------------------------------------------------------------- storage


def sweep_path(spec: SweepSpec) -> str:
    """``<storage>/<name>``: the sweep's Tune experiment directory (a path or a URI)."""
    return f"{spec.storage.rstrip('/')}/{spec.name}" if is_uri(spec.storage) else str(Path(spec.storage) / spec.name)


def dump_yaml(spec: SweepSpec) -> str:
    """The resolved spec as YAML (what ``sweep run --dry-run`` prints)."""
    return yaml.safe_dump(spec_to_dict(spec), sort_keys=False)
