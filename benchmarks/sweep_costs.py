"""What a sweep costs besides training: checkpoint work per epoch, storage per finished trial,
and the orchestration overhead of Ray Tune, measured side by side in one run.

1. checkpoint  seconds per checkpoint step (save ``last.pt`` with SGD momentum, save
               ``best.pt``, hard-link ``last.prev.pt``, snapshot the run folder, hand it to
               Tune = ``tune.Checkpoint.from_directory`` plus Tune's own copy routine
               ``_pyarrow_fs_copy_files`` into local storage, and Tune deleting the checkpoint
               that falls out of the newest two) for AttnMel-CNN and VGG-16 at their real sizes;
               per epoch for ``runtime.checkpoint_every`` 1, 5, 10, against a 2 s GPU epoch and
               the CPU epoch of a tiny trial measured here.
2. storage     bytes per finished trial for each Table 2 variant (``best.pt`` at real size plus
               the small files of a finished tiny trial, scaled to ISIC 2017), projected for the
               λ sweep and Table 2, against the old design (the resumable state with momentum).
3. overhead    ``attnmel sweep run`` of 8 tiny trials (AttnMel-CNN-Lesion, 32 px, 5 epochs,
               1 CPU each, 2 at a time) on an embedded Ray: wall against the ideal (sum of epoch
               seconds / 2 slots) and time outside epochs per trial; then the same sweep again
               with every call of the trainable timed inside the Ray workers (a profile table).
4. --many N    ``attnmel sweep run`` of N one-epoch VGG-16-GAP trials: driver RSS sampled, and
               per-trial time outside epochs, first 20 trials against the last 20.
5. floor       what Ray Tune and PyTorch alone cost the same sweep: the same Tune settings and
               trials with a stand-in trainable that sleeps through each trial's measured epoch
               seconds (from part 3; 2 s epochs without it), once as it is and once after what
               every fresh worker must do first (import ``attnmel.train``, so torch, and build
               one SGD optimiser, which imports torch's compiler stack). None of a trial's work runs
               in them, so their overhead is the floor under part 3's.

    python benchmarks/sweep_costs.py                      # parts 1-3 and 5, ~12 min on 2 busy CPUs
    python benchmarks/sweep_costs.py --parts checkpoint   # part 1 only
    python benchmarks/sweep_costs.py --parts --many 120   # part 4 only
    python benchmarks/sweep_costs.py --parts overhead floor --no-profile   # part 3 against its floor
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import types
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from attnmel.models.registry import PAPER_TABLE2  # noqa: E402

GPU_EPOCH_S = 2.0  # an ISIC 2017 epoch on one GPU (issue #12)
ISIC2017_EVAL = {"val": 150, "test": 600}  # prediction rows; Table 3 rows are the test split
TINY_TRAIN = {
    "data": {"image_size": 40, "crop_size": 32, "passes": 1},
    "model": {"weights": "none"},
    "optim": {"epochs": 5, "batch_size": 8},
    "runtime": {"eval_batch_size": 16, "checkpoint_every": 5},
}
_TAG = re.compile(r"^\[(?P<trial>[^\]]+)\] .*?: (?P<what>started|finished|epoch (?P<epoch>\d+)/\d+|ERROR)")


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _mb(n: float) -> str:
    return f"{n / 1e6:,.1f} MB" if n < 1e9 else f"{n / 1e9:,.2f} GB"


def _table(header: list[str], rows: list[list[Any]]) -> str:
    cells = [header] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(r, widths)) for r in cells]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# --------------------------------------------------------------------------- payloads


def _payloads(variant: str) -> tuple[dict, dict]:
    """``last.pt`` and ``best.pt`` payloads exactly as ``fit`` builds them, at real size, with
    SGD momentum buffers filled (one step on zero gradients)."""
    import torch

    from attnmel.config import config_from_dict, config_to_dict
    from attnmel.models import build_model
    from attnmel.train import BestEpoch, numbers_key
    from attnmel.models.registry import split_token

    name, roi = split_token(variant)
    cfg = config_from_dict({"model": {"variant": name, "weights": "none"}, "data": {"roi": roi}})
    model = build_model(cfg.model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=1e-4)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=10, gamma=0.1)
    row = {"epoch": 5, "val_auc": 0.8, "val_ap": 0.5, "test_auc": 0.8, "test_ap": 0.5, "lr": 0.01}
    resume = {
        "kind": "resume", "model": model.state_dict(), "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(), "epoch": 5, "history": [dict(row, epoch=e) for e in range(1, 6)],
        "config": config_to_dict(cfg), "numbers_key": numbers_key(cfg),
    }  # fmt: skip
    stats = types.SimpleNamespace(mean=(0.5, 0.5, 0.5), std=(0.2, 0.2, 0.2))  # the bundle fields best.pt keeps
    best = BestEpoch()
    best.update(model, row, {})
    return resume, best.payload(cfg, stats)


def _serialized_bytes(payload: dict) -> int:
    import torch

    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.tell()


# --------------------------------------------------------------------------- part 1


def _bench_folders(variant: str, workdir: Path) -> tuple[Path, Path]:
    """A scratch run folder (with a small epochs.jsonl) and a Tune-style storage folder."""
    run_dir, store = workdir / variant / "run", workdir / variant / "storage"
    run_dir.mkdir(parents=True)
    store.mkdir(parents=True)
    (run_dir / "epochs.jsonl").write_text("{}\n" * 5)
    return run_dir, store


def _tune_copy(snap: Path, target: str) -> None:
    """What ``tune.report`` does with a checkpoint folder on local storage: Tune's own copy routine."""
    import pyarrow.fs
    from ray import tune
    from ray.train._internal.storage import _pyarrow_fs_copy_files

    local = pyarrow.fs.LocalFileSystem()
    checkpoint = tune.Checkpoint.from_directory(str(snap))
    local.create_dir(target)
    _pyarrow_fs_copy_files(checkpoint.path, target, source_filesystem=checkpoint.filesystem,
                           destination_filesystem=local)  # fmt: skip


