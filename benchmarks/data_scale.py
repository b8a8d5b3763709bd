"""Data at the scale of ISIC 2019/2020: how fast the preprocessing cache is built, and what
host memory each trial on a node pays for the data when the cache is memory-mapped.

1. Cache build: images/s of ``attnmel.data.preprocess.load_images`` building a cache (decode,
   0.8·min centre crop, bilinear resize to ``--image-size``), with one thread and with one per
   core, side by side, on two kinds of source: the real (downsized, 256²) ISIC 2017 copy and
   synthetic HAM10000-sized JPEGs (600×450, ``attnmel data synth --dataset isic2018``). The
   projected build time of ISIC 2019 (25,331 training images) and ISIC 2020 (33,126) is
   printed at each rate; real ISIC 2019/2020 JPEGs are larger (up to 6000×4000 in ISIC 2020),
   so decoding dominates there and the real rate is lower.
2. Memory of N trials (default 4): N processes load the same bundle from the cache and touch
   every image the way a trial does (one pass of augmented training batches, centre crops of
   validation and test), then wait at a barrier so that all are alive while each reads its
   ``/proc/self/smaps_rollup``. Once with the product's memory-mapped cache, once with each
   process holding a private copy (what a loader without a memory map, e.g. ``torch.load``
   without ``mmap``, leaves in every trial). Printed per trial: RSS, PSS (shared pages split
   among the processes that map them), anonymous memory; and the data's share of PSS.

Only the data path is measured, not a model: a trial's model, optimiser and activations
come on top, the same in both modes. Run:

    .venv/bin/python benchmarks/data_scale.py [--root ../shared/isic2017] [--trials 4]
        [--image-size 256] [--synthetic 160] [--parts build memory]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # a shared box: no spinning threads

REPO = Path(__file__).resolve().parents[1]
IMAGES = {"isic2019": 25_331, "isic2020": 33_126}


def _build_rate(samples, image_size: int, workers: int, cache: Path) -> float:
    from attnmel.data.preprocess import load_images

    shutil.rmtree(cache, ignore_errors=True)
    started = time.perf_counter()
    load_images(samples, image_size=image_size, cache_dir=cache, workers=workers)
    return len(samples) / (time.perf_counter() - started)


def part_build(root: Path, n_synthetic: int, image_size: int, work: Path) -> None:
    from attnmel.data.layout import load_splits
    from attnmel.data.synth import write_synthetic

    sources = {}
    if (root / "ISIC-2017_Training_Part3_GroundTruth.csv").is_file():
        sources["ISIC 2017 copy, 256x256 JPEG"] = load_splits("isic2017", root)["train"][:600]
    synth = work / "ham"
    write_synthetic("isic2018", synth, n_train=n_synthetic, n_val=1, n_test=1, size=450, seed=0)
    sources["synthetic 600x450 JPEG (HAM10000 size)"] = load_splits("isic2018", synth)["train"]
    cores = os.cpu_count() or 1
    print(f"1. cache build at {image_size}² (images/s; under load: other processes share these {cores} cores)")
    for what, samples in sources.items():
        one = _build_rate(samples, image_size, 1, work / "cache")
        many = _build_rate(samples, image_size, cores, work / "cache")
        projection = ", ".join(f"{name} {n / many / 60:.1f} min" for name, n in IMAGES.items())
        print(f"   {what}: {len(samples)} images, 1 thread {one:.0f}/s, {cores} threads {many:.0f}/s "
              f"({many / one:.2f}x); at that rate {projection}")  # fmt: skip
    per_image = 3 * image_size * image_size
    sizes = ", ".join(f"{name} {n * per_image / 1e9:.1f} GB" for name, n in IMAGES.items())
    print(f"   cache size at {image_size}²: {per_image / 1e3:.0f} kB per image; {sizes}")


def _smaps() -> dict[str, int]:
    """kB fields of this process's /proc/self/smaps_rollup."""
    out = {}
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines()[1:]:
        key, value, *_ = line.split()
        out[key.rstrip(":")] = int(value)
    return out


