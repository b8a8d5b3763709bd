"""``attnmel report build|show|html|compare|power``, ``attnmel query`` and
``attnmel plot sensitivity|curves|calibration|attention``.

None of these import Ray: they read a sweep's files or its Parquet tables, so they run
anywhere the results were copied to.
"""

from __future__ import annotations

import argparse
import sys

from attnmel.errors import UserError
from orchestrator.results.orh import COVARIANCES, DEFAULT_COVARIANCE
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
        "show", help="the paper-style table per dataset: mean ± std over seeds, 95%% CIs, Table 3 or operating points"
    )
    show.add_argument("path", help="a sweep directory, or a results root holding several")
    show.add_argument(
        "--paper", action="store_true", help="put the paper's AP and AUC beside ours, and say if they lie in our CI"
    )
    show.add_argument(
        "--ci",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="95%% CI of each setting's expected single-model test AP and AUC, over seeds and test images (needs "
        "per-image predictions; default: on)",
    )
    show.add_argument("--per-trial", action="store_true", help="also list every trial's test AP and AUC with its CI")
    show.add_argument(
        "--ensemble", action="store_true",
        help="also list each setting's seed ensemble (mean probability over its seeds) in a table of its own",
    )  # fmt: skip
    _resamples_argument(show)
    _covariance_argument(show)
    show.add_argument(
        "--table3",
        action="store_true",
        help="print Table 3 instead: Jaccard of the attention maps (CAM for VGG-16-GAP) with the lesion masks",
    )
    show.add_argument(
        "--operating-points", action="store_true",
        help="print the test operating points instead: sensitivity at 82/89/95%% specificity, Brier score, ECE",
    )  # fmt: skip
    show.add_argument(
        "--format",
        choices=("text", "markdown", "latex", "csv"),
        default="text",
        help="text (default), a Markdown or LaTeX (booktabs) rendering of the same tables, or CSV of their "
        "numbers unformatted (one row per setting; with --table3 per setting and map)",
    )
    show.set_defaults(func=_report_show)
    page = report_commands.add_parser(
        "html",
        help="one self-contained HTML page of a sweep: what ran, the tables, figures, every trial, methods",
        description="Write one HTML file (styles, script and pictures inline; nothing fetched from the network) "
        "that shows the sweep, or every sweep under a results root: what ran, the paper-style table, Table 3, "
        "the λ sensitivity and per-epoch curves, Fig. 3, a sortable table of every trial and a methods "
        "paragraph. `sweep run` writes the same page into the sweep folder and refreshes it as trials end.",
    )
    page.add_argument("path", help="a sweep directory, or a results root holding several")
    page.add_argument("--out", metavar="FILE", help="the .html file to write (default: PATH/report.html)")
    page.add_argument(
        "--attention",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="draw Fig. 3 from each model's best checkpoint (loads the models and images; default: on)",
    )
    _resamples_argument(page)
    _covariance_argument(page)
    page.set_defaults(func=_report_html)
    compare = report_commands.add_parser(
        "compare",
        help="paired comparison of two settings on the same test images, or of a family against one",
        description="Compare setting A with setting B on the same images: the expected single-model Δ over "
        "seeds and test images, each shared seed's DeLong test (AUC; paired bootstrap for AP) and the seed "
        "ensembles. A setting is [DATASET:]NAME[@λ1,λ2]: a paper name (AttnMel-CNN-Lesion) or a variant token "
        "(attnmel+lesion, vgg16_gap). A = NAME@* (every λ setting of NAME) or all (every other setting) "
        "compares a family against B, with Holm and Benjamini–Hochberg adjusted p.",
    )
    compare.add_argument("path", help="a sweep directory, or a results root holding several")
    compare.add_argument(
        "a", metavar="A", help="setting A, e.g. AttnMel-CNN-Lesion or attnmel+lesion@0.001,0.01; NAME@* or all: a family"
    )
    compare.add_argument("b", metavar="B", help="setting B, e.g. AttnMel-CNN")
    compare.add_argument("--metric", choices=("auc", "ap"), default="auc", help="metric to compare (default: auc)")
    compare.add_argument(
        "--split", type=_split, default="test", metavar="{test,val,ext_NAME}",
        help="images to compare on: test (default), val, or an external test set's ext_NAME",
    )  # fmt: skip
    _resamples_argument(compare, what="bootstrap resamples of the covariances and of the AP test")
    _covariance_argument(compare)
    compare.set_defaults(func=_report_compare)
    power = report_commands.add_parser(
        "power",
        help="how many seeds per setting are needed to detect a difference between two settings",
        description="From the sweep's paired seeds (seed-to-seed variance of the per-seed Δ) and the test set "
        "(DeLong covariance of the per-seed AUCs), the seeds per setting needed to detect Δ at α = 0.05 with "
        "the given power, and the smallest Δ the current seeds detect. PATH 'paper' plans from the paper's "
        "Tables 1–2 instead (needs --seed-sd and --correlation, which the paper does not report).",
    )
    power.add_argument("path", help="a sweep directory, a results root, or 'paper' (the paper's own numbers)")
    power.add_argument("a", metavar="A", help="setting A (with 'paper': a paper model name, isic2017:AttnMel-CNN-Lesion)")
    power.add_argument("b", metavar="B", help="setting B")
    power.add_argument("--delta", type=float, default=None, help="Δ to detect (default: the observed one)")
    power.add_argument("--power", type=float, default=0.8, help="power to reach (default: 0.8)")
    power.add_argument("--alpha", type=float, default=0.05, help="two-sided level of the test (default: 0.05)")
    power.add_argument("--metric", choices=("auc", "ap"), default="auc", help="metric (default: auc)")
    power.add_argument("--seed-sd", type=float, default=None, help="with 'paper': assumed seed-to-seed SD of a test AUC")
    power.add_argument(
        "--correlation", type=float, default=None,
        help="with 'paper': assumed correlation of the two models' test-set errors (0 to 1)",
    )  # fmt: skip
    power.add_argument("--seeds", type=int, default=3, help="with 'paper': the seeds per setting to report on (3)")
    _resamples_argument(power, what="bootstrap resamples of the covariances")
    _covariance_argument(power)
    power.set_defaults(func=_report_power)

    claims = report_commands.add_parser(
        "claims",
        help="the paper's claims, answered: one verdict per claim with its evidence",
        description="Evaluate every claim the paper makes that the sweep can speak to (architecture: AttnMel-CNN "
        "vs VGG-16, VGG-16-GAP and Mel-CNN; regularisation: -Lesion, -Dermo, -Bkg vs AttnMel-CNN at the paper's λ; "
        "Table 3: attention vs CAM, pool-4 vs pool-3, regularised overlap): Δ with its 95%% interval from one "
        "Obuchowski–Rockette–Hillis analysis, p and Holm p over the claims, and a verdict (supported, "
        "contradicted, not settled with the seeds that would settle it, or not in this sweep), with notes where "
        "the sweep differs from the paper (one seed, from scratch, crop size, dataset).",
    )
    claims.add_argument("path", help="a sweep directory, or a results root holding several")
    claims.add_argument("--metric", choices=("auc", "ap"), default="auc",
                        help="the test metric of the performance claims (default: auc)")
    claims.add_argument("--format", choices=("text", "markdown", "latex", "csv"), default="text",
                        help="text (default), Markdown, LaTeX, or CSV of the numbers")
    _resamples_argument(claims, what="bootstrap resamples of the covariances")
    _covariance_argument(claims)
    claims.set_defaults(func=_report_claims)

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
    _resamples_argument(sensitivity, what="bootstrap resamples of the cells' comparisons")
    calibration = plot_commands.add_parser(
        "calibration", help="reliability diagrams per setting: one curve per seed, 10 equal-width bins"
    )
    calibration.add_argument("path", help="a sweep directory, or a results root holding several")
    calibration.add_argument("--out", required=True, help="image file to write (.png, .pdf or .svg)")
    calibration.add_argument("--split", choices=("test", "val"), default="test", help="images (default: test)")
    calibration.set_defaults(func=_plot_calibration)
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
    from orchestrator.results.build import damaged_notes, find_sweep_dirs, write_tables

    for sweep_dir in find_sweep_dirs(args.path):
        paths, built = write_tables(sweep_dir)
        statuses = built.trials["status"].value_counts()
        counts = ", ".join(f"{status} {count}" for status, count in sorted(statuses.items())) or "no trials"
        print(f"{sweep_dir}: {statuses.sum()} trials ({counts}), {len(built.epochs)} epoch rows, "
              f"{len(built.predictions)} prediction rows -> {', '.join(p.name for p in paths.values())}")
        for note in damaged_notes(built.trials):
            print(f"{sweep_dir}/{note}")
        if "predictions" not in paths and len(built.trials):
            print(f"{sweep_dir}: no per-image predictions (trials of an older version): "
                  "confidence intervals, comparisons and Table 3 need a re-run")
    return 0