def measure_checkpoint_steps(variant: str, workdir: Path, repeats: int) -> dict[str, float]:
    """Median seconds of each checkpoint step for ``variant`` at real size, in a scratch run
    folder and a local Tune-style storage folder under ``workdir``."""
    import pyarrow.fs
    from ray.train._internal.storage import _delete_fs_path

    from attnmel import checkpoint as ckpt
    from orchestrator.sweep.trainable import _snapshot

    resume, best = _payloads(variant)
    run_dir, store = _bench_folders(variant, workdir)
    local = pyarrow.fs.LocalFileSystem()
    times: dict[str, list[float]] = {}

    def timed(name: str, fn, *args, **kw):
        start = time.perf_counter()
        out = fn(*args, **kw)
        times.setdefault(name, []).append(time.perf_counter() - start)
        return out

    keep = 2  # tune.CheckpointConfig(num_to_keep=KEEP_CHECKPOINTS)
    for i in range(repeats + 2):  # the first two rounds fill the folders (no link, no deletion)
        timed("save best.pt", ckpt.save_checkpoint, best, run_dir / ckpt.BEST)
        if (run_dir / ckpt.LAST).exists():
            timed("link last.prev.pt", ckpt._link_or_copy, run_dir / ckpt.LAST, run_dir / ckpt.PREVIOUS)
        timed("save last.pt", ckpt.save_checkpoint, resume, run_dir / ckpt.LAST)
        snap = timed("snapshot (links)", _snapshot, run_dir)
        timed("Tune copy to storage", _tune_copy, snap, f"{store}/checkpoint_{i:06d}")
        timed("snapshot removal", shutil.rmtree, snap)
        if i >= keep:
            timed("Tune deletes old ckpt", _delete_fs_path, local, f"{store}/checkpoint_{i - keep:06d}")
    # the alternative to writing best.pt at once: keep the best weights in memory until the next checkpoint
    for _ in range(repeats):
        timed("copy best weights in RAM", lambda: {k: v.detach().clone() for k, v in best["model"].items()})
    out = {name: _median(values[-repeats:]) for name, values in times.items()}
    out["bytes last.pt"] = (run_dir / ckpt.LAST).stat().st_size
    out["bytes best.pt"] = (run_dir / ckpt.BEST).stat().st_size
    out["bytes per Tune ckpt"] = _dir_bytes(Path(f"{store}/checkpoint_{repeats + 1:06d}"))
    shutil.rmtree(workdir / variant)
    return out


def measure_background(variant: str, workdir: Path, repeats: int, every: int) -> dict[str, float]:
    """Seconds the training thread spends per checkpoint when ``fit`` writes it in the background
    (``runtime.background_checkpoint``) and the trainable's reporter thread hands it to Tune:
    the host copy of the state, the snapshot, and waiting for the previous write or copy, with
    ``every - 1`` idle epochs of ``GPU_EPOCH_S`` between checkpoints and one after each. The
    epochs are idle host time (``time.sleep``): on a GPU the host thread mostly waits for
    kernels. Best weights change every checkpoint (both files written each time)."""
    from concurrent.futures import ThreadPoolExecutor

    from attnmel import checkpoint as ckpt
    from attnmel.train import _write_checkpoint
    from orchestrator.sweep.trainable import _snapshot

    resume, best = _payloads(variant)
    run_dir, store = _bench_folders(variant, workdir)

    def hand_to_tune(snap: Path, target: str) -> None:  # the reporter thread: copy, then drop the snapshot
        _tune_copy(snap, target)
        shutil.rmtree(snap)

    writer, reporter = ckpt.BackgroundWriter(), ThreadPoolExecutor(max_workers=1)
    copying = None
    costs: dict[str, list[float]] = {"host copy": [], "wait for the write": [], "snapshot + wait for the copy": []}
    started = time.perf_counter()
    try:
        for i in range(repeats + 1):
            start = time.perf_counter()
            writer.submit(_write_checkpoint, run_dir, best, writer.host_state(resume))  # after epoch k·every
            costs["host copy"].append(time.perf_counter() - start)
            for _ in range(every):
                time.sleep(GPU_EPOCH_S)  # the following epochs
            start = time.perf_counter()
            writer.wait()  # with the next result: the state has landed
            costs["wait for the write"].append(time.perf_counter() - start)
            start = time.perf_counter()
            snap = _snapshot(run_dir)
            if copying is not None:
                copying.result()  # the reporter takes one result at a time
            copying = reporter.submit(hand_to_tune, snap, f"{store}/checkpoint_{i:06d}")
            costs["snapshot + wait for the copy"].append(time.perf_counter() - start)
            if i >= 2:
                shutil.rmtree(f"{store}/checkpoint_{i - 2:06d}", ignore_errors=True)
        copying.result()
    finally:
        writer.close()
        reporter.shutdown()
    wall = time.perf_counter() - started
    out = {name: _median(values[1:]) for name, values in costs.items()}  # the first round fills the folders
    out["training thread per checkpoint"] = sum(out.values())
    out["idle epochs"] = (repeats + 1) * every * GPU_EPOCH_S
    out["wall"] = wall
    shutil.rmtree(workdir / variant)
    return out


def background_fit_walls(spec_file: Path, repeats: int) -> dict[bool, float]:
    """Median seconds of a tiny trial's whole ``fit`` (real model size, so real checkpoint
    bytes) with a checkpoint every epoch, written in the foreground or the background,
    alternated so both see the same machine load."""
    import torch

    from attnmel.config import apply_overrides
    from attnmel.train import fit
    from orchestrator.sweep.spec import load_spec
    from orchestrator.sweep.grid import trial_config

    spec = load_spec(spec_file)
    torch.set_num_threads(1)
    base = apply_overrides(trial_config(spec.train, spec.points[0]), ["runtime.checkpoint_every=1"])
    walls: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(repeats):
        for background in (False, True):
            cfg = apply_overrides(base, [f"runtime.background_checkpoint={str(background).lower()}"])
            with tempfile.TemporaryDirectory() as tmp:
                start = time.perf_counter()
                for _row in fit(cfg, Path(tmp) / "run"):
                    pass
                walls[background].append(time.perf_counter() - start)
    return {k: _median(v) for k, v in walls.items()}


