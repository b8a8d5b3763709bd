"""Part "trial": one ``attnmel train`` run of AttnMel-CNN-Lesion on the real data with the
project's defaults, long enough (5 epochs) to project a 50-epoch trial from its steady epochs,
and the start-up before its first training step."""

from __future__ import annotations

import re
import statistics
import time
from typing import Any

from attnmel.checkpoint import read_epochs
from attnmel.config import TrainConfig, apply_overrides
from attnmel.data import load_bundle
from benchmarks.gpu.report import fmt, say
from benchmarks.timed_command import attnmel, run_command

_EPOCH_LINE = re.compile(r"^epoch\s+(\d+)/")


def overrides(opts: Any, *, epochs: int) -> list[str]:
    """The ``--set`` values of the real-data runs: AttnMel-CNN-Lesion from random weights."""
    sets = {"data.root": str(opts.data), "data.roi": "lesion", "model.weights": "none", "optim.epochs": epochs,
            "runtime.device": opts.device, "data.image_size": opts.source, "data.crop_size": opts.size,
            "optim.batch_size": opts.batch, "runtime.checkpoint_every": epochs, **opts.train_limits}  # fmt: skip
    return [f"{k}={v}" for k, v in sets.items()]


def run(ctx: dict[str, Any]) -> dict[str, Any]:
    opts, clock, work = ctx["opts"], ctx["clock"], ctx["work"]
    sets = overrides(opts, epochs=opts.trial_epochs)
    argv = attnmel("train", *[x for s in sets for x in ("--set", s)], "--out", str(work / "trial"))
    say(f"\n== trial: attnmel train, AttnMel-CNN-Lesion, {opts.trial_epochs} epochs on {opts.data}")
    started = time.perf_counter()
    load_bundle(apply_overrides(TrainConfig(), sets).data)  # the preprocessing cache, built once per node
    cache_seconds = time.perf_counter() - started
    say(f"   data cache ready in {cache_seconds:.1f} s (built once; the timed runs read it)")
    done = run_command(argv, work / "trial.log", timeout=clock.left())
    part: dict[str, Any] = {"command": " ".join(argv[2:]), "rc": done.rc, "wall_seconds": done.wall,
                            "data_cache_seconds": cache_seconds}  # fmt: skip
    if done.rc != 0:
        part.update(status="error", error=("timed out" if done.rc is None else f"exit {done.rc}") + ": "
                    + " | ".join(done.tail(6)))  # fmt: skip
        return part
    rows = read_epochs(work / "trial")
    ends = {int(m[1]): t for t, line in done.lines if (m := _EPOCH_LINE.match(line))}
    seconds = [r["epoch_seconds"] for r in rows]
    first_start = ends[1] - seconds[0]  # an epoch's line is printed when it ended
    steady = statistics.median(seconds[1:]) if len(seconds) > 1 else seconds[0]
    startup = first_start - done.started
    part.update(
        status="ok",
        epoch_seconds=seconds,
        images_per_second=[r["images_per_second"] for r in rows],
        startup_seconds=startup,  # command start → first training step (interpreter start included)
        after_last_epoch_seconds=done.ended - ends[max(ends)],  # final scoring, best.pt, exit
        steady_epoch_seconds=steady,
        projected_trial_50_epochs_seconds=startup + seconds[0] + 49 * steady + (done.ended - ends[max(ends)]),
        val_auc=[r["val_auc"] for r in rows],
    )
    say(f"   start-up {startup:.1f} s; epochs {', '.join(fmt(s) for s in seconds)} s "
        f"({fmt(statistics.median(part['images_per_second'][1:] or part['images_per_second']), '.0f')} img/s steady); "
        f"after the last epoch {part['after_last_epoch_seconds']:.1f} s → 50 epochs "
        f"{part['projected_trial_50_epochs_seconds']:.0f} s")
    return part
