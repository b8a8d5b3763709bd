"""Part "capacity": how many trials fit on the card, measured (issue 34).

For each variant family (VGG-16-GAP, AttnMel-CNN, AttnMel-CNN-Lesion), each dataset size the
README names (ISIC 2017: 2,750 images; ISIC 2019-sized: 33,569, its validation carved from the
training images as ``data.val_fraction`` does) generated in memory at 256² (no files), and
batch 16/32/64: one trial's peak device memory, allocated and reserved, with its data on the
device. Each case runs in a process of its own, as a trial does (a fresh allocator and cuDNN's
autotuning of every shape, which takes memory of its own): training steps through
``attnmel.step.train_step`` on batches ``attnmel.data.train_batch`` draws from the device
tensors, an evaluation pass (``attnmel.evaluation.melanoma_probs``, fp32 at the batch ``fit``
chooses), a copy of the weights on the device (``fit``'s best epoch), then more steps. Then
aggregate training images/s with 1, 2, 4 and 8 trials sharing the card: that many processes,
as Ray runs them, each holding its own data and model, timed together over the same window
after a barrier. From the memory and the card's size: the most
trials that fit in 90 % of it and the ``resources.gpus`` that packs them
(:mod:`attnmel.capacity`, whose estimate is printed beside each measurement), as a table.

Writes ``capacity.json`` (the table preflight reads: ``ATTNMEL_CAPACITY=…/capacity.json``) and
``capacity.md`` into ``--out``. On the CPU (``--cpu-smoke``) nothing is measured in device
memory: the memory columns are null, the table is the estimate's, and no ``capacity.json``.
"""

from __future__ import annotations

import gc
import json
import multiprocessing as mp
import os
import queue
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from attnmel import capacity
from attnmel.atomic import atomic_write
from attnmel.config import RuntimeConfig, TrainConfig, apply_overrides
from attnmel.data import train_batch
from attnmel.evaluation import eval_batch_size, melanoma_probs
from attnmel.models import build_model
from attnmel.model_names import paper_name, split_token
from attnmel.runtime import prepare_model, resolve_precision
from attnmel.step import make_optimizer, train_step
from benchmarks.gpu.capacity_table import fits_table, gib, markdown
from benchmarks.gpu.device import SmiSampler
from benchmarks.gpu.report import error_text, fmt, ratio, say

FAMILIES = ("vgg16_gap", "attnmel", "attnmel+lesion")
DATASETS = {"isic2017": (2000, 150, 600), "isic2019": (20265, 5066, 8238)}  # train, val, test
MASKED = ("isic2017",)  # evaluation splits with lesion masks (on the device in every trial)
BATCHES = (16, 32, 64)
SHARING = (1, 2, 4, 8)
THROUGHPUT = ("isic2017", 32)  # the dataset and batch of the sharing runs
MEAN, STD = (0.7, 0.55, 0.5), (0.15, 0.17, 0.19)
JSON_NAME, TABLE_NAME = "capacity.json", "capacity.md"


@dataclass(frozen=True)
class Sizes:
    """The part's sizes: the real ones on a GPU, toy ones for ``--cpu-smoke``."""

    datasets: dict[str, tuple[int, int, int]]
    batches: tuple[int, ...]
    sharing: tuple[int, ...]
    throughput_families: tuple[str, ...]
    families: tuple[str, ...] = FAMILIES  # of the memory cases
    source: int = 256
    crop: int = 224
    steps: int = 4  # before and after the evaluation pass, each
    eval_batches: int = 2  # per evaluation split
    warmup: int = 5
    window_s: float = 8.0
    chunk: int = 2  # steps between the clock's reads
    parallel: int = 3  # memory cases at a time (each its own process)

    @classmethod
    def for_run(cls, smoke: bool) -> Sizes:
        if not smoke:
            return cls(DATASETS, BATCHES, SHARING, FAMILIES[::-1])
        return cls({"isic2017": (8, 3, 3), "isic2019": (16, 4, 6)}, (4,), (1, 2),
                   ("attnmel+lesion",), ("attnmel+lesion",), source=40, crop=32, steps=1,
                   eval_batches=1, warmup=1, window_s=0.3, chunk=1, parallel=1)


