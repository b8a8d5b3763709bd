"""One-command device check: training-step speed, augmentation, trials per GPU, a real run, CUDA tests.

Needs no Ray and no network; writes ``OUT/gpu_check.json`` (rewritten after every part, so a
run cut short still leaves what it measured) and prints a readable table as it goes, the
summary last.

1. step      images/s of one training step (forward, focal + Dice loss, backward, SGD) per variant
             at 224 px, batch 32: fp32, bf16 autocast, bf16 + channels_last, + torch.compile;
             FLOPs counted with torch.utils.flop_counter on the real model, TFLOP/s, share of
             the card's dense peak;
2. augment   on-device ``train_batch`` samples/s on uint8 256-px batches vs the step's images/s;
3. packing   two ``attnmel train`` processes on one GPU at once vs one alone: images/s, peak memory;
4. real_run  ``attnmel train`` on the given ISIC 2017 copy for 2 epochs (weights none): seconds per
             epoch, 50-epoch and Table-2 (7 variants x 3 seeds) projections, and the best
             checkpoint re-evaluated in fp32 and bf16 (validation AUC difference);
5. cuda_tests ``pytest -m cuda`` on the suite's CUDA-marked test files;
6. compile_run the real run again with ``runtime.compile=true``, in the time left: whole-trial
             seconds per epoch compiled vs eager (recompiles for odd batch sizes included).

Every part is guarded (an error is recorded and the next part runs) and time-boxed. The run
directories and checkpoints go to a scratch folder (``--work``), never into ``--out``.

    PYTHONPATH=. python benchmarks/gpu_check.py --data .data/isic2017 --out results/gpu_check
    python benchmarks/gpu_check.py --data ../shared/isic2017 --out /tmp/gc --device cpu --quick   # CPU smoke
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import datetime as dt
import importlib.util
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a plain script from a checkout (PYTHONPATH=. not needed)
    sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from attnmel.config import LossConfig  # noqa: E402
from attnmel.errors import UserError  # noqa: E402
from attnmel.models.registry import PAPER_TABLE2, split_token  # noqa: E402

SCHEMA = 1
REPORT_NAME = "gpu_check.json"
TRAIN_MARK = "GPU_CHECK_TRAIN "  # prefix of the JSON line the training wrapper prints last
PARTS = ("step", "augment", "packing", "real_run", "cuda_tests", "compile_run", "probe", "heuristic_run")
DEFAULT_PARTS = PARTS[:6]  # the standard check; probe and heuristic_run on request (--parts)
# Cheap and must-pass first; the optional compiled trial last, in whatever time is left. The
# probe, when asked for, runs first: its first-step seconds must include cuDNN's autotuning.
RUN_ORDER = ("probe", "step", "augment", "cuda_tests", "real_run", "heuristic_run", "packing", "compile_run")
# (label, variant, roi): the five distinct training steps of the paper's seven models
# (-Dermo and -Bkg cost what -Lesion costs: same network, another reference map).
STEP_CASES = (
    ("attnmel", "attnmel", "none"),
    ("attnmel+lesion", "attnmel", "lesion"),
    ("vgg16", "vgg16", "none"),
    ("vgg16_gap", "vgg16_gap", "none"),
    ("melcnn", "melcnn", "none"),
)
SETTINGS = ("fp32", "bf16", "bf16_cl", "compile")  # compile = bf16 + channels_last + torch.compile
# the seven rows of the paper's Table 2 as (variant, roi, step case): every ROI trains as -Lesion does
TABLE2 = tuple((*split_token(t), t if split_token(t)[1] == "none" else "attnmel+lesion") for t in PAPER_TABLE2)
LAMBDA1, LAMBDA2 = LossConfig().lambda1, LossConfig().lambda2  # Eq. 5 defaults

# Dense (no sparsity) peaks in TFLOP/s from NVIDIA's datasheets (H100: "NVIDIA H100 Tensor
# Core GPU" datasheet; H200: "NVIDIA H200 Tensor Core GPU"; A100: "NVIDIA A100 Tensor Core
# GPU"), which print the tensor-core rates with 2:4 sparsity: dense = half of those.
# (substrings the lower-cased device name must contain, card, bf16, tf32, fp32 non-tensor)
PEAKS = (
    (("h200", "nvl"), "H200 NVL", 835.5, 417.5, 60.0),
    (("h200",), "H200 SXM", 989.5, 494.5, 67.0),
    (("h100", "nvl"), "H100 NVL", 835.5, 417.5, 60.0),
    (("h100", "pcie"), "H100 PCIe", 756.5, 378.0, 51.0),
    (("h100",), "H100 SXM", 989.5, 494.5, 67.0),
    (("a100",), "A100", 312.0, 156.0, 19.5),
)
PEAK_SOURCE = "NVIDIA datasheets, dense tensor-core rates (the datasheets' sparsity figures halved)"

TARGETS = {  # issue #11, on an H100
    "attnmel_step_images_per_second": (">=", 3500.0),
    "augment_over_step": (">=", 20.0),
    "trial_50_epochs_seconds": ("<=", 90.0),
    "table2_3_seeds_minutes": ("<=", 35.0),
    "packing_ratio": (">=", 1.3),
}


# --------------------------------------------------------------------------- small helpers


def say(*parts: Any) -> None:
    """Print and flush at once: a run killed at its time limit keeps everything printed."""
    print(*parts, flush=True)


class Clock:
    """Seconds left of the whole run and of the part in progress."""

    def __init__(self, total_s: float) -> None:
        self.start = time.perf_counter()
        self.total = total_s
        self.part_end = math.inf

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def left(self) -> float:
        """Seconds left: the part's budget, capped by the whole run's."""
        now = time.perf_counter()
        return max(0.0, min(self.start + self.total, self.part_end) - now)

    def begin_part(self, budget_s: float) -> None:
        self.part_end = time.perf_counter() + budget_s


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _finite(x: float | None) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if _finite(a) and _finite(b) and b else None


def _fmt(x: Any, spec: str = ".1f", none: str = "-") -> str:
    return format(x, spec) if _finite(x) else none


def _atomic_json(obj: dict, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def _runtime_keys() -> set[str]:
    """Keys ``runtime.*`` this checkout's config knows (runtime.compile / eval_bf16 are new)."""
    from attnmel.config import RuntimeConfig

    return {f.name for f in dataclasses.fields(RuntimeConfig)}


def _env_with_repo() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def card_peaks(name: str) -> dict[str, Any]:
    """Dense peaks of the card named ``name`` (``torch.cuda.get_device_name``); None when unknown."""
    lower = name.lower()
    for needles, card, bf16, tf32, fp32 in PEAKS:
        if all(n in lower for n in needles):
            return {"card": card, "bf16_dense_tflops": bf16, "tf32_dense_tflops": tf32,
                    "fp32_tflops": fp32, "source": PEAK_SOURCE}
    return {"card": None, "bf16_dense_tflops": None, "tf32_dense_tflops": None, "fp32_tflops": None,
            "source": f"no peak known for {name!r}"}


def environment(device: torch.device) -> dict[str, Any]:
    """What ran the check: versions, card, its peaks and the precision flags in force."""
    import torchvision

    env: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "torch_cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "device": str(device),
        "cpu_threads": torch.get_num_threads(),
        "hostname": platform.node(),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        name = torch.cuda.get_device_name(device)
        env.update(
            device_name=name,
            capability=f"{props.major}.{props.minor}",
            multiprocessors=props.multi_processor_count,
            memory_gib=round(props.total_memory / 2**30, 1),
            peak=card_peaks(name),
            # "fp32" convolutions run as TF32 on the tensor cores unless this is off (torch default: on)
            cudnn_allow_tf32=torch.backends.cudnn.allow_tf32,
            matmul_allow_tf32=torch.backends.cuda.matmul.allow_tf32,
        )
        try:
            smi = subprocess.run(
                ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                capture_output=True, text=True, timeout=20,
            )
            env["nvidia_smi"] = smi.stdout.strip() or smi.stderr.strip()
        except (OSError, subprocess.SubprocessError) as e:
            env["nvidia_smi"] = f"unavailable: {e}"
    else:
        env.update(device_name=f"CPU ({platform.processor() or platform.machine()})", peak=card_peaks(""))
    return env


# --------------------------------------------------------------------------- part 1: step


