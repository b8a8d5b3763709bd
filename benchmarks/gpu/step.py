"""Part "step": the AttnMel-CNN-Lesion training step before and after each change of issue 21,
timed side by side in one process, each change with its correctness check.

Rows, each adding one change to the one before (project precision: bf16 autocast and
channels_last on CUDA, fp32 on a CPU):

``biased``            convolutions before batch norm with biases (torchvision's VGG-16-BN layers,
                      as the project had them), SGD unfused, eager: the step before issue 21
``folded``            the product's network: those biases folded into batch norm
``fused``             + fused SGD: the project's defaults (``runtime.compile`` off)
``compiled``          + ``runtime.compile``: the backbone compiled for the one training shape
``compiled_model``    the whole network under ``torch.compile`` instead, for comparison

Checks: the fold in float64 on the device (train-mode outputs and every gradient, relative to
each tensor's scale), fused against unfused SGD after one step, compiled against eager loss on
the first step; then evaluation (``attnmel.evaluation.melanoma_probs``) at the padded batch of
64 against the batch size that divides the splits, and what ``runtime.eval_test: best`` saves
per epoch; last, where the default step's kernel time goes (``torch.profiler``).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from attnmel.config import RuntimeConfig, TrainConfig, apply_overrides
from attnmel.data import train_batch
from attnmel.evaluation import EVAL_BATCH_CAP, eval_batch_size, melanoma_probs
from attnmel.models import build_model
from attnmel.models.backbone import VGGBackbone
from attnmel.runtime import Precision, prepare_model, resolve_precision
from attnmel.step import make_optimizer, train_step
from benchmarks.gpu.report import error_text, fmt, ratio, say, status_of

ROWS = ("biased", "folded", "fused", "compiled", "compiled_model")
BASELINE = {"folded": "biased", "fused": "folded", "compiled": "fused", "compiled_model": "fused"}  # "before" of each
UNFUSED = ("biased", "folded")
DEFAULT_ROW = "fused"  # the project's defaults
FOLD_TOLERANCE = 1e-10  # float64, relative to each tensor's largest magnitude
FUSED_TOLERANCE = 1e-5  # fp32 parameters after one step, relative
COMPILE_TOLERANCE = {"bf16": 2e-2, "fp32": 1e-4}  # first-step loss, relative: inductor reorders sums
ISIC2017_EVAL = (150, 600)  # validation and test images of the official split
# Kernel families by substrings of the lower-cased CUDA kernel name; the first that matches wins
# (cuDNN names its batch-norm kernels with "nhwc" too).
KERNEL_FAMILIES = (
    ("optimizer", ("multi_tensor", "foreach", "fused_sgd")),
    ("batch norm", ("batch_norm", "batchnorm", "bn_fw", "bn_bw", "welford")),
    ("layout copies", ("nchwtonhwc", "nhwctonchw", "transpose", "copy")),
    ("convolution", ("conv", "xmma", "implicit", "wgrad", "dgrad", "fprop", "cutlass", "cudnn", "sm90_")),
    ("matmul", ("gemm", "cublas")),
    ("pooling", ("pool",)),
    ("elementwise", ("elementwise", "vectorized", "relu", "threshold", "fill", "where", "triton_poi")),
    ("reduction", ("reduce", "triton_red", "triton_per")),
)


def kernel_family(name: str) -> str:
    """The family of a CUDA kernel name (see KERNEL_FAMILIES); "other" when none matches."""
    low = name.lower()
    return next((family for family, keys in KERNEL_FAMILIES if any(k in low for k in keys)), "other")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(fn: Callable[[], Any], device: torch.device, *, min_s: float, min_steps: int, max_steps: int,
               chunk: int) -> tuple[int, float]:  # fmt: skip
    """Run ``fn`` in synchronised chunks until ``min_s`` and ``min_steps`` are reached; (steps, seconds)."""
    sync(device)
    start, steps = time.perf_counter(), 0
    while True:
        for _ in range(chunk):
            fn()
        steps += chunk
        sync(device)
        seconds = time.perf_counter() - start
        if (seconds >= min_s and steps >= min_steps) or steps >= max_steps:
            return steps, seconds


def biased_copy(model: nn.Module) -> nn.Module:
    """``model`` with torchvision's VGG-16-BN layers (a bias on every convolution) in place of its
    folded backbone, computing the same function: the biases are zero, the weights the same."""
    from torchvision.models.vgg import cfgs, make_layers

    biased = copy.deepcopy(model)
    features = make_layers(cfgs["D"], batch_norm=True)
    missing, unexpected = features.load_state_dict(model.backbone.features.state_dict(), strict=False)
    assert not unexpected and all(k.endswith(".bias") for k in missing), (missing, unexpected)
    with torch.no_grad():
        for layer in features:
            if isinstance(layer, nn.Conv2d):
                layer.bias.zero_()
    biased.backbone = VGGBackbone(features)
    return biased.to(next(model.parameters()).device)


def _scaled_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach(), b.detach()
    return float((a - b).abs().max() / b.abs().max().clamp(min=1e-30))


def check_fold(cfg: TrainConfig, device: torch.device, size: int) -> dict[str, Any]:
    """Biased (nonzero biases) and folded networks in float64 on ``device``: train-mode outputs
    and every shared gradient, relative to each tensor's scale (target ≤ 1e-10)."""
    torch.manual_seed(0)
    folded = build_model(cfg.model).to(device).double().train()
    biased = biased_copy(folded).double().train()
    with torch.no_grad():
        for layer in biased.backbone.features:
            if isinstance(layer, nn.Conv2d):
                layer.bias.normal_(0.0, 0.5)
    folded.load_state_dict(biased.state_dict())  # folds the nonzero biases into the running means
    x = torch.randn(4, 3, size, size, dtype=torch.float64, device=device)
    worst = 0.0
    outputs = [m(x) for m in (biased, folded)]
    for a, b in zip(outputs[0], outputs[1]):
        worst = max(worst, _scaled_difference(b, a))
    for out in outputs:
        (out.logits.sum() + out.attn3.sum() + out.attn4.sum()).backward()
    grads = dict(biased.named_parameters())
    for name, param in folded.named_parameters():
        worst = max(worst, _scaled_difference(param.grad, grads[name].grad))
    return {"status": "ok" if worst <= FOLD_TOLERANCE else "error", "max_scaled_difference": worst,
            "tolerance": FOLD_TOLERANCE, "dtype": "float64", "size": size}  # fmt: skip


