"""``attnmel sweep run|resume|submit|status|logs|stop``: argparse registration and handlers.

Ray is imported inside the handlers only, so ``attnmel data`` and ``attnmel train`` start
without it.
"""

from __future__ import annotations

import argparse
import os

__all__ = ["register"]


def _spec_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", metavar="SPEC", help="sweep spec, e.g. experiments/paper_isic2017.yaml")
    parser.add_argument("--smoke", action="store_true", help="apply the spec's smoke block (small, CPU-sized)")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a spec key, e.g. dataset.root=/data/ISIC2017, train.optim.epochs=3, grid.seeds=[0] (repeatable)",
    )  # fmt: skip
    parser.add_argument("--storage", metavar="PATH", help="results root: local path, shared filesystem or s3://... URI")


def _jobs_address(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--address", metavar="URL",
        default=os.environ.get("RAY_API_SERVER_ADDRESS") or os.environ.get("RAY_ADDRESS"),
        help="the cluster's dashboard, e.g. http://HEAD:8265 (default: $RAY_API_SERVER_ADDRESS or $RAY_ADDRESS)",
    )  # fmt: skip


def _cluster_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--address", metavar="ADDR",
        help="join a running cluster (HOST:6379, ray://HOST:10001, auto); default $RAY_ADDRESS, else an embedded Ray",
    )  # fmt: skip
    parser.add_argument("--num-cpus", type=int, metavar="N", help="CPUs of the embedded Ray (default: all)")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``sweep`` and its subcommands to the ``attnmel`` parser."""
    sweep = subparsers.add_parser("sweep", help="run, resume and submit Ray Tune sweeps of experiments/*.yaml")
    commands = sweep.add_subparsers(dest="sweep_command", metavar="SUBCOMMAND", required=True)

    run = commands.add_parser("run", help="run a sweep here (embedded Ray) or on a cluster (--address)")
    _spec_args(run)
    _cluster_args(run)
    run.add_argument("--unique", action="store_true", help="if the sweep folder exists, use the next free name (-2, -3, ...)")
    run.add_argument("--dry-run", action="store_true", help="validate the spec, print it and the trial count, run nothing")
    run.add_argument("--figures", action="store_true", help="at the end, write curves.png (and sensitivity.png for a λ grid) into the sweep folder")
    run.set_defaults(func=_run)

    resume = commands.add_parser("resume", help="continue an interrupted sweep from its storage folder")
    resume.add_argument("path", metavar="PATH", help="the sweep folder, <storage>/<name>")
    _cluster_args(resume)
    resume.set_defaults(func=_resume)

    submit = commands.add_parser("submit", help="submit `sweep run` to a cluster as a Ray Job and return")
    _spec_args(submit)
    _jobs_address(submit)
    submit.add_argument("--python", default="python", help="the Python of the cluster's nodes (default: python)")
    submit.set_defaults(func=_submit)

    for name, text in (("status", "a submitted sweep's job status"), ("logs", "a submitted sweep's driver log"),
                       ("stop", "stop a submitted sweep")):  # fmt: skip
        cmd = commands.add_parser(name, help=text)
        cmd.add_argument("job_id", metavar="ID", help="the submission id `sweep submit` printed")
        _jobs_address(cmd)
        if name == "logs":
            cmd.add_argument("--follow", "-f", action="store_true", help="stream the log until the job ends")
        cmd.set_defaults(func=_job_command, job_command=name)


def _run(args: argparse.Namespace) -> int:
    from orchestrator.sweep.spec import dump_yaml, load_spec, sweep_path

    storage = [f"storage={args.storage}"] if args.storage else []  # --storage wins over the spec and --set
    spec = load_spec(args.spec, smoke=args.smoke, overrides=[*args.overrides, *storage])
    if args.dry_run:
        print(dump_yaml(spec), end="")
        print(f"# {spec.n_trials} trials -> {sweep_path(spec)}")
        return 0
    from orchestrator.sweep.tune import run_sweep

    return run_sweep(spec, address=args.address, num_cpus=args.num_cpus, unique=args.unique, figures=args.figures)


def _resume(args: argparse.Namespace) -> int:
    from orchestrator.sweep.tune import resume_sweep

    return resume_sweep(args.path, address=args.address, num_cpus=args.num_cpus)


def _submit(args: argparse.Namespace) -> int:
    from orchestrator.sweep.jobs import submit_sweep

    job_id = submit_sweep(
        args.spec, address=args.address, smoke=args.smoke, overrides=args.overrides,
        storage=args.storage, python=args.python,
    )  # fmt: skip
    print(job_id)
    print(f"follow it with: attnmel sweep logs {job_id} --address {args.address} --follow", flush=True)
    return 0


def _job_command(args: argparse.Namespace) -> int:
    from orchestrator.sweep import jobs

    if args.job_command == "status":
        print(jobs.job_status(args.job_id, address=args.address))
    elif args.job_command == "logs":
        jobs.print_logs(args.job_id, address=args.address, follow=args.follow)
    else:
        stopped = jobs.stop_job(args.job_id, address=args.address)
        print(f"{args.job_id}: {'stop requested' if stopped else 'already finished'}")
    return 0
