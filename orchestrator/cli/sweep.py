"""``attnmel sweep run|resume|submit|status|logs|stop|slurm``: argparse registration and handlers.

Ray is imported inside the handlers only, so ``attnmel data`` and ``attnmel train`` start
without it.
"""

from __future__ import annotations

import argparse
import os
import sys

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
    parser.add_argument(
        "--wait-nodes", type=int, metavar="N",
        help="with --address: first wait until the cluster has N nodes (e.g. a batch job's workers joining)",
    )  # fmt: skip
    parser.add_argument("--wait-timeout", type=float, default=300, metavar="S",
                        help="seconds --wait-nodes waits before giving up (default: 300)")  # fmt: skip


def _slurm_args(parser: argparse.ArgumentParser) -> None:
    from orchestrator.sweep.slurm import DEFAULT_JOIN_TIMEOUT, DEFAULT_SIGNAL

    add = parser.add_argument
    add("--nodes", type=int, required=True, metavar="N", help="nodes of the allocation: one Ray head, N-1 workers")
    add("--cpus-per-node", type=int, required=True, metavar="C", help="CPUs per node (all of them go to Ray)")
    add("--gpus-per-node", type=int, default=0, metavar="G", help="GPUs per node (default: 0)")
    add("--mem", metavar="M", help="memory per node, Slurm's --mem (e.g. 64G; default: the partition's)")
    add("--time", required=True, metavar="T", help="time limit per run of the job: minutes, HH:MM:SS or D-HH:MM")
    add("--partition", metavar="P")
    add("--account", metavar="A")
    add("--qos", metavar="Q")
    add("--constraint", metavar="FEATURES", help="Slurm node features, e.g. a100")
    add("--signal", type=int, default=DEFAULT_SIGNAL, metavar="S",
        help=f"seconds before the time limit at which the sweep stops cleanly and the job requeues itself "
             f"(default: {DEFAULT_SIGNAL}; 0: no signal)")  # fmt: skip
    add("--join-timeout", type=int, default=DEFAULT_JOIN_TIMEOUT, metavar="S",
        help=f"seconds for the Ray head to start and every node to join (default: {DEFAULT_JOIN_TIMEOUT})")
    add("--python", default=sys.executable,
        help="the Python the nodes run the project with (default: this one, %(default)s)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--submit", action="store_true", help="submit the job with sbatch and print its id")
    group.add_argument("--dry-run", action="store_true", help="print the script, write nothing")


def _force_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--force", action="store_true",
                        help="start even when the storage has less free space than the trials' checkpoints need")  # fmt: skip


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
    _force_arg(run)
    run.set_defaults(func=_run)

    resume = commands.add_parser("resume", help="continue an interrupted sweep from its storage folder")
    resume.add_argument("path", metavar="PATH", help="the sweep folder, <storage>/<name>")
    _cluster_args(resume)
    resume.add_argument(
        "--restart-errored", action="store_true",
        help="errored trials start over from their first epoch instead of their last checkpoint "
        "(e.g. when that checkpoint is damaged)",
    )  # fmt: skip
    resume.add_argument(
        "--from-trials", action="store_true",
        help="rebuild the trial list from sweep.json and the trial folders instead of Tune's saved state "
        "(when that is damaged): finished trials are kept, the others run again from their last intact checkpoint",
    )  # fmt: skip
    _force_arg(resume)
    resume.set_defaults(func=_resume)

    submit = commands.add_parser("submit", help="submit `sweep run` to a cluster as a Ray Job and return")
    _spec_args(submit)
    _jobs_address(submit)
    submit.add_argument("--python", default="python", help="the Python of the cluster's nodes (default: python)")
    submit.set_defaults(func=_submit)

    slurm = commands.add_parser(
        "slurm", help="write (and with --submit, sbatch) a Slurm job that runs the sweep across an allocation",
        description="Write <storage>/<sweep>/slurm/job.sbatch: Ray across the allocation, then `sweep run` (or "
        "`sweep resume` once the sweep exists); requeues itself on the pre-limit signal.",
    )  # fmt: skip
    _spec_args(slurm)
    _slurm_args(slurm)
    slurm.set_defaults(func=_slurm)

    for name, text in (("status", "a submitted sweep's job status"), ("logs", "a submitted sweep's driver log"),
                       ("stop", "stop a submitted sweep")):  # fmt: skip
        cmd = commands.add_parser(name, help=text)
        cmd.add_argument("job_id", metavar="ID", help="the submission id `sweep submit` printed")
        _jobs_address(cmd)
        if name == "logs":
            cmd.add_argument("--follow", "-f", action="store_true", help="stream the log until the job ends")
        cmd.set_defaults(func=_job_command, job_command=name)