class StepRow:
    """One row's network, optimiser and the step that trains it (``attnmel.step.train_step``)."""

    def __init__(self, name: str, base: nn.Module, cfg: TrainConfig, device: torch.device, precision: Precision) -> None:
        model = biased_copy(base) if name == "biased" else copy.deepcopy(base)
        self.name, self.cfg, self.precision = name, cfg, precision
        runner = prepare_model(model, device, precision, compile=name == "compiled")
        self.runner = torch.compile(runner, dynamic=False) if name == "compiled_model" else runner
        self.model = model
        self.optimizer = make_optimizer(model.parameters(), cfg.optim, device, fused=False if name in UNFUSED else None)

    def step(self, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return train_step(self.runner, self.optimizer, *batch, loss=self.cfg.loss, precision=self.precision).total


def _batch(pool: torch.Tensor, rois: torch.Tensor, labels: torch.Tensor, cfg: TrainConfig, n: int,
           generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """One augmented training batch of ``n`` images, as an epoch of ``fit`` draws it."""
    index = torch.randint(0, len(pool), (n,), device=pool.device, generator=generator)
    images, maps = train_batch(pool.index_select(0, index), rois.index_select(0, index), crop=cfg.data.crop_size,
                               mean=(0.7, 0.55, 0.5), std=(0.15, 0.17, 0.19), generator=generator)  # fmt: skip
    return images, labels.index_select(0, index), maps


def _time_row(row: StepRow, batch: tuple, device: torch.device, opts: Any) -> dict[str, Any]:
    sync(device)
    started = time.perf_counter()
    first_loss = float(row.step(batch))
    first = time.perf_counter() - started
    for _ in range(opts.warmup):
        row.step(batch)
    steps, seconds = time_steps(lambda: row.step(batch), device, min_s=opts.min_seconds, min_steps=opts.min_steps,
                                max_steps=opts.max_steps, chunk=opts.chunk)  # fmt: skip
    n = len(batch[0])
    return {"status": "ok", "first_step_seconds": first, "first_loss": first_loss, "timed_steps": steps,
            "images_per_second": steps * n / seconds, "ms_per_step": 1e3 * seconds / steps}  # fmt: skip


def _eval_part(model: nn.Module, device: torch.device, precision: Precision, cfg: TrainConfig, opts: Any) -> dict[str, Any]:
    """Seconds of one epoch's evaluation, ISIC 2017's split sizes (scaled down in the smoke run):
    every split at the padded batch of 64, at the batch that divides the splits, and validation
    alone (``eval_test: best``); the probabilities of the two batch sizes compared."""
    sizes = tuple(n // opts.eval_divisor for n in ISIC2017_EVAL)
    gen = torch.Generator(device=device).manual_seed(1)
    source = cfg.data.image_size
    splits = [torch.randint(0, 256, (n, 3, source, source), dtype=torch.uint8, device=device, generator=gen) for n in sizes]
    kw = dict(crop=cfg.data.crop_size, mean=(0.7, 0.55, 0.5), std=(0.15, 0.17, 0.19), precision=precision)
    divisor = eval_batch_size(sizes)
    out: dict[str, Any] = {"split_sizes": list(sizes), "padded_batch": EVAL_BATCH_CAP, "dividing_batch": divisor}
    probs = {}
    for label, batch, which in (("every_padded", EVAL_BATCH_CAP, splits), ("every_dividing", divisor, splits),
                                ("best_dividing", divisor, splits[:1])):  # fmt: skip
        def evaluate() -> None:
            probs[label] = [melanoma_probs(model, s, batch_size=batch, **kw) for s in which]

        evaluate()  # cuDNN tunes the shape once, as the first epoch does
        steps, seconds = time_steps(evaluate, device, min_s=opts.min_seconds, min_steps=2, max_steps=20, chunk=1)
        out[f"{label}_seconds_per_epoch"] = seconds / steps
    out["max_abs_prob_difference_padded_vs_dividing"] = float(max(
        abs(a - b).max() for a, b in zip(probs["every_padded"], probs["every_dividing"])))
    out["dividing_over_padded_speed"] = ratio(out["every_padded_seconds_per_epoch"], out["every_dividing_seconds_per_epoch"])
    out["best_saves_seconds_per_epoch"] = out["every_dividing_seconds_per_epoch"] - out["best_dividing_seconds_per_epoch"]
    out["status"] = "ok" if out["max_abs_prob_difference_padded_vs_dividing"] < 1e-3 else "error"
    return out


def _profile(row: StepRow, batch: tuple, device: torch.device, steps: int) -> dict[str, Any]:
    from torch.profiler import ProfilerActivity, profile

    cuda = device.type == "cuda"
    with profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])) as prof:
        started = time.perf_counter()
        for _ in range(steps):
            row.step(batch)
        sync(device)
        wall_us = (time.perf_counter() - started) * 1e6
    kernels = [(e.key, e.self_device_time_total, e.count) for e in prof.key_averages()
               if cuda and str(e.device_type).endswith("CUDA") and e.self_device_time_total > 0]  # fmt: skip
    total = sum(t for _, t, _ in kernels)
    families: dict[str, float] = {}
    for name, t, _ in kernels:
        families[kernel_family(name)] = families.get(kernel_family(name), 0.0) + t / 1e3 / steps
    return {
        "row": row.name, "steps": steps, "wall_ms_per_step": wall_us / 1e3 / steps,
        "kernel_ms_per_step": total / 1e3 / steps, "gpu_busy_fraction": total / wall_us if cuda else None,
        "families_ms_per_step": dict(sorted(families.items(), key=lambda kv: -kv[1])),
        "top_kernels": [{"name": n[:160], "ms_per_step": t / 1e3 / steps, "calls_per_step": c / steps,
                         "family": kernel_family(n)} for n, t, c in sorted(kernels, key=lambda k: -k[1])[:15]],
    }  # fmt: skip