def _trial(cfg_raw: dict, private: bool, barrier, results, index: int) -> None:
    """One trial's data path: load the bundle, touch every image as training and evaluation do."""
    import torch

    from attnmel.config import config_from_dict
    from attnmel.data.augment import eval_batch, train_batch
    from attnmel.data.bundle import load_bundle

    torch.set_num_threads(1)
    before = _smaps()
    cfg = config_from_dict(cfg_raw).data
    bundle = load_bundle(cfg)
    splits = [bundle.train, bundle.val, bundle.test]
    if private:  # what each trial holds when the cache is read into its own memory
        splits = [torch.clone(s.images) for s in splits]
    else:
        splits = [s.images for s in splits]
    generator = torch.Generator().manual_seed(index)
    order = torch.randperm(len(splits[0]), generator=generator)
    for start in range(0, len(order), 64):
        train_batch(splits[0].index_select(0, order[start : start + 64]), None, crop=cfg.crop_size,
                    mean=bundle.mean, std=bundle.std, generator=generator)  # fmt: skip
    for images in splits[1:]:
        for start in range(0, len(images), 64):
            eval_batch(images[start : start + 64], crop=cfg.crop_size, mean=bundle.mean, std=bundle.std)
    data_mb = sum(s.numel() for s in splits) / 2**20
    barrier.wait()  # every trial is alive and holds its data
    after = _smaps()
    results[index] = {"before": before, "after": after, "data_mb": data_mb}
    barrier.wait()  # nobody leaves (unmapping its pages) before all have measured


def part_memory(root: Path, trials: int, image_size: int, work: Path) -> None:
    from attnmel.config import TrainConfig, apply_overrides, config_to_dict
    from attnmel.data.bundle import load_bundle

    cfg = apply_overrides(TrainConfig(), [f"data.root={root}", f"data.image_size={image_size}", "data.crop_size=224",
                                          f"data.cache_dir={work / 'cache-mem'}"])  # fmt: skip
    load_bundle(cfg.data)  # build the cache once, as preflight does
    ctx = mp.get_context("spawn")
    print(f"2. host memory of {trials} trials' data ({root.name}, {image_size}²), MB per trial, all {trials} alive")
    totals = {}
    for mode, private in (("memory-mapped cache (product)", False), ("private copy per trial", True)):
        manager = ctx.Manager()
        results, barrier = manager.dict(), ctx.Barrier(trials)
        procs = [ctx.Process(target=_trial, args=(config_to_dict(cfg), private, barrier, results, i)) for i in range(trials)]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        rows = [results[i] for i in range(trials)]
        manager.shutdown()
        pss = [r["after"]["Pss"] / 1024 for r in rows]
        grown = [(r["after"]["Pss"] - r["before"]["Pss"]) / 1024 for r in rows]
        rss = [r["after"]["Rss"] / 1024 for r in rows]
        anon = [r["after"]["Anonymous"] / 1024 for r in rows]
        totals[mode] = sum(grown)
        print(f"   {mode}: data {rows[0]['data_mb']:.0f} MB; RSS {sum(rss) / trials:.0f}, PSS {sum(pss) / trials:.0f}, "
              f"anonymous {sum(anon) / trials:.0f}; PSS grown by loading and using the data {sum(grown) / trials:.0f} "
              f"per trial, {sum(grown):.0f} for all {trials}")  # fmt: skip
    mapped, copied = totals.values()
    print(f"   data memory of {trials} trials: memory-mapped {mapped:.0f} MB vs private copies {copied:.0f} MB "
          f"({copied / max(mapped, 1e-9):.2f}x)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=REPO / ".." / "shared" / "isic2017", help="ISIC 2017 folder")
    ap.add_argument("--trials", type=int, default=4)
    ap.add_argument("--image-size", type=int, default=256)
    ap.add_argument("--synthetic", type=int, default=160, help="synthetic 600x450 images for the build rate")
    ap.add_argument("--parts", nargs="+", choices=("build", "memory"), default=["build", "memory"])
    args = ap.parse_args()
    root = args.root.resolve()
    with tempfile.TemporaryDirectory(prefix="attnmel-scale-") as tmp:
        work = Path(tmp)
        if "build" in args.parts:
            part_build(root, args.synthetic, args.image_size, work)
        if "memory" in args.parts:
            if not (root / "ISIC-2017_Training_Part3_GroundTruth.csv").is_file():
                print(f"2. skipped: no ISIC 2017 copy at {root}", file=sys.stderr)
            else:
                part_memory(root, args.trials, args.image_size, work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