def report_background(steps: dict[tuple[str, int], dict[str, float]], walls: dict[bool, float]) -> None:
    print(f"\n## 1b. Checkpoints written off the training thread (runtime.background_checkpoint, the default; {_load()})")
    print(f"training-thread seconds per checkpoint with `every` idle {GPU_EPOCH_S:g} s epochs per checkpoint standing in "
          "for GPU epochs (the write and Tune's copy run meanwhile); best weights new at every checkpoint")
    names = ["host copy", "wait for the write", "snapshot + wait for the copy", "training thread per checkpoint"]
    rows = [[n] + [f"{s[n]:.3f}" for s in steps.values()] for n in names]
    rows.append([f"per epoch, of a {GPU_EPOCH_S:g} s GPU epoch"]
                + [f"{100 * s['training thread per checkpoint'] / every / GPU_EPOCH_S:.1f} %" for (_, every), s in steps.items()])
    print(_table(["step (s)"] + [f"{name}, every {every}" for name, every in steps], rows))
    print(f"tiny trial, whole fit, checkpoint every epoch (AttnMel-CNN-Lesion at full size, 32 px, 1 thread): "
          f"foreground {walls[False]:.2f} s, background {walls[True]:.2f} s "
          f"(ratio {walls[True] / walls[False]:.2f})")


def tiny_cpu_epoch(spec_file: Path) -> tuple[float, dict[str, float]]:
    """Median epoch seconds of one tiny trial of ``spec_file`` run alone with ``fit`` on one
    thread (as a 1-CPU Ray worker runs it), and the in-process seconds of its set-up calls."""
    import torch

    from attnmel.train import fit
    from orchestrator.sweep.spec import load_spec
    from orchestrator.sweep.grid import trial_config

    spec = load_spec(spec_file)
    torch.set_num_threads(1)
    cfg = trial_config(spec.train, spec.points[0])
    with tempfile.TemporaryDirectory() as tmp, _probes() as events:
        rows = list(fit(cfg, Path(tmp) / "run"))
    calls: dict[str, float] = {}
    for event in events:
        calls[event["name"]] = calls.get(event["name"], 0.0) + event["dt"]
    return _median([r["epoch_seconds"] for r in rows]), calls


def report_checkpoint(steps: dict[str, dict[str, float]], cpu_epoch: float) -> None:
    print(f"\n## 1. Checkpoint work (this machine; median of repeats; storage = local disk, page cache; {_load()})")
    names = ["save best.pt", "save last.pt", "link last.prev.pt", "snapshot (links)", "Tune copy to storage",
             "snapshot removal", "Tune deletes old ckpt", "copy best weights in RAM"]  # fmt: skip
    rows = [[n] + [f"{steps[v][n]:.3f}" for v in steps] for n in names]
    rows += [[b] + [_mb(steps[v][b]) for v in steps] for b in ("bytes last.pt", "bytes best.pt", "bytes per Tune ckpt")]
    print(_table(["step (s)"] + list(steps), rows))
    print(f"\nper epoch, against a {GPU_EPOCH_S:g} s GPU epoch and the tiny trial's CPU epoch ({cpu_epoch:.2f} s, 1 thread);")
    print("'best every epoch' = validation AUC improves each epoch (early training), 'best never' = it does not")
    rows = []
    for variant, s in steps.items():
        at_checkpoint = sum(s[n] for n in names[1:7])
        for every in (1, 5, 10):
            for label, rate in (("best every epoch", 1.0), ("best never", 0.0)):
                per_epoch = at_checkpoint / every + rate * s["save best.pt"]
                rows.append([variant, every, label, f"{per_epoch:.3f}", f"{100 * per_epoch / GPU_EPOCH_S:.0f} %",
                             f"{100 * per_epoch / cpu_epoch:.0f} %"])  # fmt: skip
            # options, with the best improving every epoch: (a) best weights copied in RAM and
            # written with the next checkpoint; (b) as (a), and the files written by a background
            # thread: the training thread only copies weights + momentum (2 copies) per checkpoint
            copy = s["copy best weights in RAM"]
            options = {"option a: best in RAM": (at_checkpoint + s["save best.pt"]) / every + copy,
                       "option b: a + writer thread": 2 * copy / every + copy}  # fmt: skip
            for label, per_epoch in options.items():
                rows.append([variant, every, label, f"{per_epoch:.3f}", f"{100 * per_epoch / GPU_EPOCH_S:.0f} %",
                             f"{100 * per_epoch / cpu_epoch:.0f} %"])  # fmt: skip
    print(_table(["model", "every", "case", "s/epoch", f"of {GPU_EPOCH_S:g} s GPU", "of CPU epoch"], rows))


# --------------------------------------------------------------------------- probes (profile)

# Probes run in this process (the tiny in-process trial) and inside Ray workers, where this
# module's functions arrive pickled by value: one mutable dict, never rebound globals.
_STATE: dict[str, Any] = {"events": None, "path": None}


def _emit(name: str, wall: float, dt: float) -> None:
    thread = threading.current_thread().name
    background = thread.startswith(("attnmel-checkpoint", "attnmel-report"))
    event = {"name": f"{name} [bg]" if background else name, "t": wall, "dt": dt}
    if _STATE["events"] is not None:
        _STATE["events"].append(event)
    if _STATE["path"]:  # appended at once: Tune may end a worker before the trial returns
        with open(_STATE["path"], "a") as handle:
            handle.write(json.dumps(event) + "\n")


def _wrap(owner: Any, attr: str, label: Any = None) -> tuple[Any, str, Any]:
    original = getattr(owner, attr)
    if getattr(original, "_probe", False):  # a trial that never returned left its probes in place
        return owner, attr, original

    @functools.wraps(original)
    def timed(*args, **kw):
        wall, start = time.time(), time.perf_counter()
        try:
            return original(*args, **kw)
        finally:
            _emit(label(*args, **kw) if callable(label) else (label or attr), wall, time.perf_counter() - start)

    timed._probe = True
    setattr(owner, attr, timed)
    return owner, attr, original


