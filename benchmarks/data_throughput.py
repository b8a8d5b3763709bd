"""Training-batch throughput: cached, batched augmentation vs a per-sample PIL pipeline.

Both paths produce the same kind of batch for the same images: a random ``crop`` window of
the centre-cropped, 256²-resized image, a random rot90·k, random h/v flips, normalised.

* cached: preprocessed uint8 tensors from the disk cache (built once, timed separately),
  indexed by the epoch sampler, augmented with ``attnmel.data.augment.train_batch``.
* PIL: the paper's per-sample preprocessing with torchvision transforms on PIL images —
  decode JPEG, centre crop 0.8·min(H, W), resize 256, random crop, rot90, flips, to tensor,
  normalise — batched by a DataLoader, with 0 workers and with one worker per core.

Same machine, same batch size, same number of batches; the ratio is printed. Run:

    .venv/bin/python benchmarks/data_throughput.py [--root ../shared/isic2017] [--batch-size 32]
        [--batches 40] [--rounds 2] [--crop 224] [--threads N] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import os

# On a shared box, spinning OpenMP threads of a preempted process stall every intra-op
# parallel op (seen here: 6–14× slower elementwise ops at 2 threads under load); passive
# waiting keeps the comparison about the data path. Must be set before torch starts.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torchvision.transforms as T
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from attnmel.data.augment import train_batch
from attnmel.data.layout import load_splits
from attnmel.data.preprocess import channel_stats, load_images
from attnmel.data.sampler import EpochSampler

REPO = Path(__file__).resolve().parents[1]


class RandomRot90:
    """Rotate a PIL image by a random multiple of 90° (torchvision has no such transform)."""

    TURNS = (None, Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_180, Image.Transpose.ROTATE_270)

    def __call__(self, img: Image.Image) -> Image.Image:
        turn = random.choice(self.TURNS)
        return img if turn is None else img.transpose(turn)


class PaperPipeline(Dataset):
    """Per-sample PIL preprocessing and augmentation, as the paper's PyTorch transforms do it."""

    def __init__(self, paths: list[Path], image_size: int, crop: int, fraction: float, mean, std):
        self.paths = paths
        self.fraction = fraction
        self.tail = T.Compose(
            [
                T.Resize((image_size, image_size), interpolation=T.InterpolationMode.BILINEAR, antialias=True),
                T.RandomCrop(crop),
                RandomRot90(),
                T.RandomHorizontalFlip(),
                T.RandomVerticalFlip(),
                T.ToTensor(),
                T.Normalize(mean, std),
            ]
        )

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        with Image.open(self.paths[i]) as im:
            img = im.convert("RGB")
        side = round(self.fraction * min(img.size))
        return self.tail(T.functional.center_crop(img, [side, side]))


def _rate(it, n: int) -> float:
    """Batches per second over the next ``n`` batches of ``it``."""
    start = time.perf_counter()
    for _ in range(n):
        batch = next(it)
    if isinstance(batch, torch.Tensor) and batch.is_cuda:
        torch.cuda.synchronize()
    return n / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default=str(REPO / ".." / "shared" / "isic2017"), help="ISIC 2017 folder")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--batches", type=int, default=40, help="timed batches per path (over all rounds)")
    ap.add_argument("--rounds", type=int, default=2, help="alternating timing rounds; the median is reported")
    ap.add_argument("--crop", type=int, default=224)
    ap.add_argument("--image-size", type=int, default=256)
    ap.add_argument("--crop-fraction", type=float, default=0.8)
    ap.add_argument("--device", default="cpu", help="where the batched path runs (cpu, cuda)")
    ap.add_argument("--cache-dir", default=None, help="default: a fresh temporary folder")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    samples = load_splits("isic2017", Path(args.root))["train"]
    # enough images that no timed round of the PIL path revisits one (each epoch reshuffles)
    samples = samples[: (args.batches // args.rounds + 2) * args.batch_size]
    paths = [s.image for s in samples]
    device = torch.device(args.device)
    print(f"{len(samples)} training images from {Path(args.root).resolve()}, batch {args.batch_size}, "
          f"crop {args.crop}, {args.batches} timed batches, {torch.get_num_threads()} torch threads, "
          f"{os.cpu_count()} cores, OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}, batched path on {device}")

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        images, _ = load_images(samples, image_size=args.image_size, crop_fraction=args.crop_fraction,
                                cache_dir=Path(args.cache_dir or tmp))
        build = time.perf_counter() - start
        mean, std = channel_stats(images)
        images = images.to(device)
        generator = torch.Generator(device=device).manual_seed(0)
        sampler = EpochSampler([s.label for s in samples], seed=0)

        def cached_batches():
            epoch = 0
            while True:
                order = torch.as_tensor(sampler.epoch_indices(epoch), device=device)
                for i in range(0, len(order) - args.batch_size + 1, args.batch_size):
                    batch = images.index_select(0, order[i : i + args.batch_size])  # memcpy per row
                    x, _ = train_batch(batch, None, crop=args.crop, mean=mean, std=std, generator=generator)
                    yield x
                epoch += 1

        # Paths take turns, round by round, so a change in machine load hits them alike; the
        # median round is reported. Each round starts a fresh iterator (DataLoader workers
        # included) and skips two warm-up batches, so idle workers never steal CPU from the
        # other paths. Batches the workers prefetched (at most one each) during warm-up
        # flatter the PIL path by up to workers/per_round: the ratio is conservative.
        loaders = {
            w: DataLoader(PaperPipeline(paths, args.image_size, args.crop, args.crop_fraction, mean, std),
                          batch_size=args.batch_size, shuffle=True, num_workers=w, drop_last=True,
                          **({"prefetch_factor": 1} if w else {}))
            for w in sorted({0, os.cpu_count() or 1})
        }
        streams = {"cached": cached_batches}
        streams.update({w: (lambda loader=loader: iter(loader)) for w, loader in loaders.items()})
        rates: dict = {name: [] for name in streams}
        per_round = max(1, args.batches // args.rounds)
        threads = torch.get_num_threads()
        for _ in range(args.rounds):
            for name, make in streams.items():
                # Per-sample tensor ops are too small for intra-op threads: one thread, as in
                # DataLoader workers (spinning OpenMP threads would slow the PIL path unfairly).
                torch.set_num_threads(1 if name == 0 else threads)
                it = make()
                for _ in range(2):
                    next(it)
                rates[name].append(_rate(it, per_round))
                del it
        torch.set_num_threads(threads)

    median = {name: statistics.median(r) for name, r in rates.items()}
    print(f"cache build (once per dataset): {build:.2f} s for {len(samples)} images")
    print(f"cached batched path:            {median['cached']:8.2f} batches/s")
    for w in loaders:
        print(f"per-sample PIL, {w} workers:     {median[w]:8.2f} batches/s")
    for w in loaders:
        print(f"ratio cached / PIL ({w} workers): {median['cached'] / median[w]:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
