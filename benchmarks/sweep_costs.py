"""What a sweep costs besides training, measured side by side in one run through the product's
public functions (no Ray internals, nothing patched):

1. checkpoint  per checkpoint of AttnMel-CNN and VGG-16 at their real sizes, as a trial writes
               it: the training thread's host copy of the state (``BackgroundWriter.host_state``
               of ``attnmel.train.resume_payload``), then off that thread the write of ``best.pt``
               and ``last.pt`` (``attnmel.checkpoint.write_checkpoint``), the snapshot the
               trainable hands to Tune (``orchestrator.sweep.trainable.snapshot``), Tune's copy
               of it into storage (``ray.tune.Checkpoint.to_directory``) and the removal of the
               checkpoint that falls out of the newest two; as a share of a 2 s GPU epoch at
               ``runtime.checkpoint_every`` 5 (every spec in ``experiments/``).
2. storage     bytes per finished trial for each Table 2 variant: ``best.pt`` at real size plus
               the small files of part 3's trials scaled to ISIC 2017, projected for the λ sweep
               and Table 2.
3. overhead    ``attnmel sweep run`` of 8 tiny trials (AttnMel-CNN-Lesion, 32 px, 5 epochs, 1 CPU
               each, 2 at a time) on an embedded Ray: wall against the ideal (sum of epoch
               seconds / 2 slots), time outside epochs per trial, worker processes.
4. --many N    ``attnmel sweep run`` of N one-epoch VGG-16-GAP trials: driver RSS sampled, and
               per-trial time outside epochs, first 20 trials against the last 20.
5. floor       what Ray Tune and PyTorch alone cost the same sweep: ``build_tuner`` with the same
               settings and a stand-in trainable that sleeps through each trial's measured epoch
               seconds (from part 3), bare and after a fresh worker's first imports (torch, and
               torch's compiler stack, which the first optimiser of a process imports).

The designs those numbers led to are settled (checkpoints written in the background, the best
weights kept in memory until the next checkpoint, only best.pt kept per finished trial); the
README's "Sweep costs" keeps the measurements that decided them.

    python benchmarks/sweep_costs.py                      # parts 1-3 and 5, ~8 min on 2 busy CPUs
    python benchmarks/sweep_costs.py --parts checkpoint   # part 1 only
    python benchmarks/sweep_costs.py --parts --many 120   # part 4 only
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from attnmel.model_names import PAPER_TABLE2, split_token  # noqa: E402
from benchmarks.timed_command import Finished, attnmel, child_env, run_command, sweep_events  # noqa: E402

GPU_EPOCH_S = 2.0  # an ISIC 2017 epoch on one GPU (issue #12)
EVERY = 5  # runtime.checkpoint_every of every spec in experiments/
ISIC2017_EVAL = {"val": 150, "test": 600}  # prediction rows; Table 3 rows are the test split
TINY_TRAIN = {
    "data": {"image_size": 40, "crop_size": 32, "passes": 1},
    "model": {"weights": "none"},
    "optim": {"epochs": 5, "batch_size": 8},
    "runtime": {"eval_batch_size": 16, "checkpoint_every": EVERY},
}


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


def _load() -> str:
    return f"load average {os.getloadavg()[0]:.1f}"


# --------------------------------------------------------------------------- part 1


def payloads(variant: str, spec_file: Path) -> tuple[dict, dict]:
    """``last.pt`` and ``best.pt`` payloads of ``variant`` at real size, built by the functions
    ``fit`` builds them with, SGD momentum filled (one step on zero gradients)."""
    import torch

    from attnmel.config import apply_overrides
    from attnmel.data import load_bundle
    from attnmel.models import build_model
    from attnmel.step import make_optimizer, make_scheduler
    from attnmel.train import BestEpoch, resume_payload
    from orchestrator.layout.params import trial_config
    from orchestrator.sweep.spec import load_spec

    spec = load_spec(spec_file)
    name, roi = split_token(variant)
    cfg = apply_overrides(trial_config(spec.train, spec.points[0]), [f"model.variant={name}", f"data.roi={roi}"])
    model = build_model(cfg.model)
    optimizer = make_optimizer(model.parameters(), cfg.optim, torch.device("cpu"))
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    row = {"epoch": EVERY, "val_auc": 0.8, "val_ap": 0.5, "test_auc": 0.8, "test_ap": 0.5, "lr": 0.01}
    history = [dict(row, epoch=e) for e in range(1, EVERY + 1)]
    resume = resume_payload(model, optimizer, make_scheduler(optimizer, cfg.optim), epoch=EVERY, history=history, cfg=cfg)
    best = BestEpoch()
    best.update(model, row, {})
    return resume, best.payload(cfg, load_bundle(cfg.data))


def _serialized_bytes(payload: dict) -> int:
    import torch

    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.tell()


def measure_checkpoint(variant: str, spec_file: Path, workdir: Path, repeats: int) -> dict[str, float]:
    """Median seconds of each step of one checkpoint of ``variant`` at real size, in a scratch
    run folder and a local Tune-style storage folder: the training thread's host copy, then what
    the writer and the reporter threads do meanwhile. Best weights new at every checkpoint."""
    from ray import tune

    from attnmel.checkpoint import BEST, LAST, BackgroundWriter, write_checkpoint
    from orchestrator.sweep.storage import remove_dir
    from orchestrator.sweep.trainable import snapshot

    resume, best = payloads(variant, spec_file)
    run_dir, store = workdir / variant / "run", workdir / variant / "storage"
    run_dir.mkdir(parents=True)
    store.mkdir(parents=True)
    (run_dir / "epochs.jsonl").write_text("{}\n" * EVERY)
    times: dict[str, list[float]] = {}

    def timed(name: str, fn, *args):
        start = time.perf_counter()
        out = fn(*args)
        times.setdefault(name, []).append(time.perf_counter() - start)
        return out

    writer = BackgroundWriter()
    try:
        for i in range(repeats + 2):  # the first two rounds fill the folders (nothing to link or delete yet)
            host = timed("host copy (training thread)", writer.host_state, resume)
            timed("write best.pt + last.pt", write_checkpoint, run_dir, best, host)
            snap = timed("snapshot (hard links)", snapshot, run_dir)
            timed("Tune copy to storage", lambda: tune.Checkpoint.from_directory(str(snap)).to_directory(
                str(store / f"checkpoint_{i:06d}")))
            timed("snapshot removal", shutil.rmtree, snap)
            if i >= 2:  # tune.CheckpointConfig(num_to_keep=2)
                timed("old checkpoint removal", remove_dir, str(store / f"checkpoint_{i - 2:06d}"))
    finally:
        writer.close()
    out = {name: _median(values[-repeats:]) for name, values in times.items()}
    out["bytes last.pt"] = (run_dir / LAST).stat().st_size
    out["bytes best.pt"] = (run_dir / BEST).stat().st_size
    out["bytes per Tune checkpoint"] = _dir_bytes(store / f"checkpoint_{repeats + 1:06d}")
    shutil.rmtree(workdir / variant)
    return out


def report_checkpoint(steps: dict[str, dict[str, float]]) -> None:
    print(f"\n## 1. One checkpoint (this machine, local disk, median of repeats; {_load()})")
    names = [n for n in next(iter(steps.values())) if not n.startswith("bytes")]
    rows = [[n] + [f"{s[n]:.3f}" for s in steps.values()] for n in names]
    rows.append([f"training thread per epoch, every {EVERY}, of a {GPU_EPOCH_S:g} s GPU epoch"]
                + [f"{100 * s['host copy (training thread)'] / EVERY / GPU_EPOCH_S:.2f} %" for s in steps.values()])
    background = names[1:]
    rows.append([f"off the training thread per checkpoint, against {EVERY} epochs of {GPU_EPOCH_S:g} s"]
                + [f"{sum(s[n] for n in background):.2f} s of {EVERY * GPU_EPOCH_S:g} s" for s in steps.values()])
    rows += [[b] + [_mb(s[b]) for s in steps.values()] for b in ("bytes last.pt", "bytes best.pt", "bytes per Tune checkpoint")]
    print(_table(["step (s)"] + list(steps), rows))


# --------------------------------------------------------------------------- parts 3 and 4: real sweeps


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
    from orchestrator.layout.params import trial_config
    from orchestrator.sweep.spec import load_spec

    spec = load_spec(spec_file)
    for data in {trial_config(spec.train, point).data for point in spec.points}:
        load_bundle(data)


def read_trials(sweep_dir: Path) -> dict[str, dict[str, Any]]:
    """Per trial: its result rows' epoch seconds, Tune's time_total_s, pid, bytes kept."""
    from orchestrator.layout import folders

    out = {}
    for trial_dir in folders.trial_dirs(sweep_dir):
        result = trial_dir / folders.RESULTS
        rows = [json.loads(line) for line in result.read_text().splitlines() if line.strip()] if result.exists() else []
        if not rows:
            continue
        kept = sorted(trial_dir.glob(f"{folders.CHECKPOINT_PREFIX}*"))
        out[rows[-1]["trial_id"]] = {
            "epoch_seconds": [r["epoch_seconds"] for r in rows], "seed": rows[-1]["seed"],
            "time_total_s": rows[-1]["time_total_s"], "pid": rows[-1]["pid"], "bytes": _dir_bytes(trial_dir),
            "checkpoints": [p.name for p in kept],
            "final_files": {p.name: p.stat().st_size for p in kept[-1].iterdir()} if kept else {},
            "trial_files": {p.name: p.stat().st_size for p in trial_dir.iterdir() if p.is_file()}, "dir": trial_dir,
        }  # fmt: skip
    return out


def handover_gaps(events: dict[str, dict[str, float]], slots: int) -> list[float]:
    """Seconds from a trial's end to the start of the trial that takes its slot (the driver's clock)."""
    starts = sorted(ev["started"] for ev in events.values() if "started" in ev)[slots:]
    ends = sorted(ev["finished"] for ev in events.values() if "finished" in ev)
    return [t - max((e for e in ends if e <= t), default=t) for t in starts]


def overhead_numbers(run: Finished, trials: dict[str, dict[str, Any]], slots: int) -> dict[str, Any]:
    events = sweep_events(run)
    epochs = sum(sum(t["epoch_seconds"]) for t in trials.values())
    driver = {tid: ev["finished"] - ev["started"] - sum(trials[tid]["epoch_seconds"])
              for tid, ev in events["trials"].items() if "finished" in ev and tid in trials}  # fmt: skip
    return {
        "n": len(trials), "ideal": epochs / slots, "wall": run.wall, "sweep_wall": events["sweep_wall"],
        "startup": (events["storage_line"] or run.started) - run.started, "driver": driver,
        "worker": {tid: t["time_total_s"] - sum(t["epoch_seconds"]) for tid, t in trials.items()},
        "pids": len({t["pid"] for t in trials.values()}), "events": events["trials"],
        "epoch": _median([s for t in trials.values() for s in t["epoch_seconds"]]),
        "gaps": handover_gaps(events["trials"], slots),
    }  # fmt: skip


def print_overhead(label: str, o: dict[str, Any]) -> None:
    """One line: walls against the ideal, time outside epochs per trial, worker reuse."""
    sweep = o["sweep_wall"] if o["sweep_wall"] is not None else float("nan")
    print(f"{label}: {o['n']} trials, median epoch {o['epoch']:.2f} s, ideal {o['ideal']:.1f} s; "
          f"process wall {o['wall']:.1f} s ({100 * (o['wall'] / o['ideal'] - 1):.0f} % over; start-up to the line "
          f"'storage' {o['startup']:.1f} s), sweep wall (Tune fit) {sweep:.0f} s ({100 * (sweep / o['ideal'] - 1):.0f} % over); "
          f"outside epochs per trial: driver view median {_median(list(o['driver'].values())):.2f} s, "
          f"worker view (time_total_s - epochs) median {_median(list(o['worker'].values())):.2f} s; "
          f"{o['pids']} worker processes; a trial ends -> the next starts: median {_median(o['gaps']):.2f} s")  # fmt: skip


def run_sweep(spec_file: Path, log: Path, *, sample_rss: bool = False) -> Finished:
    run = run_command(attnmel("sweep", "run", str(spec_file)), log, timeout=7200,
                      env=child_env(OMP_NUM_THREADS="1", RAY_ADDRESS=""), sample_rss=sample_rss)  # fmt: skip
    if run.rc != 0:
        print(f"  sweep exited {run.rc}; see {log}")
    return run


# --------------------------------------------------------------------------- part 2


def report_storage(trials: dict[str, dict[str, Any]], epochs: int, spec_file: Path) -> None:
    from orchestrator.sweep.spec import load_spec

    print("\n## 2. Storage per finished trial (best.pt at real size + small files scaled to ISIC 2017, 50 epochs)")
    sample = next(iter(trials.values()))
    final, files = sample["final_files"], sample["trial_files"]
    small_tiny = sum(v for k, v in final.items() if k != "best.pt") + sum(files.values())
    print(f"measured tiny trial ({sample['dir'].name}): {_mb(sample['bytes'])} in storage = best.pt {_mb(final.get('best.pt', 0))} "
          f"+ {small_tiny / 1e3:.0f} kB small files; checkpoints kept: {sample['checkpoints']}; files {sorted(final)}")  # fmt: skip
    kept = sample["dir"] / sample["checkpoints"][-1]
    tiny_rows = max(1, len((kept / "predictions.csv").read_text().splitlines()) - 1)
    tiny_attention = max(1, len(json.loads((kept / "attention.json").read_text())))
    per_epoch = sum(files.get(k, 0) for k in ("result.json", "progress.csv")) + final.get("epochs.jsonl", 0)
    real_small = (  # per-image files scaled by rows, per-epoch files by 50 epochs
        final.get("predictions.csv", 0) / tiny_rows * sum(ISIC2017_EVAL.values())
        + final.get("attention.json", 0) / tiny_attention * ISIC2017_EVAL["test"]
        + per_epoch / epochs * 50
        + small_tiny - final.get("predictions.csv", 0) - final.get("attention.json", 0) - per_epoch
    )
    sizes = {name: _serialized_bytes(payloads(name, spec_file)[1]) for name in dict.fromkeys(split_token(t)[0] for t in PAPER_TABLE2)}
    print(f"small files at ISIC 2017 scale ≈ {real_small / 1e3:.0f} kB per trial")
    print(_table(["variant", "best.pt", "per finished trial"],
                 [[t, _mb(sizes[split_token(t)[0]]), _mb(sizes[split_token(t)[0]] + real_small)] for t in PAPER_TABLE2]))
    for spec in ("experiments/lambda_sensitivity.yaml", "experiments/paper_isic2017.yaml"):
        points = load_spec(REPO / spec).points
        total = sum(sizes[split_token(p["variant"])[0]] + real_small for p in points)
        print(f"{spec}: {len(points)} trials -> {_mb(total)}")


# --------------------------------------------------------------------------- part 5


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
        tune.report({"epoch": epoch, "epoch_seconds": sleep, "best_val_auc": 0.5, "done": epoch == len(seconds)})


def floor_sweep(spec_file: Path, storage: Path, epoch_seconds: dict[str, list[float]], *, with_torch: bool) -> float:
    """Tune fit wall of the spec's sweep with ``_floor_trial`` in place of the real trainable:
    the product's Tuner (same grid, concurrency, resources, checkpoint and actor settings)."""
    import ray

    from orchestrator.cli.reporting import sweep_reporting
    from orchestrator.sweep.spec import load_spec
    from orchestrator.sweep.tune import build_tuner, connect

    spec = load_spec(spec_file, overrides=[f"name=floor-{'torch' if with_torch else 'bare'}", f"storage={storage}"])
    started_ray = connect(None)
    try:
        tuner = build_tuner(spec, trainable=_floor_trial, extra_params={"epoch_seconds": epoch_seconds,
                                                                         "with_torch": with_torch},
                            reporting=sweep_reporting())  # fmt: skip
        started = time.time()
        results = tuner.fit()
        wall = time.time() - started
    finally:
        if started_ray:
            ray.shutdown()
    if results.errors:
        raise RuntimeError(f"floor sweep: {len(results.errors)} trials errored: {results.errors[0]}")
    return wall


