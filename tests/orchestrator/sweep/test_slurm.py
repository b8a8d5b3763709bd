"""`attnmel sweep slurm`: the job script, bad input, and sweeps run as jobs of a real Slurm.

The Slurm here is Debian's (``slurm-wlm``, ``munge``): a one-node cluster on 127.0.0.1 whose
``munged``, ``slurmctld`` and ``slurmd`` this module starts as its own processes, with a
``slurm.conf``, ports, munge key and spool folders of its own, and stops at the end. Without
those binaries (or without root, which ``SlurmUser=root`` needs) the Slurm tests skip and say
why; ``.ci/run`` installs the packages.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import yaml

from orchestrator.cli import main
from orchestrator.sweep.slurm import SlurmJob, job_script, parse_time
from orchestrator.sweep.spec import load_spec, spec_to_dict

from _sweep_helpers import REPO, TINY_TRAIN, check_tables, fails_cleanly, run_attnmel, sweep_numbers
from _sweep_helpers import checkpointed_with_epochs_to_go
from _slurm_conf import slurm_conf

SLURM_BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "srun", "scontrol", "squeue", "scancel", "sinfo")
GRID = {"variants": ["vgg16_gap", "attnmel+lesion"], "seeds": [0]}
EPOCHS = 3
JOB = ["--nodes", "1", "--cpus-per-node", "2", "--time", "10"]  # the job every sweep here runs as
JOB_TIMEOUT = 240  # seconds for one job to end


# --------------------------------------------------------------------------- the script and the command


@pytest.mark.parametrize(
    "text, seconds",
    [("90", 5400), ("1:30", 90), ("2:00:00", 7200), ("1-0", 86400), ("1-2:30", 95400), ("1-02:03:04", 93784)],
)
def test_time_limits_read_as_slurm_reads_them(text, seconds):
    # sbatch(1): minutes, minutes:seconds, hours:minutes:seconds, days-hours, days-hours:minutes,
    # days-hours:minutes:seconds; the real Slurm's reading is checked below (TimeLimit of a job)
    assert parse_time(text) == seconds


def _directives(script: str) -> dict[str, str]:
    return dict(line.removeprefix("#SBATCH --").partition("=")[::2] for line in script.splitlines() if line.startswith("#SBATCH"))


BIG_JOB = SlurmJob(nodes=3, cpus_per_node=16, gpus_per_node=4, mem="64G", time="1-00:00", partition="gpu",
                   account="lab", qos="normal", constraint="a100&ib", signal=600)  # fmt: skip


def test_script_of_a_multi_node_gpu_job(make_spec, tmp_path):
    script = job_script(load_spec(make_spec(name="big")), BIG_JOB)
    checked = subprocess.run(["bash", "-n"], input=script, text=True, capture_output=True)
    assert checked.returncode == 0, checked.stderr  # bash parses it
    slurm_dir = tmp_path / "results" / "big" / "slurm"
    assert _directives(script) == {
        "job-name": "attnmel-big", "nodes": "3", "ntasks-per-node": "1", "cpus-per-task": "16", "gpus-per-node": "4",
        "mem": "64G", "time": "1-00:00", "partition": "gpu", "account": "lab", "qos": "normal", "constraint": "a100&ib",
        "chdir": str(slurm_dir), "output": f"{slurm_dir}/slurm-%j.out", "open-mode": "append", "requeue": "",
        "dependency": "singleton", "signal": "B:USR1@600",
    }  # fmt: skip
    assert f"PYTHON={shlex.quote(sys.executable)}" in script and f"SPEC={slurm_dir}/spec.yaml" in script
    assert f"export PYTHONPATH={REPO.resolve()}" in script  # the code that wrote it, also from a worktree
    # Ray's pattern: the head on the first node, a worker on each other node, all through srun
    assert script.count("--head") == 1 and '-w "${nodes[0]}"' in script and 'for node in "${nodes[@]:1}"' in script
    assert '--wait-nodes "$SLURM_JOB_NUM_NODES"' in script and "/tmp/ray-$SLURM_JOB_ID-$attempt" in script


def test_dry_run_prints_the_script_and_writes_nothing(capsys, make_spec, tmp_path):
    spec = make_spec(name="dry")
    assert main(["sweep", "slurm", str(spec), *JOB, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("#!/bin/bash\n") and "#SBATCH --job-name=attnmel-dry" in out
    assert not (tmp_path / "results").exists()


def test_written_job_runs_the_resolved_spec_and_is_rewritten_only_for_the_same_sweep(capsys, make_spec, tmp_path):
    spec_path = make_spec(name="w", train={"optim": {"epochs": 3}})
    args = ["sweep", "slurm", str(spec_path), *JOB, "--set", "grid.seeds=[0,1]"]
    assert main(args) == 0
    slurm_dir = tmp_path / "results" / "w" / "slurm"
    script = Path(capsys.readouterr().out.splitlines()[0])
    assert script == slurm_dir / "job.sbatch" and script.read_text().startswith("#!/bin/bash\n")
    spec = load_spec(spec_path, overrides=["grid.seeds=[0,1]"])
    assert load_spec(slurm_dir / "spec.yaml") == spec  # what the job runs: the spec as resolved here
    # once the sweep has started, the job may be rewritten (e.g. other --nodes) for that sweep only
    (slurm_dir.parent / "sweep.json").write_text(json.dumps({"name": "w", "spec": spec_to_dict(spec)}))
    assert main([*args[:3], *args[-2:], "--nodes", "1", "--cpus-per-node", "4", "--time", "20"]) == 0
    assert "#SBATCH --cpus-per-task=4" in script.read_text()
    capsys.readouterr()
    assert main(["sweep", "slurm", str(spec_path), *JOB]) == 2  # seeds [0] only: another sweep
    assert "of another spec" in capsys.readouterr().err and load_spec(slurm_dir / "spec.yaml") == spec


@pytest.mark.parametrize(
    "extra, needles",
    [
        (["--nodes", "0"], ("--nodes must be at least 1, got 0",)),
        (["--cpus-per-node", "0"], ("--cpus-per-node must be at least 1",)),
        (["--gpus-per-node", "-1"], ("--gpus-per-node must be at least 0",)),
        (["--time", "90 minutes"], ("is not a Slurm time",)),
        (["--time", "5", "--signal", "300"], ("--signal 300 s must be at most half of --time 5",)),
        (["--mem", "12GB"], ("--mem '12GB'",)),
        (["--partition", "gpu normal"], ("--partition 'gpu normal' must be one word",)),
        (["--storage", "s3://bucket/results"], ("is a URI",)),
        (["--set", "train.optim.momentun=0.9"], ("optim.momentun",)),  # the spec fails validation
    ],
)
def test_bad_input_is_one_line_before_anything_is_written(capsys, make_spec, tmp_path, extra, needles):
    job = dict(zip(JOB[::2], JOB[1::2]))
    job.update(dict(zip(extra[::2], extra[1::2])))
    args = [part for item in job.items() for part in item]
    fails_cleanly(capsys, tmp_path, ["sweep", "slurm", str(make_spec()), *args], *needles)


def test_submit_without_sbatch_on_path(capsys, make_spec, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "no_slurm_here"))
    fails_cleanly(capsys, tmp_path, ["sweep", "slurm", str(make_spec()), *JOB, "--submit"], "sbatch is not on PATH")


# --------------------------------------------------------------------------- a Slurm of our own


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Slurm:
    """The running one-node cluster: ``env`` points Slurm's commands at its ``slurm.conf``."""

    root: Path
    env: dict[str, str]

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run(args, env=self.env, capture_output=True, text=True, timeout=60)
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(args)}: exit {done.returncode}: {done.stderr.strip()}")
        return done

    def job(self, job_id: str) -> dict[str, str]:
        """``scontrol show job`` as a dict (finished jobs stay visible for MinJobAge)."""
        text = self.run("scontrol", "show", "job", "--oneliner", job_id).stdout
        return dict(re.findall(r"(\S+?)=(\S*)", text))

    def wait(self, job_id: str, until, *, timeout: float = JOB_TIMEOUT, what: str = "") -> dict[str, str]:
        """Poll the job until ``until(job)`` holds; its record then."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.job(job_id)
            if until(job):
                return job
            time.sleep(0.5)
        raise AssertionError(f"job {job_id}: not {what or 'there'} after {timeout} s: {self.job(job_id)}")

    def wait_done(self, job_id: str) -> dict[str, str]:
        return self.wait(job_id, lambda j: j["JobState"] in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"), what="done")


def _stop(procs: list[subprocess.Popen]) -> None:
    for proc in reversed(procs):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in reversed(procs):
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def slurm():
    """A one-node Slurm on 127.0.0.1 (2 CPUs, no GPUs) for this module; torn down after it."""
    missing = [name for name in SLURM_BINARIES if shutil.which(name) is None]
    if missing:
        pytest.skip(f"Slurm is not installed (missing {', '.join(missing)}; apt-get install slurm-wlm munge)")
    if os.geteuid() != 0:
        pytest.skip("the test Slurm runs its daemons as root (SlurmUser=root); not root here")
    root = Path(tempfile.mkdtemp(prefix="slurm-", dir="/tmp"))  # short: munge's socket path
    munge = root / "munge"
    for sub in (munge, root / "state", root / "spool"):
        sub.mkdir(mode=0o700)
    key = munge / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    host = socket.gethostname().split(".")[0]
    first_job = 100_000 + secrets.randbelow(800_000)  # job ids (hence Ray ports, temp folders) of this run only
    conf = root / "slurm.conf"
    conf.write_text(slurm_conf(cluster="attnmeltest", first_job=first_job, controller=(host, "127.0.0.1"), root=root,
                               munge=munge, nodes=[(host, "127.0.0.1", "")], ports=(_free_port(), _free_port())))
    env = {**os.environ, "SLURM_CONF": str(conf)}
    procs: list[subprocess.Popen] = []
    try:
        procs.append(subprocess.Popen(
            ["munged", "--foreground", "--force", f"--socket={munge}/socket", f"--key-file={key}",
             f"--pid-file={munge}/pid", f"--log-file={munge}/log", f"--seed-file={munge}/seed"],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        ))  # fmt: skip
        deadline = time.monotonic() + 30
        while not (munge / "socket").exists():
            assert procs[0].poll() is None and time.monotonic() < deadline, (munge / "log").read_text()
            time.sleep(0.1)
        for daemon in ("slurmctld", "slurmd"):
            log = open(root / f"{daemon}.out", "w")
            procs.append(subprocess.Popen([daemon, "-D", "-f", str(conf)], env=env, stdout=log, stderr=subprocess.STDOUT))
        cluster = Slurm(root, env)
        deadline = time.monotonic() + 60
        while cluster.run("sinfo", "--noheader", "--format=%T", check=False).stdout.strip() != "idle":
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                logs = "\n".join((root / f).read_text()[-1500:] for f in ("slurmctld.out", "slurmd.out"))
                raise AssertionError(f"the test Slurm did not come up:\n{logs}")
            time.sleep(0.5)
        yield cluster
    finally:
        if len(procs) == 3:
            subprocess.run(["scancel", "--full", "--user=root"], env=env, capture_output=True)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and subprocess.run(
                ["squeue", "--noheader"], env=env, capture_output=True, text=True
            ).stdout.strip():  # fmt: skip
                time.sleep(0.5)
        _stop(procs)
        for job_dir in Path("/tmp").glob("ray-*-*"):  # the jobs' Ray temporary folders
            if job_dir.name.split("-")[1].isdigit() and first_job <= int(job_dir.name.split("-")[1]) < first_job + 1000:
                shutil.rmtree(job_dir, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def job_env(cli_env, slurm) -> dict[str, str]:
    """What `attnmel sweep slurm` runs with: this test Slurm, and this checkout's code on
    PYTHONPATH (sbatch hands the environment on to the job)."""
    path = os.pathsep.join(p for p in (str(REPO), cli_env.get("PYTHONPATH")) if p)
    return {**cli_env, **{k: v for k, v in slurm.env.items() if k == "SLURM_CONF"}, "PYTHONPATH": path,
            "OMP_NUM_THREADS": "1"}  # fmt: skip


def _spec(folder: Path, data: Path, name: str, **sections) -> Path:
    """A tiny CPU sweep spec (the sweep tests' settings) with its storage in ``folder``."""
    raw = {
        "name": name,
        "dataset": {"name": "isic2017", "root": str(data)},
        "train": {**TINY_TRAIN, "optim": {**TINY_TRAIN["optim"], "epochs": EPOCHS}},
        "grid": GRID,
        "resources": {"cpus": 1, "gpus": 0},
        "storage": str(folder / "results"),
        "retries": 0,
        **sections,
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _submit(spec: Path, env: dict[str, str], *job: str) -> str:
    done = run_attnmel(["sweep", "slurm", str(spec), *(job or JOB), "--submit"], env, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()[0]


def _rows(sweep_dir: Path) -> dict[str, list[dict]]:
    """Trial folder → the result rows Tune wrote so far (one per reported epoch)."""
    out = {}
    for path in sweep_dir.glob("*/result.json"):
        try:
            out[path.parent.name] = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        except (OSError, json.JSONDecodeError):  # being written right now
            continue
    return out


def _wait_for(condition, what: str, timeout: float = JOB_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not {what} after {timeout} s"
        time.sleep(0.2)


def _resumed_after_checkpoints(rows: dict[str, list[dict]]) -> int:
    """Check that every trial that was interrupted went on from its newest checkpoint, not from
    an earlier one: the epoch it reported first after the interruption is no earlier than the
    last checkpointed epoch before it (that result's snapshot holds the state the epoch started
    from, written in the background during it). Returns how many trials were interrupted."""
    interrupted = 0
    for trial, epochs in rows.items():
        numbers = [row["epoch"] for row in epochs]
        # a new start of the trainable (Tune counts its iterations anew), or an epoch repeated
        starts = [i for i in range(1, len(numbers))
                  if epochs[i].get("iterations_since_restore") == 1 or numbers[i] <= numbers[i - 1]]
        restart = starts[0] if starts else None
        if restart is None:
            continue
        interrupted += 1
        before = [row["epoch"] for row in epochs[:restart] if row.get("checkpoint")]
        assert numbers[restart] >= max(before, default=1), (trial, numbers)
        assert numbers[restart:] == list(range(numbers[restart], EPOCHS + 1)), (trial, numbers)
    return interrupted


@pytest.fixture(scope="module")
def module_env(slurm, sweep_cache) -> dict[str, str]:
    """What `attnmel sweep slurm` runs with here: this test Slurm, the session's preprocessing
    cache, one thread per trial, and this checkout's code on PYTHONPATH, which sbatch hands on
    to the job with the rest of the environment."""
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS")}
    path = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return {**env, "SLURM_CONF": slurm.env["SLURM_CONF"], "ATTNMEL_CACHE": str(sweep_cache), "PYTHONPATH": path,
            "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}  # fmt: skip


@pytest.fixture(scope="module")
def reference(slurm, module_env, sweep_data, tmp_path_factory):
    """One uninterrupted sweep, submitted as a one-CPU job when the module starts (so that the
    time-limit test's job, mostly waiting, runs beside it); what interrupted sweeps must equal.
    Call it to wait for the job's end: (job id, its Slurm record, the sweep folder)."""
    folder = tmp_path_factory.mktemp("slurm_reference")
    job = ["--nodes", "1", "--cpus-per-node", "1", "--time", "10"]
    job_id = _submit(_spec(folder, sweep_data, "reference"), module_env, *job)

    def wait() -> tuple[str, dict[str, str], Path]:
        return job_id, slurm.wait_done(job_id), folder / "results" / "reference"

    return wait


# --------------------------------------------------------------------------- jobs of a real Slurm


@pytest.mark.slurm
def test_slurm_accepts_the_script(slurm, make_spec, tmp_path):
    """sbatch --test-only: this Slurm parses every directive and could run the job (its one
    node has no GPUs, features or accounts, so those stay out)."""
    job = SlurmJob(nodes=1, cpus_per_node=2, time="1:00:00", mem="0", partition="debug", signal=120)
    script = tmp_path / "job.sbatch"
    script.write_text(job_script(load_spec(make_spec(name="t")), job))
    (tmp_path / "results" / "t" / "slurm").mkdir(parents=True)  # --chdir and --output are checked
    done = slurm.run("sbatch", "--test-only", str(script), check=False)
    assert done.returncode == 0 and "to start at" in done.stderr, done.stderr


@pytest.mark.slurm
def test_spec_that_fails_validation_submits_nothing(capsys, slurm, make_spec, tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_CONF", slurm.env["SLURM_CONF"])
    queued = slurm.run("squeue", "--noheader", "--format=%i").stdout.split()
    args = ["sweep", "slurm", str(make_spec(train={"optim": {"lr": -1}})), *JOB, "--submit"]
    fails_cleanly(capsys, tmp_path, args, "optim.lr")
    assert slurm.run("squeue", "--noheader", "--format=%i").stdout.split() == queued


@pytest.mark.slurm
def test_sbatch_refusal_is_one_line_and_leaves_nothing(capsys, slurm, make_spec, tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_CONF", slurm.env["SLURM_CONF"])
    args = ["sweep", "slurm", str(make_spec()), *JOB, "--partition", "nosuch", "--submit"]
    fails_cleanly(capsys, tmp_path, args, "sbatch refused the job", "Invalid partition name")


@pytest.mark.slurm
@pytest.mark.slow
@pytest.mark.ray
def test_time_limit_signal_stops_the_sweep_and_requeues_the_job(slurm, reference, module_env, sweep_data, tmp_path):
    """A job with a one-minute limit whose trial can never start (it asks for 2 CPUs of a
    1-CPU job), so that only the limit can end it: Slurm's own timer signals the batch script
    (`--signal 30`: 30 s before the limit, or up to a minute earlier by Slurm's leeway), the
    driver stops at whatever it was doing (preflight, or Tune's run, which saves its state),
    and the job requeues itself. What a stop mid-training leaves is the next test's subject."""
    spec = _spec(tmp_path, sweep_data, "limit", resources={"cpus": 2, "gpus": 0})
    job_id = _submit(spec, module_env, "--nodes", "1", "--cpus-per-node", "1", "--time", "1", "--signal", "30")
    job = slurm.wait(job_id, lambda j: int(j["Restarts"]) >= 1, timeout=150, what="requeued")
    slurm.run("scancel", job_id)  # its next start would wait for the limit again
    sweep_dir = tmp_path / "results" / "limit"
    log = (sweep_dir / "slurm" / f"slurm-{job_id}.out").read_text()
    first = log.split("start 2,")[0]  # the first start's part of the log
    assert "pre-limit signal: asking the sweep to stop" in first, log[-3000:]
    assert "stopped on request before its end" in first and f"requeueing job {job_id}" in first, log[-3000:]
    assert parse_time(job["TimeLimit"]) == 60
    assert not (sweep_dir / "trials.parquet").exists()  # the tables wait for the end of the sweep


@pytest.mark.slurm
@pytest.mark.slow
@pytest.mark.ray
def test_submitted_job_runs_the_sweep_once(slurm, reference):
    job_id, job, sweep_dir = reference()
    log = (sweep_dir / "slurm" / f"slurm-{job_id}.out").read_text()
    assert job["JobState"] == "COMPLETED" and job["ExitCode"] == "0:0", log[-3000:]
    assert job["Restarts"] == "0" and job["JobName"] == "attnmel-reference"
    assert parse_time(job["TimeLimit"]) == parse_time("10")  # Slurm reads --time as we do
    assert "attnmel sweep run" in log and "1 of 1 Ray nodes joined" in log and "exit code 0" in log
    check_tables(sweep_dir, n_trials=len(GRID["variants"]), epochs=EPOCHS)


@pytest.mark.slurm
@pytest.mark.slow
@pytest.mark.ray
def test_stopped_requeued_cancelled_and_resubmitted_job_ends_with_the_uninterrupted_numbers(
    slurm, reference, module_env, sweep_data, tmp_path
):
    """One sweep through both interruptions a job meets. Mid-training, Slurm's pre-limit
    signal (what `--signal=B:USR1@S` has Slurm send, delivered here at a chosen moment with
    `scancel --batch`): the job stops cleanly and requeues itself. Its next start resumes the
    sweep and is cancelled once it resumes (scancel: everything killed; on a fast machine the
    resumed sweep may have ended by then), and a second
    `sbatch` of the same script continues the sweep to its end. Every trial ends once, each
    interrupted trial went on from its newest checkpoint, and the numbers are those of the
    uninterrupted sweep."""
    from orchestrator.sweep.trainable import SCRATCH_ROOT

    # Checkpoints written as each epoch ends (not during the next), so that the first comes with
    # epoch 1's result; the same numbers as the reference's (where and when files are written
    # changes none). Tune's copy of result.json reaches the storage within a second.
    train = {**TINY_TRAIN, "optim": {**TINY_TRAIN["optim"], "epochs": EPOCHS},
             "runtime": {**TINY_TRAIN["runtime"], "background_checkpoint": False}}
    spec = _spec(tmp_path, sweep_data, "interrupted", train=train)
    sweep_dir = tmp_path / "results" / "interrupted"
    job_id = _submit(spec, {**module_env, "TUNE_GLOBAL_CHECKPOINT_S": "1"})
    log = sweep_dir / "slurm" / f"slurm-{job_id}.out"
    # The moment comes from the trials' own progress: a trial with a checkpoint Tune took in and
    # two epochs still to train; the stop then catches it mid-training.
    _wait_for(lambda: checkpointed_with_epochs_to_go(sweep_dir, [SCRATCH_ROOT], EPOCHS, 2),
              "a checkpoint mid-trial")
    slurm.run("scancel", "--batch", "--signal=USR1", job_id)
    _wait_for(lambda: re.search(r"start 2,[\s\S]*resuming sweep", log.read_text()), "the requeued job resuming")
    slurm.run("scancel", job_id)
    assert slurm.wait_done(job_id)["JobState"] == "CANCELLED"
    first = log.read_text()
    assert "stopped on request before its end" in first and f"requeueing job {job_id}" in first, first[-3000:]
    assert "attnmel sweep resume" in first.split("start 2,")[1]
    # Whether the cancel caught the resumed sweep before its end depends on this machine's speed;
    # either way the resubmission below must end with every trial once and the same numbers
    # (and, when nothing was left, train nothing).

    again = slurm.run("sbatch", "--parsable", str(sweep_dir / "slurm" / "job.sbatch")).stdout.strip().split(";")[0]
    job = slurm.wait_done(again)
    log = (sweep_dir / "slurm" / f"slurm-{again}.out").read_text()
    assert job["JobState"] == "COMPLETED" and job["ExitCode"] == "0:0", log[-3000:]
    assert "attnmel sweep resume" in log

    trials, _ = check_tables(sweep_dir, n_trials=len(GRID["variants"]), epochs=EPOCHS)
    assert len(list(sweep_dir.glob("*/params.json"))) == len(trials), "a trial was created twice"
    # The stop caught a trial mid-training (see above), and each trial it caught went on from its
    # newest checkpoint (test_fault_injection.py covers every moment of a trial's life).
    assert _resumed_after_checkpoints(_rows(sweep_dir)) >= 1
    _, _, reference_dir = reference()
    for ours, theirs in zip(sweep_numbers(sweep_dir), sweep_numbers(reference_dir)):
        pd.testing.assert_frame_equal(ours, theirs, check_exact=True, check_dtype=False)