class StepBench:
    """One model, its SGD optimiser and the options of one setting; ``step()`` trains once."""

    def __init__(self, model: torch.nn.Module, *, bf16: bool, channels_last: bool, roi: bool) -> None:
        self.model, self.bf16, self.channels_last, self.roi = model, bf16, channels_last, roi
        self.optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=1e-4)
        self.loss = torch.zeros(())

    def step(self, images: torch.Tensor, target: torch.Tensor, ref: torch.Tensor) -> None:
        from attnmel.losses import batch_dice_loss, downsample_reference, focal_loss

        if self.channels_last:  # the training loop converts each augmented batch too
            images = images.contiguous(memory_format=torch.channels_last)
        autocast = torch.autocast(images.device.type, dtype=torch.bfloat16) if self.bf16 else contextlib.nullcontext()
        with autocast:
            out = self.model(images)
        loss = focal_loss(out.logits.float(), target)
        if self.roi:
            for weight, attn in ((LAMBDA1, out.attn3), (LAMBDA2, out.attn4)):
                attn = attn.float()
                loss = loss + weight * batch_dice_loss(attn, downsample_reference(ref, attn.shape[-2:]))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.loss = loss.detach()


def count_step_flops(bench: StepBench, images: torch.Tensor, target: torch.Tensor, ref: torch.Tensor) -> int:
    """FLOPs of one whole training step (forward + backward) as FlopCounterMode counts them."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        bench.step(images, target, ref)
    return int(counter.get_total_flops())


def time_steps(fn: Callable[[], None], device: torch.device, *, min_s: float, min_steps: int, max_steps: int,
               chunk: int) -> tuple[int, float]:
    """Run ``fn`` in synchronised chunks until ``min_s`` and ``min_steps`` are reached; (steps, seconds)."""
    _sync(device)
    start = time.perf_counter()
    steps = 0
    while True:
        for _ in range(chunk):
            fn()
        steps += chunk
        _sync(device)
        seconds = time.perf_counter() - start
        if (seconds >= min_s and steps >= min_steps) or steps >= max_steps:
            return steps, seconds


def time_bench(step: Callable[[], None], device: torch.device, args: argparse.Namespace,
               first: Callable[[], None] | None = None) -> tuple[float, int, float]:
    """(first-step seconds, timed steps, their seconds): one first step (``first`` when given),
    timed apart as it autotunes or compiles, ``args.warmup - 1`` untimed steps, then
    ``time_steps`` with the run's limits."""
    _sync(device)
    started = time.perf_counter()
    (first or step)()
    _sync(device)
    first_seconds = time.perf_counter() - started
    for _ in range(args.warmup - 1):
        step()
    steps, seconds = time_steps(step, device, min_s=args.min_seconds, min_steps=args.min_steps,
                                max_steps=args.max_steps, chunk=args.chunk)
    return first_seconds, steps, seconds


def part_step(ctx: dict[str, Any]) -> dict[str, Any]:
    """Images/s per variant and setting; FLOPs per image measured; ratios to fp32."""
    from attnmel.models import create_model

    args, device, clock, peak = ctx["args"], ctx["device"], ctx["clock"], ctx["peak"]
    cuda = device.type == "cuda"
    size, batch = args.size, args.batch
    gen = torch.Generator(device=device).manual_seed(0)
    images = torch.randn(batch, 3, size, size, device=device, generator=gen)
    target = torch.randint(0, 2, (batch,), device=device, generator=gen)
    ref = (torch.rand(batch, 1, size, size, device=device, generator=gen) > 0.5).float()
    bf16_peak, tf32_peak = peak.get("bf16_dense_tflops"), peak.get("tf32_dense_tflops")
    compile_backend = args.compile_backend or ("inductor" if cuda else "eager")
    part: dict[str, Any] = {
        "status": "running",
        "config": {"size": size, "batch": batch, "warmup_steps": args.warmup, "min_timed_seconds": args.min_seconds,
                   "settings": {"fp32": "float32 (cuDNN convolutions in TF32 when allowed, torch's default)",
                                "bf16": "bf16 autocast", "bf16_cl": "bf16 autocast + channels_last",
                                "compile": f"bf16 + channels_last + torch.compile(backend={compile_backend!r})"},
                   "peak_used": peak},
        "flops_per_image": {},
        "results": [],
    }
    ctx["report"]["parts"]["step"] = part  # saved as it grows: a run cut off keeps the rows measured
    say(f"\n== 1. training step: {size} px, batch {batch}, {ctx['env']['device_name']}")
    if bf16_peak:
        say(f"   peak used: {peak['card']} bf16 {bf16_peak} / TF32 {tf32_peak} TFLOP/s dense ({PEAK_SOURCE})")
    say(f"   {'case':<15} {'setting':<8} {'img/s':>9} {'ms/step':>8} {'TFLOP/s':>8} {'of bf16 pk':>10} {'mem GiB':>8}")

    base_models: dict[str, torch.nn.Module] = {}

    def base(variant: str) -> torch.nn.Module:
        if variant not in base_models:  # one initialisation per variant; each setting trains a copy
            torch.manual_seed(0)
            base_models[variant] = create_model(variant, backbone="vgg16_bn", weights="none")
        return base_models[variant]

    def run(label: str, variant: str, roi: str, setting: str, compile_estimate: float) -> dict[str, Any]:
        row: dict[str, Any] = {"case": label, "variant": variant, "roi": roi, "setting": setting}
        if setting == "compile" and args.no_compile:
            return {**row, "status": "skipped", "reason": "--no-compile"}
        if clock.left() < (compile_estimate if setting == "compile" else 2.0):
            return {**row, "status": "skipped", "reason": "time budget"}
        try:
            bf16 = setting != "fp32"
            channels_last = setting in ("bf16_cl", "compile")
            model = copy.deepcopy(base(variant)).to(device).train()
            if channels_last:
                model = model.to(memory_format=torch.channels_last)
            if setting == "compile":
                model = torch.compile(model, backend=compile_backend, dynamic=False)  # as attnmel.runtime does
            bench = StepBench(model, bf16=bf16, channels_last=channels_last, roi=roi != "none")
            if cuda:
                torch.cuda.reset_peak_memory_stats(device)
            def count_flops() -> None:  # the first step autotunes anyway: count its FLOPs on the way
                part["flops_per_image"][label] = count_step_flops(bench, images, target, ref) / batch

            row["first_step_seconds"], steps, seconds = time_bench(
                lambda: bench.step(images, target, ref), device, args, first=count_flops if setting == "fp32" else None)
            loss = float(bench.loss)
            ips = steps * batch / seconds
            flops = part["flops_per_image"].get(label)
            tflops = ips * flops / 1e12 if flops else None
            row.update(
                status="ok", images_per_second=ips, ms_per_step=1e3 * seconds / steps, timed_steps=steps,
                loss=loss, loss_finite=math.isfinite(loss), tflops=tflops,
                fraction_of_bf16_peak=_ratio(tflops, bf16_peak),
                fraction_of_tf32_peak=_ratio(tflops, tf32_peak) if setting == "fp32" else None,
                peak_memory_gib=torch.cuda.max_memory_allocated(device) / 2**30 if cuda else None,
            )
        except Exception as e:  # one failed setting must not cost the others
            row.update(status="error", error=f"{type(e).__name__}: {e}"[:2000])
        if cuda:
            torch.cuda.empty_cache()
        if row["status"] == "ok":
            say(f"   {label:<15} {setting:<8} {row['images_per_second']:>9.1f} {row['ms_per_step']:>8.2f} "
                f"{_fmt(row['tflops'], '.3g'):>8} {_fmt(row['fraction_of_bf16_peak'], '.1%'):>10} "
                f"{_fmt(row['peak_memory_gib'], '.2f'):>8}"
                + (f"   (first step {row['first_step_seconds']:.1f} s)" if setting == "compile" else ""))
        else:
            say(f"   {label:<15} {setting:<8} {row['status']}: {row.get('reason') or row.get('error')}")
        return row

    # The eager settings of every case first (fp32 first: it counts the FLOPs), then compile,
    # the costly one, while the budget lasts. --quick: every setting for one case, fp32 for the rest.
    for label, variant, roi in STEP_CASES:
        for setting in SETTINGS[:3] if not args.quick or label == "attnmel+lesion" else SETTINGS[:1]:
            part["results"].append(run(label, variant, roi, setting, 0.0))
            ctx["save"]()
    say("   GFLOP per training image (FlopCounterMode, forward + backward): "
        + ", ".join(f"{k} {v / 1e9:.2f}" for k, v in part["flops_per_image"].items()))
    compile_estimate = 60.0 if cuda else 10.0  # before the first compile is seen
    for label, variant, roi in STEP_CASES:
        if args.quick and label != "attnmel+lesion":
            continue
        row = run(label, variant, roi, "compile", compile_estimate)
        if _finite(row.get("first_step_seconds")):
            compile_estimate = max(row["first_step_seconds"], 5.0)
        part["results"].append(row)
        ctx["save"]()
    base_models.clear()

    part["by_case"] = summarise_steps(part["results"])
    part["status"] = _status_of(part["results"])
    return part