def case_config(family: str, batch: int, sizes: Sizes) -> TrainConfig:
    """The trial config of one case (random weights, the part's sizes)."""
    variant, roi = split_token(family)
    return apply_overrides(TrainConfig(), [
        f"model.variant={variant}", f"data.roi={roi}", "model.weights=none",
        f"data.image_size={sizes.source}", f"data.crop_size={sizes.crop}",
        f"optim.batch_size={batch}"])


def case_shape(family: str, dataset: str, batch: int, sizes: Sizes) -> capacity.TrialShape:
    """The :class:`attnmel.capacity.TrialShape` of one case (what the estimate is given)."""
    variant, roi = split_token(family)
    train, val, test = sizes.datasets[dataset]
    return capacity.TrialShape(variant, roi, batch, train, val + test,
                               val + test if dataset in MASKED else 0, 0, sizes.source, sizes.crop)


def _device_data(shape: capacity.TrialShape, dataset: str, sizes: Sizes, device: torch.device
                 ) -> dict[str, torch.Tensor | None]:
    """The splits as ``fit`` holds them on the device (random pixels, generated there)."""
    gen = torch.Generator(device=device).manual_seed(0)
    s = sizes.source
    train, val, test = sizes.datasets[dataset]

    def u8(n: int, channels: int, high: int = 256) -> torch.Tensor:
        return torch.randint(0, high, (n, channels, s, s), dtype=torch.uint8, device=device,
                             generator=gen)

    masked = dataset in MASKED
    return {
        "train": u8(train, 3), "val": u8(val, 3), "test": u8(test, 3),
        "labels": torch.randint(0, 2, (train,), device=device, generator=gen),
        "eval_labels": torch.randint(0, 2, (val + test,), device=device, generator=gen),
        "rois": u8(train, 1, 2) if shape.roi != "none" else None,
        "val_lesion": u8(val, 1, 2) if masked else None,
        "test_lesion": u8(test, 1, 2) if masked else None,
    }


def _steps(runner, optimizer, data, cfg, precision, n: int, gen: torch.Generator) -> int:
    batch = cfg.optim.batch_size
    for _ in range(n):
        index = torch.randint(0, len(data["train"]), (batch,), device=data["train"].device,
                              generator=gen)
        rois = data["rois"].index_select(0, index) if data["rois"] is not None else None
        images, maps = train_batch(data["train"].index_select(0, index), rois,
                                   crop=cfg.data.crop_size, mean=MEAN, std=STD, generator=gen)
        train_step(runner, optimizer, images, data["labels"].index_select(0, index), maps,
                   loss=cfg.loss, precision=precision)
    return n * batch


def _setup(family: str, dataset: str, batch: int, sizes: Sizes, device: torch.device):
    cfg = case_config(family, batch, sizes)
    shape = case_shape(family, dataset, batch, sizes)
    data = _device_data(shape, dataset, sizes, device)
    torch.manual_seed(0)
    precision, eval_precision = resolve_precision(RuntimeConfig(), device)
    runner = prepare_model(build_model(cfg.model), device, precision, compile=False)
    optimizer = make_optimizer(runner.parameters(), cfg.optim, device)
    return cfg, shape, data, precision, eval_precision, runner, optimizer


