"""``attnmel train``: one training run without Ray, one line per epoch, a JSON summary last."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from attnmel.config import TrainConfig, apply_overrides, load_config
from attnmel.record import SPLIT_METRICS

__all__ = ["register", "run_train"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` command."""
    parser = subparsers.add_parser(
        "train",
        help="run one training run (no Ray); resumes when --out holds an unfinished run",
        description="Train one model variant. Prints one line per epoch and ends with one JSON line: "
        '{"best_epoch", "val_auc", "val_ap", "test_auc", "test_ap"} at the best validation-AUC epoch.',
    )
    parser.add_argument("--config", type=Path, help="YAML config; keys not given keep the paper's defaults")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one config key (repeatable), e.g. --set optim.epochs=3 --set data.roi=lesion",
    )
    parser.add_argument("--out", type=Path, required=True, help="run directory (checkpoints, config, epochs.jsonl)")
    parser.set_defaults(func=run_train)


def _config_from_args(args: argparse.Namespace) -> TrainConfig:
    base = load_config(args.config) if args.config else TrainConfig()
    return apply_overrides(base, args.overrides)


def run_train(args: argparse.Namespace) -> int:
    """Handler of ``attnmel train``."""
    from attnmel.checkpoint import read_summary
    from attnmel.train import fit  # torch import only when training

    cfg = _config_from_args(args)
    for result in fit(cfg, args.out):
        test = f"test AUC {result['test_auc']:.4f} AP {result['test_ap']:.4f}  " if result["test_auc"] is not None else ""
        line = (
            f"epoch {result['epoch']:3d}/{cfg.optim.epochs}  lr {result['lr']:.2e}  "
            f"loss {result['train_loss']:.4f} (cls {result['train_cls_loss']:.4f}, "
            f"dice3 {result['train_dice3']:.4f}, dice4 {result['train_dice4']:.4f})  "
            f"val AUC {result['val_auc']:.4f} AP {result['val_ap']:.4f}  {test}"
            f"{result['epoch_seconds']:.1f}s {result['images_per_second']:.1f} img/s"
            f"{'  *best' if result['is_best'] else ''}"
        )
        print(line, flush=True)
    summary = read_summary(args.out)
    print(json.dumps({k: summary[k] for k in ("best_epoch", *SPLIT_METRICS)}))
    return 0