def summarise_steps(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per case: images/s of every setting side by side and the ratios to fp32."""
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        case = out.setdefault(row["case"], {})
        if row["status"] == "ok":
            case[row["setting"]] = row["images_per_second"]
    for case in out.values():
        fp32 = case.get("fp32")
        case["ratios_to_fp32"] = {s: _ratio(case.get(s), fp32) for s in SETTINGS[1:]}
        case["compile_over_bf16_cl"] = _ratio(case.get("compile"), case.get("bf16_cl"))
        measured = {s: case[s] for s in SETTINGS if s in case}
        case["best_setting"] = max(measured, key=measured.get) if measured else None
    return out


def _status_of(rows: list[dict[str, Any]]) -> str:
    states = {r["status"] for r in rows}
    if "error" in states:
        return "partial" if "ok" in states else "error"
    return "ok" if "ok" in states else "skipped"


def _step_ips(report: dict[str, Any], case: str, prefer: tuple[str, ...] = ("compile", "bf16_cl", "bf16", "fp32")
              ) -> tuple[float | None, str | None]:
    """Images/s of ``case`` in the first setting of ``prefer`` that was measured."""
    by_case = (report["parts"].get("step") or {}).get("by_case") or {}
    for setting in prefer:
        value = (by_case.get(case) or {}).get(setting)
        if _finite(value):
            return value, setting
    return None, None


def _best_step_ips(report: dict[str, Any], case: str) -> tuple[float | None, str | None]:
    by_case = (report["parts"].get("step") or {}).get("by_case") or {}
    case_row = by_case.get(case) or {}
    best = case_row.get("best_setting")
    return (case_row.get(best), best) if best else (None, None)


# --------------------------------------------------------------------------- part 2: augment


def part_augment(ctx: dict[str, Any]) -> dict[str, Any]:
    """Samples/s of ``train_batch`` (index, crop, rot90, flips, normalise; image + ROI) on the device."""
    from attnmel.data.augment import train_batch

    args, device, report = ctx["args"], ctx["device"], ctx["report"]
    source, crop = args.source_size, args.size
    pool_n = args.aug_pool
    gen = torch.Generator(device=device).manual_seed(0)
    pool = torch.randint(0, 256, (pool_n, 3, source, source), dtype=torch.uint8, device=device, generator=gen)
    rois = (torch.rand(pool_n, 1, source, source, device=device, generator=gen) > 0.5).to(torch.uint8)
    mean, std = (0.7, 0.55, 0.5), (0.15, 0.17, 0.19)
    step_ips, step_setting = _best_step_ips(report, "attnmel+lesion")  # the most demanding comparison
    part: dict[str, Any] = {"config": {"source_size": source, "crop": crop, "pool_images": pool_n, "with_roi": True},
                            "results": [], "step_case": "attnmel+lesion", "step_setting": step_setting,
                            "step_images_per_second": step_ips}
    say(f"\n== 2. augmentation on {device}: uint8 {source} px → {crop} px, image + ROI, index_select from "
        f"{pool_n} images")
    for batch in args.aug_batches:
        def augment() -> None:
            index = torch.randint(0, pool_n, (batch,), device=device, generator=gen)
            out, _ = train_batch(pool.index_select(0, index), rois.index_select(0, index), crop=crop,
                                        mean=mean, std=std, generator=gen)
            holder[0] = out

        holder: list[torch.Tensor] = [torch.zeros(())]
        for _ in range(3):
            augment()
        steps, seconds = time_steps(augment, device, min_s=args.min_seconds / 2, min_steps=5, max_steps=10_000,
                                    chunk=5)
        out = holder[0]
        sps = steps * batch / seconds
        row = {"batch": batch, "samples_per_second": sps, "output_shape": list(out.shape),
               "output_finite": bool(torch.isfinite(out).all()), "over_step": _ratio(sps, step_ips)}
        part["results"].append(row)
        say(f"   batch {batch:>4}: {sps:>12.0f} samples/s   vs step ({step_setting}) {_fmt(step_ips)} img/s: "
            f"{_fmt(row['over_step'], '.1f')}x")
    # The training loop augments one optimiser batch at a time: that batch size is the one that counts.
    loop_row = next((r for r in part["results"] if r["batch"] == args.batch), part["results"][0])
    part["augment_over_step"] = loop_row["over_step"]
    part["status"] = "ok"
    return part


# --------------------------------------------------------------------------- part 7: probe

# Kernel families of a training step, by substrings of the lower-cased CUDA kernel name; the
# first family that matches wins (cuDNN names its batch-norm kernels with "nhwc" too).
KERNEL_FAMILIES = (
    ("optimizer", ("multi_tensor", "foreach")),
    ("batch norm", ("batch_norm", "batchnorm", "bn_fw", "bn_bw", "welford")),
    ("layout copies", ("nchwtonhwc", "nhwctonchw", "transpose", "copy")),
    ("convolution", ("conv", "xmma", "implicit", "wgrad", "dgrad", "fprop", "cutlass", "cudnn", "sm90_")),
    ("matmul", ("gemm", "cublas")),
    ("pooling", ("pool",)),
    ("elementwise", ("elementwise", "vectorized", "relu", "threshold", "fill", "where")),
    ("reduction", ("reduce",)),
)


def kernel_family(name: str) -> str:
    """The family of a CUDA kernel name (see KERNEL_FAMILIES); "other" when none matches."""
    low = name.lower()
    return next((family for family, keys in KERNEL_FAMILIES if any(k in low for k in keys)), "other")


def part_probe(ctx: dict[str, Any]) -> dict[str, Any]:
    """Why a step runs at the speed it does, and what a new input shape costs: the
    AttnMel-CNN-Lesion step (bf16 + channels_last) with cuDNN heuristics vs autotuning, at
    larger batches, its kernel time by family, and evaluation images/s per precision and batch.
    Runs first in its process, so the first-step seconds include cuDNN's autotuning."""
    from attnmel.evaluation import melanoma_probs
    from attnmel.models import create_model
    from attnmel.runtime import Precision

    args, device, clock = ctx["args"], ctx["device"], ctx["clock"]
    cuda = device.type == "cuda"
    size, batch = args.size, args.batch
    part: dict[str, Any] = {"status": "running", "steps": [], "eval": []}
    ctx["report"]["parts"]["probe"] = part
    say(f"\n== 7. probe: attnmel+lesion, bf16 + channels_last, {size} px")
    torch.zeros(1, device=device).sum().item()  # CUDA context first: not a step's cost
    gen = torch.Generator(device=device).manual_seed(0)

    def inputs(n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return (torch.randn(n, 3, size, size, device=device, generator=gen),
                torch.randint(0, 2, (n,), device=device, generator=gen),
                (torch.rand(n, 1, size, size, device=device, generator=gen) > 0.5).float())

    def fresh_bench() -> StepBench:
        torch.manual_seed(0)
        model = create_model("attnmel", backbone="vgg16_bn", weights="none").to(device).train()
        return StepBench(model.to(memory_format=torch.channels_last), bf16=True, channels_last=True, roi=True)

    def measure(label: str, n: int, benchmark: bool) -> dict[str, Any]:
        row: dict[str, Any] = {"label": label, "batch": n, "cudnn_benchmark": benchmark}
        if clock.left() < 3:
            return {**row, "status": "skipped", "reason": "time budget"}
        try:
            torch.backends.cudnn.benchmark = benchmark
            bench, data = fresh_bench(), inputs(n)
            row["first_step_seconds"], steps, seconds = time_bench(lambda: bench.step(*data), device, args)
            row.update(status="ok", images_per_second=steps * n / seconds, ms_per_step=1e3 * seconds / steps)
            say(f"   {label:<34} batch {n:>4}: first step {row['first_step_seconds']:6.2f} s, "
                f"then {row['images_per_second']:7.0f} img/s ({row['ms_per_step']:.2f} ms/step)")
        except Exception as e:
            row.update(status="error", error=f"{type(e).__name__}: {e}"[:2000])
            say(f"   {label}: {row['error']}")
        if cuda:
            torch.cuda.empty_cache()
        return row

    # Heuristics first: the autotuned run after it would otherwise find nothing new to time.
    part["steps"].append(measure("cuDNN heuristics (benchmark off)", batch, False))
    part["steps"].append(measure("cuDNN autotuned (benchmark on)", batch, True))
    for n in (2 * batch, 4 * batch):  # does a larger batch fill the card better?
        part["steps"].append(measure("autotuned, larger batch", n, True))
    ctx["save"]()
    torch.backends.cudnn.benchmark = cuda

    # Kernel time of a few autotuned steps by family, and how busy the GPU was.
    try:
        from torch.profiler import ProfilerActivity, profile

        bench, data = fresh_bench(), inputs(batch)
        for _ in range(3):
            bench.step(*data)
        _sync(device)
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
        n_steps = 3 if args.quick else 10
        with profile(activities=activities) as prof:
            started = time.perf_counter()
            for _ in range(n_steps):
                bench.step(*data)
            _sync(device)
            wall_us = (time.perf_counter() - started) * 1e6
        kernels = [(e.key, e.self_device_time_total, e.count, kernel_family(e.key)) for e in prof.key_averages()
                   if cuda and str(e.device_type).endswith("CUDA") and e.self_device_time_total > 0]
        total_us = sum(t for _, t, _, _ in kernels)
        families: dict[str, float] = {}
        for _, t, _, family in kernels:
            families[family] = families.get(family, 0.0) + t
        part["profile"] = {
            "steps": n_steps, "wall_ms_per_step": wall_us / 1e3 / n_steps,
            "kernel_ms_per_step": total_us / 1e3 / n_steps,
            "gpu_busy_fraction": total_us / wall_us if cuda else None,
            "families_ms_per_step": {k: v / 1e3 / n_steps for k, v in sorted(families.items(), key=lambda kv: -kv[1])},
            "top_kernels": [{"name": name[:160], "ms_per_step": t / 1e3 / n_steps, "calls_per_step": c / n_steps,
                             "family": family}
                            for name, t, c, family in sorted(kernels, key=lambda k: -k[1])[:20]],
        }
        prof_part = part["profile"]
        say(f"   profile ({n_steps} steps): {prof_part['wall_ms_per_step']:.2f} ms/step wall, "
            f"{prof_part['kernel_ms_per_step']:.2f} ms of kernels (GPU busy {_fmt(prof_part['gpu_busy_fraction'], '.0%')})")
        for family, ms in prof_part["families_ms_per_step"].items():
            say(f"     {family:<15} {ms:7.2f} ms/step  {_fmt(_ratio(ms, prof_part['kernel_ms_per_step']), '.0%'):>5}")
        for k in prof_part["top_kernels"][:8]:
            say(f"     {k['ms_per_step']:7.2f} ms  x{k['calls_per_step']:<4.0f} {k['family']:<13} {k['name'][:90]}")
        del bench
    except Exception as e:
        part["profile"] = {"status": "error", "error": f"{type(e).__name__}: {e}"[:2000]}
        say(f"   profile failed: {part['profile']['error']}")
    ctx["save"]()

    # Evaluation (inference) images/s: fp32 and bf16, batch sizes, first-call seconds.
    n_eval = 64 if args.quick else 640
    pool = torch.randint(0, 256, (n_eval, 3, args.source_size, args.source_size), dtype=torch.uint8,
                         device=device, generator=gen)
    torch.manual_seed(0)
    model = create_model("attnmel", backbone="vgg16_bn", weights="none").to(device)
    model = model.to(memory_format=torch.channels_last)
    mean, std = (0.7, 0.55, 0.5), (0.15, 0.17, 0.19)
    for label, precision, eval_batch_size in (("fp32", Precision(False, True), 64), ("fp32", Precision(False, True), 256),
                                              ("bf16", Precision(True, True), 64), ("bf16", Precision(True, True), 256)):
        row = {"precision": label, "batch": eval_batch_size}
        if clock.left() < 3:
            part["eval"].append({**row, "status": "skipped", "reason": "time budget"})
            continue
        try:
            kw = dict(crop=size, mean=mean, std=std, batch_size=eval_batch_size, precision=precision)
            _sync(device)
            started = time.perf_counter()
            melanoma_probs(model, pool[:eval_batch_size], **kw)
            row["first_call_seconds"] = time.perf_counter() - started
            steps, seconds = time_steps(lambda: melanoma_probs(model, pool, **kw), device, min_s=args.min_seconds,
                                        min_steps=2, max_steps=50, chunk=1)
            row.update(status="ok", images_per_second=steps * n_eval / seconds)
            say(f"   eval {label} batch {eval_batch_size:>4}: first call {row['first_call_seconds']:5.2f} s, "
                f"then {row['images_per_second']:7.0f} img/s")
        except Exception as e:
            row.update(status="error", error=f"{type(e).__name__}: {e}"[:2000])
            say(f"   eval {label} batch {eval_batch_size}: {row['error']}")
        part["eval"].append(row)
    del model, pool
    part["status"] = _status_of(part["steps"] + part["eval"])
    return part


# --------------------------------------------------------------------------- training subprocesses


def train_overrides(args: argparse.Namespace, *, epochs: int, passes: int | None, compile_off: bool) -> list[str]:
    """``--set`` values of the real-data runs (AttnMel-CNN-Lesion, no pretrained weights)."""
    known = _runtime_keys()
    sets = {
        "data.root": str(args.data),
        "data.roi": "lesion",
        "model.variant": "attnmel",
        "model.weights": "none",
        "optim.epochs": str(epochs),
        "runtime.device": args.device,
        "runtime.seed": "0",
    }
    if args.quick:
        sets.update({"data.image_size": str(args.source_size), "data.crop_size": str(args.size),
                     "data.max_train": "8", "data.max_eval": "8", "data.passes": "1",
                     "optim.batch_size": str(args.batch),
                     "runtime.eval_batch_size": "8"})
    else:
        sets.update({"data.image_size": "256", "data.crop_size": "224"})
    if passes is not None:
        sets["data.passes"] = str(passes)
    if "eval_bf16" in known:
        sets["runtime.eval_bf16"] = "false"
    if compile_off and "compile" in known:
        sets["runtime.compile"] = "false"
    return [f"{k}={v}" for k, v in sets.items()]


class TrainProcess:
    """``attnmel train`` in a child process (through this file's ``_train`` wrapper, which also
    reports the child's peak CUDA memory); stdout lines are time-stamped as they arrive."""

    def __init__(self, overrides: list[str], run_dir: Path, log: Path) -> None:
        argv = [sys.executable, str(Path(__file__).resolve()), "_train", "train"]
        for item in overrides:
            argv += ["--set", item]
        argv += ["--out", str(run_dir)]
        self.argv, self.run_dir, self.log_path = argv, run_dir, log
        self.lines: list[tuple[float, str]] = []
        self.started = time.time()
        self.proc = subprocess.Popen(argv, cwd=REPO, env=_env_with_repo(), stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, bufsize=1)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        with open(self.log_path, "w") as log:
            for line in self.proc.stdout:
                self.lines.append((time.time(), line.rstrip("\n")))
                log.write(line)
                log.flush()

    def wait(self, timeout: float) -> int | None:
        """Exit code, or None after killing a child that outran ``timeout``."""
        try:
            self.proc.wait(timeout=max(timeout, 1.0))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self.reader.join(timeout=5)
            return None
        self.reader.join(timeout=5)
        return self.proc.returncode

    def result(self, rc: int | None) -> dict[str, Any]:
        """Epoch rows (with wall-clock start/end), the child's memory report and the log's tail."""
        rows = []
        log = self.run_dir / "epochs.jsonl"
        if log.exists():
            rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        ends = {}
        for stamp, line in self.lines:
            m = re.match(r"epoch\s+(\d+)/", line)
            if m:
                ends[int(m.group(1))] = stamp
        epochs = []
        for row in rows:
            end = ends.get(row["epoch"])
            epochs.append({
                "epoch": row["epoch"], "epoch_seconds": row.get("epoch_seconds"),
                "images_per_second": row.get("images_per_second"), "train_loss": row.get("train_loss"),
                "val_auc": row.get("val_auc"), "val_ap": row.get("val_ap"), "test_auc": row.get("test_auc"),
                "test_ap": row.get("test_ap"),
                "end_time": end, "start_time": end - row["epoch_seconds"] if end and row.get("epoch_seconds") else None,
            })
        memory = None
        for _, line in self.lines:
            if line.startswith(TRAIN_MARK):
                memory = json.loads(line[len(TRAIN_MARK):])
        tail = [line for _, line in self.lines if not line.startswith(TRAIN_MARK)][-15:]
        wall = time.time() - self.started
        return {"rc": rc, "timed_out": rc is None, "wall_seconds": wall, "epochs": epochs,
                "outside_epochs": self._outside_epochs(epochs, memory, wall),
                "child": memory, "pid": self.proc.pid, "log_tail": tail, "command": " ".join(self.argv[2:])}

    def _outside_epochs(self, epochs: list[dict[str, Any]], memory: dict[str, Any] | None, wall: float
                        ) -> dict[str, float] | None:
        """Seconds outside the epochs, split: interpreter start and torch import (until the
        wrapper is entered), then the run's set-up before epoch 1, then what follows the last
        epoch (final evaluation, ``best.pt``, the checkpoint writer's last write, exit)."""
        if not epochs or not (memory and memory.get("entered")) or not epochs[0]["start_time"] or not epochs[-1]["end_time"]:
            return None
        entered = memory["entered"]
        return {"interpreter_and_torch_import": entered - self.started,
                "setup_before_epoch_1": epochs[0]["start_time"] - entered,
                "after_last_epoch": self.started + wall - epochs[-1]["end_time"]}


class SmiPoller:
    """Polls nvidia-smi for per-process and whole-card memory while trials run (when it answers)."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self.per_pid: dict[int, float] = {}
        self.total_mib = 0.0
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        if shutil.which("nvidia-smi") is None:
            self.error = "nvidia-smi not found"
        else:
            self._thread.start()

    def _query(self, what: list[str]) -> list[list[str]]:
        out = subprocess.run(["nvidia-smi", *what, "--format=csv,noheader,nounits"], capture_output=True,
                             text=True, timeout=10)
        return [[c.strip() for c in line.split(",")] for line in out.stdout.splitlines() if line.strip()]

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                for pid, used in self._query(["--query-compute-apps=pid,used_memory"]):
                    self.per_pid[int(pid)] = max(self.per_pid.get(int(pid), 0.0), float(used))
                for (used,) in self._query(["--query-gpu=memory.used"]):
                    self.total_mib = max(self.total_mib, float(used))
            except Exception as e:  # a format we do not know: keep the torch numbers only
                self.error = f"{type(e).__name__}: {e}"
            self._stop.wait(self.interval)

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=15)
        return {"per_pid_mib": {str(k): v for k, v in self.per_pid.items()}, "card_used_max_mib": self.total_mib,
                "error": self.error}


def _train_process(argv: list[str]) -> int:
    """Child side: run ``attnmel train`` in-process, then print a JSON line with peak CUDA memory."""
    entered = time.time()  # this file imported torch before this point
    from orchestrator.cli import train as cli_train

    parser = argparse.ArgumentParser(prog="attnmel")
    cli_train.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        rc = int(args.func(args) or 0)
    except UserError as e:
        print(f"attnmel: error: {e}", file=sys.stderr, flush=True)
        rc = 2
    cuda = torch.cuda.is_available() and torch.cuda.is_initialized()
    print(TRAIN_MARK + json.dumps({
        "rc": rc,
        "entered": entered,
        "seconds": time.perf_counter() - started,
        "max_memory_allocated_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
        "max_memory_reserved_gib": torch.cuda.max_memory_reserved() / 2**30 if cuda else None,
    }), flush=True)
    return rc


def _steady_ips(result: dict[str, Any], window: tuple[float, float] | None = None) -> tuple[float | None, int]:
    """Mean images/s of the epochs after the first (cuDNN autotuning / compile) and, given a
    window, of those whose training lies inside it; (value, epochs used)."""
    epochs = [e for e in result["epochs"] if _finite(e.get("images_per_second"))]
    later = [e for e in epochs if e["epoch"] > 1] or epochs
    if window is not None:
        inside = [e for e in later if e["start_time"] and e["start_time"] >= window[0] and e["end_time"] <= window[1]]
        later = inside
    if not later:
        return None, 0
    return sum(e["images_per_second"] for e in later) / len(later), len(later)


# --------------------------------------------------------------------------- part 3: packing


def part_packing(ctx: dict[str, Any]) -> dict[str, Any]:
    """One trial alone, then two at once on the same GPU: images/s each and the sum's ratio."""
    args, clock, work = ctx["args"], ctx["clock"], ctx["work"]
    overrides = train_overrides(args, epochs=args.pack_epochs, passes=1, compile_off=True)
    part: dict[str, Any] = {"config": {"overrides": overrides,
                                       "note": "passes 1 per epoch; epoch 1 (cuDNN autotuning) left out; "
                                               "runtime.compile off when the key exists"}}
    say(f"\n== 3. trials per GPU: attnmel train alone, then two at once ({args.pack_epochs} epochs, 1 pass each)")
    torch.cuda.empty_cache()
    runs: dict[str, Any] = {}
    for phase, n in (("alone", 1), ("pair", 2)):
        if clock.left() < 20:
            runs[phase] = {"status": "skipped", "reason": "time budget"}
            continue
        poller = SmiPoller()
        procs = [TrainProcess(overrides, work / f"pack-{phase}-{i}", work / f"pack-{phase}-{i}.log") for i in range(n)]
        results = []
        for p in procs:
            results.append(p.result(p.wait(clock.left())))
        runs[phase] = {"processes": results, "nvidia_smi": poller.stop()}
        for r in results:
            if r["rc"] != 0:
                why = "timed out (time budget)" if r["timed_out"] else f"failed (rc {r['rc']})"
                raise RuntimeError(f"{phase} run {why}: " + " | ".join(r["log_tail"][-5:]))
    part["runs"] = runs
    alone = runs["alone"]["processes"][0] if "processes" in runs.get("alone", {}) else None
    alone_ips, _ = _steady_ips(alone) if alone else (None, 0)
    pair = runs.get("pair", {}).get("processes")
    per_proc: list[float | None] = []
    overlap = None
    if pair:
        # Only epochs during which the other trial was training too count as "shared".
        first_starts = [min((e["start_time"] for e in r["epochs"] if e["start_time"]), default=None) for r in pair]
        last_ends = [max((e["end_time"] for e in r["epochs"] if e["end_time"]), default=None) for r in pair]
        if all(first_starts) and all(last_ends):
            overlap = (max(first_starts), min(last_ends))
        for r in pair:
            value, used = _steady_ips(r, overlap)
            if not used:  # no epoch fully inside the shared window: fall back to all later epochs
                value, used = _steady_ips(r)
            per_proc.append(value)
    total = sum(per_proc) if per_proc and all(_finite(v) for v in per_proc) else None
    memory = [((r.get("child") or {}).get("max_memory_reserved_gib"), (r.get("child") or {}).get(
        "max_memory_allocated_gib")) for r in (pair or []) + ([alone] if alone else [])]
    part.update(
        alone_images_per_second=alone_ips,
        pair_images_per_second=per_proc,
        pair_total_images_per_second=total,
        packing_ratio=_ratio(total, alone_ips),
        shared_window_seconds=(overlap[1] - overlap[0]) if overlap else None,
        peak_memory_reserved_gib=max((m[0] for m in memory if _finite(m[0])), default=None),
        peak_memory_allocated_gib=max((m[1] for m in memory if _finite(m[1])), default=None),
        status="ok" if part.get("runs") and alone_ips and total else "partial",
    )
    smi = runs.get("pair", {}).get("nvidia_smi") or {}
    say(f"   alone {_fmt(alone_ips)} img/s; pair {' + '.join(_fmt(v) for v in per_proc)} = {_fmt(total)} img/s "
        f"→ {_fmt(part['packing_ratio'], '.2f')}x; peak per trial: reserved {_fmt(part['peak_memory_reserved_gib'], '.2f')}"
        f" GiB, allocated {_fmt(part['peak_memory_allocated_gib'], '.2f')} GiB; card max used "
        f"{_fmt(smi.get('card_used_max_mib') or None, '.0f')} MiB (nvidia-smi, pair)")
    return part


# --------------------------------------------------------------------------- part 4: real run


def reevaluate(run_dir: Path, device: torch.device) -> dict[str, Any]:
    """Load ``best.pt`` (weights_only) and score validation and test in strict fp32, torch-default
    fp32 (TF32 convolutions) and bf16 autocast; AUC/AP per mode and the differences."""
    from attnmel.config import load_config
    from attnmel.data import eval_batch, load_bundle
    from attnmel.metrics import ap_auc

    cfg = load_config(run_dir / "config.yaml")
    out: dict[str, Any] = {}
    from attnmel.checkpoint import load_checkpoint
    from attnmel.models import build_model

    checkpoint = load_checkpoint(run_dir / "best.pt", kind="model")  # weights_only=True: data, never code
    out["weights_only_load"] = True
    model = build_model(cfg.model, weights="none")
    model.load_state_dict(checkpoint["model"])
    model = model.to(device).eval()
    out["epoch"] = checkpoint.get("epoch")
    bundle = load_bundle(cfg.data)
    crop, mean, std = cfg.data.crop_size, bundle.mean, bundle.std
    probs: dict[str, dict[str, torch.Tensor]] = {}
    flags = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    try:
        for mode in ("fp32_strict", "fp32", "bf16"):
            torch.backends.cudnn.allow_tf32 = mode != "fp32_strict" and flags[0]
            torch.backends.cuda.matmul.allow_tf32 = mode != "fp32_strict" and flags[1]
            probs[mode] = {}
            for split in ("val", "test"):
                part = getattr(bundle, split)
                chunks = []
                with torch.no_grad():
                    for start in range(0, len(part.labels), 64):
                        images = eval_batch(part.images[start:start + 64].to(device), crop=crop, mean=mean, std=std)
                        autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if mode == "bf16"
                                    else contextlib.nullcontext())
                        with autocast:
                            logits = model(images).logits
                        chunks.append(torch.softmax(logits.float(), dim=1)[:, 1].cpu())
                probs[mode][split] = torch.cat(chunks)
                ap, auc = ap_auc(part.labels.numpy(), probs[mode][split].numpy())
                out.setdefault(mode, {})[split] = {"auc": auc, "ap": ap}
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = flags
    for mode in ("fp32", "bf16"):
        for split in ("val", "test"):
            ref = out["fp32_strict"][split]
            out[mode][split]["auc_minus_strict"] = out[mode][split]["auc"] - ref["auc"]
            out[mode][split]["max_abs_prob_diff"] = float((probs[mode][split] - probs["fp32_strict"][split]).abs().max())
    out["val_auc_bf16_minus_fp32"] = out["bf16"]["val"]["auc"] - out["fp32"]["val"]["auc"]
    return out


def part_real_run(ctx: dict[str, Any]) -> dict[str, Any]:
    """Two epochs of AttnMel-CNN-Lesion on the real copy; projections; fp32 vs bf16 evaluation."""
    args, device, clock, work, report = ctx["args"], ctx["device"], ctx["clock"], ctx["work"], ctx["report"]
    overrides = train_overrides(args, epochs=2, passes=None, compile_off=False)
    part: dict[str, Any] = {"config": {"overrides": overrides, "runtime_keys": sorted(_runtime_keys())}}
    say(f"\n== 4. real run: attnmel train on {args.data} (AttnMel-CNN-Lesion, weights none, 2 epochs)")
    part["data_cache_seconds"] = warm_data_cache(overrides)
    say(f"   data cache ready in {part['data_cache_seconds']:.1f} s (built once; later runs read it)")
    run_dir = work / "real-run"
    proc = TrainProcess(overrides, run_dir, work / "real-run.log")
    result = proc.result(proc.wait(clock.left()))
    part["run"] = result
    if result["rc"] != 0:
        why = "timed out (time budget)" if result["timed_out"] else f"failed (rc {result['rc']})"
        raise RuntimeError(f"attnmel train {why}: " + " | ".join(result["log_tail"][-6:]))
    if (run_dir / "config.yaml").exists():
        part["resolved_runtime"] = _yaml_section(run_dir / "config.yaml", "runtime")
    epochs = result["epochs"]
    for e in epochs:
        say(f"   epoch {e['epoch']}: {e['epoch_seconds']:.1f} s, {e['images_per_second']:.0f} img/s, "
            f"val AUC {e['val_auc']:.4f} (as training evaluated it)")
    seconds = [e["epoch_seconds"] for e in epochs]
    steady = seconds[-1]
    startup = result["wall_seconds"] - sum(seconds)  # imports, data cache, CUDA context, checkpoints' last write
    trial_50 = startup + seconds[0] + 49 * steady
    part.update(
        epoch_seconds=seconds,
        startup_seconds=startup,
        projected_trial_50_epochs_seconds=trial_50,
        projected_table2_3_seeds_minutes_uniform=21 * trial_50 / 60,
    )
    # Scale each Table-2 model's epochs by its step speed relative to AttnMel-CNN-Lesion's.
    by_case = (report["parts"].get("step") or {}).get("by_case") or {}
    cases = {case for _, _, case in TABLE2}
    setting = next((s for s in ("bf16_cl", "bf16", "fp32")
                    if all(_finite((by_case.get(c) or {}).get(s)) for c in cases)), None)
    ref_ips = (by_case.get("attnmel+lesion") or {}).get(setting) if setting else None
    if ref_ips:
        total, factors = 0.0, {}
        for variant, roi, case in TABLE2:
            ips, _ = _step_ips(report, case, (setting,))
            factor = ref_ips / ips if ips else 1.0
            factors[f"{variant}/{roi}"] = factor
            total += 3 * (startup + (seconds[0] + 49 * steady) * factor)
        part["projected_table2_3_seeds_minutes_scaled"] = total / 60
        part["scale_factors"] = {"setting": setting, "per_model": factors}
    packing = (report["parts"].get("packing") or {}).get("packing_ratio")
    if _finite(packing) and packing > 1:
        best = part.get("projected_table2_3_seeds_minutes_scaled") or part["projected_table2_3_seeds_minutes_uniform"]
        part["projected_table2_3_seeds_minutes_two_per_gpu"] = best / packing
    split = result.get("outside_epochs")
    if split:
        part["outside_epochs"] = split
        say("   outside the epochs: " + ", ".join(f"{k.replace('_', ' ')} {v:.1f} s" for k, v in split.items()))
    say(f"   start-up {startup:.1f} s; projected 50-epoch trial {trial_50:.0f} s; Table 2 × 3 seeds "
        f"{part['projected_table2_3_seeds_minutes_uniform']:.1f} min (all as this model), "
        f"{_fmt(part.get('projected_table2_3_seeds_minutes_scaled'))} min (scaled by step speed)")
    if clock.left() < 5:
        part["reevaluation"] = {"status": "skipped", "reason": "time budget"}
    else:
        try:
            part["reevaluation"] = reevaluate(run_dir, device)
            ev = part["reevaluation"]
            say(f"   best.pt (epoch {ev['epoch']}) re-evaluated: val AUC strict fp32 {ev['fp32_strict']['val']['auc']:.4f}, "
                f"fp32 {ev['fp32']['val']['auc']:.4f}, bf16 {ev['bf16']['val']['auc']:.4f} "
                f"(bf16 − fp32 {ev['val_auc_bf16_minus_fp32']:+.4f}; max |Δp| bf16 "
                f"{ev['bf16']['val']['max_abs_prob_diff']:.2e}); weights_only load: {ev['weights_only_load']}")
        except Exception as e:
            part["reevaluation"] = {"status": "error", "error": f"{type(e).__name__}: {e}"[:2000]}
            say(f"   re-evaluation failed: {part['reevaluation']['error']}")
    part["status"] = "partial" if part["reevaluation"].get("status") == "error" else "ok"
    return part


def warm_data_cache(overrides: list[str]) -> float:
    """Build the preprocessed-data cache in this process, so that no timed run pays for it
    (a sweep builds it once per node too); seconds taken."""
    from attnmel.config import TrainConfig, apply_overrides
    from attnmel.data import load_bundle

    started = time.perf_counter()
    load_bundle(apply_overrides(TrainConfig(), overrides).data)
    return time.perf_counter() - started


def _rerun(ctx: dict[str, Any], title: str, extra: list[str], label: str) -> dict[str, Any]:
    """The real run once more with ``extra`` overrides: its epoch seconds, start-up and 50-epoch
    projection beside the default run's."""
    args, clock, work, report = ctx["args"], ctx["clock"], ctx["work"], ctx["report"]
    eager = report["parts"].get("real_run") or {}
    if not eager.get("epoch_seconds"):
        return {"status": "skipped", "reason": "no default real run to compare with"}
    overrides = train_overrides(args, epochs=2, passes=None, compile_off=False) + extra
    say(f"\n== {title}, {clock.left():.0f} s left for it")
    name = label.replace(" ", "-")
    proc = TrainProcess(overrides, work / f"{name}-run", work / f"{name}-run.log")
    result = proc.result(proc.wait(clock.left()))
    part: dict[str, Any] = {"config": {"overrides": overrides}, "run": result}
    seconds = [e["epoch_seconds"] for e in result["epochs"]]
    startup = result["wall_seconds"] - sum(seconds) if result["rc"] == 0 else None
    part.update(
        epoch_seconds=seconds,
        eager_epoch_seconds=eager["epoch_seconds"],
        startup_seconds=startup,
        default_startup_seconds=eager.get("startup_seconds"),
        projected_trial_50_epochs_seconds=startup + seconds[0] + 49 * seconds[-1] if startup and len(seconds) >= 2 else None,
        default_projected_trial_50_epochs_seconds=eager.get("projected_trial_50_epochs_seconds"),
        steady_speedup=_ratio(eager["epoch_seconds"][-1], seconds[-1]) if len(seconds) >= 2 else None,
        first_epoch_extra_seconds=seconds[0] - eager["epoch_seconds"][0] if seconds else None,
        status="ok" if result["rc"] == 0 else ("partial" if seconds else "error"),
    )
    if result["rc"] != 0:
        part["error"] = ("timed out (time budget)" if result["timed_out"] else f"rc {result['rc']}") + ": " + \
            " | ".join(result["log_tail"][-4:])
    say(f"   epochs {', '.join(_fmt(x) for x in seconds)} s {label} vs {', '.join(_fmt(x) for x in eager['epoch_seconds'])}"
        f" s default; start-up {_fmt(startup)} vs {_fmt(eager.get('startup_seconds'))} s; steady-epoch speed-up "
        f"{_fmt(part['steady_speedup'], '.2f')}x; 50-epoch trial {_fmt(part['projected_trial_50_epochs_seconds'], '.0f')}"
        f" vs {_fmt(eager.get('projected_trial_50_epochs_seconds'), '.0f')} s")
    return part


def part_compile_run(ctx: dict[str, Any]) -> dict[str, Any]:
    """The real run once more with ``runtime.compile=true``."""
    if "compile" not in _runtime_keys():
        return {"status": "skipped", "reason": "this checkout has no runtime.compile key"}
    if ctx["args"].no_compile:
        return {"status": "skipped", "reason": "--no-compile"}
    return _rerun(ctx, "6. real run compiled (runtime.compile=true)", ["runtime.compile=true"], "compiled")


def part_heuristic_run(ctx: dict[str, Any]) -> dict[str, Any]:
    """The real run once more with cuDNN's heuristics instead of autotuning every new shape."""
    if "cudnn_benchmark" not in _runtime_keys():
        return {"status": "skipped", "reason": "this checkout has no runtime.cudnn_benchmark key"}
    return _rerun(ctx, "8. real run with cuDNN heuristics (runtime.cudnn_benchmark=false)",
                  ["runtime.cudnn_benchmark=false"], "heuristics")


def _yaml_section(path: Path, section: str) -> dict[str, Any]:
    import yaml

    return (yaml.safe_load(path.read_text()) or {}).get(section, {})


# --------------------------------------------------------------------------- part 5: CUDA tests


def part_cuda_tests(ctx: dict[str, Any]) -> dict[str, Any]:
    """``pytest -m cuda`` on the test files that carry the marker (collecting only those, so test
    modules that need Ray or DuckDB do not break collection on a machine without them)."""
    clock = ctx["clock"]
    if importlib.util.find_spec("pytest") is None:
        say("\n== 5. CUDA tests: pytest is not installed here — skipped (carry a pytest wheel, see docs/gpu_check.md)")
        return {"status": "skipped", "reason": "pytest not installed"}
    files = sorted(str(p.relative_to(REPO)) for p in (REPO / "tests").rglob("test_*.py")
                   if "mark.cuda" in p.read_text(encoding="utf-8", errors="replace"))
    if not files:
        return {"status": "error", "error": "no test file carries @pytest.mark.cuda"}
    cmd = [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider", *files]
    say(f"\n== 5. CUDA tests: {' '.join(cmd[1:])}")
    try:
        done = subprocess.run(cmd, cwd=REPO, env=_env_with_repo(), capture_output=True, text=True,
                              timeout=max(clock.left(), 10))
    except subprocess.TimeoutExpired:
        return {"status": "error", "error": "pytest timed out", "files": files}
    text = done.stdout + done.stderr
    counts = {k: 0 for k in ("passed", "failed", "skipped", "error", "deselected")}
    summary = [line for line in text.splitlines() if re.search(r"\d+ (passed|failed|skipped|error|deselected)", line)]
    for n, what in re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected)", summary[-1] if summary else ""):
        counts["error" if what.startswith("error") else what] += int(n)
    ok = done.returncode == 0 and counts["failed"] == 0 and counts["error"] == 0
    say("   " + (summary[-1].strip() if summary else f"pytest exit {done.returncode}"))
    return {"status": "ok" if ok else "error", "returncode": done.returncode, "files": files, **counts,
            "output_tail": text.splitlines()[-20:]}


# --------------------------------------------------------------------------- driver


def targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets with the measured value and whether it was met (None: not measured)."""
    parts = report["parts"]
    real = parts.get("real_run") or {}
    best_attnmel, best_setting = _best_step_ips(report, "attnmel")
    values = {
        "attnmel_step_images_per_second": best_attnmel,
        "augment_over_step": (parts.get("augment") or {}).get("augment_over_step"),
        "trial_50_epochs_seconds": real.get("projected_trial_50_epochs_seconds"),
        "table2_3_seeds_minutes": real.get("projected_table2_3_seeds_minutes_scaled")
        or real.get("projected_table2_3_seeds_minutes_uniform"),
        "packing_ratio": (parts.get("packing") or {}).get("packing_ratio"),
    }
    judged = report["device"] == "cuda" and not report["quick"]  # the targets are for a full GPU run
    rows = []
    for name, (op, bound) in TARGETS.items():
        value = values[name]
        met = None if not (judged and _finite(value)) else (value >= bound if op == ">=" else value <= bound)
        rows.append({"name": name, "value": value, "target": f"{op} {bound:g}", "met": met,
                     **({"setting": best_setting} if name.startswith("attnmel_step") else {})})
    tests = parts.get("cuda_tests") or {}
    rows.append({"name": "cuda_tests_pass", "value": tests.get("passed"), "target": "all pass, none skipped",
                 "met": None if tests.get("status") == "skipped" or not judged else
                 (tests.get("status") == "ok" and tests.get("passed", 0) > 0 and tests.get("skipped", 0) == 0)})
    return rows


def print_summary(report: dict[str, Any]) -> None:
    """The side-by-side table and one line per other part (the device tool returns the output's tail)."""
    env, parts = report["environment"], report["parts"]
    say("\n" + "=" * 100)
    say(f"GPU CHECK SUMMARY  {env.get('device_name')}  torch {env.get('torch')}  CUDA {env.get('torch_cuda')}  "
        f"{report['finished']}  ({report['seconds']:.0f} s{', --quick' if report['quick'] else ''})")
    peak = env.get("peak") or {}
    if peak.get("card"):
        say(f"peak: {peak['card']} bf16 {peak['bf16_dense_tflops']} TFLOP/s, TF32 {peak['tf32_dense_tflops']}, "
            f"fp32 {peak['fp32_tflops']} (dense; {peak['source']})")
    step = parts.get("step") or {}
    if step.get("by_case"):
        rows = {(r["case"], r["setting"]): r for r in step["results"] if r["status"] == "ok"}
        say(f"1. step {step['config']['size']} px batch {step['config']['batch']}: images/s "
            f"(ratio to fp32); TFLOP/s and share of bf16 peak for the best setting")
        say(f"   {'case':<15} {'GFLOP/img':>9} " + " ".join(f"{s:>15}" for s in SETTINGS)
            + f" {'best TFLOP/s':>12} {'of peak':>8}")
        for case, values in step["by_case"].items():
            cells = []
            for s in SETTINGS:
                ratio = values["ratios_to_fp32"].get(s) if s != "fp32" else None
                cell = _fmt(values.get(s), ".0f") + (f" ({ratio:.2f}x)" if _finite(ratio) else "")
                cells.append(f"{cell:>15}")
            best = rows.get((case, values.get("best_setting"))) or {}
            gflop = (step.get("flops_per_image") or {}).get(case)
            say(f"   {case:<15} {_fmt(gflop / 1e9 if gflop else None):>9} " + " ".join(cells)
                + f" {_fmt(best.get('tflops'), '.3g'):>12} {_fmt(best.get('fraction_of_bf16_peak'), '.1%'):>8}")
    elif step:
        say(f"1. step: {step.get('status')} {step.get('error') or step.get('reason') or ''}")
    for name, line in (("augment", _line_augment), ("packing", _line_packing), ("real_run", _line_real),
                       ("cuda_tests", _line_tests), ("compile_run", _line_rerun), ("probe", _line_probe),
                       ("heuristic_run", _line_rerun)):
        if name not in report["argv_parts"]:
            continue
        p = parts.get(name) or {}
        if p.get("status") in ("error", "skipped") and not p.get("results") and not p.get("run"):
            say(f"{PARTS.index(name) + 1}. {name}: {p.get('status')}: {p.get('error') or p.get('reason')}")
        else:
            say(f"{PARTS.index(name) + 1}. {name}: " + line(p))
    say("targets (issue #11): " + "; ".join(
        f"{t['name']} {_fmt(t['value'], '.4g')} {t['target']} "
        f"{'MET' if t['met'] else ('not met' if t['met'] is False else 'n/a')}" for t in report["targets"]))
    say(f"json: {report['json_path']}")


def _line_augment(p: dict[str, Any]) -> str:
    return ", ".join(f"batch {r['batch']} {r['samples_per_second']:.0f} samples/s" for r in p.get("results", [])) + (
        f"; vs step ({p.get('step_setting')}) {_fmt(p.get('step_images_per_second'))} img/s: "
        f"{_fmt(p.get('augment_over_step'), '.1f')}x")


def _line_packing(p: dict[str, Any]) -> str:
    return (f"alone {_fmt(p.get('alone_images_per_second'))} img/s, pair "
            f"{' + '.join(_fmt(v) for v in p.get('pair_images_per_second') or [])} = "
            f"{_fmt(p.get('pair_total_images_per_second'))} → {_fmt(p.get('packing_ratio'), '.2f')}x; "
            f"peak/trial reserved {_fmt(p.get('peak_memory_reserved_gib'), '.2f')} GiB")


def _line_real(p: dict[str, Any]) -> str:
    ev = p.get("reevaluation") or {}
    auc = (f"val AUC fp32 {ev['fp32']['val']['auc']:.4f} / bf16 {ev['bf16']['val']['auc']:.4f} "
           f"(Δ {ev['val_auc_bf16_minus_fp32']:+.4f})") if "fp32" in ev else f"re-eval {ev.get('status')}"
    return (f"epochs {', '.join(_fmt(s) for s in p.get('epoch_seconds', []))} s, start-up "
            f"{_fmt(p.get('startup_seconds'))} s → 50 epochs {_fmt(p.get('projected_trial_50_epochs_seconds'), '.0f')} s, "
            f"Table 2×3 seeds {_fmt(p.get('projected_table2_3_seeds_minutes_scaled') or p.get('projected_table2_3_seeds_minutes_uniform'))}"
            f" min; {auc}")


def _line_rerun(p: dict[str, Any]) -> str:
    return (f"{p.get('status')}: epochs {', '.join(_fmt(x) for x in p.get('epoch_seconds', []))} s vs "
            f"{', '.join(_fmt(x) for x in p.get('eager_epoch_seconds', []))} s default; start-up "
            f"{_fmt(p.get('startup_seconds'))} vs {_fmt(p.get('default_startup_seconds'))} s → steady speed-up "
            f"{_fmt(p.get('steady_speedup'), '.2f')}x, 50 epochs {_fmt(p.get('projected_trial_50_epochs_seconds'), '.0f')}"
            f" vs {_fmt(p.get('default_projected_trial_50_epochs_seconds'), '.0f')} s"
            + (f"; {p['error']}" if p.get("error") else ""))


def _line_probe(p: dict[str, Any]) -> str:
    steps = "; ".join(f"{r['label']} batch {r['batch']}: first {_fmt(r.get('first_step_seconds'), '.2f')} s, "
                      f"{_fmt(r.get('images_per_second'), '.0f')} img/s" for r in p.get("steps", []))
    prof = p.get("profile") or {}
    fams = ", ".join(f"{k} {v:.1f}" for k, v in list((prof.get("families_ms_per_step") or {}).items())[:5])
    evals = "; ".join(f"{r['precision']}/{r['batch']} {_fmt(r.get('images_per_second'), '.0f')} img/s"
                      for r in p.get("eval", []))
    return (f"{steps}\n   kernels ms/step: {fams} (GPU busy {_fmt(prof.get('gpu_busy_fraction'), '.0%')})"
            f"\n   eval: {evals}")


def _line_tests(p: dict[str, Any]) -> str:
    return (f"{p.get('status')}: {p.get('passed', 0)} passed, {p.get('failed', 0)} failed, "
            f"{p.get('skipped', 0)} skipped ({', '.join(p.get('files', []))})")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="ISIC 2017 root in the official layout")
    parser.add_argument("--out", type=Path, required=True, help=f"folder for {REPORT_NAME} and the logs")
    parser.add_argument("--device", default=None, help="cuda (default when available) | cuda:N | cpu")
    parser.add_argument("--quick", action="store_true", help="tiny sizes and few steps (a CPU smoke test)")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder for runs (default: a temp dir)")
    parser.add_argument("--keep-work", action="store_true", help="keep the scratch folder (checkpoints)")
    parser.add_argument("--budget-s", type=float, default=None,
                        help="whole-run budget; default 330 (quick: 3600, a guard against hangs that the smoke "
                        "run never reaches, so no part is skipped for time on a slow machine)")
    parser.add_argument("--no-compile", action="store_true", help="leave out the torch.compile setting")
    parser.add_argument("--compile-backend", default=None, help="default inductor on CUDA, eager on CPU")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(DEFAULT_PARTS),
                        help="parts to run (default: the first six; probe and heuristic_run on request)")
    args = parser.parse_args(argv)
    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    q = args.quick
    args.size, args.source_size, args.batch = (32, 40, 4) if q else (224, 256, 32)
    args.warmup = 1 if q else 5
    args.min_seconds, args.min_steps, args.max_steps, args.chunk = (0.0, 1, 1, 1) if q else (1.0, 10, 400, 5)
    args.aug_batches = (4, 16) if q else (32, 256)
    args.aug_pool = 16 if q else 512
    args.pack_epochs = 2 if q else 4
    args.budget_s = args.budget_s or (3600.0 if q else 330.0)
    return args


