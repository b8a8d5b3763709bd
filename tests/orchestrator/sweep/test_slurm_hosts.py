"""`attnmel sweep slurm --nodes 3` on a real three-host Slurm: hosts made as network namespaces
(``_netns``), slurmctld on the first, a slurmd on each (its NodeName the host's hostname, its
NodeAddr the host's address, two GPUs each declared as GRES by count), one munged whose key
they all share. The job starts the Ray head and workers through ``srun`` exactly as on a
cluster; its pre-limit signal mid-training requeues it, and the next start resumes across the
three hosts. Skipped, saying why, without Slurm, munge, root or network namespaces."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from _netns import Host, three_hosts  # noqa: F401  (the fixture)
from _slurm_conf import slurm_conf
from _sweep_helpers import REPO, TINY_TRAIN, check_tables, checkpointed_with_epochs_to_go

pytestmark = [pytest.mark.slurm, pytest.mark.ray, pytest.mark.slow]

SLURM_BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "srun", "scontrol", "squeue",
                  "scancel", "sinfo")
EPOCHS = 4  # the stop is asked for with two epochs of a trial still to run
JOB_TIMEOUT = 300


class HostSlurm:
    """The running three-host Slurm; its commands run on the first host (where slurmctld is)."""

    def __init__(self, root: Path, env: dict[str, str], head: Host) -> None:
        self.root, self.env, self.head = root, env, head

    def run(self, *args: str, check: bool = True, env: dict[str, str] | None = None):
        """``args`` on the first host; an AssertionError when it fails and ``check``."""
        done = self.head.run(list(args), env=env or self.env, timeout=120, cwd=REPO)
        if check and done.returncode != 0:
            why = done.stderr.strip()[-2000:]
            raise AssertionError(f"{' '.join(args)}: exit {done.returncode}: {why}")
        return done

    def job(self, job_id: str) -> dict[str, str]:
        text = self.run("scontrol", "show", "job", "--oneliner", job_id).stdout
        return dict(re.findall(r"(\S+?)=(\S*)", text))

    def wait(self, job_id: str, until, *, what: str, timeout: float = JOB_TIMEOUT) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.job(job_id)
            if until(job):
                return job
            time.sleep(1)
        raise AssertionError(f"job {job_id}: not {what} after {timeout} s: {self.job(job_id)}")


def _conf(root: Path, hosts: list[Host], munge: Path, first_job: int) -> str:
    return slurm_conf(cluster="attnmelhosts", first_job=first_job, controller=(hosts[0].name, hosts[0].address),
                      root=root, munge=munge, nodes=[(h.name, h.address, "Gres=gpu:2") for h in hosts],
                      per_node=True, gres=True)


@pytest.fixture
def host_slurm(three_hosts, tmp_path_factory):  # noqa: F811
    """Slurm over the three hosts, each with a /tmp of its own (Ray's temporary folders and
    sockets are node-local on a cluster), torn down after the test with the hosts' processes."""
    missing = [name for name in SLURM_BINARIES if shutil.which(name) is None]
    if missing:
        pytest.skip(f"Slurm is not installed (missing {', '.join(missing)}; "
                    "apt-get install slurm-wlm munge)")
    hosts = three_hosts.hosts
    root = Path(tempfile.mkdtemp(prefix="slurmh-", dir="/tmp"))  # short: munge's socket path
    munge = root / "munge"
    for sub in (munge, root / "state", *(root / f"spool-{h.name}" for h in hosts)):
        sub.mkdir(mode=0o700)
    key = munge / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    first_job = 100_000 + secrets.randbelow(800_000)
    conf = root / "slurm.conf"
    conf.write_text(_conf(root, hosts, munge, first_job))
    gres = []
    for host in hosts:  # two fake GPUs per host: character devices with NVIDIA's major number
        devices = root / f"dev-{host.name}"
        devices.mkdir()
        for i in range(2):
            os.mknod(devices / f"nvidia{i}", stat.S_IFCHR | 0o600, os.makedev(195, i))
        gres.append(f"NodeName={host.name} Name=gpu File={devices}/nvidia[0-1]\n")
    (root / "gres.conf").write_text("".join(gres))
    local = Path(tempfile.mkdtemp(prefix="amlocal-", dir="/tmp"))
    three_hosts.node_local_tmp(local, [root, tmp_path_factory.getbasetemp()])
    env = {**os.environ, "SLURM_CONF": str(conf)}
    munged_argv = ["munged", "--foreground", "--force", f"--socket={munge}/socket"]
    munged_argv += [f"--key-file={key}", f"--pid-file={munge}/pid", f"--log-file={munge}/log"]
    munged_argv += [f"--seed-file={munge}/seed"]
    munged = subprocess.Popen(munged_argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    cluster = HostSlurm(root, env, hosts[0])
    try:
        deadline = time.monotonic() + 30
        while not (munge / "socket").exists():
            alive = munged.poll() is None and time.monotonic() < deadline
            assert alive, (munge / "log").read_text()
            time.sleep(0.1)
        daemons = [(hosts[0], "slurmctld", "slurmctld")]
        daemons += [(h, "slurmd", f"slurmd-{h.name}") for h in hosts]
        for host, daemon, name in daemons:
            with open(root / f"{name}.out", "w") as log:  # the child keeps its own descriptor
                argv = [daemon, "-D", "-f", str(conf)]
                host.popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 90
        sinfo = ("sinfo", "--noheader", "--format=%T %D")
        while (state := cluster.run(*sinfo, check=False).stdout.strip()) != "idle 3":
            if time.monotonic() > deadline:
                text = "\n".join(p.read_text()[-1500:] for p in sorted(root.glob("*.log")))
                raise AssertionError(f"the three-host Slurm did not come up ({state!r}):\n{text}")
            time.sleep(0.5)
        yield cluster
    finally:
        cluster.run("scancel", "--full", "--user=root", check=False)
        for host in hosts:  # slurmd, slurmctld, the jobs' steps and Ray
            host.kill_all()
        munged.terminate()
        munged.wait(timeout=20)
        shutil.rmtree(local, ignore_errors=True)  # the hosts' own /tmp: the jobs' Ray folders
        shutil.rmtree(root, ignore_errors=True)


def _rows(sweep_dir: Path) -> list[dict]:
    rows = []
    for path in sweep_dir.glob("*/result.json"):
        try:
            rows += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        except (OSError, json.JSONDecodeError):  # being written right now
            continue
    return rows


ENDED = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT")


def _tiny_spec(path: Path, data: Path, storage: Path) -> Path:
    """Three one-node trials (each a whole node: its two CPUs and two GPUs, on the CPU)."""
    train = {**TINY_TRAIN, "optim": {**TINY_TRAIN["optim"], "epochs": EPOCHS}}
    train["runtime"] = {**TINY_TRAIN["runtime"], "device": "cpu", "num_threads": 1}
    raw = {
        "name": "slurm_hosts",
        "dataset": {"name": "isic2017", "root": str(data)},
        "train": train,
        "grid": {"variants": ["vgg16_gap"], "seeds": [0, 1, 2]},
        "resources": {"cpus": 2, "gpus": 2},
        "storage": str(storage),
        "retries": 0,
    }
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_sweep_slurm_across_three_hosts_requeues_and_resumes(
    host_slurm, three_hosts, sweep_data, sweep_cache, tmp_path  # noqa: F811
):
    hosts = {h.name: h.address for h in three_hosts.hosts}
    spec = _tiny_spec(tmp_path / "hosts.yaml", sweep_data, tmp_path / "results")
    inherited = ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS")
    env = {k: v for k, v in host_slurm.env.items() if k not in inherited}
    path = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    env.update(ATTNMEL_CACHE=str(sweep_cache), PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = path
    env["TUNE_GLOBAL_CHECKPOINT_S"] = "1"  # Tune's copy of result.json reaches the storage soon
    job = ["--nodes", "3", "--cpus-per-node", "2", "--gpus-per-node", "2", "--time", "10"]
    command = [sys.executable, "-m", "orchestrator.cli", "sweep", "slurm", str(spec), *job]
    command.append("--submit")
    job_id = host_slurm.run(*command, env=env).stdout.splitlines()[0]
    sweep_dir = tmp_path / "results" / "slurm_hosts"
    log = sweep_dir / "slurm" / f"slurm-{job_id}.out"

    # the pre-limit signal (what --signal has Slurm send before --time) once a trial has a
    # checkpoint and two epochs to go: the trial's own progress (its result rows, and its run
    # directory on its host's own /tmp) picks the moment
    deadline = time.monotonic() + JOB_TIMEOUT
    scratch = [host.local_tmp / "attnmel-trials" for host in three_hosts.hosts]
    while not checkpointed_with_epochs_to_go(sweep_dir, scratch, EPOCHS, 2):
        shown = log.read_text()[-3000:] if log.exists() else "no job log"
        assert time.monotonic() < deadline, shown
        time.sleep(0.1)
    host_slurm.run("scancel", "--batch", "--signal=USR1", job_id)
    record = host_slurm.wait(job_id, lambda j: j["JobState"] in ENDED and int(j["Restarts"]) >= 1,
                             what="requeued and done")
    text = log.read_text()
    assert record["JobState"] == "COMPLETED" and record["ExitCode"] == "0:0", text[-4000:]
    first, _, second = text.partition("start 2,")
    assert f"requeueing job {job_id}" in first and "attnmel sweep resume" in second, text[-4000:]
    for part in (first, second):  # both starts: Ray on all three hosts, two GPUs each
        assert "3 of 3 Ray nodes joined (6 CPUs, 6 GPUs)" in part, part[-3000:]

    trials, _ = check_tables(sweep_dir, n_trials=3, epochs=EPOCHS)
    rows = _rows(sweep_dir)
    assert set(trials["hostname"]) == set(hosts)  # one trial on each host, in the end too
    # each Ray node had the two GPUs Slurm gave its host; a trial asking for two got both
    for row in rows:
        assert hosts[row["hostname"]] == row["node_ip"]
        assert sorted(row["gpu_ids"].split(",")) == ["0", "1"]
        assert row["cuda_visible_devices"] == row["gpu_ids"]
    # caught mid-training: a trial went on after the requeue from a checkpoint, not from epoch 1
    resumed = {r["trial_id"] for r in rows
               if r.get("iterations_since_restore") == 1 and r["epoch"] > 1}
    assert resumed, "no trial went on from a checkpoint after the requeue"
