"""Training throughput of one full step per variant: the project's options vs plain PyTorch.

A step is ``attnmel.step.train_step``, the one ``fit`` runs: forward, focal loss (+ the two
Dice terms of Eq. 5 for variants with attention), backward and an SGD step from
``make_optimizer`` (the paper's momentum 0.9, Nesterov, weight decay 1e-4). For each
variant two identical models train side by side in the same process, on the same synthetic
batch, in alternating rounds (so drift in machine load hits both):

- plain:   float32, contiguous (NCHW) tensors — what a straightforward PyTorch loop does;
- project: the options ``attnmel.train`` uses — channels_last, and bf16 autocast on CUDA
           (on CPU only with --bf16).

It prints images/s for both and their ratio; on CUDA also the achieved TFLOP/s and the
fraction of the bf16 dense peak, taking VGG-16 at ~31 GFLOP per 224² image forward and ~3×
that per training step, scaled by (size/224)².

    python benchmarks/train_throughput.py                      # CPU: 64 px
    python benchmarks/train_throughput.py --device cuda        # 224 px, bf16 + channels_last
"""

from __future__ import annotations

import argparse
import copy
import time

import torch

from attnmel.config import LossConfig, OptimConfig
from attnmel.model_names import has_attention, list_models
from attnmel.models import create_model
from attnmel.runtime import Precision, prepare_model
from attnmel.step import make_optimizer, train_step

STEP_GFLOP_224 = 3 * 31.0  # VGG-16 forward ≈ 31 GFLOP at 224²; forward + backward ≈ 3×


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", nargs="+", default=None, help=f"default: all of {list_models()}")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--size", type=int, default=None, help="input side; default 224 on CUDA, 64 on CPU")
    parser.add_argument("--batch", type=int, default=None, help="default 32 on CUDA, 8 on CPU")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per round; default 20 CUDA, 3 CPU")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per setting first")
    parser.add_argument("--rounds", type=int, default=2, help="alternating plain/project rounds")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast on CPU too (always on for CUDA)")
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="bf16 dense peak (H100 SXM ≈ 989)")
    args = parser.parse_args(argv)
    cuda = args.device.startswith("cuda")
    args.size = args.size or (224 if cuda else 64)
    args.batch = args.batch or (32 if cuda else 8)
    args.steps = args.steps or (20 if cuda else 3)
    args.variants = args.variants or list_models()
    unknown = sorted(set(args.variants) - set(list_models()))
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {list_models()}")
    if args.size % 32:
        parser.error(f"--size must be divisible by 32, got {args.size}")
    return args


class Setting:
    """A model, its optimiser and the options one step runs with."""

    def __init__(self, name: str, model: torch.nn.Module, *, channels_last: bool, bf16: bool) -> None:
        device = next(model.parameters()).device
        self.name, self.precision = name, Precision(bf16=bf16, channels_last=channels_last)
        self.model = prepare_model(model, device, self.precision, compile=False)
        self.optimizer = make_optimizer(model.parameters(), OptimConfig(), device)
        self.seconds, self.images = 0.0, 0

    def step(self, images: torch.Tensor, target: torch.Tensor, ref: torch.Tensor | None) -> None:
        train_step(self.model, self.optimizer, images, target, ref, loss=LossConfig(), precision=self.precision)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_variant(name: str, args: argparse.Namespace, device: torch.device) -> dict[str, float]:
    torch.manual_seed(0)
    base = create_model(name).to(device).train()
    cuda = device.type == "cuda"
    settings = [
        Setting("plain", base, channels_last=False, bf16=False),
        Setting("project", copy.deepcopy(base), channels_last=True, bf16=cuda or args.bf16),
    ]
    gen = torch.Generator(device=device).manual_seed(0)
    images = torch.randn(args.batch, 3, args.size, args.size, device=device, generator=gen)
    target = torch.randint(0, 2, (args.batch,), device=device, generator=gen)
    ref = (torch.rand(args.batch, 1, args.size, args.size, device=device, generator=gen) > 0.5).float()
    ref = ref if has_attention(name) else None
    for setting in settings:
        for _ in range(args.warmup):
            setting.step(images, target, ref)
    for _ in range(args.rounds):
        for setting in settings:
            _sync(device)
            start = time.perf_counter()
            for _ in range(args.steps):
                setting.step(images, target, ref)
            _sync(device)
            setting.seconds += time.perf_counter() - start
            setting.images += args.steps * args.batch
    return {s.name: s.images / s.seconds for s in settings}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
    gflop_per_image = STEP_GFLOP_224 * (args.size / 224) ** 2
    options = "channels_last + bf16 autocast" if (cuda or args.bf16) else "channels_last, fp32"
    where = torch.cuda.get_device_name(device) if cuda else f"CPU, {torch.get_num_threads()} threads"
    timed = f"{args.rounds}×{args.steps} timed steps after {args.warmup} warm-up"
    print(f"# {where}; size {args.size}, batch {args.batch}, {timed}")
    print(f"# plain = fp32 contiguous; project = {options}; torch {torch.__version__}")
    header = f"{'variant':<10} {'plain img/s':>12} {'project img/s':>14} {'ratio':>6}"
    if cuda:
        header += f" {'TFLOP/s':>8} {'of peak':>8}"
    print(header, flush=True)
    for name in args.variants:
        result = bench_variant(name, args, device)
        plain, project = result["plain"], result["project"]
        line = f"{name:<10} {plain:>12.2f} {project:>14.2f} {project / plain:>6.2f}"
        if cuda:
            tflops = project * gflop_per_image / 1e3
            line += f" {tflops:>8.1f} {tflops / args.peak_tflops:>8.1%}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
