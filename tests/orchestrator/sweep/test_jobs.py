"""`attnmel sweep submit` to a Ray head started with `ray start --head` on 127.0.0.1, with
Ray 2.60's token authentication switched on."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from _sweep_helpers import check_tables, run_attnmel

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_dashboard(url: str, head: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if head.poll() is not None:
            raise RuntimeError(f"ray start exited with {head.returncode}")
        try:
            urllib.request.urlopen(f"{url}/api/version", timeout=2)
            return
        except urllib.error.HTTPError:  # answering, even if it wants a token
            return
        except OSError:
            time.sleep(1)
    raise TimeoutError(f"no Ray dashboard at {url} after {timeout} s")


@pytest.fixture
def ray_head(cli_env):
    """A token-protected Ray head on 127.0.0.1 with its own ports and temp dir; yields
    (dashboard URL, token). Torn down by signalling the processes this fixture started."""
    token = secrets.token_hex(16)
    temp_dir = Path(tempfile.mkdtemp(prefix="rayhead-", dir="/tmp"))  # short: Ray's socket paths
    dashboard = _free_port()
    env = {**cli_env, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # jobs run `python`
    ports = {
        "--port": _free_port(), "--dashboard-port": dashboard, "--ray-client-server-port": _free_port(),
        "--dashboard-agent-listen-port": _free_port(), "--dashboard-agent-grpc-port": _free_port(),
        "--metrics-export-port": _free_port(), "--runtime-env-agent-port": _free_port(),
    }  # fmt: skip
    cmd = [str(Path(sys.executable).parent / "ray"), "start", "--head", "--block", "--node-ip-address=127.0.0.1",
           "--dashboard-host=127.0.0.1", "--num-cpus=2", "--num-gpus=0", f"--temp-dir={temp_dir}",
           "--include-dashboard=true", "--disable-usage-stats", *(f"{k}={v}" for k, v in ports.items())]  # fmt: skip
    log = open(temp_dir / "ray_start.log", "w")
    head = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{dashboard}"
    try:
        _wait_for_dashboard(url, head)
        yield url, token
    finally:
        # `ray start --block` stops its processes on SIGTERM; the rest of its session is ours too
        head.send_signal(signal.SIGTERM)
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(head.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        head.wait()
        log.close()
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_submit_to_a_token_protected_head(ray_head, tmp_path, make_spec, cli_env):
    url, token = ray_head
    spec = make_spec(name="job", grid={"variants": ["vgg16_gap", "attnmel+lesion"]}, train={"optim": {"epochs": 1}})

    # Without the token the cluster refuses, and the message says what is missing.
    no_token = {k: v for k, v in cli_env.items() if not k.startswith("RAY_AUTH")}
    no_token["HOME"] = str(tmp_path / "home")  # no ~/.ray/auth_token either
    refused = run_attnmel(["sweep", "submit", str(spec), "--address", url], no_token, timeout=120)
    assert refused.returncode == 2
    assert "requires an authentication token" in refused.stderr and "RAY_AUTH_TOKEN" in refused.stderr
    assert not (tmp_path / "results").exists()

    # A wrong token is refused as such.
    wrong = run_attnmel(["sweep", "submit", str(spec), "--address", url], {**no_token, "RAY_AUTH_TOKEN": "0" * 32})
    assert wrong.returncode == 2 and "rejected the token" in wrong.stderr

    with_token = {**no_token, "RAY_AUTH_TOKEN": token}
    submitted = run_attnmel(["sweep", "submit", str(spec), "--address", url], with_token, timeout=120)
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.split()[0]
    assert job_id.startswith("raysubmit_")

    deadline, status = time.monotonic() + 300, ""
    while time.monotonic() < deadline:
        status = run_attnmel(["sweep", "status", job_id, "--address", url], with_token, timeout=60).stdout
        if status.split(":")[0].strip() in ("SUCCEEDED", "FAILED", "STOPPED"):
            break
        time.sleep(5)
    logs = run_attnmel(["sweep", "logs", job_id, "--address", url], with_token, timeout=60).stdout
    assert status.startswith("SUCCEEDED"), status + logs[-3000:]
    assert "tables: " in logs
    check_tables(tmp_path / "results" / "job", n_trials=2, epochs=1)
