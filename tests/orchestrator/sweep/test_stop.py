"""The stop request (SIGUSR1) a driver keeps: real signals, each case in a fresh Python
process (the request is the process's, and must not leak into this one)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from _sweep_helpers import REPO, fails_cleanly

# Before Tune's fit: the default action (which kills) is replaced and the request kept. Then a
# handler like Tune's takes over, listen() again puts the recorder in front of it: a second
# request reaches it too, once, however often listen() runs.
_CASE = """
import json, os, signal
from orchestrator.sweep import stop
seen = []
stop.listen()
stop.listen()
os.kill(os.getpid(), stop.STOP_SIGNAL)
first = stop.requested()
signal.signal(stop.STOP_SIGNAL, lambda signum, frame: seen.append(signum))  # what Tune's fit installs
stop.listen()
stop.listen()
os.kill(os.getpid(), stop.STOP_SIGNAL)
print(json.dumps({"first": first, "seen": seen, "after": stop.requested(), "code": stop.EXIT_STOPPED}))
"""


def test_request_is_kept_before_fit_and_passed_on_to_tunes_handler():
    done = subprocess.run([sys.executable, "-c", _CASE], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr  # the first signal did not kill the process
    out = json.loads(done.stdout)
    assert out == {"first": True, "seen": [10], "after": True, "code": 3}


def test_a_process_that_never_listens_keeps_the_default_action():
    case = "import os; from orchestrator.sweep import stop; os.kill(os.getpid(), stop.STOP_SIGNAL)"
    done = subprocess.run([sys.executable, "-c", case], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == -10  # killed by SIGUSR1: listening is the driver's choice, not an import's


def test_wait_nodes_needs_a_cluster(capsys, make_spec, tmp_path):
    fails_cleanly(capsys, tmp_path, ["sweep", "run", str(make_spec()), "--wait-nodes", "2"], "--wait-nodes", "--address")
    fails_cleanly(capsys, tmp_path, ["sweep", "run", str(make_spec()), "--wait-nodes", "0", "--address", "auto"],
                  "--wait-nodes must be at least 1")  # fmt: skip


@pytest.mark.ray
def test_wait_for_nodes_returns_when_they_joined_and_fails_after_its_timeout(capsys):
    import ray

    from attnmel.errors import UserError
    from orchestrator.sweep.preflight import wait_for_nodes

    ray.init(num_cpus=1, include_dashboard=False)
    try:
        wait_for_nodes(ray, 1, timeout=30)
        assert "1 of 1 Ray nodes joined" in capsys.readouterr().out
        with pytest.raises(UserError, match=r"only 1 of 2 Ray nodes joined the cluster within 0.5 s"):
            wait_for_nodes(ray, 2, timeout=0.5, poll=0.1)
    finally:
        ray.shutdown()
