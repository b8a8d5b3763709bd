"""``attnmel report build|show|compare``, ``attnmel query`` and ``attnmel plot sensitivity|curves|attention``.

None of these import Ray: they read a sweep's files or its Parquet tables, so they run
anywhere the results were copied to.
"""

from __future__ import annotations

import argparse
import sys

from attnmel.errors import UserError
from orchestrator.results.stats import DEFAULT_RESAMPLES

__all__ = ["register"]

_MIN_RESAMPLES = 1000  # a 95 % percentile interval rests on its 2.5 % tails


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``report``, ``query`` and ``plot`` commands to the ``attnmel`` parser."""
    report = subparsers.add_parser("report", help="build and show a sweep's result tables")
    report_commands = report.add_subparsers(dest="report_command", metavar="ACTION", required=True)
    build = report_commands.add_parser(
        "build", help="write trials.parquet and epochs.parquet from a sweep's storage directory"
    )
    build.add_argument("path", help="a sweep directory, or a results root holding several (each is built)")
    build.set_defaults(func=_report_build)
    show = report_commands.add_parser(
        "show", help="the paper-style table per dataset: mean ± std over seeds, 95%% CIs, or Table 3"
    )
    show.add_argument("path", help="a sweep directory, or a results root holding several")
    show.add_argument(
        "--paper", action="store_true", help="put the paper's AP and AUC beside ours, and say if they lie in our CI"
    )
    show.add_argument(
        "--ci",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="95%% bootstrap CI of each setting's seed-averaged test AP and AUC (needs per-image predictions; "
        "default: on)",
    )
    show.add_argument("--per-trial", action="store_true", help="also list every trial's test AP and AUC with its CI")
    _resamples_argument(show)
    show.add_argument(
        "--table3",
        action="store_true",
        help="print Table 3 instead: Jaccard of the attention maps (CAM for VGG-16-GAP) with the lesion masks",
    )
    show.set_defaults(func=_report_show)
    compare = report_commands.add_parser(
        "compare",
        help="paired test of two settings on the same test images (DeLong for AUC, bootstrap for AP)",
        description="Compare setting A with setting B, seed by seed and on the seed-averaged probabilities. "
        "A setting is [DATASET:]NAME[@λ1,λ2]: a paper name (AttnMel-CNN-Lesion) or a variant token "
        "(attnmel+lesion, vgg16_gap).",
    )
    compare.add_argument("path", help="a sweep directory, or a results root holding several")
    compare.add_argument("a", metavar="A", help="setting A, e.g. AttnMel-CNN-Lesion or attnmel+lesion@0.001,0.01")
    compare.add_argument("b", metavar="B", help="setting B, e.g. AttnMel-CNN")
    compare.add_argument("--metric", choices=("auc", "ap"), default="auc", help="metric to compare (default: auc)")
    compare.add_argument("--split", choices=("test", "val"), default="test", help="images to compare on")
    _resamples_argument(compare, what="bootstrap resamples of the AP test")
    compare.set_defaults(func=_report_compare)

    query = subparsers.add_parser(
        "query",
        help="SQL over every sweep's tables (trials, epochs, predictions, attention)",
        description="Run one SQL statement (DuckDB dialect) over the tables `trials` and `epochs` "
        "(and `predictions`, `attention` where sweeps wrote them), which union the Parquet tables of "
        "every sweep under the results root. The statement runs sandboxed: it can read these tables "
        "and nothing else (no files, network, extensions or settings).",
    )
    query.add_argument("sql", help='e.g. "SELECT paper_name, avg(test_auc) FROM trials GROUP BY 1"')
    query.add_argument("--results", default=None, help="results root (default: $ATTNMEL_RESULTS or ./results)")
    query.add_argument("--format", choices=("table", "csv", "json"), default="table", help="output format")
    query.add_argument(
        "--unsafe",
        action="store_true",
        help="lift the sandbox: DuckDB may read and write any file, attach databases, use the network "
        "and install extensions (only for SQL you trust)",
    )
    query.set_defaults(func=_query)

    plot = subparsers.add_parser("plot", help="figures from a sweep's results")
    plot_commands = plot.add_subparsers(dest="plot_command", metavar="FIGURE", required=True)
    sensitivity = plot_commands.add_parser(
        "sensitivity", help="heat maps of mean validation/test AUC over λ1 × λ2 per ROI"
    )
    curves = plot_commands.add_parser("curves", help="per-epoch validation AUC of each variant")
    for parser, handler in ((sensitivity, _plot_sensitivity), (curves, _plot_curves)):
        parser.add_argument("path", help="a sweep directory, or a results root holding several")
        parser.add_argument("--out", required=True, help="image file to write (.png, .pdf or .svg)")
        parser.add_argument("--metric", choices=("auc", "ap"), default="auc", help="metric to show")
        parser.set_defaults(func=handler)
    curves.add_argument(
        "--all-lambdas", action="store_true", help="draw every λ setting, not only the paper's λ"
    )
    attention = plot_commands.add_parser(
        "attention",
        help="the paper's Fig. 3: attention maps (and VGG-16-GAP's CAM) of each model's best trial",
        description="Rows: the images, then pool-3 and pool-4 attention of AttnMel-CNN, -Lesion, -Dermo "
        "(those in the sweep; VGG-16-GAP's CAM last), each model's best finished trial by validation AUC. "
        "Columns: N images of the split, half melanoma, first by image id. Loads the trials' checkpoints "
        "and reads the images from the dataset in their config.",
    )
    attention.add_argument("path", help="a sweep directory (or a results root of sweeps of one dataset)")
    attention.add_argument("--images", type=int, default=6, metavar="N", help="number of images (default: 6)")
    attention.add_argument("--out", required=True, help="image file to write (.png, .pdf or .svg)")
    attention.add_argument("--split", choices=("test", "val"), default="test", help="images to show (default: test)")
    attention.add_argument("--data-root", help="the dataset's folder here, when not where the trials read it")
    attention.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto: CUDA when present")
    attention.set_defaults(func=_plot_attention)


def _report_build(args: argparse.Namespace) -> int:
    from orchestrator.results.build import find_sweep_dirs, write_tables

    for sweep_dir in find_sweep_dirs(args.path):
        paths, built = write_tables(sweep_dir)
        statuses = built.trials["status"].value_counts()
        counts = ", ".join(f"{status} {count}" for status, count in sorted(statuses.items())) or "no trials"
        print(f"{sweep_dir}: {statuses.sum()} trials ({counts}), {len(built.epochs)} epoch rows, "
              f"{len(built.predictions)} prediction rows -> {', '.join(p.name for p in paths.values())}")
        if "predictions" not in paths and len(built.trials):
            print(f"{sweep_dir}: no per-image predictions (trials of an older version): "
                  "confidence intervals, comparisons and Table 3 need a re-run")
    return 0


def _resamples_argument(parser: argparse.ArgumentParser, what: str = "bootstrap resamples of each CI") -> None:
    parser.add_argument(
        "--resamples", type=int, default=DEFAULT_RESAMPLES, metavar="N", help=f"{what} (default: {DEFAULT_RESAMPLES})"
    )


def _check_resamples(value: int) -> None:
    if value < _MIN_RESAMPLES:
        raise UserError(
            f"--resamples must be at least {_MIN_RESAMPLES} (a 95% percentile interval rests on its 2.5% tails), "
            f"got {value}"
        )


def _report_show(args: argparse.Namespace) -> int:
    from orchestrator.results.build import load_tables
    from orchestrator.results.paper import summarize_attention
    from orchestrator.results.summary import summary_report
    from orchestrator.results.text import format_table3

    if args.table3 and args.per_trial:
        raise UserError("--per-trial lists AP/AUC intervals; it does not apply to --table3")
    _check_resamples(args.resamples)
    tables = load_tables(args.path)
    if args.table3:
        sys.stdout.write(format_table3(summarize_attention(tables.trials, tables.attention)))
        return 0
    text, problem = summary_report(tables, paper=args.paper, intervals=args.ci, per_trial=args.per_trial,
                                   n_resamples=args.resamples)  # fmt: skip
    sys.stdout.write(text)
    if problem:
        raise UserError(f"{problem} (--no-ci shows the table alone)")
    return 0


def _report_compare(args: argparse.Namespace) -> int:
    from orchestrator.results.build import load_tables
    from orchestrator.results.comparisons import compare_settings
    from orchestrator.results.text import format_compare

    _check_resamples(args.resamples)
    tables = load_tables(args.path)
    if tables.predictions.empty:
        raise UserError(
            f"no per-image predictions in {args.path}: its trials (of an older version, or unfinished) did not "
            "store any, and a paired test needs them"
        )
    try:
        frame = compare_settings(tables.trials, tables.predictions, args.a, args.b, metric=args.metric,
                                 split=args.split, n_resamples=args.resamples)  # fmt: skip
    except ValueError as error:
        raise UserError(str(error)) from None
    sys.stdout.write(format_compare(frame, args.a, args.b, args.metric))
    return 0


def _query(args: argparse.Namespace) -> int:
    from orchestrator.results.root import results_root
    from orchestrator.results.query import format_frame, run_query

    frame = run_query(args.sql, results_root(args.results), unsafe=args.unsafe)
    sys.stdout.write(format_frame(frame, args.format))
    return 0


def _plot(args: argparse.Namespace, kind: str) -> int:
    from orchestrator.results.plots import plot_curves, plot_sensitivity, save_figure
    from orchestrator.results.build import load_tables

    trials, epochs, *_ = load_tables(args.path)
    if trials.empty:
        raise UserError(f"no trials in {args.path}")
    if kind == "sensitivity":
        fig = plot_sensitivity(trials, args.metric)
    else:
        fig = plot_curves(trials, epochs, args.metric, all_lambdas=args.all_lambdas)
    print(save_figure(fig, args.out))
    return 0


def _plot_sensitivity(args: argparse.Namespace) -> int:
    return _plot(args, "sensitivity")


def _plot_curves(args: argparse.Namespace) -> int:
    return _plot(args, "curves")


def _plot_attention(args: argparse.Namespace) -> int:
    from orchestrator.results.plots import attention_grid, check_output, plot_attention, save_figure

    check_output(args.out)  # before loading models and images
    save_figure(plot_attention(attention_grid(args.path, args.images, args.split, data_root=args.data_root,
                                              device=args.device)), args.out)  # fmt: skip
    print(args.out)
    return 0