def _resamples_argument(parser: argparse.ArgumentParser, what: str = "bootstrap resamples of each CI") -> None:
    parser.add_argument(
        "--resamples", type=int, default=DEFAULT_RESAMPLES, metavar="N", help=f"{what} (default: {DEFAULT_RESAMPLES})"
    )


def _covariance_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--covariance", choices=COVARIANCES, default=DEFAULT_COVARIANCE,
        help="how the Obuchowski–Rockette–Hillis analysis estimates the test-set error covariances: the "
        f"stratified image bootstrap, the jackknife over images, or DeLong (AUC only) (default: {DEFAULT_COVARIANCE})",
    )


def _split(value: str) -> str:
    """An argparse type: ``test``, ``val`` or an external test set's ``ext_NAME``."""
    from attnmel.record import is_scored_split

    if is_scored_split(value):
        return value
    raise argparse.ArgumentTypeError(f"expected test, val or ext_NAME (an external test set), got {value!r}")


def _check_resamples(value: int) -> None:
    if value < _MIN_RESAMPLES:
        raise UserError(
            f"--resamples must be at least {_MIN_RESAMPLES} (a 95% percentile interval rests on its 2.5% tails), "
            f"got {value}"
        )


def _check_covariance(covariance: str, metric: str) -> None:
    """DeLong's covariance is the AUC's: ``--metric ap`` with it is one line before any work."""
    if covariance == "delong" and metric != "auc":
        raise UserError("--covariance delong estimates the AUC's covariances only; --metric ap needs bootstrap or "
                        "jackknife")