def measure_case(family: str, dataset: str, batch: int, sizes: Sizes, device: torch.device
                 ) -> dict[str, Any]:
    """One trial's peak device memory: steps, an evaluation pass, steps, the data included."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    cfg, shape, data, precision, eval_precision, runner, optimizer = _setup(
        family, dataset, batch, sizes, device)
    gen = torch.Generator(device=device).manual_seed(1)
    _steps(runner, optimizer, data, cfg, precision, sizes.steps, gen)
    splits = (len(data["val"]), len(data["test"]))
    size = eval_batch_size(splits)
    for split in ("val", "test"):
        melanoma_probs(runner, data[split][: sizes.eval_batches * size], crop=cfg.data.crop_size,
                       mean=MEAN, std=STD, batch_size=size, precision=eval_precision)
    best = {k: v.detach().clone() for k, v in runner.state_dict().items()}  # as fit keeps it
    _steps(runner, optimizer, data, cfg, precision, sizes.steps, gen)
    on_device = sum(t.nbytes for t in data.values() if t is not None)
    row: dict[str, Any] = {"status": "ok", "family": family,
                           "paper_name": paper_name(*split_token(family)),
                           "dataset": dataset, "images": sum(sizes.datasets[dataset]),
                           "batch_size": batch, "eval_batch_size": size,
                           "precision": shape.precision, "data_bytes": on_device,
                           "max_allocated_bytes": None, "max_reserved_bytes": None}
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        row.update(max_allocated_bytes=torch.cuda.max_memory_allocated(device),
                   max_reserved_bytes=torch.cuda.max_memory_reserved(device))
    from attnmel.checkpoint_sizes import checkpoint_sizes

    row["estimate_bytes"] = capacity.estimate_trial_memory(shape, checkpoint_sizes(cfg).model).total
    row["seconds"] = time.perf_counter() - started
    del runner, optimizer, data, best
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return row


def _guarded_case(case: tuple[str, str, int], sizes: Sizes, device: torch.device) -> dict[str, Any]:
    try:
        return measure_case(*case, sizes, device)
    except Exception as exc:  # one case's failure (out of memory) must not cost the others
        return {"family": case[0], "dataset": case[1], "batch_size": case[2], "status": "error",
                "error": error_text(exc)}


def _memory_worker(case: tuple[str, str, int], sizes: Sizes, device: str, out) -> None:
    out.put(_guarded_case(case, sizes, torch.device(device)))


def _throughput_worker(family: str, sizes: Sizes, device: str, barrier, out) -> None:
    """One of N trials sharing the card: set up and warm up, wait for the others, then train
    for ``window_s`` seconds; what it trained, its pid and peak reserved memory."""
    dev = torch.device(device)
    if dev.type == "cpu":
        torch.set_num_threads(1)
    try:
        dataset, batch = THROUGHPUT
        cfg, _, data, precision, _, runner, optimizer = _setup(family, dataset, batch, sizes, dev)
        gen = torch.Generator(device=dev).manual_seed(1)
        _steps(runner, optimizer, data, cfg, precision, sizes.warmup, gen)
        _sync(dev)
        barrier.wait(timeout=300)
        images, started = 0, time.perf_counter()
        while time.perf_counter() - started < sizes.window_s:
            images += _steps(runner, optimizer, data, cfg, precision, sizes.chunk, gen)
            _sync(dev)
        seconds = time.perf_counter() - started
        reserved = torch.cuda.max_memory_reserved(dev) if dev.type == "cuda" else None
        out.put({"status": "ok", "pid": os.getpid(), "images": images, "seconds": seconds,
                 "images_per_second": images / seconds, "max_reserved_bytes": reserved})
    except Exception as exc:
        barrier.abort()
        out.put({"status": "error", "error": error_text(exc)})


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _collect(procs: list, out, expected: int, deadline: float) -> list[Any]:
    """What the worker processes put on ``out`` until they all ended or the deadline passed
    (then they are terminated)."""
    got: list[Any] = []
    while len(got) < expected and time.monotonic() < deadline:
        try:
            got.append(out.get(timeout=0.5))
        except queue.Empty:
            if not any(p.is_alive() for p in procs) and out.empty():
                break
    for p in procs:
        p.join(timeout=max(0.0, min(10.0, deadline - time.monotonic())))
        if p.is_alive():
            p.terminate()
            p.join(timeout=5)
    return got


def run_memory(cases: list[tuple[str, str, int]], sizes: Sizes, device: torch.device,
               seconds: float) -> list[dict[str, Any]]:
    """Every case in its own process on CUDA (``parallel`` at a time); on the CPU in this one."""
    if device.type != "cuda":
        return [_guarded_case(c, sizes, device) for c in cases]
    ctx, deadline, rows = mp.get_context("spawn"), time.monotonic() + seconds, []
    for start in range(0, len(cases), sizes.parallel):
        if time.monotonic() > deadline - 20:
            rows += [{"family": f, "dataset": d, "batch_size": b, "status": "skipped",
                      "reason": "time budget"} for f, d, b in cases[start:]]
            break
        group, out = cases[start:start + sizes.parallel], ctx.Queue()
        procs = [ctx.Process(target=_memory_worker, args=(c, sizes, str(device), out))
                 for c in group]
        for p in procs:
            p.start()
        got = _collect(procs, out, len(group), deadline)
        rows += got + [{"family": f, "dataset": d, "batch_size": b, "status": "error",
                        "error": "no result (timed out or crashed)"}
                       for f, d, b in group if not any(
                           (r["family"], r["dataset"], r["batch_size"]) == (f, d, b) for r in got)]
        for r in got:
            say(f"   {r['family']:<15} {r['dataset']:<9} batch {r['batch_size']:>3}: "
                + (f"{fmt(gib(r.get('max_allocated_bytes')), '.2f')} GiB allocated, "
                   f"{fmt(gib(r.get('max_reserved_bytes')), '.2f')} reserved "
                   f"(estimate {fmt(gib(r.get('estimate_bytes')), '.2f')} with context)"
                   if "error" not in r else r["error"]))
    return rows


def run_sharing(family: str, n: int, sizes: Sizes, device: torch.device, seconds: float
                ) -> dict[str, Any]:
    """``n`` trial processes training together on the card: aggregate images/s, and each
    process's peak in nvidia-smi (its CUDA context included) beside its peak reserved."""
    ctx = mp.get_context("spawn")
    sampler = SmiSampler() if device.type == "cuda" else None
    barrier, out = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_throughput_worker, args=(family, sizes, str(device), barrier, out))
             for _ in range(n)]
    started = time.monotonic()
    for p in procs:
        p.start()
    got = _collect(procs, out, n, started + seconds)
    smi = sampler.stop() if sampler is not None else {}
    for g in got:
        peak = smi.get("peak_mib_by_pid", {}).get(str(g.get("pid")))
        g["nvidia_smi_peak_bytes"] = int(peak * 2**20) if peak else None
        if peak and g.get("max_reserved_bytes"):
            g["context_bytes"] = g["nvidia_smi_peak_bytes"] - g["max_reserved_bytes"]
    ok = [g for g in got if g.get("status") == "ok"]
    result = {"family": family, "trials": n, "per_trial": got, "nvidia_smi_error": smi.get("error"),
              "wall_seconds": time.monotonic() - started,
              "status": "ok" if len(ok) == n else "error"}
    if ok:
        result["aggregate_images_per_second"] = sum(g["images_per_second"] for g in ok)
    if len(ok) != n:
        result["error"] = "; ".join(g.get("error", "") for g in got if g.get("status") != "ok") \
            or f"{n - len(got)} of {n} processes gave no result"
    return result