def _wrap_fit(owner: Any) -> tuple[Any, str, Any]:
    """``fit`` whose every step (set-up + epoch + checkpoint, or the end) is timed, and the
    caller's time between steps (``tune.report``) too."""
    original = owner.fit
    if getattr(original, "_probe", False):
        return owner, "fit", original

    def timed(*args, **kw):
        generator = original(*args, **kw)
        while True:
            wall, start = time.time(), time.perf_counter()
            try:
                result = next(generator)
            except StopIteration:
                _emit("fit step", wall, time.perf_counter() - start)
                return
            _emit("fit step", wall, time.perf_counter() - start)
            yield result

    timed._probe = True
    owner.fit = timed
    return owner, "fit", original


@contextlib.contextmanager
def _probes(sink: Path | None = None):
    """Time the calls a trial makes (the same functions, wrapped in this process only)."""
    import attnmel.checkpoint as ckpt
    import attnmel.train as train

    _STATE.update(events=[], path=sink)
    installed = [_wrap(train, n) for n in ("build_model", "load_bundle", "prepare_model", "train_one_epoch", "evaluate",
                                              "_finalise", "save_config", "_bundle_to")]  # fmt: skip
    installed += [_wrap(ckpt, "save_checkpoint", lambda payload, path, **kw: f"save {Path(path).name}"),
                  _wrap(ckpt, "_link_or_copy", "link last.prev.pt"), _wrap(ckpt, "write_epochs"),
                  _wrap(ckpt, "load_resume_state"), _wrap(ckpt.BackgroundWriter, "host_state", "host copy"),
                  _wrap_fit(train)]  # fmt: skip
    if sink is not None:  # inside a Ray worker
        import orchestrator.sweep.trainable as trainable
        from ray import tune
        from ray.train._internal.storage import StorageContext

        installed += [_wrap(trainable._Reporter, "put", "reporter put"), _wrap(trainable, "trial_config"), _wrap(trainable, "remove_stale_scratch"), _wrap(trainable, "_snapshot", "snapshot"),
                      _wrap(tune, "report", "tune.report"), _wrap(tune, "get_checkpoint"),
                      _wrap(StorageContext, "persist_current_checkpoint", "Tune copy to storage")]  # fmt: skip
    try:
        yield _STATE["events"]
    finally:
        for owner, attr, original in reversed(installed):
            setattr(owner, attr, original)
        _STATE.update(events=None, path=None)


def _profiled_trial(params: dict[str, Any]) -> None:
    """``orchestrator.trainable.train_trial`` with its calls timed into ``params['profile_dir']``."""
    entered = time.time()
    fresh = "attnmel.train" not in sys.modules
    start = time.perf_counter()
    import attnmel.train  # noqa: F401  what train_trial imports first: torch, torchvision, the models
    import orchestrator.sweep.trainable
    from ray import tune

    imported = time.perf_counter() - start
    sink = Path(params["profile_dir"]) / f"{tune.get_context().get_trial_id()}.jsonl"
    with open(sink, "a") as handle:
        handle.write(json.dumps({"name": "enter", "t": entered, "dt": imported, "pid": os.getpid(), "fresh": fresh}) + "\n")
    with _probes(sink):  # the last tune.report never returns: done=True makes Tune stop the trial there
        orchestrator.trainable.train_trial({k: v for k, v in params.items() if k != "profile_dir"})


# --------------------------------------------------------------------------- sweeps


def _load() -> str:
    return f"load average {os.getloadavg()[0]:.1f}"


def write_spec(path: Path, *, name: str, root: Path, storage: Path, train: dict, grid: dict, concurrent: int = 2) -> Path:
    raw = {
        "name": name, "dataset": {"name": "isic2017", "root": str(root)}, "train": train, "grid": grid,
        "resources": {"cpus": 1, "gpus": 0}, "storage": str(storage), "retries": 0, "max_concurrent": concurrent,
    }  # fmt: skip
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def warm_cache(spec_file: Path) -> None:
    """Preprocess the spec's data once, as the first trial on a node would."""
    from attnmel.data import load_bundle
    from orchestrator.sweep.spec import load_spec
    from orchestrator.sweep.grid import trial_config

    spec = load_spec(spec_file)
    seen = set()
    for point in spec.points:
        cfg = trial_config(spec.train, point)
        if cfg.data not in seen:
            seen.add(cfg.data)
            load_bundle(cfg.data)


