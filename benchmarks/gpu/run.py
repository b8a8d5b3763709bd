"""The driver of ``python -m benchmarks.gpu``: options, input checks, the parts (each guarded and
time-boxed), the targets of issue 21 and the summary printed last."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib.util
import os
import shutil
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from attnmel.errors import UserError
from benchmarks.gpu import DEFAULT_PARTS, PARTS
from benchmarks.gpu.device import environment
from benchmarks.gpu.report import REPORT_NAME, Report, error_text, finite, fmt, say

# Each part's share of the default 470 s (an H200 run within 8 minutes, start-up included);
# the clock also caps every part at what the whole run has left.
PART_BUDGET_S = {"step": 100.0, "trial": 60.0, "sweep": 260.0, "cuda_tests": 40.0, "capacity": 400.0}
TARGETS = {  # issue 21, on an H200
    "step_images_per_second": (">=", 2600.0),
    "trial_50_epochs_seconds": ("<=", 150.0),
    "startup_seconds": ("<=", 8.0),
    "sweep_packed_over_alone": (">=", 1.3),
}


@dataclass
class Options:
    """Sizes and limits of one run: the real check on a GPU, or ``--cpu-smoke``'s toy sizes."""

    data: Path
    device: str
    smoke: bool
    size: int = 224
    source: int = 256
    batch: int = 32
    warmup: int = 5
    min_seconds: float = 2.0
    min_steps: int = 20
    max_steps: int = 400
    chunk: int = 5
    fold_size: int = 64
    eval_divisor: int = 1  # ISIC 2017's evaluation splits divided by this
    profile_steps: int = 10
    trial_epochs: int = 5
    train_limits: dict[str, Any] = field(default_factory=dict)  # extra `attnmel train --set` values
    sweep_epochs: int = 3
    sweep_passes: int = 1
    sweep_seeds: int = 4
    sweep_data_limits: dict[str, Any] = field(default_factory=dict)
    sweep_phases: tuple[tuple[str, float, float], ...] = ()  # (name, gpus, cpus) per trial
    compile_backend: str = "inductor"

    @classmethod
    def for_run(cls, data: Path, device: str, smoke: bool) -> Options:
        cpus = os.cpu_count() or 1
        if not smoke:
            share = max(1, cpus // 4)
            return cls(data, device, smoke, sweep_phases=(("packed", 0.25, share), ("alone", 1.0, share)))
        limits = {"max_train": 8, "max_eval": 8}
        return cls(
            data, device, smoke, size=32, source=40, batch=4, warmup=1, min_seconds=0.0, min_steps=1, max_steps=2,
            chunk=1, fold_size=32, eval_divisor=10, profile_steps=1, trial_epochs=2,
            train_limits={**{f"data.{k}": v for k, v in limits.items()}, "data.passes": 1}, sweep_epochs=1,
            sweep_seeds=1, sweep_data_limits=limits, sweep_phases=(("packed", 0.0, cpus / 4), ("alone", 0.0, cpus)),
            compile_backend="eager (--cpu-smoke)",
        )  # fmt: skip

    def compile_stance(self) -> contextlib.AbstractContextManager:
        """Inductor on a GPU; the smoke run traces with dynamo but skips code generation, which
        takes minutes on a CPU."""
        if self.smoke:
            return torch.compiler.set_stance("default", force_backend="eager")
        return contextlib.nullcontext()


class Clock:
    """Seconds left of the whole run and of the part in progress."""

    def __init__(self, total_s: float) -> None:
        self.start, self.total, self.part_end = time.perf_counter(), total_s, float("inf")

    def left(self) -> float:
        return max(0.0, min(self.start + self.total, self.part_end) - time.perf_counter())

    def begin_part(self, budget_s: float) -> None:
        self.part_end = time.perf_counter() + budget_s


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu", description="The GPU check of issue 21.")
    parser.add_argument("--data", type=Path, required=True, help="ISIC 2017 root in the official layout")
    parser.add_argument("--out", type=Path, required=True, help=f"folder for {REPORT_NAME}")
    parser.add_argument("--device", default=None, help="cuda (default when available) | cuda:N | cpu")
    parser.add_argument("--cpu-smoke", action="store_true", help="every part at toy sizes on the CPU")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=None,
                        help=f"parts to run (default: {' '.join(DEFAULT_PARTS)}; --cpu-smoke: all)")
    parser.add_argument("--budget-s", type=float, default=None,
                        help="whole-run budget; default 470 (--cpu-smoke: 3600, a hang guard only)")  # fmt: skip
    parser.add_argument("--work", type=Path, default=None, help="scratch folder for runs (default: a temp dir)")
    parser.add_argument("--keep-work", action="store_true", help="keep the scratch folder")
    args = parser.parse_args(argv)
    args.device = args.device or ("cpu" if args.cpu_smoke or not torch.cuda.is_available() else "cuda")
    args.budget_s = args.budget_s or (3600.0 if args.cpu_smoke else 470.0)
    args.parts = args.parts or list(PARTS if args.cpu_smoke else DEFAULT_PARTS)
    return args