def _card(device: torch.device) -> dict[str, Any]:
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return {"name": torch.cuda.get_device_name(device), "memory_bytes": int(props.total_memory),
                "source": "torch.cuda"}
    return {"name": f"an assumed {capacity.DEFAULT_CARD_GIB:g} GiB card (CPU run)",
            "memory_bytes": int(capacity.DEFAULT_CARD_GIB * capacity.GIB), "source": "default"}


def _sharing_runs(part: dict[str, Any], sizes: Sizes, ctx: dict[str, Any]) -> None:
    device, clock, report = ctx["device"], ctx["clock"], ctx["report"]
    for family in sizes.throughput_families:
        one: dict[str, Any] = {}
        for n in sizes.sharing:
            if clock.left() < 25 and not ctx["opts"].smoke:
                part["sharing"].append({"family": family, "trials": n, "status": "skipped",
                                        "reason": "time budget"})
                continue
            try:
                result = run_sharing(family, n, sizes, device, min(clock.left(), 150.0))
            except Exception as exc:
                result = {"family": family, "trials": n, "status": "error",
                          "error": error_text(exc)}
            one = result if n == 1 else one
            result["over_one"] = ratio(result.get("aggregate_images_per_second"),
                                       one.get("aggregate_images_per_second"))
            part["sharing"].append(result)
            say(f"   {family} × {n}: {fmt(result.get('aggregate_images_per_second'), '.0f')} "
                f"img/s (×{fmt(result['over_one'], '.2f')} one) {result.get('error', '')}")
            report.save()


