"""``attnmel train``: one training run without Ray, one line per epoch, a JSON summary last."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from attnmel.config import TrainConfig, apply_overrides, load_config
from attnmel.errors import UserError, format_bytes
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
    parser.add_argument("--force", action="store_true",
                        help="start even when the filesystem of --out has less free space than the run needs")  # fmt: skip
    parser.set_defaults(func=run_train)


def _config_from_args(args: argparse.Namespace) -> TrainConfig:
    base = load_config(args.config) if args.config else TrainConfig()
    return apply_overrides(base, args.overrides)


def _check_space(cfg: TrainConfig, out: Path, *, force: bool) -> None:
    """Refuse a run directory whose filesystem cannot hold the run's checkpoints (``--force``:
    start anyway). What the directory holds already counts: a resumed run replaces it."""
    from attnmel.atomic import free_bytes
    from attnmel.checkpoint_sizes import checkpoint_sizes

    free = free_bytes(out)
    if force or free is None:
        return
    held = sum(p.stat().st_size for p in out.iterdir() if p.is_file()) if out.is_dir() else 0
    need = checkpoint_sizes(cfg).run_dir - held
    if need > free:
        raise UserError(f"--out {out}: the run needs about {format_bytes(need)} for its checkpoints but its "
                        f"filesystem has {format_bytes(free)} free; free space, pick another --out, or --force")  # fmt: skip


def run_train(args: argparse.Namespace) -> int:
    """Handler of ``attnmel train``."""
    from attnmel.atomic import storage_error
    from attnmel.checkpoint import read_summary
    from attnmel.train import fit  # torch import only when training

    cfg = _config_from_args(args)
    _check_space(cfg, args.out, force=args.force)
    try:
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
    except Exception as exc:  # a full or read-only disk: one line, and the directory resumes
        problem = storage_error(exc, args.out)
        if problem is None:
            raise
        raise UserError(f"{problem}; {args.out} keeps its last checkpoint: free space (or make it writable), "
                        "then run the same command to resume") from None  # fmt: skip
    summary = read_summary(args.out)
    print(json.dumps({k: summary[k] for k in ("best_epoch", *SPLIT_METRICS)}))
    return 0