def check_inputs(args: argparse.Namespace) -> torch.device:
    """Refuse bad input before any work: the data layout and the device."""
    from attnmel.data import load_splits

    if not args.data.is_dir():
        raise UserError(f"--data {args.data}: no such folder")
    load_splits("isic2017", args.data)  # names the first problem
    try:
        device = torch.device(args.device)
    except RuntimeError:
        raise UserError(f"--device {args.device}: choose cuda, cuda:N or cpu") from None
    if device.type not in ("cuda", "cpu"):
        raise UserError(f"--device {args.device}: choose cuda, cuda:N or cpu")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {args.device}: CUDA is not available here")
    if args.cpu_smoke and device.type != "cpu":
        raise UserError("--cpu-smoke runs on the CPU; leave out --device")
    return device


def targets(report: Report) -> list[dict[str, Any]]:
    """Issue 21's targets with the measured value and whether it was met (None: not measured,
    or not a full GPU run)."""
    parts = report.parts
    values = {
        "step_images_per_second": parts.get("step", {}).get("default_images_per_second"),
        "trial_50_epochs_seconds": parts.get("trial", {}).get("projected_trial_50_epochs_seconds"),
        "startup_seconds": parts.get("trial", {}).get("startup_seconds"),
        "sweep_packed_over_alone": parts.get("sweep", {}).get("packed_over_alone"),
    }
    judged = report.data["device"] == "cuda" and not report.data["cpu_smoke"]
    rows = []
    for name, (op, bound) in TARGETS.items():
        value = values[name]
        met = None if not (judged and finite(value)) else (value >= bound if op == ">=" else value <= bound)
        rows.append({"name": name, "value": value, "target": f"{op} {bound:g}", "met": met})
    return rows


def print_summary(report: Report) -> None:
    """The side-by-side step table, one line per other part, the targets (the device tool
    returns the output's tail, so this comes last)."""
    env, parts = report.data["environment"], report.parts
    say("\n" + "=" * 100)
    say(f"GPU CHECK SUMMARY  {env.get('device_name')}  torch {env.get('torch')}  ray {env.get('ray')}  "
        f"{report.data.get('finished')}  ({report.data.get('seconds', 0):.0f} s"
        f"{', --cpu-smoke' if report.data['cpu_smoke'] else ''})")
    step = parts.get("step", {})
    for name, row in (step.get("rows") or {}).items():
        say(f"step {name:<15} {fmt(row.get('images_per_second'), '.0f'):>7} img/s  {fmt(row.get('ms_per_step'), '.2f'):>6} ms"
            f"  ×{fmt(row.get('over_previous'), '.3f')} vs before  ×{fmt(row.get('over_biased'), '.3f')} vs biased"
            f"  first step {fmt(row.get('first_step_seconds'))} s" + (f"  {row.get('error')}" if row.get("error") else ""))
    for name, check in (step.get("checks") or {}).items():
        say(f"check {name}: {check.get('status')} "
            + ", ".join(f"{k} {fmt(v, '.3g')}" for k, v in check.items() if isinstance(v, float)))
    ev = step.get("eval") or {}
    if ev.get("status") in ("ok", "error") and "every_padded_seconds_per_epoch" in ev:
        say(f"eval per epoch: padded {ev['padded_batch']} {ev['every_padded_seconds_per_epoch']:.3f} s, dividing "
            f"{ev['dividing_batch']} {ev['every_dividing_seconds_per_epoch']:.3f} s, eval_test best "
            f"{ev['best_dividing_seconds_per_epoch']:.3f} s")
    prof = step.get("profile") or {}
    if prof.get("families_ms_per_step"):
        say("kernels ms/step: " + ", ".join(f"{k} {v:.2f}" for k, v in prof["families_ms_per_step"].items())
            + f" (GPU busy {fmt(prof.get('gpu_busy_fraction'), '.0%')})")
    trial = parts.get("trial", {})
    say(f"trial: {trial.get('status')} start-up {fmt(trial.get('startup_seconds'))} s, epochs "
        f"{', '.join(fmt(s) for s in trial.get('epoch_seconds', []))} s → 50 epochs "
        f"{fmt(trial.get('projected_trial_50_epochs_seconds'), '.0f')} s {trial.get('error') or trial.get('reason') or ''}")
    for name, phase in (parts.get("sweep", {}).get("phases") or {}).items():
        smi = phase.get("nvidia_smi") or {}
        say(f"sweep {name}: {phase.get('status')} {phase.get('trials')} trials {phase.get('statuses')}, "
            f"{len(phase.get('tables_written', []))} tables, {fmt(phase.get('aggregate_images_per_second'), '.0f')} img/s, "
            f"first epoch after {fmt(phase.get('command_to_first_epoch_seconds'))} s, GPU util "
            f"{fmt(smi.get('utilisation_mean_percent'), '.0f')} %, peak/trial {fmt(phase.get('peak_gpu_memory_mib_max'), '.0f')} MiB")
    tests = parts.get("cuda_tests", {})
    say(f"cuda_tests: {tests.get('status')} {tests.get('passed', 0)} passed, {tests.get('failed', 0)} failed, "
        f"{tests.get('skipped', 0)} skipped {tests.get('reason') or ''}")
    cap = parts.get("capacity", {})
    fits = {(f["paper_name"], f["dataset"], f["batch_size"]): f for f in cap.get("fits", [])}
    say(f"capacity: {cap.get('status')} {cap.get('reason') or cap.get('error') or ''}" + "; ".join(
        f" {name} {ds} b{b}: {f['trials_per_card']} per card (gpus {fmt(f['gpus'], 'g')}, {f['source']})"
        for (name, ds, b), f in fits.items() if b == 32)
        + "".join(f"; ×{s['trials']} {fmt(s.get('aggregate_images_per_second'), '.0f')} img/s"
                  for s in cap.get("sharing", [])[:4]))
    say("targets (issue 21, H200): " + "; ".join(
        f"{t['name']} {fmt(t['value'], '.4g')} {t['target']} {'MET' if t['met'] else ('not met' if t['met'] is False else 'n/a')}"
        for t in report.data["targets"]))
    say(f"json: {report.path}")