# Each part's share of the whole budget (the clock caps every part at what the run has left).
PART_BUDGET_S = {"step": 150.0, "augment": 20.0, "cuda_tests": 60.0, "real_run": 120.0, "packing": 100.0,
                 "compile_run": 150.0, "probe": 90.0, "heuristic_run": 60.0}


def check_inputs(args: argparse.Namespace) -> torch.device:
    """Refuse bad input before any work: the data layout and the device."""
    from attnmel.data import load_splits

    if not args.data.is_dir():
        raise UserError(f"--data {args.data}: no such folder")
    load_splits("isic2017", args.data)  # raises UserError naming the first problem
    try:
        device = torch.device(args.device)
    except RuntimeError:
        raise UserError(f"--device {args.device}: choose cuda, cuda:N or cpu") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {args.device}: CUDA is not available here")
    if device.type not in ("cuda", "cpu"):
        raise UserError(f"--device {args.device}: choose cuda, cuda:N or cpu")
    if device.type == "cuda":
        if device.index is None:  # torch.cuda.set_device refuses a CUDA device without an index
            device = torch.device("cuda", torch.cuda.current_device())
        if device.index >= torch.cuda.device_count():
            raise UserError(f"--device {args.device}: only {torch.cuda.device_count()} CUDA device(s) here")
    return device