def run_cli_sweep(spec_file: Path, env: dict[str, str], log: Path, *, sample_rss: bool = False) -> dict[str, Any]:
    """``attnmel sweep run SPEC`` in a subprocess: timestamped progress lines and, when asked,
    the driver's RSS every 0.5 s."""
    command = [sys.executable, "-m", "orchestrator.cli", "sweep", "run", str(spec_file)]
    started = time.time()
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    rss: list[tuple[float, int]] = []
    done = threading.Event()

    def sample() -> None:
        status = Path(f"/proc/{proc.pid}/status")
        while not done.is_set():
            with contextlib.suppress(OSError):
                kb = next(int(line.split()[1]) for line in status.read_text().splitlines() if line.startswith("VmRSS"))
                rss.append((time.time(), kb * 1024))
            done.wait(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    if sample_rss:
        sampler.start()
    lines: list[tuple[float, str]] = []
    with open(log, "w") as handle:
        for line in proc.stdout:
            lines.append((time.time(), line.rstrip("\n")))
            handle.write(f"{lines[-1][0] - started:9.2f} {line}")
    rc = proc.wait()
    done.set()
    ended = time.time()
    events: dict[str, dict[str, Any]] = {}
    sweep_wall = storage_line = None
    for t, line in lines:
        if match := _TAG.match(line):
            trial = events.setdefault(match["trial"], {})
            trial.setdefault(match["what"].split()[0], t)
            if match["what"] == "finished":
                trial["finished"] = t
        elif match := re.match(r"sweep \S+: \d+ trials, \d+ errored, (\d+) s wall", line):
            sweep_wall = float(match[1])
        elif storage_line is None and re.match(r"sweep \S+: storage ", line):
            storage_line = t
    if rc != 0:
        print(f"  sweep exited {rc}; see {log}")
    return {"rc": rc, "wall": ended - started, "sweep_wall": sweep_wall, "startup": (storage_line or started) - started,
            "trials": events, "rss": rss, "log": log}  # fmt: skip


def read_trials(sweep_dir: Path) -> dict[str, dict[str, Any]]:
    """Per trial: its result rows' epoch seconds, Tune's time_total_s, pid, bytes kept."""
    out = {}
    for result in sweep_dir.glob("*/result.json"):
        rows = [json.loads(line) for line in result.read_text().splitlines() if line.strip()]
        if not rows:
            continue
        kept = sorted(result.parent.glob("checkpoint_*"))
        out[rows[-1]["trial_id"]] = {
            "epoch_seconds": [r["epoch_seconds"] for r in rows],
            "seed": rows[-1]["seed"],
            "time_total_s": rows[-1]["time_total_s"],
            "pid": rows[-1]["pid"],
            "bytes": _dir_bytes(result.parent),
            "checkpoints": [p.name for p in kept],
            "final_files": {p.name: p.stat().st_size for p in kept[-1].iterdir()} if kept else {},
            "trial_files": {p.name: p.stat().st_size for p in result.parent.iterdir() if p.is_file()},
            "dir": result.parent,
        }
    return out


def overhead_numbers(run: dict[str, Any], trials: dict[str, dict[str, Any]], slots: int) -> dict[str, Any]:
    epochs = sum(sum(t["epoch_seconds"]) for t in trials.values())
    driver = {tid: ev["finished"] - ev["started"] - sum(trials[tid]["epoch_seconds"])
              for tid, ev in run["trials"].items() if "finished" in ev and tid in trials}  # fmt: skip
    worker = {tid: t["time_total_s"] - sum(t["epoch_seconds"]) for tid, t in trials.items()}
    return {
        "n": len(trials), "ideal": epochs / slots, "wall": run["wall"], "sweep_wall": run["sweep_wall"],
        "startup": run["startup"], "driver": driver, "worker": worker, "pids": len({t["pid"] for t in trials.values()}),
        "epoch": _median([s for t in trials.values() for s in t["epoch_seconds"]]),
        "gaps": handover_gaps(run["trials"], slots, start="started", end="finished"),
    }  # fmt: skip


def print_overhead(label: str, o: dict[str, Any]) -> None:
    """One line: walls against the ideal, time outside epochs per trial, worker reuse."""
    sweep = o["sweep_wall"] if o["sweep_wall"] is not None else float("nan")
    print(f"{label}: {o['n']} trials, median epoch {o['epoch']:.2f} s, ideal {o['ideal']:.1f} s; "
          f"process wall {o['wall']:.1f} s ({100 * (o['wall'] / o['ideal'] - 1):.0f} % over; start-up to first "
          f"line 'storage' {o['startup']:.1f} s), sweep wall (Tune fit) {sweep:.0f} s ({100 * (sweep / o['ideal'] - 1):.0f} % over); "
          f"outside epochs per trial: driver view median {_median(list(o['driver'].values())):.2f} s, "
          f"worker view (time_total_s - epochs) median {_median(list(o['worker'].values())):.2f} s; "
          f"{o['pids']} worker processes; a trial ends -> the next starts: median {_median(o['gaps']):.2f} s")  # fmt: skip


def _fit_here(spec: Any, trainable: Any, extra_space: dict[str, Any], *, callbacks: tuple = (),
              scored: bool = True) -> tuple[float, Any]:
    """Tune fit wall and results of ``spec``'s sweep with ``trainable`` in place of the real one,
    on an embedded Ray in this process: the same ``tune_settings`` (grid, concurrency, resources,
    checkpoints, reuse of actors), ``extra_space`` added to every trial's config, ``callbacks``
    added to the run's; without ``scored`` no metric (a stand-in reports none)."""
    import dataclasses

    import ray
    from ray import tune

    from orchestrator.sweep.tune import connect, trial_resources, tune_settings

    settings = tune_settings(spec)
    run_config = settings.run_config
    run_config.callbacks = [*run_config.callbacks, *callbacks]
    tune_config = settings.tune_config if scored else dataclasses.replace(settings.tune_config, metric=None, mode=None)
    started_ray = connect(None)
    try:
        started = time.time()
        results = tune.Tuner(tune.with_resources(trainable, trial_resources(spec)),
                             param_space={**settings.param_space, **extra_space},
                             tune_config=tune_config, run_config=run_config).fit()  # fmt: skip
        return time.time() - started, results
    finally:
        if started_ray:
            ray.shutdown()


def profiled_sweep(spec_file: Path, profile_dir: Path) -> dict[str, Any]:
    """The same sweep through ``tune_settings`` (same Tuner settings) on an embedded Ray, with
    the trainable's calls timed in the workers and the driver's trial events timed here."""
    from ray import tune

    from orchestrator.sweep.spec import load_spec

    class Clock(tune.Callback):
        def __init__(self, path: str) -> None:
            self.path = path

        def _log(self, what: str, trial: Any) -> None:
            with open(self.path, "a") as handle:
                handle.write(json.dumps({"what": what, "trial": trial.trial_id, "t": time.time()}) + "\n")

        def on_trial_start(self, iteration, trials, trial, **info):
            self._log("start", trial)

        def on_trial_result(self, iteration, trials, trial, result, **info):
            self._log("result", trial)

        def on_trial_complete(self, iteration, trials, trial, **info):
            self._log("complete", trial)

    clock = profile_dir / "driver.jsonl"
    wall, results = _fit_here(load_spec(spec_file), _profiled_trial, {"profile_dir": str(profile_dir)},
                              callbacks=(Clock(str(clock)),))  # fmt: skip
    driver: dict[str, dict[str, float]] = {}
    for line in clock.read_text().splitlines():
        event = json.loads(line)
        driver.setdefault(event["trial"], {}).setdefault(event["what"], event["t"])
        if event["what"] == "complete":
            driver[event["trial"]]["complete"] = event["t"]
    worker = {p.stem: [json.loads(x) for x in p.read_text().splitlines()] for p in profile_dir.glob("*.jsonl") if p.stem != "driver"}
    return {"wall": wall, "errors": len(results.errors), "driver": driver, "worker": worker}


def _floor_trial(params: dict[str, Any]) -> None:
    """Part 5's stand-in trainable: sleeps through its trial's epoch seconds, reporting each."""
    from ray import tune

    if params["with_torch"]:  # what a fresh worker's first trial does before its first epoch
        import torch

        import attnmel.train  # noqa: F401  torch, torchvision, the models

        torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)  # imports torch._dynamo
    seconds = params["epoch_seconds"][str(params["point"]["runtime.seed"])]
    for epoch, sleep in enumerate(seconds, 1):
        time.sleep(sleep)
        tune.report({"epoch": epoch, "epoch_seconds": sleep, "done": epoch == len(seconds)})


