"""A sweep across three real hosts (network namespaces of one machine, ``_netns``): a Ray head
on one, workers joining it with ``ray start --address`` from the other two, the storage on the
filesystem all three share; one worker host's Ray killed mid-sweep."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from _netns import Host, three_hosts  # noqa: F401  (the fixture)
from _sweep_helpers import REPO, check_tables, epochs_done

pytestmark = [pytest.mark.ray, pytest.mark.slow]

PORT = 6379
EPOCHS = 2


def start_ray(host: Host, env: dict[str, str], temp: Path, *, head: Host | None = None):
    """``ray start --block`` on ``host``: the head when ``head`` is None, else a worker joining
    it; one CPU, a small object store, Ray's folders in ``temp``."""
    argv = [sys.executable, "-m", "ray.scripts.scripts", "start", "--block"]
    argv += ["--disable-usage-stats", "--num-cpus", "1", "--num-gpus", "0"]
    argv += ["--object-store-memory", str(80 * 2**20), f"--temp-dir={temp}"]
    argv += [f"--node-ip-address={host.address}"]
    if head is None:
        argv += ["--head", f"--port={PORT}", "--include-dashboard=false"]
    else:
        argv += [f"--address={head.address}:{PORT}"]
    log = open(temp / "ray-start.log", "w")
    return host.popen(argv, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)


def wait_for(what: str, ok, timeout: float = 120, poll: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while not ok():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(poll)


def trial_mid_training_on(host: Host) -> bool:
    """Whether a trial on ``host`` has finished an epoch but not its last: its run directory
    (``<worker pid>-<trial id>-…`` under the trainable's scratch root) has epochs.jsonl rows and
    no final.json, and the worker pid is one of the host's processes."""
    from orchestrator.sweep.trainable import SCRATCH_ROOT

    pids = set(host.pids())
    for run in SCRATCH_ROOT.glob("*/run"):
        owner = run.parent.name.partition("-")[0]
        if not owner.isdigit() or int(owner) not in pids or (run / "final.json").exists():
            continue
        if 1 <= epochs_done(run) < EPOCHS:
            return True
    return False


def finished_on(sweep_dir: Path, host: Host) -> int:
    """How many trials ended on ``host`` (their last result in the storage says so)."""
    ended = set()
    for path in sweep_dir.glob("*/result.json"):
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        if rows and rows[-1].get("done") and rows[-1].get("hostname") == host.name:
            ended.add(path.parent.name)
    return len(ended)


def test_sweep_across_three_hosts_survives_losing_one(
    tmp_path, make_spec, cli_env, three_hosts  # noqa: F811
):
    head, worker, doomed = three_hosts.hosts
    # A cluster's token (Ray's `ray start` asks for one), and node deaths noticed within seconds
    env = {**cli_env, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16),
           "RAY_health_check_period_ms": "500", "RAY_health_check_failure_threshold": "4"}
    temps = [Path(f"/tmp/{h.name}") for h in three_hosts.hosts]  # short: Ray's socket paths
    for temp in temps:
        temp.mkdir()
    try:
        start_ray(head, env, temps[0])
        wait_for("the Ray head", lambda: head.listening(head.address, PORT))
        for host, temp in zip((worker, doomed), temps[1:]):
            start_ray(host, env, temp, head=head)

        grid = {"variants": ["vgg16_gap", "attnmel"], "seeds": [0, 1, 2, 3, 4, 5]}  # 12 trials
        spec = make_spec(name="hosts", grid=grid, retries=2, train={"optim": {"epochs": EPOCHS}})
        sweep_dir = tmp_path / "results" / "hosts"
        run = [sys.executable, "-m", "orchestrator.cli", "sweep", "run", str(spec)]
        run += ["--address", f"{head.address}:{PORT}", "--wait-nodes", "3", "--wait-timeout", "120"]
        driver = head.popen(
            run,
            env={**env, "TUNE_GLOBAL_CHECKPOINT_S": "1"},  # result.json reaches the storage often
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(driver.stdout), daemon=True)
        reader.start()
        # the moment comes from the trials' own progress: one trial done on the doomed host, the
        # next one there between its first and last epoch
        def moment() -> bool:
            return driver.poll() is not None or (
                trial_mid_training_on(doomed) and finished_on(sweep_dir, doomed) >= 1)

        wait_for(f"a second trial mid-training on {doomed.name}", moment, timeout=300, poll=0.1)
        assert driver.poll() is None, "".join(lines)[-3000:]
        doomed.kill_all()  # the host's Ray (raylet, workers, the trial) dies at once
        driver.wait(timeout=400)
        reader.join(10)
        output = "".join(lines)
        assert driver.returncode == 0, output[-4000:]
    finally:
        for host in three_hosts.hosts:
            host.kill_all()
        for temp in temps:
            subprocess.run(["rm", "-rf", str(temp)], timeout=60)

    trials, epochs = check_tables(sweep_dir, n_trials=12, epochs=EPOCHS)  # every trial once
    hosts = {h.name: h.address for h in three_hosts.hosts}
    assert set(trials["hostname"]) == set(hosts)  # all three hosts ended trials
    assert all(hosts[name] == ip for name, ip in zip(trials["hostname"], trials["node_ip"]))
    lost = [line for line in output.splitlines() if "was lost" in line]
    assert len(lost) == 1 and f"{doomed.name} ({doomed.address})" in lost[0], output[-4000:]
    retried = trials[trials["num_failures"] > 0]
    assert len(retried) >= 1 and doomed.name not in set(retried["hostname"])  # ended on a survivor

    # the retried trials' numbers are those of an uninterrupted run of the same config
    assert_uninterrupted_numbers(sweep_dir, retried, epochs, tmp_path)


def assert_uninterrupted_numbers(sweep_dir: Path, retried: pd.DataFrame, epochs: pd.DataFrame,
                                 tmp_path: Path) -> None:
    """Each retried trial's epochs and predictions equal a plain ``fit`` of its config."""
    from attnmel.checkpoint import PREDICTIONS, read_predictions
    from attnmel.train import fit
    from orchestrator.layout.params import params_config

    predictions = pd.read_parquet(sweep_dir / "predictions.parquet")
    for trial in retried.itertuples():
        params = json.loads((sweep_dir / trial.trial_dir / "params.json").read_text())
        config = params_config(params)
        run_dir = tmp_path / f"alone_{trial.trial_id}"
        alone = list(fit(config, run_dir))
        ours = epochs[epochs["trial_id"] == trial.trial_id].sort_values("epoch")
        for key in ("lr", "train_loss", "val_auc", "val_ap", "test_auc", "test_ap"):
            expected = [r[key] for r in alone]
            assert list(ours[key]) == pytest.approx(expected, abs=1e-12), (trial.trial_id, key)
        order = ["split", "image_id"]
        mine = predictions[predictions["trial_id"] == trial.trial_id].sort_values(order)
        reference = pd.DataFrame(read_predictions(run_dir / PREDICTIONS)).sort_values(order)
        assert list(mine["image_id"]) == list(reference["image_id"])
        expected = list(reference["prob"])
        assert list(mine["prob"]) == pytest.approx(expected, abs=1e-12), trial.trial_id