def run(ctx: dict[str, Any]) -> dict[str, Any]:
    """The part: rows timed, checks, evaluation, profile; the report grows as it goes."""
    opts, device, report = ctx["opts"], ctx["device"], ctx["report"]
    cfg = apply_overrides(TrainConfig(), ["data.roi=lesion", "model.weights=none", f"data.crop_size={opts.size}",
                                          f"data.image_size={opts.source}", f"optim.batch_size={opts.batch}"])  # fmt: skip
    precision, eval_precision = resolve_precision(RuntimeConfig(), device)
    label = "bf16" if precision.bf16 else "fp32"
    part: dict[str, Any] = {"status": "running", "config": {
        "variant": "attnmel+lesion", "size": opts.size, "batch": opts.batch, "precision": label,
        "channels_last": precision.channels_last, "compile_backend": opts.compile_backend}, "rows": {}, "checks": {}}
    report.parts["step"] = part
    say(f"\n== step: AttnMel-CNN-Lesion, {opts.size} px, batch {opts.batch}, {label}"
        f"{' + channels_last' if precision.channels_last else ''}, {ctx['env']['device_name']}")
    say(f"   {'row':<15} {'img/s':>9} {'ms/step':>8} {'first s':>8} {'vs before':>9} {'vs biased':>9}")

    gen = torch.Generator(device=device).manual_seed(0)
    pool = torch.randint(0, 256, (4 * opts.batch, 3, opts.source, opts.source), dtype=torch.uint8, device=device,
                         generator=gen)  # fmt: skip
    rois = (torch.rand(4 * opts.batch, 1, opts.source, opts.source, device=device, generator=gen) > 0.5).to(torch.uint8)
    labels = torch.randint(0, 2, (4 * opts.batch,), device=device, generator=gen)
    batch = _batch(pool, rois, labels, cfg, opts.batch, gen)
    torch.manual_seed(0)
    base = build_model(cfg.model)
    losses: dict[str, float] = {}
    for name in ROWS:
        row = None
        try:
            row = StepRow(name, base, cfg, device, precision)
            with opts.compile_stance():
                result = _time_row(row, batch, device, opts)
            losses[name] = result["first_loss"]
            if device.type == "cuda":
                result["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
                torch.cuda.reset_peak_memory_stats(device)
        except Exception as exc:  # one row's failure must not cost the others
            result = {"status": "error", "error": error_text(exc)}
        part["rows"][name] = result
        ips = result.get("images_per_second")
        result["over_previous"] = ratio(ips, part["rows"].get(BASELINE.get(name), {}).get("images_per_second"))
        result["over_biased"] = ratio(ips, part["rows"]["biased"].get("images_per_second"))
        say(f"   {name:<15} {fmt(ips, '.0f'):>9} {fmt(result.get('ms_per_step'), '.2f'):>8} "
            f"{fmt(result.get('first_step_seconds'), '.1f'):>8} {fmt(result['over_previous'], '.3f'):>9} "
            f"{fmt(result['over_biased'], '.3f'):>9}" + (f"   {result['error']}" if result["status"] == "error" else ""))
        report.save()
        del row
        if device.type == "cuda":
            torch.cuda.empty_cache()

    checks = part["checks"]
    for name, check in (("fold_float64", lambda: check_fold(cfg, device, opts.fold_size)),
                        ("fused_vs_unfused", lambda: _check_fused(base, cfg, device, precision, batch)),
                        ("compiled_vs_eager", lambda: _check_compiled(losses, label))):  # fmt: skip
        try:
            checks[name] = check()
        except Exception as exc:
            checks[name] = {"status": "error", "error": error_text(exc)}
        say(f"   check {name}: {checks[name]['status']} " + ", ".join(
            f"{k} {fmt(v, '.3g') if isinstance(v, float) else v}" for k, v in checks[name].items() if k != "status"))
    report.save()
    try:
        model = prepare_model(copy.deepcopy(base), device, eval_precision, compile=False)
        part["eval"] = _eval_part(model, device, eval_precision, cfg, opts)
        e = part["eval"]
        say(f"   evaluation per epoch (splits {e['split_sizes']}): batch {e['padded_batch']} padded "
            f"{e['every_padded_seconds_per_epoch']:.3f} s, batch {e['dividing_batch']} "
            f"{e['every_dividing_seconds_per_epoch']:.3f} s, eval_test best {e['best_dividing_seconds_per_epoch']:.3f} s"
            f" (saves {e['best_saves_seconds_per_epoch']:.3f} s/epoch); max |Δp| {e['max_abs_prob_difference_padded_vs_dividing']:.1e}")
    except Exception as exc:
        part["eval"] = {"status": "error", "error": error_text(exc)}
        say(f"   evaluation: {part['eval']['error']}")
    report.save()
    try:
        part["profile"] = _profile(StepRow(DEFAULT_ROW, base, cfg, device, precision), batch, device, opts.profile_steps)
        p = part["profile"]
        say(f"   profile of '{DEFAULT_ROW}': {p['wall_ms_per_step']:.2f} ms/step wall, {p['kernel_ms_per_step']:.2f} ms of "
            "kernels: " + ", ".join(f"{k} {v:.2f}" for k, v in p["families_ms_per_step"].items()))
    except Exception as exc:
        part["profile"] = {"status": "error", "error": error_text(exc)}
    part["default_images_per_second"] = part["rows"][DEFAULT_ROW].get("images_per_second")
    part["status"] = status_of(list(part["rows"].values()) + list(checks.values()) + [part["eval"]])
    return part


def _check_fused(base: nn.Module, cfg: TrainConfig, device: torch.device, precision: Precision, batch: tuple) -> dict[str, Any]:
    """One step from the same weights with fused and unfused SGD: the largest parameter difference."""
    rows = [StepRow(name, base, cfg, device, precision) for name in ("folded", "fused")]
    for row in rows:
        torch.manual_seed(3)
        row.step(batch)
    worst = max(_scaled_difference(a, b) for a, b in zip(rows[1].model.parameters(), rows[0].model.parameters()))
    return {"status": "ok" if worst <= FUSED_TOLERANCE else "error", "max_scaled_difference": worst,
            "tolerance": FUSED_TOLERANCE, "fused": [r.optimizer.param_groups[0]["fused"] for r in rows]}  # fmt: skip


def _check_compiled(losses: dict[str, float], label: str) -> dict[str, Any]:
    """First-step losses (same weights, same batch) of the compiled rows against eager's."""
    tol = COMPILE_TOLERANCE[label]
    diffs = {name: abs(losses[name] - losses["fused"]) / abs(losses["fused"]) for name in ("compiled", "compiled_model")
             if name in losses and "fused" in losses}  # fmt: skip
    if not diffs:
        return {"status": "skipped", "reason": "no compiled row ran"}
    return {"status": "ok" if max(diffs.values()) <= tol else "error", "tolerance": tol,
            **{f"{k}_relative_loss_difference": v for k, v in diffs.items()}}  # fmt: skip