def floor_sweep(spec_file: Path, storage: Path, epoch_seconds: dict[str, list[float]], *, with_torch: bool) -> float:
    """Tune fit wall of the spec's sweep with ``_floor_trial`` in place of the real trainable:
    the same Tune settings, no metric (nothing is scored)."""
    from orchestrator.sweep.spec import load_spec

    spec = load_spec(spec_file, overrides=[f"name=floor-{'torch' if with_torch else 'bare'}", f"storage={storage}"])
    wall, results = _fit_here(spec, _floor_trial, {"epoch_seconds": epoch_seconds, "with_torch": with_torch}, scored=False)
    if results.errors:
        raise RuntimeError(f"floor sweep: {len(results.errors)} trials errored: {results.errors[0]}")
    return wall


def report_floor(spec_file: Path, storage: Path, trials: dict[str, dict[str, Any]] | None, n: int, epochs: int) -> None:
    """Part 5: the stand-in sweeps' Tune fit walls against the same ideal as part 3's."""
    if trials:
        seconds = {str(t["seed"]): t["epoch_seconds"] for t in trials.values()}
        source = "part 3's measured epoch seconds"
    else:
        seconds = {str(seed): [GPU_EPOCH_S] * epochs for seed in range(n)}
        source = f"{GPU_EPOCH_S:g} s epochs"
    ideal = sum(sum(s) for s in seconds.values()) / 2
    print(f"\n## 5. The floor: the same {len(seconds)} trials and Tune settings, a stand-in trainable sleeping {source}")
    for with_torch, label in ((False, "sleeps only (Ray Tune's own cost)"),
                              (True, "imports attnmel.train and builds one SGD optimiser first, then sleeps (+ PyTorch's)")):
        wall = floor_sweep(spec_file, storage, seconds, with_torch=with_torch)
        print(f"stand-in that {label}: Tune fit wall {wall:.1f} s vs ideal {ideal:.1f} s "
              f"({100 * (wall / ideal - 1):.0f} % over; {_load()} after)")


def handover_gaps(driver: dict[str, dict[str, float]], slots: int, *, start: str = "start", end: str = "complete") -> list[float]:
    """Seconds from a trial's end to the start of the trial that takes its slot (the driver's clock)."""
    starts = sorted(ev[start] for ev in driver.values() if start in ev)[slots:]
    ends = sorted(ev[end] for ev in driver.values() if end in ev)
    return [t - max((e for e in ends if e <= t), default=t) for t in starts]


def profile_table(profile: dict[str, Any], trials: dict[str, dict[str, Any]]) -> str:
    """Mean seconds per trial of each part of a trial's time outside its epochs."""
    parts: dict[str, list[float]] = {}
    for tid, events in profile["worker"].items():
        if tid not in trials or "complete" not in profile["driver"].get(tid, {}):
            continue
        drv, epochs = profile["driver"][tid], sum(trials[tid]["epoch_seconds"])
        total = drv["complete"] - drv["start"] - epochs
        # A reused worker releases the trial's thread from its last report only when the next
        # trial takes the worker over: what it does after the driver's "complete" is not this trial's.
        by: dict[str, float] = {}
        for e in events:
            if e["name"] != "enter":
                by[e["name"]] = by.get(e["name"], 0.0) + max(0.0, min(e["t"] + e["dt"], drv["complete"]) - e["t"])
        enter = next(e for e in events if e["name"] == "enter")
        steps = [e for e in events if e["name"] == "fit step"]
        first_epoch = next(e["t"] for e in events if e["name"] == "train_one_epoch")
        setup = first_epoch - steps[0]["t"]
        row = {
            "Tune: trial start -> trainable entered (actor start/reuse)": enter["t"] - drv["start"],
            "imports in a fresh worker (torch, attnmel)": enter["dt"],
            "trainable before fit (trial_config, scratch clean-up, get_checkpoint)":
                steps[0]["t"] - enter["t"] - enter["dt"],
            "fit set-up: build_model": by.get("build_model", 0.0),
            "fit set-up: load_bundle (cache hit)": by.get("load_bundle", 0.0),
            "fit set-up: rest (config, data_info, optimiser, ...)": setup - by.get("build_model", 0) - by.get("load_bundle", 0),
            "host copy of the resumable state": by.get("host copy", 0.0),
            "write epochs.jsonl": by.get("write_epochs", 0.0),
            "finalise (predictions, attention, best.pt)": by.get("_finalise", 0.0),
            "snapshot": by.get("snapshot", 0.0),
            "hand-over to the reporter thread": by.get("reporter put", 0.0),
            "last result: reporter's Tune copy -> driver marks the trial complete":
                drv["complete"] - max(e["t"] + e["dt"] for e in steps),
        }
        inside_fit = sum(e["dt"] for e in steps) - setup - epochs
        accounted = by.get("host copy", 0) + by.get("write_epochs", 0) + by.get("_finalise", 0)  # best.pt: in _finalise
        row["fit: other per-epoch work (seeding, sampler, waiting for a background write)"] = inside_fit - accounted
        row["unaccounted (thread hand-offs, scratch dir removal)"] = total - sum(row.values())
        row["TOTAL outside epochs (driver view)"] = total
        # off the training thread, overlapping the epochs: not part of the total
        row["[bg] save best.pt + last.pt (writer thread)"] = by.get("save best.pt [bg]", 0.0) + by.get("save last.pt [bg]", 0.0)
        row["[bg] Tune copy to storage (reporter thread)"] = by.get("Tune copy to storage [bg]", 0.0)
        row["[bg] tune.report incl. copy and waiting for the driver"] = by.get("tune.report [bg]", 0.0)
        for key, value in row.items():
            parts.setdefault(key, []).append(value)
    n = len(next(iter(parts.values()), []))
    total = statistics.fmean(parts["TOTAL outside epochs (driver view)"]) if n else float("nan")
    rows = [[k, f"{statistics.fmean(v):.3f}", f"{max(v):.3f}", f"{100 * statistics.fmean(v) / total:.0f} %"] for k, v in parts.items()]
    return _table([f"part of a trial's time outside epochs ({n} trials)", "mean s", "max s", "share"], rows)