def _load(args: argparse.Namespace):
    from orchestrator.sweep.spec import load_spec

    storage = [f"storage={args.storage}"] if args.storage else []  # --storage wins over the spec and --set
    return load_spec(args.spec, smoke=args.smoke, overrides=[*args.overrides, *storage])


def _join(args: argparse.Namespace) -> None:
    """``--wait-nodes``: join the cluster now and wait for its nodes; the sweep then runs in
    this process's Ray session (``tune.connect`` reuses a session the process holds)."""
    if args.wait_nodes is None:
        return
    from attnmel.errors import UserError

    if args.wait_nodes < 1:
        raise UserError(f"--wait-nodes must be at least 1, got {args.wait_nodes}")
    if not (args.address or os.environ.get("RAY_ADDRESS")):
        raise UserError("--wait-nodes waits for a cluster's nodes: give its --address (or set RAY_ADDRESS)")
    import ray

    from orchestrator.sweep.preflight import wait_for_nodes
    from orchestrator.sweep.tune import connect

    connect(args.address)
    wait_for_nodes(ray, args.wait_nodes, timeout=args.wait_timeout)


def _run(args: argparse.Namespace) -> int:
    from orchestrator.sweep import stop
    from orchestrator.sweep.spec import dump_yaml, sweep_path

    stop.listen()  # SIGUSR1 from here on: stop cleanly, exit code 3 (orchestrator.sweep.stop)
    spec = _load(args)
    if args.dry_run:
        print(dump_yaml(spec), end="")
        print(f"# {spec.n_trials} trials -> {sweep_path(spec)}")
        return 0
    _join(args)
    from orchestrator.cli.reporting import sweep_reporting
    from orchestrator.sweep.tune import run_sweep

    return run_sweep(spec, address=args.address, num_cpus=args.num_cpus, unique=args.unique, figures=args.figures,
                     force=args.force, reporting=sweep_reporting())  # fmt: skip


def _resume(args: argparse.Namespace) -> int:
    from orchestrator.sweep import stop

    stop.listen()
    _join(args)
    from orchestrator.cli.reporting import sweep_reporting
    from orchestrator.sweep.tune import resume_sweep

    return resume_sweep(args.path, address=args.address, num_cpus=args.num_cpus, restart_errored=args.restart_errored,
                        from_trials=args.from_trials, force=args.force, reporting=sweep_reporting())  # fmt: skip


def _submit(args: argparse.Namespace) -> int:
    from orchestrator.sweep.jobs import submit_sweep

    job_id = submit_sweep(
        args.spec, address=args.address, smoke=args.smoke, overrides=args.overrides,
        storage=args.storage, python=args.python,
    )  # fmt: skip
    print(job_id)
    print(f"follow it with: attnmel sweep logs {job_id} --address {args.address} --follow", flush=True)
    return 0


def _slurm(args: argparse.Namespace) -> int:
    from orchestrator.layout import folders
    from orchestrator.sweep import slurm

    job = slurm.SlurmJob(
        nodes=args.nodes, cpus_per_node=args.cpus_per_node, gpus_per_node=args.gpus_per_node, mem=args.mem,
        time=args.time, partition=args.partition, account=args.account, qos=args.qos, constraint=args.constraint,
        signal=args.signal, join_timeout=args.join_timeout, python=args.python,
    )  # fmt: skip
    if args.submit:
        slurm.check_sbatch()  # before any work
    spec = _load(args)
    if args.dry_run:
        print(slurm.job_script(spec, job), end="")
        return 0
    from orchestrator.sweep.preflight import check_inputs

    check_inputs(spec, local=False)  # the data and storage every node will read, checked here first
    script, created = slurm.write_job(spec, job)
    if not args.submit:
        print(script)
        print(f"submit it with: sbatch {script}", flush=True)
        return 0
    job_id = slurm.submit_job(script, created)
    log = script.parent / folders.SLURM_LOG.replace("%j", job_id)
    print(job_id)
    print(f"job script {script}; log {log}\nwatch it: squeue -j {job_id}; tail -f {log}", flush=True)
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
