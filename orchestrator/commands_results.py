"""``attnmel report build|show``, ``attnmel query`` and ``attnmel plot sensitivity|curves``.

None of these import Ray: they read a sweep's files or its Parquet tables, so they run
anywhere the results were copied to.
"""

from __future__ import annotations

import argparse
import sys

from attnmel.errors import UserError

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``report``, ``query`` and ``plot`` commands to the ``attnmel`` parser."""
    report = subparsers.add_parser("report", help="build and show a sweep's result tables")
    report_commands = report.add_subparsers(dest="report_command", metavar="ACTION", required=True)
    build = report_commands.add_parser(
        "build", help="write trials.parquet and epochs.parquet from a sweep's storage directory"
    )
    build.add_argument("path", help="a sweep directory, or a results root holding several (each is built)")
    build.set_defaults(func=_report_build)
    show = report_commands.add_parser("show", help="the paper-style table per dataset (mean ± std over seeds)")
    show.add_argument("path", help="a sweep directory, or a results root holding several")
    show.add_argument("--paper", action="store_true", help="put the paper's AP and AUC beside ours")
    show.set_defaults(func=_report_show)

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


def _report_build(args: argparse.Namespace) -> int:
    from orchestrator.report import find_sweep_dirs, write_tables

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


def _report_show(args: argparse.Namespace) -> int:
    from orchestrator.paper_table import format_summary, summarize
    from orchestrator.report import load_tables

    trials = load_tables(args.path).trials
    summary, excluded = summarize(trials)
    sys.stdout.write(format_summary(summary, excluded, paper=args.paper))
    return 0


def _query(args: argparse.Namespace) -> int:
    from orchestrator.query import format_frame, results_root, run_query

    frame = run_query(args.sql, results_root(args.results), unsafe=args.unsafe)
    sys.stdout.write(format_frame(frame, args.format))
    return 0


def _plot(args: argparse.Namespace, kind: str) -> int:
    from orchestrator.plot import plot_curves, plot_sensitivity, save_figure
    from orchestrator.report import load_tables

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