def _report_show(args: argparse.Namespace) -> int:
    from orchestrator.results.build import load_tables
    from orchestrator.results.paper import summarize_attention
    from orchestrator.results.formats import csv_frame, render
    from orchestrator.results.summary import summary_model, summary_report
    from orchestrator.results.text import summary_tables, table3_tables, trial_interval_tables

    if args.table3 and args.operating_points:
        raise UserError("--table3 and --operating-points are two different tables; pick one")
    for flag, name in ((args.per_trial, "--per-trial"), (args.ensemble, "--ensemble")):
        if flag and (args.table3 or args.operating_points):
            raise UserError(f"{name} adds AP/AUC intervals; it does not apply to "
                            f"{'--table3' if args.table3 else '--operating-points'}")  # fmt: skip
    if args.format == "csv" and args.per_trial:
        raise UserError("--format csv writes one table; leave out --per-trial (or query the tables with attnmel query)")
    if args.format != "text" and args.operating_points:
        raise UserError("--operating-points prints text only; its numbers are columns of trials.parquet")
    _check_resamples(args.resamples)
    tables = load_tables(args.path)
    if args.table3:
        table3 = summarize_attention(tables.trials, tables.attention)
        sys.stdout.write(csv_frame(table3) if args.format == "csv" else render(*table3_tables(table3), args.format))
        return 0
    if args.operating_points:
        from orchestrator.results.paper import summarize_operating_points
        from orchestrator.results.text import format_operating_points

        sys.stdout.write(format_operating_points(summarize_operating_points(tables.trials)))
        return 0
    model = summary_model(tables, intervals=args.ci, per_trial=args.per_trial, ensemble=args.ensemble,
                          n_resamples=args.resamples, covariance=args.covariance)
    problem = model.problem
    if args.format == "text":
        text, problem = summary_report(tables, paper=args.paper, intervals=args.ci, n_resamples=args.resamples,
                                       model=model, covariance=args.covariance)
    elif args.format == "csv":
        text = csv_frame(model.summary)
    else:
        blocks, notes = summary_tables(model.summary, model.excluded, paper=args.paper)
        notes += [model.note] if model.note else []
        if model.per_trial is not None:
            trial_blocks, trial_notes = trial_interval_tables(model.per_trial, model.summary, paper=args.paper)
            blocks, notes = blocks + trial_blocks, notes + trial_notes
        text = render(blocks, notes, args.format)
    sys.stdout.write(text)
    if problem:
        raise UserError(f"{problem} (--no-ci shows the table alone)")
    return 0