# --------------------------------------------------------------------------- part 2


def report_storage(trials: dict[str, dict[str, Any]], epochs: int) -> None:
    from orchestrator.sweep.spec import load_spec
    from attnmel.models.registry import split_token

    print("\n## 2. Storage per finished trial (best.pt at real size + small files scaled to ISIC 2017, 50 epochs)")
    sample = next(iter(trials.values()))
    final, files = sample["final_files"], sample["trial_files"]
    small_tiny = sum(v for k, v in final.items() if k != "best.pt") + sum(files.values())
    print(f"measured tiny trial ({sample['dir'].name}): {_mb(sample['bytes'])} in storage = best.pt {_mb(final.get('best.pt', 0))} "
          f"+ {small_tiny / 1e3:.0f} kB small files; checkpoints kept: {sample['checkpoints']}; files {sorted(final)}")  # fmt: skip
    # small files at ISIC 2017 scale: per-image files scaled by rows, per-epoch files by 50 epochs
    kept = sample["dir"] / sample["checkpoints"][-1]
    tiny_rows = max(1, len((kept / "predictions.csv").read_text().splitlines()) - 1)
    tiny_attention = max(1, len(json.loads((kept / "attention.json").read_text())))
    per_epoch = sum(files.get(k, 0) for k in ("result.json", "progress.csv")) + final.get("epochs.jsonl", 0)
    real_small = (
        final.get("predictions.csv", 0) / tiny_rows * sum(ISIC2017_EVAL.values())
        + final.get("attention.json", 0) / tiny_attention * ISIC2017_EVAL["test"]
        + per_epoch / epochs * 50
        + small_tiny - final.get("predictions.csv", 0) - final.get("attention.json", 0) - per_epoch
    )
    sizes: dict[str, tuple[int, int]] = {}
    for token in PAPER_TABLE2:
        name = split_token(token)[0]
        if name not in sizes:
            resume, best = _payloads(name)
            sizes[name] = (_serialized_bytes(best), _serialized_bytes(resume))
    rows = []
    for token in PAPER_TABLE2:
        best, resume = sizes[split_token(token)[0]]
        rows.append([token, _mb(best), _mb(resume), _mb(best + real_small), _mb(resume + real_small),
                     _mb(2 * (best + resume)), f"{(best + real_small) / (resume + real_small):.2f}"])  # fmt: skip
    print(f"small files at ISIC 2017 scale ≈ {real_small / 1e3:.0f} kB per trial")
    print(_table(["variant", "best.pt", "last.pt (w+momentum)", "new: per finished trial", "old: last.pt kept",
                  "in flight (2 ckpts)", "new/old"], rows))  # fmt: skip
    for spec_file in ("experiments/lambda_sensitivity.yaml", "experiments/paper_isic2017.yaml"):
        points = load_spec(REPO / spec_file).points
        new = sum(sizes[split_token(p["variant"])[0]][0] + real_small for p in points)
        old = sum(sizes[split_token(p["variant"])[0]][1] + real_small for p in points)
        issue = ""
        if all(split_token(p["variant"])[0] == "attnmel" for p in points):
            issue = f"; issue #12's ≈ 147 MB per AttnMel-CNN trial: {_mb(147e6 * len(points))}"
        print(f"{spec_file}: {len(points)} trials -> new {_mb(new)}, old (last.pt with momentum kept) {_mb(old)}{issue}")


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", nargs="*", default=["checkpoint", "storage", "overhead", "floor"],
                        choices=["checkpoint", "storage", "overhead", "floor"], help="parts 1-3 and 5 to run (default: all)")  # fmt: skip
    parser.add_argument("--many", type=int, default=0, metavar="N", help="part 4 with N trials (100+)")
    parser.add_argument("--trials", type=int, default=8, help="trials of the overhead sweep")
    parser.add_argument("--epochs", type=int, default=5, help="epochs of the overhead sweep's trials")
    parser.add_argument("--every", type=int, nargs="+", default=[5, 1], help="checkpoint_every of the overhead sweeps")
    parser.add_argument("--no-profile", action="store_true", help="skip the profiled re-run of the overhead sweep")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per checkpoint step")
    parser.add_argument("--workdir", type=Path, default=None, help="keep everything here (default: a temp dir, removed)")
    args = parser.parse_args(argv)
    if args.many and args.many < 40:
        parser.error("--many needs at least 40 trials (first 20 against last 20)")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="sweep-costs-"))
    workdir.mkdir(parents=True, exist_ok=True)
    os.environ["ATTNMEL_CACHE"] = str(workdir / "cache")  # inherited by the embedded Ray's workers
    os.environ.pop("RAY_ADDRESS", None)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    print(f"workdir {workdir}; {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f}")
    try:
        from attnmel.data.synth import write_synthetic

        root = workdir / "isic2017"
        if not root.exists():  # = attnmel data synth --dataset isic2017 --n-train 32 --n-val 16 --n-test 16 --size 64
            write_synthetic("isic2017", root, n_train=32, n_val=16, n_test=16, size=64)
        storage = workdir / "results"
        seeds = list(range(args.trials))
        specs = {k: write_spec(workdir / f"overhead-k{k}.yaml", name=f"overhead-k{k}", root=root, storage=storage,
                               train={**TINY_TRAIN, "optim": {**TINY_TRAIN["optim"], "epochs": args.epochs},
                                      "runtime": {**TINY_TRAIN["runtime"], "checkpoint_every": k}},
                               grid={"variants": ["attnmel+lesion"], "seeds": seeds}) for k in args.every}  # fmt: skip
        first = specs[args.every[0]]
        if args.parts:
            warm_cache(first)
        if "checkpoint" in args.parts:
            cpu_epoch, calls = tiny_cpu_epoch(first)
            print(f"tiny trial alone, in-process, 1 thread: epoch {cpu_epoch:.2f} s; set-up calls "
                  + ", ".join(f"{k} {v:.2f} s" for k, v in calls.items() if k in ("build_model", "load_bundle", "_finalise")))
            steps = {v: measure_checkpoint_steps(v, workdir / "ckpt", args.repeats) for v in ("attnmel", "vgg16")}
            report_checkpoint({"AttnMel-CNN": steps["attnmel"], "VGG-16": steps["vgg16"]}, cpu_epoch)
            bg = {(name, every): measure_background(v, workdir / "bg", args.repeats, every)
                  for every in sorted(set(args.every)) for name, v in (("AttnMel-CNN", "attnmel"), ("VGG-16", "vgg16"))}
            report_background(bg, background_fit_walls(first, args.repeats))
        overhead_trials = None
        if "overhead" in args.parts or "storage" in args.parts:
            print(f"\n## 3. Orchestration overhead: `attnmel sweep run` of {args.trials} tiny trials, 2 at a time")
            for k, spec_file in specs.items():
                if "overhead" not in args.parts and k != args.every[0]:
                    continue
                run = run_cli_sweep(spec_file, env, workdir / f"overhead-k{k}.log")
                trials = read_trials(storage / f"overhead-k{k}")
                overhead_trials = overhead_trials or trials
                print_overhead(f"`attnmel sweep run {spec_file.name}` (checkpoint_every {k}; {_load()} after)",
                               overhead_numbers(run, trials, 2))
            if "overhead" in args.parts and not args.no_profile:
                k = args.every[-1]
                profile_spec = write_spec(workdir / "profiled.yaml", name="profiled", root=root, storage=storage,
                                          train=yaml.safe_load(specs[k].read_text())["train"],
                                          grid={"variants": ["attnmel+lesion"], "seeds": seeds})  # fmt: skip
                (workdir / "profile").mkdir(exist_ok=True)
                profile = profiled_sweep(profile_spec, workdir / "profile")
                trials = read_trials(storage / "profiled")
                ideal = sum(sum(t["epoch_seconds"]) for t in trials.values()) / 2
                print(f"\nprofiled re-run (checkpoint_every {k}, same Tune settings, calls timed in the workers; {_load()} after): "
                      f"Tune fit wall {profile['wall']:.1f} s vs ideal {ideal:.1f} s ({100 * (profile['wall'] / ideal - 1):.0f} % over)")
                print(profile_table(profile, trials))
                gaps = handover_gaps(profile["driver"], 2)
                pids = {e["pid"] for events in profile["worker"].values() for e in events if e["name"] == "enter"}
                print(f"between trials (not in any trial's time): a trial ends -> the next starts in its slot, median "
                      f"{_median(gaps):.2f} s over {len(gaps)} hand-overs; {len(pids)} worker processes for {len(trials)} trials")
        if "storage" in args.parts and overhead_trials:
            report_storage(overhead_trials, args.epochs)
        if "floor" in args.parts:
            report_floor(first, storage, overhead_trials, args.trials, args.epochs)
        if args.many:
            many(args.many, root, workdir, env)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


