"""``attnmel predict``: melanoma probabilities (and attention overlays) for any images."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from attnmel.errors import UserError

__all__ = ["register", "run_predict"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``predict`` command."""
    parser = subparsers.add_parser(
        "predict",
        help="score images with a trained run or sweep trial (probabilities, attention overlays)",
        description="Score JPEG/PNG images of any size with a run's best-validation model, using exactly "
        "its evaluation preprocessing and normalisation. Writes OUT/predictions.csv (image, prob, model, "
        "checkpoint) and, with --overlay, OUT/overlays/<name>.png. Exit code 1 when a file was skipped.",
    )
    parser.add_argument(
        "run", metavar="RUN_OR_TRIAL",
        help="a run directory (attnmel train --out), a best.pt file, a sweep trial's directory, or a trial id",
    )  # fmt: skip
    parser.add_argument("images", nargs="+", metavar="IMAGES", help="image files or folders (every image in them)")
    parser.add_argument("--out", type=Path, required=True, help="output folder (created when missing)")
    parser.add_argument("--overlay", action="store_true", help="also write one PNG per image with the attention maps")
    parser.add_argument(
        "--masks", type=Path, help="folder of lesion masks (<id>_segmentation.png or <id>.png) outlined on overlays"
    )
    parser.add_argument("--results", help="results root searched for a trial id (default: $ATTNMEL_RESULTS or ./results)")
    parser.add_argument("--batch-size", type=int, help="images per batch (default: the run's runtime.eval_batch_size, or 64)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto: CUDA when present")
    parser.set_defaults(func=run_predict)


def run_predict(args: argparse.Namespace) -> int:
    """Handler of ``attnmel predict``: 0 when every image was scored, 1 when one was skipped."""
    from attnmel.predict import collect_images, load_model, predict_files, resolve_checkpoint
    from orchestrator.results.root import results_root
    from orchestrator.sweep.folders import find_trial

    if args.batch_size is not None and args.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.masks is not None and not args.masks.is_dir():
        raise UserError(f"--masks {args.masks} is not a folder")
    if args.masks is not None and not args.overlay:
        raise UserError("--masks outlines lesions on overlays; add --overlay")
    if args.out.exists() and not args.out.is_dir():
        raise UserError(f"--out {args.out} exists and is not a folder")
    files, notes = collect_images(args.images)
    run = Path(args.run).expanduser()
    if not run.exists() and os.sep not in args.run and not args.run.endswith(".pt"):  # a trial id
        run = find_trial(results_root(args.results), args.run)
    model = load_model(resolve_checkpoint(run), device=args.device)
    for note in notes:
        print(f"attnmel: note: {note}", file=sys.stderr)
    report = predict_files(model, files, args.out, overlay=args.overlay, masks=args.masks, batch_size=args.batch_size)
    extra = f", {len(report.overlays)} overlays in {args.out / 'overlays'}" if args.overlay else ""
    skipped = f"; skipped {len(report.skipped)} unreadable file(s)" if report.skipped else ""
    print(f"{len(report.rows)} images scored by {model.name} ({model.checkpoint}) -> {args.out / 'predictions.csv'}"
          f"{extra}{skipped}")  # fmt: skip
    return 1 if report.skipped or report.warnings else 0