def _report_html(args: argparse.Namespace) -> int:
    from pathlib import Path

    from orchestrator.cli.reporting import read_spec
    from orchestrator.results.build import find_sweep_dirs
    from orchestrator.results.html import write_page

    _check_resamples(args.resamples)
    if args.out is not None:
        out = Path(args.out)
        if out.suffix.lower() not in (".html", ".htm"):
            raise UserError(f"--out {out}: use a .html file name")
        if not out.parent.is_dir():
            raise UserError(f"--out {out}: directory {out.parent} does not exist")
    find_sweep_dirs(args.path)  # a path that holds no sweep fails before any work
    print(write_page(args.path, args.out, read_spec=read_spec, attention=args.attention, n_resamples=args.resamples,
                     covariance=args.covariance))
    return 0


def _report_compare(args: argparse.Namespace) -> int:
    from orchestrator.results.comparisons import compare_family, compare_settings
    from orchestrator.results.text import format_compare, format_family

    _check_resamples(args.resamples)
    _check_covariance(args.covariance, args.metric)
    tables = _predicted_tables(args.path, "a paired test")
    splits = sorted(tables.predictions["split"].unique())
    if args.split not in splits:
        raise UserError(f"no predictions for --split {args.split} in {args.path}; its splits: {', '.join(splits)}")
    family = args.a.strip().lower() == "all" or args.a.strip().endswith("@*")
    try:
        if family:
            text = format_family(compare_family(tables.trials, tables.predictions, args.a, args.b, metric=args.metric,
                                                split=args.split, n_resamples=args.resamples,
                                                covariance=args.covariance))
        else:
            frame = compare_settings(tables.trials, tables.predictions, args.a, args.b, metric=args.metric,
                                     split=args.split, n_resamples=args.resamples, covariance=args.covariance)
            text = format_compare(frame, args.a, args.b, args.metric)
    except ValueError as error:
        raise UserError(str(error)) from None
    sys.stdout.write(text)
    return 0


def _report_claims(args: argparse.Namespace) -> int:
    from orchestrator.results.build import load_tables
    from orchestrator.results.claims import evaluate_claims
    from orchestrator.results.claims_table import claims_tables
    from orchestrator.results.formats import csv_frame, render

    _check_resamples(args.resamples)
    _check_covariance(args.covariance, args.metric)
    tables = load_tables(args.path)
    if tables.trials.empty:
        raise UserError(f"no trials in {args.path}")
    try:
        frame = evaluate_claims(tables, metric=args.metric, n_resamples=args.resamples, covariance=args.covariance)
    except ValueError as error:
        raise UserError(str(error)) from None
    sys.stdout.write(csv_frame(frame) if args.format == "csv" else render(*claims_tables(frame), args.format))
    return 0


def _predicted_tables(path: str, need: str):
    from orchestrator.results.build import load_tables

    tables = load_tables(path)
    if tables.predictions.empty:
        raise UserError(f"no per-image predictions in {path}: its trials (of an older version, or unfinished) did not "
                        f"store any, and {need} needs them")  # fmt: skip
    return tables


