"""Submit a sweep to a Ray cluster as a Ray Job, and look after it (status, logs, stop).

What travels with the job: a small staging folder holding this checkout's ``attnmel`` and
``orchestrator`` packages and the spec file, used as the job's ``working_dir``. Ray puts it on
the ``PYTHONPATH`` of the driver and of every trial, so the cluster runs exactly the code that
was submitted; the nodes only need the dependencies (``cluster.yaml`` installs the project,
which brings them). The job's driver runs ``python -m orchestrator.cli sweep run spec.yaml``
on the head node with the same ``--smoke``/``--set``/``--storage`` options, so it validates
the spec and data again there and fails the job with the same one-line errors.

Ray 2.60 guards the Jobs API with token authentication. The token is looked up where Ray's
own clients look (``RAY_AUTH_TOKEN``, the file named by ``RAY_AUTH_TOKEN_PATH``,
``~/.ray/auth_token``) and sent as a bearer token; a cluster that wants one and gets none is
a one-line error that says where to put it.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from attnmel.errors import UserError
from orchestrator.layout.root import results_root
from orchestrator.sweep.spec import is_uri, merged_raw, read_spec_file, spec_from_dict

__all__ = ["find_token", "submit_sweep", "job_status", "print_logs", "stop_job", "job_client"]

if TYPE_CHECKING:
    from ray.job_submission import JobSubmissionClient

T = TypeVar("T")
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", ".pytest_cache")


def find_token() -> tuple[str | None, str]:
    """The Ray auth token this user has, and where it came from (for messages)."""
    token = os.environ.get("RAY_AUTH_TOKEN", "").strip()
    if token:
        return token, "RAY_AUTH_TOKEN"
    path_env = os.environ.get("RAY_AUTH_TOKEN_PATH")
    paths = [Path(path_env).expanduser()] if path_env else []
    paths.append(Path.home() / ".ray" / "auth_token")
    for path in paths:
        if path.is_file():
            token = path.read_text().strip()
            if token:
                return token, str(path)
    return None, "none found in RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token"


def _no_token_help(address: str, source: str) -> str:
    return (
        f"the Ray cluster at {address} requires an authentication token, and {source}; "
        "copy it from the head node (`ray get-auth-token` there) into ~/.ray/auth_token or set RAY_AUTH_TOKEN"
    )


def _call(address: str, source: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a Jobs API call, turning connection and auth failures into one-line UserErrors."""
    from ray.exceptions import AuthenticationError

    try:
        return fn(*args, **kwargs)
    except AuthenticationError as exc:
        if "Forbidden" in str(exc) or "invalid" in str(exc).lower():
            raise UserError(f"the Ray cluster at {address} rejected the token from {source}; "
                            "get the current one with `ray get-auth-token` on the head node") from None  # fmt: skip
        raise UserError(_no_token_help(address, source)) from None
    except ConnectionError as exc:
        raise UserError(f"cannot reach the Ray Jobs API at {address}: {str(exc).splitlines()[0]}") from None
    except RuntimeError as exc:
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "404" in text or "does not exist" in text:
            raise UserError(f"no such job on {address}: {text}") from None
        raise UserError(f"Ray Jobs API at {address}: {text}") from None


def job_client(address: str | None) -> tuple[JobSubmissionClient, str, str]:
    """A ``JobSubmissionClient`` for the dashboard at ``address`` carrying the user's token,
    the normalised address and where the token came from."""
    from ray.job_submission import JobSubmissionClient

    if not address:
        raise UserError("no cluster address: pass --address http://HEAD:8265 (or set RAY_API_SERVER_ADDRESS)")
    if "://" not in address:
        address = f"http://{address}"
    if not address.startswith(("http://", "https://")):
        raise UserError(f"--address {address} must be the dashboard's http://HOST:8265 address")
    token, source = find_token()
    headers = {"Authorization": f"Bearer {token}"} if token else None
    client = _call(address, source, JobSubmissionClient, address, headers=headers)
    return client, address, source