def measured_table(part: dict[str, Any], sizes: Sizes) -> capacity.MeasuredTable | None:
    """``capacity.json``'s table from the measured cases (None on the CPU: nothing measured)."""
    rows = tuple(
        capacity.MeasuredTrial(case_shape(r["family"], r["dataset"], r["batch_size"], sizes).family,
                               r["batch_size"], r["precision"], sizes.crop, r["images"],
                               r["data_bytes"], r["max_allocated_bytes"], r["max_reserved_bytes"])
        for r in part["memory"] if r.get("max_reserved_bytes"))
    if not rows:
        return None
    card = part["card"]
    return capacity.MeasuredTable(card["name"], card["memory_bytes"], part["context_bytes"], rows)


def run(ctx: dict[str, Any]) -> dict[str, Any]:
    """The part: the memory cases, the sharing runs, the table; the report grows as it goes."""
    opts, device, report, clock = ctx["opts"], ctx["device"], ctx["report"], ctx["clock"]
    sizes = Sizes.for_run(opts.smoke)
    card = _card(device)
    part: dict[str, Any] = {"status": "running", "card": card, "memory": [], "sharing": [],
                            "memory_measured": device.type == "cuda",
                            "config": {"families": list(sizes.families), "datasets": sizes.datasets,
                                       "batches": list(sizes.batches), "source": sizes.source,
                                       "crop": sizes.crop, "sharing": list(sizes.sharing),
                                       "throughput": list(THROUGHPUT)}}
    report.parts["capacity"] = part
    cases = [(f, d, b) for f in sizes.families for d in sizes.datasets for b in sizes.batches]
    say(f"\n== capacity: {len(cases)} memory cases on {card['name']}, then "
        f"{'/'.join(map(str, sizes.sharing))} trials sharing it")
    # the default batch first, then the largest, so a cut budget loses the least used cases;
    # the table keeps the order above
    first = sorted(cases, key=lambda c: (c[2] != 32, -c[2]))
    rows = run_memory(first, sizes, device, 0.45 * clock.left())
    part["memory"] = sorted(rows, key=lambda r: cases.index(
        (r["family"], r["dataset"], r["batch_size"])))
    report.save()
    _sharing_runs(part, sizes, ctx)
    # nvidia-smi's peak of a trial alone on the card minus its peak reserved: the CUDA context
    alone = [t for s in part["sharing"] if s["trials"] == 1 for t in s.get("per_trial", [])]
    contexts = [t["context_bytes"] for t in alone if (t.get("context_bytes") or 0) > 0]
    part["context_bytes"] = max(contexts) if contexts else None
    part["fits"] = fits_table(part["memory"], card["memory_bytes"], part["context_bytes"])
    out = Path(report.path).parent
    text = markdown(part)
    atomic_write(out / TABLE_NAME, text)
    say(text)
    table = measured_table(part, sizes)
    if table is not None:
        atomic_write(out / JSON_NAME, json.dumps(table.to_dict(), indent=2) + "\n")
        part["capacity_json"] = str(out / JSON_NAME)
    states = [r.get("status") for r in part["memory"]] + [s["status"] for s in part["sharing"]]
    if all(s in ("ok", "skipped") for s in states):
        part["status"] = "ok"
    else:
        part["status"] = "partial" if "ok" in states else "error"
    return part