def _report_power(args: argparse.Namespace) -> int:
    from orchestrator.results.power import power_from_paper, power_from_sweep
    from orchestrator.results.text import format_power

    paper = args.path == "paper"
    assumed = {"--seed-sd": args.seed_sd, "--correlation": args.correlation}
    if paper and None in assumed.values():
        missing = " and ".join(k for k, v in assumed.items() if v is None)
        raise UserError(f"report power paper needs {missing}: the paper reports one trained model per setting, so "
                        "the seed-to-seed SD and the two models' correlation must be assumed")  # fmt: skip
    if not paper and any(v is not None for v in assumed.values()):
        raise UserError("--seed-sd and --correlation apply to 'report power paper'; a sweep gives its own variances")
    try:
        if paper:
            dataset, a, b = _paper_names(args.a, args.b)
            if args.metric != "auc":
                raise ValueError("the paper's ISIC 2017 table has no AP for the earlier methods; plan AUC")
            plan = power_from_paper(dataset, a, b, seed_sd=args.seed_sd, correlation=args.correlation,
                                    delta=args.delta, alpha=args.alpha, power=args.power, seeds_now=args.seeds)  # fmt: skip
        else:
            _check_resamples(args.resamples)
            _check_covariance(args.covariance, args.metric)
            tables = _predicted_tables(args.path, "power planning")
            plan = power_from_sweep(tables.trials, tables.predictions, args.a, args.b, delta=args.delta,
                                    alpha=args.alpha, power=args.power, metric=args.metric,
                                    n_resamples=args.resamples, covariance=args.covariance)
    except ValueError as error:
        raise UserError(str(error)) from None
    sys.stdout.write(format_power(plan, args.a, args.b))
    return 0


def _paper_names(a: str, b: str) -> tuple[str, str, str]:
    """``[DATASET:]NAME`` pair → (dataset, name a, name b); the dataset defaults to isic2017."""
    datasets = {text.rpartition(":")[0].strip() for text in (a, b)} - {""}
    if len(datasets) > 1:
        raise ValueError(f"{a!r} and {b!r} name different datasets")
    return (datasets.pop() if datasets else "isic2017"), a.rpartition(":")[2].strip(), b.rpartition(":")[2].strip()


def _query(args: argparse.Namespace) -> int:
    from orchestrator.layout.root import results_root
    from orchestrator.results.query import format_frame, run_query

    frame = run_query(args.sql, results_root(args.results), unsafe=args.unsafe)
    sys.stdout.write(format_frame(frame, args.format))
    return 0


def _plot(args: argparse.Namespace, kind: str) -> int:
    from orchestrator.results.plots import plot_curves, plot_sensitivity, save_figure
    from orchestrator.results.build import load_tables

    trials, epochs, predictions, _ = load_tables(args.path)
    if trials.empty:
        raise UserError(f"no trials in {args.path}")
    if kind == "sensitivity":
        from orchestrator.results.comparisons import sensitivity_family

        _check_resamples(args.resamples)
        try:
            significance = sensitivity_family(trials, predictions, metric=args.metric, n_resamples=args.resamples)
        except ValueError as error:
            raise UserError(f"cannot mark the cells: {error}") from None
        fig = plot_sensitivity(trials, args.metric, significance=significance)
    else:
        fig = plot_curves(trials, epochs, args.metric, all_lambdas=args.all_lambdas)
    print(save_figure(fig, args.out))
    return 0


def _plot_sensitivity(args: argparse.Namespace) -> int:
    return _plot(args, "sensitivity")


def _plot_curves(args: argparse.Namespace) -> int:
    return _plot(args, "curves")


def _plot_calibration(args: argparse.Namespace) -> int:
    from orchestrator.results.build import load_tables
    from orchestrator.results.calibration import reliability_curves
    from orchestrator.results.plots import check_output, plot_calibration, save_figure

    check_output(args.out)
    tables = load_tables(args.path)
    print(save_figure(plot_calibration(reliability_curves(tables.trials, tables.predictions, split=args.split)),
                      args.out))  # fmt: skip
    return 0


def _plot_attention(args: argparse.Namespace) -> int:
    from orchestrator.results.plots import attention_grid, check_output, plot_attention, save_figure

    check_output(args.out)  # before loading models and images
    save_figure(plot_attention(attention_grid(args.path, args.images, args.split, data_root=args.data_root,
                                              device=args.device)), args.out)  # fmt: skip
    print(args.out)
    return 0
