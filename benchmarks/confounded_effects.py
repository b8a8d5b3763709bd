"""Effect sizes of attention regularisation on the known-answer confounded benchmark.

Writes the synthetic ISIC 2017 set with ``task="confounded"`` (weak lesion cues; a green
sticker beside the lesion that agrees with the label in most training images and is at chance
in validation and test) into a temporary folder, trains AttnMel-CNN unregularised
(``data.roi=none``), with lesion reference maps (``lesion``) and with background ones
(``bkg``) for each seed on the CPU, one thread each, and prints per seed and on average:

* test AUC at the best-validation epoch (``best_test_auc`` of ``attnmel.train.fit``);
* the attention Jaccard index with the test lesion masks (Table 3's procedure,
  ``attnmel.attention_overlap.attention_jaccard``) of A3 and A4 of the best-validation checkpoint;
* the sticker reliance: mean melanoma probability of marked minus unmarked test images
  (the dot is independent of the label there, so a model that ignores it scores ≈ 0);
* the wall time of each trial.

By construction AttnMel-CNN-Lesion should beat AttnMel-CNN on test AUC, -Bkg be the worst,
and -Lesion's attention overlap the lesion more.

    .venv/bin/python benchmarks/confounded_effects.py --seeds 0 1 2
    .venv/bin/python benchmarks/confounded_effects.py --seeds 0 1 --lambda1 0.1 --lambda2 0.1 --epochs 6
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from attnmel.config import TrainConfig, apply_overrides
from attnmel.data import eval_batch, load_bundle, load_splits, write_synthetic
from attnmel.data.preprocess import preprocess_map
from attnmel.data.roi import load_roi
from attnmel.data.synth import DEFAULT_CONFOUNDER_RATE, DEFAULT_SIGNAL
from attnmel.attention_overlap import attention_jaccard
from attnmel.models import create_model
from attnmel.train import fit

ROIS = ("none", "lesion", "bkg")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds (default 0 1 2)")
    p.add_argument(
        "--data-seed", type=int, default=None, help="seed of the synthetic set (default: each training seed's own)"
    )
    p.add_argument("--rois", nargs="+", default=list(ROIS), choices=("none", "lesion", "dermo", "bkg"))
    g = p.add_argument_group("benchmark")
    g.add_argument("--signal", type=float, default=DEFAULT_SIGNAL["confounded"])
    g.add_argument("--confounder-rate", type=float, default=DEFAULT_CONFOUNDER_RATE)
    g.add_argument("--n-train", type=int, default=96)
    g.add_argument("--n-val", type=int, default=64)
    g.add_argument("--n-test", type=int, default=128)
    g.add_argument("--size", type=int, default=64, help="image height in px")
    g = p.add_argument_group("training")
    g.add_argument("--image-size", type=int, default=40)
    g.add_argument("--crop-size", type=int, default=32)
    g.add_argument("--epochs", type=int, default=5)
    g.add_argument("--batch-size", type=int, default=16)
    g.add_argument("--lr", type=float, default=0.01)
    g.add_argument("--lambda1", type=float, default=1.0)
    g.add_argument("--lambda2", type=float, default=1.0)
    g.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any other training key")
    p.add_argument("--keep", type=Path, default=None, help="write data and runs here instead of a temp folder")
    return p.parse_args(argv)


def base_config(args: argparse.Namespace, root: Path) -> TrainConfig:
    """The trial config shared by every variant and seed (CPU, one thread, no pretrained weights)."""
    return apply_overrides(
        TrainConfig(),
        [
            "data.dataset=isic2017",
            f"data.root={root}",
            f"data.cache_dir={root / '.cache'}",
            f"data.image_size={args.image_size}",
            f"data.crop_size={args.crop_size}",
            "data.passes=1",
            "model.weights=none",
            f"optim.epochs={args.epochs}",
            f"optim.batch_size={args.batch_size}",
            f"optim.lr={args.lr}",
            f"loss.lambda1={args.lambda1}",
            f"loss.lambda2={args.lambda2}",
            "runtime.device=cpu",
            "runtime.num_threads=1",
            *args.set,
        ],
    )


def test_masks(cfg: TrainConfig, ids: list[str]) -> torch.Tensor:
    """(N, 1, c, c) lesion masks of the test images in ``ids`` order, through the evaluation geometry."""
    by_id = {s.image_id: s for s in load_splits(cfg.data.dataset, Path(cfg.data.root))["test"]}
    maps = [preprocess_map(load_roi(by_id[i], "lesion"), cfg.data.image_size, cfg.data.crop_fraction) for i in ids]
    masks = torch.from_numpy(np.stack(maps))[:, None]  # (N, 1, S, S)
    s, c = cfg.data.image_size, cfg.data.crop_size
    o = (s - c) // 2  # eval_batch's centre crop
    return masks[..., o : o + c, o : o + c]


def sticker_shown(images_u8: torch.Tensor, crop: int) -> np.ndarray:
    """Which (N, 3, S, S) uint8 test images show the green sticker in their evaluation crop."""
    s = images_u8.shape[-1]
    o = (s - crop) // 2
    x = images_u8[..., o : o + crop, o : o + crop].int()
    green = (x[:, 1] - x[:, 0]) > 40  # (N, c, c); skin and lesion colours are redder than green
    return (green.sum(dim=(1, 2)) >= 2).numpy()


@torch.no_grad()
def attention_stats(cfg: TrainConfig, run_dir: Path) -> dict[str, float]:
    """Jaccard of A3/A4 with the test lesions and the sticker reliance of the best checkpoint."""
    bundle = load_bundle(cfg.data)
    state = torch.load(run_dir / "best.pt", map_location="cpu", weights_only=True)["model"]
    model = create_model(cfg.model.variant, backbone=cfg.model.backbone, weights="none")
    model.load_state_dict(state)
    model.eval()
    test = bundle.test
    out = model(eval_batch(test.images, crop=cfg.data.crop_size, mean=bundle.mean, std=bundle.std))
    prob = torch.softmax(out.logits, dim=1)[:, 1].numpy()
    masks = test_masks(cfg, test.ids)
    marked = sticker_shown(test.images, cfg.data.crop_size)
    reliance = float(prob[marked].mean() - prob[~marked].mean()) if 0 < marked.sum() < len(marked) else float("nan")
    return {
        "jaccard3": attention_jaccard(out.attn3, masks),
        "jaccard4": attention_jaccard(out.attn4, masks),
        "sticker": reliance,
    }


def run_trial(cfg: TrainConfig, run_dir: Path) -> dict[str, float]:
    """Train one config to the end; return its best-epoch numbers, attention stats and wall time."""
    started = time.perf_counter()
    last = None
    for last in fit(cfg, run_dir):
        pass
    seconds = time.perf_counter() - started
    return {
        "best_epoch": last["best_epoch"],
        "val_auc": last["best_val_auc"],
        "test_auc": last["best_test_auc"],
        **attention_stats(cfg, run_dir),
        "seconds": seconds,
    }


def _fmt(values: list[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(1)
    holder = None if args.keep else tempfile.TemporaryDirectory(prefix="attnmel-confounded-")
    work = args.keep or Path(holder.name)
    work.mkdir(parents=True, exist_ok=True)
    print(
        f"confounded benchmark: signal {args.signal}, confounder rate {args.confounder_rate}, "
        f"n {args.n_train}/{args.n_val}/{args.n_test}, {args.size} px → {args.image_size}/{args.crop_size}; "
        f"{args.epochs} epochs, batch {args.batch_size}, lr {args.lr}, λ1 {args.lambda1}, λ2 {args.lambda2}"
    )
    header = (
        f"{'seed':>4} {'roi':<7} {'best':>4} {'val AUC':>8} {'test AUC':>8} "
        f"{'J(A3)':>6} {'J(A4)':>6} {'stick':>6} {'s':>5}"
    )
    print(header)
    rows: dict[str, list[dict[str, float]]] = {roi: [] for roi in args.rois}
    try:
        for seed in args.seeds:
            data_seed = seed if args.data_seed is None else args.data_seed
            root = work / f"data-{data_seed}"
            if not root.exists():
                write_synthetic(
                    "isic2017", root, n_train=args.n_train, n_val=args.n_val, n_test=args.n_test, size=args.size,
                    seed=data_seed, task="confounded", signal=args.signal, confounder_rate=args.confounder_rate,
                )
            base = base_config(args, root)
            for roi in args.rois:
                cfg = apply_overrides(base, [f"data.roi={roi}", f"runtime.seed={seed}"])
                r = run_trial(cfg, work / f"run-{roi}-{seed}-{data_seed}")
                rows[roi].append(r)
                print(
                    f"{seed:>4} {roi:<7} {r['best_epoch']:>4} {r['val_auc']:>8.3f} {r['test_auc']:>8.3f} "
                    f"{r['jaccard3']:>6.3f} {r['jaccard4']:>6.3f} {r['sticker']:>+6.2f} {r['seconds']:>5.1f}",
                    flush=True,
                )
    finally:
        if holder is not None:
            holder.cleanup()
    print("\nmean ± std over seeds")
    for roi, rs in rows.items():
        cols = {k: _fmt([r[k] for r in rs]) for k in ("test_auc", "jaccard3", "jaccard4", "sticker", "seconds")}
        print(
            f"  {roi:<7} test AUC {cols['test_auc']}  J(A3) {cols['jaccard3']}  J(A4) {cols['jaccard4']}  "
            f"sticker {cols['sticker']}  s/trial {cols['seconds']}"
        )
    pairs = [("lesion", "none"), ("none", "bkg"), ("lesion", "bkg")]
    for a, b in pairs:
        if rows.get(a) and rows.get(b):
            diffs = [x["test_auc"] - y["test_auc"] for x, y in zip(rows[a], rows[b])]
            wins = sum(d > 0 for d in diffs)
            print(f"  test AUC {a} − {b}: " + " ".join(f"{d:+.3f}" for d in diffs) + f"  ({wins}/{len(diffs)} > 0)")
    if rows.get("lesion") and rows.get("none"):
        diffs = [x["jaccard3"] - y["jaccard3"] for x, y in zip(rows["lesion"], rows["none"])]
        print("  J(A3) lesion − none: " + " ".join(f"{d:+.3f}" for d in diffs))


if __name__ == "__main__":
    main()