def many(n: int, root: Path, workdir: Path, env: dict[str, str]) -> None:
    print(f"\n## 4. `attnmel sweep run` of {n} one-epoch VGG-16-GAP trials (8 train images, 32 px), 2 at a time")
    train = {"data": {"image_size": 40, "crop_size": 32, "passes": 1, "max_train": 8, "max_eval": 8},
             "model": {"weights": "none"}, "optim": {"epochs": 1, "batch_size": 8}, "runtime": {"eval_batch_size": 16}}  # fmt: skip
    spec_file = write_spec(workdir / "many.yaml", name="many", root=root, storage=workdir / "results",
                           train=train, grid={"variants": ["vgg16_gap"], "seeds": list(range(n))})  # fmt: skip
    warm_cache(spec_file)
    run = run_cli_sweep(spec_file, env, workdir / "many.log", sample_rss=True)
    trials = read_trials(workdir / "results" / "many")
    o = overhead_numbers(run, trials, 2)
    print_overhead(f"many ({_load()} after)", o)
    order = sorted((ev["started"], tid) for tid, ev in run["trials"].items() if tid in o["driver"])
    ends = sorted(ev["finished"] for ev in run["trials"].values() if "finished" in ev)
    rows = []
    for label, chunk in (("first 20", order[:20]), ("last 20", order[-20:])):
        ids = [tid for _, tid in chunk]
        span = chunk[-1][0] - chunk[0][0]
        rows.append([label, f"{_median([o['driver'][t] for t in ids]):.2f}", f"{_median([o['worker'][t] for t in ids]):.2f}",
                     f"{span / (len(ids) - 1):.2f}", f"{_median([sum(trials[t]['epoch_seconds']) for t in ids]):.2f}"])  # fmt: skip
    print(_table(["trials (by start)", "outside epochs, driver view s", "worker view s", "s between starts", "epoch s"], rows))
    rss = run["rss"]
    if rss and ends:
        def rss_at(t: float) -> int:
            return max((b for s, b in rss if s <= t), default=rss[0][1])

        marks = [(f"after {i} trials", ends[i - 1]) for i in (1, 20, len(ends) // 2, len(ends)) if 0 < i <= len(ends)]
        print("driver RSS (VmRSS of the `attnmel sweep run` process, sampled every 0.5 s): "
              + ", ".join(f"{label} {_mb(rss_at(t))}" for label, t in marks) + f", max {_mb(max(b for _, b in rss))}")
    print(f"storage: {_mb(sum(t['bytes'] for t in trials.values()))} for {len(trials)} trials "
          f"({_mb(_median([t['bytes'] for t in trials.values()]))} per trial)")


if __name__ == "__main__":
    main()
