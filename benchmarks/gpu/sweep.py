"""Part "sweep": a real ``attnmel sweep run`` under Ray Tune on the ISIC 2017 copy, the same 8
AttnMel-CNN-Lesion trials (4 seeds × 2 λ1) twice: four trials sharing the GPU
(``resources.gpus: 0.25``), then one at a time (``gpus: 1``). Per phase: aggregate training
images/s, every trial TERMINATED, the four tables written, peak GPU memory per trial (nvidia-smi
by worker process), GPU utilisation sampled during the sweep, and the time before the first epoch."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import yaml

from attnmel.data import EpochSampler, load_bundle
from benchmarks.gpu.device import SmiSampler
from benchmarks.gpu.report import error_text, fmt, ratio, say
from benchmarks.timed_command import attnmel, child_env, run_command, sweep_events
from orchestrator.layout import folders
from orchestrator.layout.params import trial_config
from orchestrator.layout.status import TrialStatus
from orchestrator.results.build import load_tables
from orchestrator.results.tables import FILES
from orchestrator.sweep.spec import load_spec

LAMBDA1 = (0.001, 0.01)  # the paper's λ1 and ten times it (λ2 stays the paper's)


def write_spec(path: Path, opts: Any, *, name: str, gpus: float, cpus: float, storage: Path) -> Path:
    """The sweep of one phase as a spec file (what a user would write)."""
    raw = {
        "name": name,
        "dataset": {"name": "isic2017", "root": str(opts.data)},
        "train": {"data": {"image_size": opts.source, "crop_size": opts.size, "passes": opts.sweep_passes,
                           **opts.sweep_data_limits},
                  "model": {"weights": "none"}, "optim": {"epochs": opts.sweep_epochs, "batch_size": opts.batch},
                  "runtime": {"checkpoint_every": opts.sweep_epochs}},
        "grid": {"variants": ["attnmel+lesion"], "seeds": list(range(opts.sweep_seeds)), "lambda1": list(LAMBDA1)},
        "resources": {"cpus": cpus, "gpus": gpus},
        "storage": str(storage),
        "retries": 0,
    }  # fmt: skip
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def images_per_epoch(spec_file: Path) -> int:
    """Training images one epoch of the spec's trials draws (the sampler ``fit`` uses); it also
    fills the preprocessing cache, so no timed phase pays for decoding."""
    spec = load_spec(spec_file)
    cfg = trial_config(spec.train, spec.points[0])
    bundle = load_bundle(cfg.data)
    sampler = EpochSampler(bundle.train.labels.tolist(), oversample=cfg.data.oversample, passes=cfg.data.resolved_passes())
    return len(sampler.epoch_indices(1))


def _trial_pids(sweep_dir: Path) -> dict[str, int]:
    """Trial id → the pid of the worker that reported its last result (Tune's ``pid`` field)."""
    pids = {}
    for trial_dir in folders.trial_dirs(sweep_dir):
        lines = (trial_dir / folders.RESULTS).read_text().splitlines() if (trial_dir / folders.RESULTS).exists() else []
        if lines:
            last = json.loads(lines[-1])
            pids[str(last["trial_id"])] = int(last["pid"])
    return pids


def run_phase(work: Path, name: str, gpus: float, cpus: float, per_epoch: int, spec_file: Path, timeout: float
              ) -> dict[str, Any]:  # fmt: skip
    """One ``attnmel sweep run`` with nvidia-smi sampled meanwhile, and what its tables and
    progress lines say."""
    sampler = SmiSampler()
    done = run_command(attnmel("sweep", "run", str(spec_file)), work / f"sweep-{name}.log", timeout=timeout,
                       env=child_env(RAY_ADDRESS=""))  # fmt: skip
    smi = sampler.stop()
    out: dict[str, Any] = {"resources": {"gpus": gpus, "cpus": cpus}, "rc": done.rc, "command_wall_seconds": done.wall,
                           "log_tail": done.tail(8)}  # fmt: skip
    spec = load_spec(spec_file)
    sweep_dir = Path(spec.storage) / spec.name
    events = sweep_events(done)
    out["tables_written"] = sorted(f for f in FILES.values() if (sweep_dir / f).exists())
    try:
        trials, epochs, _, _ = load_tables(sweep_dir)
    except Exception as exc:
        out.update(status="error", error=f"tables: {error_text(exc)}; " + " | ".join(done.tail(4)))
        return out
    statuses = trials.set_index("trial_id")["status"].to_dict()
    pids = _trial_pids(sweep_dir)
    per_trial, first_epochs = {}, []
    for trial_id, ev in events["trials"].items():
        rows = epochs[epochs["trial_id"] == trial_id].sort_values("epoch")
        before = None
        if "started" in ev and "epoch 1" in ev and len(rows):  # an epoch's line comes when it ended
            first_epochs.append(ev["epoch 1"] - rows["epoch_seconds"].iloc[0])
            before = first_epochs[-1] - ev["started"]
        per_trial[trial_id] = {
            "status": statuses.get(trial_id), "epochs": len(rows), "before_first_epoch_seconds": before,
            "epoch_seconds": rows["epoch_seconds"].tolist(), "images_per_second": rows["images_per_second"].tolist(),
            "pid": pids.get(trial_id),
            "peak_gpu_memory_mib": smi["peak_mib_by_pid"].get(str(pids.get(trial_id))),
        }  # fmt: skip
    images = per_epoch * int(len(epochs))
    befores = [t["before_first_epoch_seconds"] for t in per_trial.values() if t["before_first_epoch_seconds"] is not None]
    out.update(
        trials=len(trials),
        all_terminated=bool(len(trials)) and all(s == TrialStatus.TERMINATED for s in statuses.values()),
        statuses=sorted(set(statuses.values())),
        training_images=images,
        sweep_wall_seconds=events["sweep_wall"],
        aggregate_images_per_second=ratio(images, events["sweep_wall"]),
        aggregate_images_per_second_command=ratio(images, done.wall),
        startup_to_storage_line_seconds=(events["storage_line"] - done.started) if events["storage_line"] else None,
        command_to_first_epoch_seconds=min(first_epochs) - done.started if first_epochs else None,
        median_before_first_epoch_seconds=statistics.median(befores) if befores else None,
        peak_gpu_memory_mib_max=max((t["peak_gpu_memory_mib"] or 0 for t in per_trial.values()), default=None) or None,
        nvidia_smi=smi,
        per_trial=per_trial,
    )
    out["status"] = "ok" if done.rc == 0 and out["all_terminated"] and len(out["tables_written"]) == len(FILES) else "error"
    if out["status"] == "error":
        out["error"] = f"rc {done.rc}, statuses {out['statuses']}, tables {out['tables_written']}: " + " | ".join(done.tail(4))
    return out


def run(ctx: dict[str, Any]) -> dict[str, Any]:
    opts, report, work = ctx["opts"], ctx["report"], ctx["work"]
    phases = opts.sweep_phases  # (name, gpus, cpus per trial)
    part: dict[str, Any] = {"status": "running", "config": {
        "variant": "attnmel+lesion", "seeds": opts.sweep_seeds, "lambda1": list(LAMBDA1), "epochs": opts.sweep_epochs,
        "passes": opts.sweep_passes, "size": opts.size, "phases": [list(p) for p in phases]}, "phases": {}}
    report.parts["sweep"] = part
    storage = work / "sweeps"
    specs = {name: write_spec(work / f"sweep-{name}.yaml", opts, name=f"gpu-check-{name}", gpus=gpus, cpus=c,
                              storage=storage) for name, gpus, c in phases}  # fmt: skip
    per_epoch = images_per_epoch(next(iter(specs.values())))
    part["images_per_epoch"] = per_epoch
    say(f"\n== sweep: attnmel sweep run, {opts.sweep_seeds} seeds × {len(LAMBDA1)} λ1 AttnMel-CNN-Lesion, "
        f"{opts.sweep_epochs} epochs of {per_epoch} images, phases {', '.join(f'{n} (gpus {g})' for n, g, _ in phases)}")
    for i, (name, gpus, c) in enumerate(phases):
        try:  # the time left shared by the phases still to run
            result = run_phase(work, name, gpus, c, per_epoch, specs[name], ctx["clock"].left() / (len(phases) - i))
        except Exception as exc:
            result = {"status": "error", "error": error_text(exc)}
        part["phases"][name] = result
        report.save()
        smi = result.get("nvidia_smi") or {}
        say(f"   {name}: {result['status']}; {result.get('trials')} trials {result.get('statuses')}, tables "
            f"{len(result.get('tables_written', []))}/{len(FILES)}; aggregate {fmt(result.get('aggregate_images_per_second'), '.0f')}"
            f" img/s over Tune's {fmt(result.get('sweep_wall_seconds'), '.0f')} s ({fmt(result.get('aggregate_images_per_second_command'), '.0f')}"
            f" over the command's {fmt(result.get('command_wall_seconds'), '.0f')} s); first epoch after "
            f"{fmt(result.get('command_to_first_epoch_seconds'))} s, median trial start → first epoch "
            f"{fmt(result.get('median_before_first_epoch_seconds'))} s; GPU util mean {fmt(smi.get('utilisation_mean_percent'), '.0f')} %, "
            f"peak memory per trial {fmt(result.get('peak_gpu_memory_mib_max'), '.0f')} MiB"
            + (f"; {result['error']}" if result.get("error") else ""))
    names = [n for n, _, _ in phases]
    part["packed_over_alone"] = ratio(*(part["phases"].get(n, {}).get("aggregate_images_per_second") for n in names[:2]))
    part["status"] = "ok" if all(p.get("status") == "ok" for p in part["phases"].values()) else "error"
    say(f"   packed / alone aggregate images/s: {fmt(part['packed_over_alone'], '.2f')}")
    return part