def main(argv: list[str] | None = None) -> int:
    """Run every part, each guarded and time-boxed; exit 0 unless a part failed."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_train"]:
        return _train_process(argv[1:])
    args = parse_args(argv)
    try:
        device = check_inputs(args)
    except UserError as e:
        print(f"gpu_check: error: {e}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    work = args.work or Path(tempfile.mkdtemp(prefix="gpu_check-"))
    work.mkdir(parents=True, exist_ok=True)
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True  # as attnmel.train does on CUDA
    clock = Clock(args.budget_s)
    env = environment(device)
    json_path = args.out / REPORT_NAME
    report: dict[str, Any] = {
        "schema": SCHEMA, "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "argv": argv, "argv_parts": list(args.parts), "quick": args.quick, "device": device.type, "environment": env,
        "parts": {name: {"status": "pending"} for name in PARTS}, "json_path": str(json_path),
    }
    ctx = {"args": args, "device": device, "clock": clock, "env": env, "work": work, "report": report,
           "peak": env.get("peak") or {}, "save": lambda: _atomic_json(report, json_path)}
    say(f"gpu_check: {env['device_name']}, torch {env['torch']}, budget {args.budget_s:.0f} s, work {work}")
    runners = {"step": part_step, "augment": part_augment, "packing": part_packing, "real_run": part_real_run,
               "cuda_tests": part_cuda_tests, "compile_run": part_compile_run, "probe": part_probe,
               "heuristic_run": part_heuristic_run}
    for name in RUN_ORDER:
        if name not in args.parts:
            report["parts"][name] = {"status": "skipped", "reason": "not in --parts"}
            continue
        # --quick measures every part it is asked for: its budget guards against hangs only
        clock.begin_part(args.budget_s if args.quick else PART_BUDGET_S[name])
        started = time.perf_counter()
        if name == "packing" and device.type != "cuda":
            report["parts"][name] = {"status": "skipped", "reason": "needs CUDA: two trials sharing one GPU"}
        elif name in ("compile_run", "heuristic_run") and (device.type != "cuda" or args.quick):
            why = "inductor compile" if name == "compile_run" else "cuDNN autotuning"
            report["parts"][name] = {"status": "skipped", "reason": f"a full CUDA run only ({why})"}
        elif clock.left() < 3:
            report["parts"][name] = {"status": "skipped", "reason": "time budget"}
        else:
            report["parts"][name] = {"status": "running"}
            try:
                report["parts"][name] = runners[name](ctx)
            except Exception as e:  # guarded: record, go on with the next part
                report["parts"][name] = {**report["parts"][name], "status": "error",
                                         "error": f"{type(e).__name__}: {e}"[:2000],
                                         "traceback": traceback.format_exc()[-4000:]}
                if name == "step" and report["parts"][name].get("results"):  # keep the side-by-side table
                    report["parts"][name]["by_case"] = summarise_steps(report["parts"][name]["results"])
                say(f"   {name} failed: {type(e).__name__}: {e}")
        report["parts"][name]["seconds"] = time.perf_counter() - started
        if device.type == "cuda":
            torch.cuda.empty_cache()
        report["targets"] = targets(report)
        ctx["save"]()
    report["finished"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    report["seconds"] = clock.elapsed()
    report["targets"] = targets(report)
    ctx["save"]()
    print_summary(report)
    if not args.keep_work and args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if any(p.get("status") == "error" for p in report["parts"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