def report_floor(spec_file: Path, storage: Path, trials: dict[str, dict[str, Any]] | None, n: int, epochs: int) -> None:
    """Part 5: the stand-in sweeps' Tune fit walls against the same ideal as part 3's."""
    if trials:
        seconds, source = {str(t["seed"]): t["epoch_seconds"] for t in trials.values()}, "part 3's measured epoch seconds"
    else:
        seconds, source = {str(seed): [GPU_EPOCH_S] * epochs for seed in range(n)}, f"{GPU_EPOCH_S:g} s epochs"
    ideal = sum(sum(s) for s in seconds.values()) / 2
    print(f"\n## 5. The floor: the same {len(seconds)} trials and Tune settings, a stand-in trainable sleeping {source}")
    for with_torch, label in ((False, "sleeps only (Ray Tune's own cost)"),
                              (True, "imports attnmel.train and builds one SGD optimiser first, then sleeps (+ PyTorch's)")):
        wall = floor_sweep(spec_file, storage, seconds, with_torch=with_torch)
        print(f"stand-in that {label}: Tune fit wall {wall:.1f} s vs ideal {ideal:.1f} s "
              f"({100 * (wall / ideal - 1):.0f} % over; {_load()} after)")


# --------------------------------------------------------------------------- main


def many(n: int, root: Path, workdir: Path) -> None:
    print(f"\n## 4. `attnmel sweep run` of {n} one-epoch VGG-16-GAP trials (8 train images, 32 px), 2 at a time")
    train = {"data": {"image_size": 40, "crop_size": 32, "passes": 1, "max_train": 8, "max_eval": 8},
             "model": {"weights": "none"}, "optim": {"epochs": 1, "batch_size": 8}, "runtime": {"eval_batch_size": 16}}  # fmt: skip
    spec_file = write_spec(workdir / "many.yaml", name="many", root=root, storage=workdir / "results",
                           train=train, grid={"variants": ["vgg16_gap"], "seeds": list(range(n))})  # fmt: skip
    warm_cache(spec_file)
    run = run_sweep(spec_file, workdir / "many.log", sample_rss=True)
    trials = read_trials(workdir / "results" / "many")
    o = overhead_numbers(run, trials, 2)
    print_overhead(f"many ({_load()} after)", o)
    order = sorted((ev["started"], tid) for tid, ev in o["events"].items() if tid in o["driver"])
    ends = sorted(ev["finished"] for ev in o["events"].values() if "finished" in ev)
    rows = []
    for label, chunk in (("first 20", order[:20]), ("last 20", order[-20:])):
        ids = [tid for _, tid in chunk]
        span = chunk[-1][0] - chunk[0][0]
        rows.append([label, f"{_median([o['driver'][t] for t in ids]):.2f}", f"{_median([o['worker'][t] for t in ids]):.2f}",
                     f"{span / (len(ids) - 1):.2f}", f"{_median([sum(trials[t]['epoch_seconds']) for t in ids]):.2f}"])  # fmt: skip
    print(_table(["trials (by start)", "outside epochs, driver view s", "worker view s", "s between starts", "epoch s"], rows))
    if run.rss and ends:
        def rss_at(t: float) -> int:
            return max((b for s, b in run.rss if s <= t), default=run.rss[0][1])

        marks = [(f"after {i} trials", ends[i - 1]) for i in (1, 20, len(ends) // 2, len(ends)) if 0 < i <= len(ends)]
        print("driver RSS (VmRSS of the `attnmel sweep run` process, sampled every 0.5 s): "
              + ", ".join(f"{label} {_mb(rss_at(t))}" for label, t in marks) + f", max {_mb(max(b for _, b in run.rss))}")
    print(f"storage: {_mb(sum(t['bytes'] for t in trials.values()))} for {len(trials)} trials "
          f"({_mb(_median([t['bytes'] for t in trials.values()]))} per trial)")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", nargs="*", default=["checkpoint", "storage", "overhead", "floor"],
                        choices=["checkpoint", "storage", "overhead", "floor"], help="parts 1-3 and 5 to run (default: all)")  # fmt: skip
    parser.add_argument("--many", type=int, default=0, metavar="N", help="part 4 with N trials (40+)")
    parser.add_argument("--trials", type=int, default=8, help="trials of the overhead sweep")
    parser.add_argument("--epochs", type=int, default=5, help="epochs of the overhead sweep's trials")
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
    os.environ["ATTNMEL_CACHE"] = str(workdir / "cache")  # inherited by the sweeps' workers
    print(f"workdir {workdir}; {os.cpu_count()} CPUs; {_load()}")
    try:
        from attnmel.data.synth import write_synthetic

        root = workdir / "isic2017"
        if not root.exists():  # = attnmel data synth --dataset isic2017 --n-train 32 --n-val 16 --n-test 16 --size 64
            write_synthetic("isic2017", root, n_train=32, n_val=16, n_test=16, size=64)
        storage = workdir / "results"
        spec_file = write_spec(workdir / "overhead.yaml", name="overhead", root=root, storage=storage,
                               train={**TINY_TRAIN, "optim": {**TINY_TRAIN["optim"], "epochs": args.epochs}},
                               grid={"variants": ["attnmel+lesion"], "seeds": list(range(args.trials))})  # fmt: skip
        warm_cache(spec_file)
        if "checkpoint" in args.parts:
            report_checkpoint({name: measure_checkpoint(variant, spec_file, workdir / "ckpt", args.repeats)
                               for name, variant in (("AttnMel-CNN", "attnmel"), ("VGG-16", "vgg16"))})  # fmt: skip
        trials = None
        if "overhead" in args.parts or "storage" in args.parts:
            print(f"\n## 3. Orchestration overhead: `attnmel sweep run` of {args.trials} tiny trials, 2 at a time")
            run = run_sweep(spec_file, workdir / "overhead.log")
            trials = read_trials(storage / "overhead")
            print_overhead(f"`attnmel sweep run {spec_file.name}` (checkpoint_every {EVERY}; {_load()} after)",
                           overhead_numbers(run, trials, 2))  # fmt: skip
        if "storage" in args.parts and trials:
            report_storage(trials, args.epochs, spec_file)
        if "floor" in args.parts:
            report_floor(spec_file, storage, trials, args.trials, args.epochs)
        if args.many:
            many(args.many, root, workdir)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
