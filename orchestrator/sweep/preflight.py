"""Everything a user can get wrong, checked on the driver before any folder is created.

Data layout and every image (decoded once, which also fills the preprocessing cache the
trials read), ROI files of the regularised variants, model weights, the storage path and its
free space (against what the trials will hold, from the models' checkpoint sizes), the cluster
address (with the token-authentication hint Ray's own message lacks) and resources. One warning
line (never a failure) when ``resources.gpus`` packs more trials on a card than their memory
(measured or estimated, :mod:`attnmel.capacity`) fits in 90 % of it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attnmel import capacity
from attnmel.errors import UserError, format_bytes
from attnmel.model_names import split_token
from orchestrator.sweep import stop
from orchestrator.layout.params import trial_config
from orchestrator.sweep.spec import SweepSpec
from orchestrator.sweep.storage import check_writable, free_space, storage_need

if TYPE_CHECKING:
    import ray

__all__ = ["check_inputs", "check_address", "check_resources", "check_storage_space", "trials_at_once", "join_hint",
           "wait_for_nodes", "card_memory", "trial_shapes", "gpu_packing_line", "cpu_with_gpus"]


def check_inputs(spec: SweepSpec, *, local: bool) -> None:
    """Data layout, images, ROI files, weights and storage; writes the demo's synthetic dataset
    when the spec asks for one. ``local``: the trials run on this machine (so the images are
    decoded into this machine's cache and the weights must be here)."""
    from attnmel.data import load_splits, roi_available, write_synthetic
    from attnmel.data.bundle import external_samples
    from attnmel.data.layout import file_problems
    from attnmel.data.roi import missing_roi_source

    check_writable(spec.storage)
    root = Path(spec.dataset.root)
    if spec.dataset.synthetic is not None and not root.exists():
        write_synthetic(spec.dataset.name, root, **spec.dataset.synthetic)
    if not root.is_dir():
        raise UserError(f"dataset root {root} does not exist (spec key 'dataset.root'; set it with --set dataset.root=DIR)")
    data = spec.train.data
    # One scan of the layout (raises on its first problem), then every file's header; the same
    # for each external test set (which must share no image with the training data).
    splits = load_splits(data)
    problems = file_problems([s for samples in splits.values() for s in samples], decode=False)
    if problems:
        more = f" (and {len(problems) - 1} more; see `attnmel data check`)" if len(problems) > 1 else ""
        raise UserError(f"dataset {root}: {problems[0]}{more}")
    largest_external = 0
    for ext in data.external or ():
        samples = external_samples(ext, splits, data.dataset)
        largest_external = max(largest_external, len(samples))
        problems = file_problems(samples, decode=False)
        if problems:
            more = f" (and {len(problems) - 1} more; see `attnmel data check`)" if len(problems) > 1 else ""
            raise UserError(f"external set {ext.name!r}: {problems[0]}{more}")
    train = splits["train"]
    roi_dir = Path(spec.dataset.roi_dir) if spec.dataset.roi_dir else None
    for roi in sorted({split_token(v)[1] for v in spec.grid.variants} - {"none"}):
        missing = [s for s in train if not roi_available(s, roi, roi_dir)]
        if missing:
            raise UserError(
                f"ROI '{roi}' is missing for {len(missing)} of {len(train)} training images "
                f"(first: {missing_roi_source(missing[0], roi, roi_dir)}); drop the '+{roi}' variants or add the files"
            )
    if local:
        from attnmel.data import load_bundle

        # Decodes every image the trials will read, once, into the cache they share: a
        # truncated JPEG is one line here instead of a traceback inside a trial.
        load_bundle(spec.train.data)
        model = spec.train.model
        if model.weights != "none":  # a cluster's nodes have their own weights cache
            from attnmel.models import check_weights

            check_weights(model.backbone, model.weights)
    if spec.resources.gpus > 0:
        shapes = trial_shapes(spec, splits, largest_external)
        line = gpu_packing_line(spec, shapes, card_memory())
        if line:
            print(f"attnmel: warning: {line}", flush=True)


def join_hint() -> str:
    """What to set when joining fails and token authentication may be the reason."""
    if os.environ.get("RAY_AUTH_MODE", "").lower() == "token":
        return "check RAY_AUTH_TOKEN / RAY_AUTH_TOKEN_PATH / ~/.ray/auth_token hold the cluster's token"
    return ("if the cluster uses token authentication (Ray's default on clusters started with it), set "
            "RAY_AUTH_MODE=token and RAY_AUTH_TOKEN (or RAY_AUTH_TOKEN_PATH)")  # fmt: skip


def check_address(address: str) -> None:
    """A cluster address that can work: not a dashboard URL, well formed, reachable."""
    if address in ("auto", "local"):
        return
    if address.startswith(("http://", "https://")):
        raise UserError(
            f"--address {address} is a dashboard (Jobs API) address: use it with `attnmel sweep submit`; "
            "`sweep run` joins a cluster at HOST:6379 or ray://HOST:10001"
        )
    target = address.split("://", 1)[-1]
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"--address {address!r} must look like HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise UserError(f"cannot reach a Ray cluster at {address}: {exc.strerror or exc}") from None


def check_resources(spec: SweepSpec, cluster: "ray") -> None:
    """A trial that asks for more than this Ray has would wait forever: refuse now."""
    total = cluster.cluster_resources()
    need = spec.resources
    if need.cpus > total.get("CPU", 0):
        raise UserError(
            f"each trial needs {need.cpus:g} CPUs (spec key 'resources.cpus') but this Ray has {total.get('CPU', 0):g}"
        )
    if need.gpus > total.get("GPU", 0):
        raise UserError(
            f"each trial needs {need.gpus:g} GPU (spec key 'resources.gpus') but this Ray has {total.get('GPU', 0):g}; "
            "use --smoke, --set resources.gpus=0, or --address a GPU cluster"
        )


def cpu_with_gpus(spec: SweepSpec) -> str | None:
    """The line a sweep prints once when its trials hold GPUs but compute on the CPU on purpose
    (``train.runtime.device: cpu`` beside ``resources.gpus > 0``), else None."""
    if spec.resources.gpus > 0 and spec.train.runtime.device == "cpu":
        return (f"each trial holds {spec.resources.gpus:g} GPU (resources.gpus) but computes on "
                "the CPU (train.runtime.device: cpu)")
    return None


def wait_for_nodes(cluster: "ray", nodes: int, *, timeout: float, poll: float = 1.0) -> None:
    """Wait until the connected cluster has ``nodes`` live nodes (a batch job's workers start
    beside its driver and join when ready); an error after ``timeout`` seconds. A stop request
    (:mod:`orchestrator.sweep.stop`) ends the wait: the driver then stops before its sweep."""
    deadline = time.monotonic() + timeout
    while (alive := sum(1 for node in cluster.nodes() if node["Alive"])) < nodes and not stop.requested():
        if time.monotonic() >= deadline:
            raise UserError(f"only {alive} of {nodes} Ray nodes joined the cluster within {timeout:g} s "
                            "(--wait-timeout); the nodes' `ray start` output says why")  # fmt: skip
        time.sleep(poll)
    if alive >= nodes:
        total = cluster.cluster_resources()
        held = f"{total.get('CPU', 0):g} CPUs, {total.get('GPU', 0):g} GPUs"
        print(f"{alive} of {nodes} Ray nodes joined ({held})", flush=True)


def trials_at_once(spec: SweepSpec, cluster: "ray | None", n_trials: int) -> int:
    """How many of ``n_trials`` can run at the same time: the spec's ``max_concurrent`` and,
    given a connected Ray, how many trials its CPUs and GPUs fit."""
    limits = [n_trials] + ([spec.max_concurrent] if spec.max_concurrent else [])
    if cluster is not None:
        total = cluster.cluster_resources()
        limits.append(int(total.get("CPU", 0) // spec.resources.cpus))
        if spec.resources.gpus > 0:
            limits.append(int(total.get("GPU", 0) // spec.resources.gpus))
    return max(1, min(limits))


def check_storage_space(
    spec: SweepSpec, cluster: "ray | None" = None, *, points: list[dict[str, Any]] | None = None, force: bool = False
) -> None:
    """Refuse a sweep whose local storage has less free space than its trials will hold at
    most (``points``: those still to run, by default all); ``force`` skips the check, object
    stores are not checked. A search's trials are costed as its largest model."""
    free = free_space(spec.storage)
    if force or free is None:
        return
    if spec.search is None:
        configs = [trial_config(spec.train, p) for p in (spec.points if points is None else points)]
    else:
        from attnmel.checkpoint_sizes import checkpoint_sizes

        largest = max((trial_config(spec.train, p) for p in spec.points), key=lambda c: checkpoint_sizes(c).snapshot)
        configs = [largest] * spec.n_trials
    if not configs:
        return
    at_once = trials_at_once(spec, cluster, len(configs))
    need = storage_need(configs, at_once)
    if need > free:
        raise UserError(
            f"storage {spec.storage}: the sweep's {len(configs)} trial(s) ({at_once} at a time) need about "
            f"{format_bytes(need)} for their checkpoints but it has {format_bytes(free)} free; free space, "
            "use another storage (--storage), or --force to start anyway"
        )


def card_memory() -> tuple[int, str]:
    """(bytes, where the number comes from) of the card the trials share:
    ``$ATTNMEL_GPU_MEMORY_GIB``, else this machine's smallest GPU (torch when it has started
    CUDA, else nvidia-smi, so the driver holds no CUDA context on the trials' card), else the
    documented default."""
    env = os.environ.get(capacity.CARD_MEMORY_ENV)
    if env:
        try:
            gib = float(env)
        except ValueError:
            gib = 0.0
        if not gib > 0:
            raise UserError(f"${capacity.CARD_MEMORY_ENV}={env!r} must be a positive number of GiB")
        return int(gib * capacity.GIB), f"${capacity.CARD_MEMORY_ENV}"
    import torch

    if torch.cuda.is_initialized() and torch.cuda.device_count():
        cards = [torch.cuda.get_device_properties(i) for i in range(torch.cuda.device_count())]
        smallest = min(cards, key=lambda p: p.total_memory)
        return int(smallest.total_memory), f"{smallest.name} here"
    if shutil.which("nvidia-smi"):
        query = ["nvidia-smi", "--query-gpu=memory.total,name", "--format=csv,noheader,nounits"]
        try:
            done = subprocess.run(query, capture_output=True, text=True, timeout=10)
            cards = [line.split(",", 1) for line in done.stdout.splitlines() if line.strip()]
            mib, name = min(((float(m), n.strip()) for m, n in cards), default=(0.0, ""))
            if mib > 0:
                return int(mib * 2**20), f"{name} here, nvidia-smi"
        except (OSError, ValueError, subprocess.SubprocessError):
            pass
    default = int(capacity.DEFAULT_CARD_GIB * capacity.GIB)
    return default, f"no GPU seen here: the default; set ${capacity.CARD_MEMORY_ENV}"


def trial_shapes(spec: SweepSpec, splits: dict[str, list[Any]], external_images: int = 0
                 ) -> dict[capacity.TrialShape, Any]:
    """What each distinct trial of the sweep puts on its GPU, with the first trial config of
    that shape, from the scanned ``splits`` and the spec's ``data.max_train`` / ``max_eval``."""
    data = spec.train.data
    train = len(splits["train"])
    train = train if data.max_train is None else min(train, data.max_train)
    evaluation = [s if data.max_eval is None else s[: data.max_eval]
                  for s in (splits["val"], splits["test"])]
    masks = sum(len(s) for s in evaluation if s and all(x.lesion is not None for x in s))
    shapes: dict[capacity.TrialShape, Any] = {}
    for point in spec.points:
        cfg = trial_config(spec.train, point)
        shape = capacity.TrialShape(
            variant=cfg.model.variant, roi=cfg.data.roi, batch_size=cfg.optim.batch_size,
            train_images=train, eval_images=sum(len(s) for s in evaluation), eval_masks=masks,
            external_images=external_images, image_size=cfg.data.image_size,
            crop_size=cfg.data.crop_size, bf16=cfg.runtime.bf16 is not False,
        )
        shapes.setdefault(shape, cfg)
    return shapes


def _trial_memory(shape: capacity.TrialShape, cfg: Any, table: capacity.MeasuredTable | None
                  ) -> capacity.TrialMemory:
    measured = table.trial_memory(shape) if table is not None else None
    if measured is not None:
        return measured
    from attnmel.checkpoint_sizes import checkpoint_sizes

    return capacity.estimate_trial_memory(shape, checkpoint_sizes(cfg).model)


def gpu_packing_line(spec: SweepSpec, shapes: dict[capacity.TrialShape, Any],
                     card: tuple[int, str], table: Any = True) -> str | None:
    """One line when ``resources.gpus`` puts more trials on a card than the largest trial's
    memory fits in 90 % of ``card`` (bytes, source), naming the fraction that fits; None when
    it fits. ``shapes``: :func:`trial_shapes`; ``table``: a measured table, None for the
    estimate alone, True for :func:`attnmel.capacity.load_measured`'s."""
    per_card = capacity.trials_per_card(spec.resources.gpus)
    if per_card == 0 or not shapes:
        return None
    table = capacity.load_measured() if table is True else table
    memory = max((_trial_memory(s, cfg, table) for s, cfg in shapes.items()),
                 key=lambda m: m.total)
    card_bytes, card_source = card
    fit = capacity.trials_that_fit(memory.total, card_bytes)
    if per_card <= fit:
        return None
    gpus, each = f"resources.gpus {spec.resources.gpus:g}", memory.total / capacity.GIB
    card_text = f"90 % of the card's {card_bytes / capacity.GIB:.0f} GiB ({card_source})"
    if fit == 0:
        return (f"{gpus}: one trial needs ~{each:.1f} GiB ({memory.source}), more than "
                f"{card_text}; it may run out of GPU memory: lower optim.batch_size or use a "
                "larger card")
    return (f"{gpus} packs {per_card} trials on a card; their memory (~{each:.1f} GiB each, "
            f"{memory.source}) fits {fit} in {card_text}: use gpus: "
            f"{capacity.fraction_for(fit):g} or more")
