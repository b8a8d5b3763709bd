"""``attnmel data check | synth | download``: inspect, synthesise or fetch an ISIC dataset.

Handlers take the parsed ``args`` and return the exit code; a ``UserError`` they raise is
printed as one line by ``orchestrator.cli.main`` (exit 2).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from attnmel.config import DATASETS

__all__ = ["register", "cmd_check", "cmd_synth", "cmd_download"]

_PARTS = ("images", "labels", "lesion", "dermo")


def _split_table(report: dict) -> str:
    lines = [f"{report['dataset']}"]
    lines.append(f"  {'split':<6} {'images':>7} {'melanoma':>9} {'other':>7} {'lesion':>7} {'dermo':>7}")
    for name, s in report["splits"].items():
        lines.append(
            f"  {name:<6} {s['images']:>7} {s['melanoma']:>9} {s['other']:>7} "
            f"{s['roi']['lesion']:>7} {s['roi']['dermo']:>7}"
        )
    if "val_split" in report:
        v = report["val_split"]
        lines.append(f"  val carved from train: fraction {v['fraction']}, seed {v['seed']}")
    return "\n".join(lines)


def cmd_check(args: argparse.Namespace) -> int:
    """Validate a dataset folder; 0 when usable, 2 with one line per problem otherwise."""
    from attnmel.data.layout import check_layout

    report, problems = check_layout(
        args.dataset, Path(args.root), val_fraction=args.val_fraction, val_seed=args.val_seed, decode=not args.no_decode
    )
    if args.json:
        print(json.dumps({**report, "problems": problems}))
    else:
        print(_split_table(report))
        if not problems:
            print("usable: yes")
    for problem in problems:
        print(f"attnmel: error: {problem}", file=sys.stderr)
    return 2 if problems else 0


def cmd_synth(args: argparse.Namespace) -> int:
    """Write a synthetic dataset in the official layout."""
    from attnmel.data.synth import write_synthetic

    counts = write_synthetic(
        args.dataset,
        Path(args.root),
        n_train=args.n_train,
        n_val=args.n_val,
        n_test=args.n_test,
        size=args.size,
        melanoma_fraction=args.melanoma_fraction,
        seed=args.seed,
        overwrite=args.force,
        task=args.task,
        signal=args.signal,
        confounder_rate=args.confounder_rate,
    )

    def describe(c: dict) -> str:
        marked = f", {c['marked']} marked" if "marked" in c else ""
        return f"{c['images']} ({c['melanoma']} melanoma{marked})"

    summary = ", ".join(f"{split} {describe(c)}" for split, c in counts.items())
    print(f"wrote synthetic {args.dataset} ({args.task}) to {args.root}: {summary}")
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    """Fetch the official archives (resumable) and unpack them into the official layout."""
    from attnmel.data.download import BASE_URL, download_dataset

    handled = download_dataset(
        args.dataset,
        Path(args.root),
        parts=args.parts,
        base_url=args.base_url or BASE_URL,
        keep_archives=args.keep_archives,
        progress=lambda msg: print(msg, file=sys.stderr),
    )
    print(f"{args.dataset}: {len(handled)} files in place under {args.root}")
    return 0


def register(subparsers) -> None:
    """Add the ``data`` command and its subcommands to the top-level parser."""
    data = subparsers.add_parser("data", help="check, synthesise or download an ISIC dataset")
    sub = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)

    check = sub.add_parser("check", help="validate a dataset folder and count images, labels and ROI maps")
    check.add_argument("--dataset", required=True, choices=DATASETS)
    check.add_argument("--root", required=True, help="folder holding the official ISIC files")
    check.add_argument("--json", action="store_true", help="print one JSON object")
    check.add_argument("--val-fraction", type=float, default=0.2, help="isic2016: share of training held out")
    check.add_argument("--val-seed", type=int, default=0, help="isic2016: seed of the stratified split")
    check.add_argument("--no-decode", action="store_true", help="read image headers only (faster, misses truncation)")
    check.set_defaults(func=cmd_check)

    synth = sub.add_parser("synth", help="write a synthetic dataset in the official layout")
    synth.add_argument("--dataset", required=True, choices=DATASETS)
    synth.add_argument("--root", required=True)
    synth.add_argument("--n-train", type=int, default=None, help="default 48 (2017) / 64 (2016)")
    synth.add_argument("--n-val", type=int, default=None, help="default 16 (2017); isic2016 has none")
    synth.add_argument("--n-test", type=int, default=None, help="default 24")
    synth.add_argument("--size", type=int, default=96, help="image height in px (width is 4/3 of it)")
    synth.add_argument("--melanoma-fraction", type=float, default=0.3)
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument(
        "--task",
        choices=("abcd", "confounded"),
        default="abcd",
        help="abcd: the classes differ only in the lesion (default); confounded: weaker lesion cues plus a "
        "green sticker beside the lesion that agrees with the label in training only",
    )
    synth.add_argument(
        "--signal",
        type=float,
        default=None,
        metavar="S",
        help="melanoma cue strength in [0, 1], 1 = full ABCD cues, 0 = looks benign "
        "(default 1.0 for abcd, 0.12 for confounded)",
    )
    synth.add_argument(
        "--confounder-rate",
        type=float,
        default=None,
        metavar="R",
        help="confounded only: share of training images whose sticker agrees with the label "
        "(default 0.95); validation and test are always at chance (0.5)",
    )
    synth.add_argument("--force", action="store_true", help="replace existing official files under --root")
    synth.set_defaults(func=cmd_synth)

    download = sub.add_parser("download", help="fetch the official challenge archives (resumable)")
    download.add_argument("--dataset", required=True, choices=DATASETS)
    download.add_argument("--root", required=True)
    download.add_argument(
        "--parts", nargs="+", choices=_PARTS, default=None, help="default: all (isic2016 has no dermo part)"
    )
    download.add_argument("--base-url", default=None, help="mirror of the challenge bucket (default: official)")
    download.add_argument("--keep-archives", action="store_true", help="keep the zips in <root>/.downloads")
    download.set_defaults(func=cmd_download)