def _stage(spec_path: Path) -> Path:
    """A temporary working_dir: the two packages of this checkout and the spec as spec.yaml."""
    import attnmel
    import orchestrator

    stage = Path(tempfile.mkdtemp(prefix="attnmel-job-"))
    for module in (attnmel, orchestrator):
        shutil.copytree(Path(module.__file__).parent, stage / module.__name__, ignore=_IGNORE)
    shutil.copyfile(spec_path, stage / "spec.yaml")
    return stage


def _check_cluster_paths(raw: dict, storage: str | None) -> None:
    """Relative paths mean nothing in the job's working directory on the head node."""
    root = (raw.get("dataset") or {}).get("root")
    store = storage or raw.get("storage") or str(results_root())  # the spec's own default
    for key, value in (("dataset.root", root), ("storage", store)):
        text = str(value)
        if not (is_uri(text) or text.startswith(("/", "~"))):
            flag = "--storage PATH" if key == "storage" else "--set dataset.root=PATH"
            raise UserError(
                f"spec key '{key}' is the relative path {text!r}, which the cluster cannot resolve; "
                f"give a path every node sees (shared filesystem) or a URI with {flag}"
            )


def submit_sweep(
    spec_path: str | Path,
    *,
    address: str | None,
    smoke: bool = False,
    overrides: list[str] | tuple[str, ...] = (),
    storage: str | None = None,
    python: str = "python",
) -> str:
    """Validate the spec here, submit ``sweep run`` as a Ray Job, return its submission id."""
    spec_path = Path(spec_path)
    overrides = list(overrides)
    raw = read_spec_file(spec_path)
    spec = spec_from_dict(raw, smoke=smoke, overrides=overrides)  # fail here, not on the cluster
    merged = merged_raw(raw, smoke=smoke, overrides=overrides)
    # a spec without storage writes under the results root: the submitter's, handed to the job
    storage = storage or (None if merged.get("storage") else str(results_root()))
    _check_cluster_paths(merged, storage)
    client, address, source = job_client(address)
    args = [python, "-m", "orchestrator.cli", "sweep", "run", "spec.yaml"]
    if smoke:
        args.append("--smoke")
    for item in overrides:
        args += ["--set", item]
    if storage:
        args += ["--storage", storage]
    from attnmel.version import code_version

    stage = _stage(spec_path)
    try:
        return _call(
            address, source, client.submit_job,
            entrypoint=" ".join(shlex.quote(a) for a in args),
            runtime_env={
                "working_dir": str(stage),
                # the staged copy has no .git: carry the submitting checkout's version along
                "env_vars": {"ATTNMEL_CODE_VERSION": code_version()},
            },
            metadata={"sweep": spec.name, "spec": spec_path.name},
        )  # fmt: skip
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def job_status(job_id: str, *, address: str | None) -> str:
    """``PENDING``, ``RUNNING``, ``SUCCEEDED``, ``FAILED`` or ``STOPPED``, with the job's message."""
    client, address, source = job_client(address)
    info = _call(address, source, client.get_job_info, job_id)
    status = str(getattr(info.status, "value", info.status))
    return f"{status}: {info.message}" if info.message else status


def print_logs(job_id: str, *, address: str | None, follow: bool = False) -> None:
    """Print the job driver's log; with ``follow``, stream it until the job ends."""
    client, address, source = job_client(address)
    if not follow:
        print(_call(address, source, client.get_job_logs, job_id), end="")
        return

    async def tail() -> None:
        async for chunk in client.tail_job_logs(job_id):
            print(chunk, end="", flush=True)

    _call(address, source, asyncio.run, tail())


def stop_job(job_id: str, *, address: str | None) -> bool:
    """Ask the cluster to stop the job; False when it had already finished."""
    client, address, source = job_client(address)
    return bool(_call(address, source, client.stop_job, job_id))
