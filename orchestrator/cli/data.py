"""``attnmel data check | synth | download``: inspect, synthesise or fetch a dataset (any declared one).

Handlers take the parsed ``args`` and return the exit code; a ``UserError`` they raise is
printed as one line by ``orchestrator.cli.main`` (exit 2).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from attnmel.config import CSV_KEYS, DATASETS
from attnmel.data.datasets import DECLARATIONS, SPLITS
from attnmel.data.datasets.base import SPLIT_CHOICES

__all__ = ["register", "cmd_check", "cmd_synth", "cmd_download", "source_from_args"]

# The source keys `data check` takes as options (--masks, the CSV folder's keys, the carving).
_SOURCE_OPTIONS = ("masks", *CSV_KEYS, "val_fraction", "test_fraction", "val_seed")


def _split_table(report: dict) -> str:
    lines = [f"{report['dataset']}"]
    group = report.get("grouped_by") or "groups"
    lines.append(f"  {'split':<6} {'images':>7} {'melanoma':>9} {'other':>7} {'lesion':>7} {'dermo':>7} {group:>11}")
    for name, s in report["splits"].items():
        groups = "-" if s.get("groups") is None else s["groups"]
        lines.append(
            f"  {name:<6} {s['images']:>7} {s['melanoma']:>9} {s['other']:>7} "
            f"{s['roi']['lesion']:>7} {s['roi']['dermo']:>7} {groups:>11}"
        )
    for c in report.get("carved", []):
        by = f", grouped by {c['grouped_by']} ({c['groups']} groups)" if c["grouped_by"] else ""
        lines.append(f"  {c['split']} carved from {c['from']}: fraction {c['fraction']}, seed {c['seed']}, "
                     f"stratified by {c['stratified_by']}{by}")  # fmt: skip
    if report.get("duplicates_dropped"):
        lines.append(f"  duplicates dropped: {report['duplicates_dropped']}")
    return "\n".join(lines)


def source_from_args(args: argparse.Namespace):
    """The data source the options name (checked like ``data.*`` config keys)."""
    from attnmel.data.layout import source_of

    given = {k: getattr(args, k) for k in _SOURCE_OPTIONS if getattr(args, k, None) is not None}
    return source_of(args.dataset, Path(args.root), **given)


def cmd_check(args: argparse.Namespace) -> int:
    """Validate a dataset folder; 0 when usable, 2 with one line per problem otherwise."""
    from attnmel.data.datasets.base import chosen_splits
    from attnmel.data.layout import check_layout

    splits = chosen_splits(args.split)
    report, problems = check_layout(source_from_args(args), decode=not args.no_decode, splits=splits)
    if args.json:
        print(json.dumps({**report, "problems": problems}))
    else:
        print(_split_table(report))
        if not problems:
            print("usable: yes")
    for note in report["notes"]:
        print(f"attnmel: note: {note}", file=sys.stderr)
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
        splits=args.splits,
    )

    def describe(c: dict) -> str:
        marked = f", {c['marked']} marked" if "marked" in c else ""
        return f"{c['images']} ({c['melanoma']} melanoma{marked})"

    summary = ", ".join(f"{split} {describe(c)}" for split, c in counts.items())
    print(f"wrote synthetic {args.dataset} ({args.task}) to {args.root}: {summary}")
    if args.dataset == "csv":
        from attnmel.data.datasets.csvfolder import SYNTH_KEYS, SYNTH_SPLIT_COLUMN

        keys = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in SYNTH_KEYS.items())
        print(f"read it with: {keys} [--split-column {SYNTH_SPLIT_COLUMN}]")
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    """Fetch the official archives (resumable) and unpack them into the official layout."""
    from attnmel.data.datasets.base import chosen_splits
    from attnmel.data.download import BASE_URL, download_dataset

    handled = download_dataset(
        args.dataset,
        Path(args.root),
        parts=args.parts,
        splits=None if args.split == "all" else chosen_splits(args.split),
        base_url=args.base_url or BASE_URL,
        keep_archives=args.keep_archives,
        progress=lambda msg: print(msg, file=sys.stderr),
    )
    print(f"{args.dataset}: {len(handled)} files in place under {args.root}")
    return 0


def _counts_help(split: str) -> str:
    parts = [f"{plan.counts[split]} ({name})" for name, d in DECLARATIONS.items() if (plan := d.synth) and split in plan.counts]
    return "default " + ", ".join(parts)


def register(subparsers) -> None:
    """Add the ``data`` command and its subcommands to the top-level parser."""
    data = subparsers.add_parser("data", help="check, synthesise or download a dataset")
    sub = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)

    check = sub.add_parser("check", help="validate a dataset folder and count images, labels, groups and masks")
    check.add_argument("--dataset", required=True, choices=DATASETS)
    check.add_argument("--root", required=True, help="folder holding the dataset's files")
    check.add_argument("--json", action="store_true", help="print one JSON object")
    check.add_argument("--masks", help="folder of lesion masks (relative to --root), e.g. the HAM10000 segmentations")
    for key in CSV_KEYS:
        check.add_argument(f"--{key.replace('_', '-')}", dest=key, help="csv only: like data." + key)
    check.add_argument("--val-fraction", type=float, default=None, help="carved validation share (default 0.2)")
    check.add_argument("--test-fraction", type=float, default=None, help="carved test share (default 0.2)")
    check.add_argument("--val-seed", type=int, default=None, help="seed of every carving (default 0)")
    check.add_argument("--no-decode", action="store_true", help="read image headers only (faster, misses truncation)")
    check.add_argument(
        "--split",
        choices=SPLIT_CHOICES,
        default="all",
        help="check this split alone, needing only its files (a carved split: training's); "
        "default all",
    )
    check.set_defaults(func=cmd_check)

    synth = sub.add_parser("synth", help="write a synthetic dataset in the official layout")
    synth.add_argument("--dataset", required=True, choices=DATASETS)
    synth.add_argument("--root", required=True)
    synth.add_argument("--n-train", type=int, default=None, help=_counts_help("train"))
    synth.add_argument("--n-val", type=int, default=None, help=_counts_help("val") + "; the others carve it")
    synth.add_argument("--n-test", type=int, default=None, help=_counts_help("test"))
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
    synth.add_argument(
        "--splits",
        nargs="+",
        choices=SPLITS,
        default=None,
        help="write only the files these splits are made of, as a download of them alone "
        "(a carved split: training's); default all",
    )
    synth.add_argument("--force", action="store_true", help="replace existing official files under --root")
    synth.set_defaults(func=cmd_synth)

    from attnmel.data.download import PARTS

    download = sub.add_parser("download", help="fetch the official challenge archives (resumable)")
    download.add_argument("--dataset", required=True, choices=[n for n, d in DECLARATIONS.items() if d.archives])
    download.add_argument("--root", required=True)
    have = "; ".join(f"{n}: {' '.join(d.parts)}" for n, d in DECLARATIONS.items() if d.archives)
    download.add_argument("--parts", nargs="+", choices=PARTS, default=None, help=f"default: all ({have})")
    download.add_argument(
        "--split",
        choices=SPLIT_CHOICES,
        default="all",
        help="fetch the archives of this split alone (a carved split: training's); default all",
    )
    download.add_argument("--base-url", default=None, help="mirror of the challenge bucket (default: official)")
    download.add_argument("--keep-archives", action="store_true", help="keep the zips in <root>/.downloads")
    download.set_defaults(func=cmd_download)