def _runner(name: str):
    return importlib.import_module(f"benchmarks.gpu.{name}").run  # only the parts asked for


def main(argv: list[str] | None = None) -> int:
    """Run the parts asked for, each guarded and time-boxed; exit 1 when one failed."""
    args = parse_args(argv)
    try:
        device = check_inputs(args)
    except UserError as exc:
        print(f"gpu_check: error: {exc}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    work = args.work or Path(tempfile.mkdtemp(prefix="gpu-check-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("ATTNMEL_CACHE", str(work / "cache"))  # the trials and sweeps share it
    if device.type == "cuda":
        torch.cuda.set_device(device)
    opts = Options.for_run(args.data.resolve(), args.device, args.cpu_smoke)
    env = environment(device)
    report = Report(args.out, {
        "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "argv": sys.argv[1:] if argv is None else argv,
        "parts_asked": list(args.parts), "cpu_smoke": args.cpu_smoke, "device": device.type, "environment": env,
        "parts": {name: {"status": "pending"} for name in PARTS},
    })  # fmt: skip
    clock = Clock(args.budget_s)
    ctx = {"opts": opts, "device": device, "clock": clock, "env": env, "work": work, "report": report}
    say(f"gpu_check: {env['device_name']}, torch {env['torch']}, ray {env['ray']}, budget {args.budget_s:.0f} s, work {work}")
    for name in PARTS:
        started = time.perf_counter()
        clock.begin_part(args.budget_s if args.cpu_smoke else PART_BUDGET_S[name])
        if name not in args.parts:
            report.parts[name] = {"status": "skipped", "reason": "not in --parts"}
        elif name == "sweep" and importlib.util.find_spec("ray") is None:
            report.parts[name] = {"status": "skipped", "reason": "Ray is not importable (source .device/activate.sh)"}
        elif clock.left() < 5:
            report.parts[name] = {"status": "skipped", "reason": "time budget"}
        else:
            report.parts[name] = {"status": "running"}
            try:
                report.parts[name] = _runner(name)(ctx)
            except Exception as exc:  # guarded: record it, go on with the next part
                report.parts[name] = {**report.parts[name], "status": "error", "error": error_text(exc),
                                      "traceback": traceback.format_exc()[-4000:]}  # fmt: skip
                say(f"   {name} failed: {error_text(exc)}")
        report.parts[name]["seconds"] = time.perf_counter() - started
        if device.type == "cuda":
            torch.cuda.empty_cache()
        report.data["targets"] = targets(report)
        report.save()
    report.data.update(finished=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                       seconds=time.perf_counter() - clock.start, targets=targets(report))  # fmt: skip
    report.save()
    print_summary(report)
    if not args.keep_work and args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if any(p.get("status") in ("error", "partial") for p in report.parts.values()) else 0
