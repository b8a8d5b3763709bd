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
    parser.add_argument(
        "--labels", type=Path, metavar="CSV",
        help="ground truth of the images (any official ISIC format, recognised by its header; or any CSV with "
        "--label-column): adds a label column and prints AUC and AP, also into OUT/metrics.json",
    )  # fmt: skip
    parser.add_argument("--id-column", default=None, help="with --label-column: the image id column (default image)")
    parser.add_argument("--label-column", default=None, help="--labels is a plain CSV: its label column")
    parser.add_argument("--positive", default=None, help="with --label-column: the value meaning melanoma (default 1)")
    parser.set_defaults(func=run_predict)


def run_predict(args: argparse.Namespace) -> int:
    """Handler of ``attnmel predict``: 0 when every image was scored, 1 when one was skipped."""
    from attnmel.predict import collect_images, load_model, predict_files, resolve_checkpoint
    from orchestrator.layout.root import results_root
    from orchestrator.layout.folders import find_trial

    if args.batch_size is not None and args.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.masks is not None and not args.masks.is_dir():
        raise UserError(f"--masks {args.masks} is not a folder")
    if args.masks is not None and not args.overlay:
        raise UserError("--masks outlines lesions on overlays; add --overlay")
    if args.out.exists() and not args.out.is_dir():
        raise UserError(f"--out {args.out} exists and is not a folder")
    if args.labels is None and (args.label_column or args.id_column or args.positive):
        raise UserError("--label-column, --id-column and --positive describe a --labels CSV; add --labels")
    if args.label_column is None and (args.id_column or args.positive):
        raise UserError("--id-column and --positive go with --label-column")
    files, notes = collect_images(args.images)
    labels = None
    if args.labels is not None:
        from attnmel.data.datasets.base import MatchLabels
        from attnmel.data.labels import labels_of_files

        rule = None
        if args.label_column:
            rule = MatchLabels(args.id_column or "image", args.label_column, args.positive or "1")
        labels, label_notes = labels_of_files(files, args.labels, rule=rule)
        if len(set(labels.values())) < 2:
            raise UserError(f"--labels {args.labels}: the images hold only one class; AUC and AP need both")
        notes += label_notes
    run = Path(args.run).expanduser()
    if not run.exists() and os.sep not in args.run and not args.run.endswith(".pt"):  # a trial id
        run = find_trial(results_root(args.results), args.run)
    model = load_model(resolve_checkpoint(run), device=args.device)
    for note in notes:
        print(f"attnmel: note: {note}", file=sys.stderr)
    report = predict_files(model, files, args.out, overlay=args.overlay, masks=args.masks, batch_size=args.batch_size,
                           labels=labels)  # fmt: skip
    if labels is not None:
        _print_metrics(report.rows, args.out, args.labels)
    extra = f", {len(report.overlays)} overlays in {args.out / 'overlays'}" if args.overlay else ""
    skipped = f"; skipped {len(report.skipped)} unreadable file(s)" if report.skipped else ""
    print(f"{len(report.rows)} images scored by {model.name} ({model.checkpoint}) -> {args.out / 'predictions.csv'}"
          f"{extra}{skipped}")  # fmt: skip
    return 1 if report.skipped or report.warnings else 0


def _print_metrics(rows: list[dict], out: Path, labels: Path) -> None:
    """AUC and AP of the scored images against their labels, printed and in ``out/metrics.json``."""
    import json

    from attnmel.atomic import atomic_write
    from attnmel.metrics import ap_auc

    y = [r["label"] for r in rows]
    if len(set(y)) < 2:
        print("attnmel: warning: the scored images hold one class only; no AUC/AP", file=sys.stderr)
        return
    ap, auc = ap_auc(y, [r["prob"] for r in rows])
    metrics = {"labels": str(labels), "images": len(y), "melanoma": int(sum(y)), "auc": auc, "ap": ap}
    atomic_write(out / "metrics.json", json.dumps(metrics, indent=1))
    print(f"AUC {auc:.4f}, AP {ap:.4f} on {len(y)} images ({sum(y)} melanoma) against {labels}")
