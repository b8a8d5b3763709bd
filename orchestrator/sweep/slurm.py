"""A sweep as a Slurm batch job: the job script, and its submission with ``sbatch``.

The script follows Ray's documented pattern for Slurm: the batch script runs on the first
node of the allocation, starts the Ray head there and one Ray worker on every other node with
``srun`` (one task per node holding the node's CPUs and GPUs), and runs the sweep's driver
beside the head. Each job's Ray is its own: a token only the job knows, a block of ports
chosen from the job id (jobs of several users can share a node) and temporary folders named
after the job. The driver waits until every node has joined, then runs ``attnmel sweep run``
on the resolved spec the launcher wrote, or ``attnmel sweep resume`` once the sweep folder
holds a sweep, so that a requeued or resubmitted job continues it.

Time limits: ``sbatch --signal=B:USR1@S`` has Slurm signal the batch script S seconds before
the limit; the script passes the stop request on to the driver
(:mod:`orchestrator.sweep.stop`), Tune stops the trials at their last checkpoints and saves
its state, the driver exits with :data:`~orchestrator.sweep.stop.EXIT_STOPPED`, Ray is stopped
and the job requeues itself (``#SBATCH --requeue``); the next start resumes. Otherwise the
job's exit code is the sweep's.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from attnmel.atomic import atomic_write
from attnmel.errors import UserError
from orchestrator.layout import folders
from orchestrator.sweep import stop
from orchestrator.sweep.spec import SweepSpec, dump_yaml, is_uri, spec_from_dict, sweep_path
from orchestrator.sweep.storage import read_json

__all__ = [
    "DEFAULT_SIGNAL", "DEFAULT_JOIN_TIMEOUT", "SlurmJob", "parse_time", "job_files", "job_script", "write_job",
    "check_sbatch", "submit_job",
]  # fmt: skip

DEFAULT_SIGNAL = 300  # seconds before the time limit: time to stop cleanly, and Slurm's 60 s of leeway
DEFAULT_JOIN_TIMEOUT = 300

# Slurm's time formats: minutes, minutes:seconds, hours:minutes:seconds, days-hours,
# days-hours:minutes, days-hours:minutes:seconds.
_TIME = re.compile(r"(?:(?P<days>\d+)-)?(?P<a>\d+)(?::(?P<b>\d+))?(?::(?P<c>\d+))?")
_WORD = re.compile(r"[^\s'\"\\]+")  # what may stand in an #SBATCH line as one value
_SIGNAL = stop.STOP_SIGNAL.name.removeprefix("SIG")  # as sbatch and bash's kill/trap name it


def parse_time(text: str) -> int:
    """Seconds of a Slurm time limit (``--time`` format: ``90``, ``1:30:00``, ``2-12``, ...)."""
    match = _TIME.fullmatch(text.strip())
    if not match:
        raise UserError(f"--time {text!r} is not a Slurm time (minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS)")
    days, a, b, c = (int(v) if v is not None else None for v in match.group("days", "a", "b", "c"))
    if days is not None:  # D-HH[:MM[:SS]]
        seconds = days * 86400 + a * 3600 + (b or 0) * 60 + (c or 0)
    elif c is not None:  # HH:MM:SS
        seconds = a * 3600 + b * 60 + c
    elif b is not None:  # MM:SS
        seconds = a * 60 + b
    else:  # minutes
        seconds = a * 60
    if seconds <= 0:
        raise UserError(f"--time {text!r} must be longer than zero")
    return seconds


@dataclass(frozen=True)
class SlurmJob:
    """What the job asks of Slurm, and how its script starts the sweep; checked when made."""

    nodes: int
    cpus_per_node: int
    time: str
    gpus_per_node: int = 0
    mem: str | None = None  # per node, Slurm's --mem (e.g. 64G)
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    signal: int = DEFAULT_SIGNAL  # seconds before the time limit that Slurm signals the job; 0: no signal
    join_timeout: int = DEFAULT_JOIN_TIMEOUT  # seconds for the Ray head to start and every node to join
    python: str = sys.executable  # the Python that runs the project on the nodes

    def __post_init__(self) -> None:
        for name, least in (("nodes", 1), ("cpus_per_node", 1), ("gpus_per_node", 0), ("signal", 0), ("join_timeout", 1)):
            if getattr(self, name) < least:
                raise UserError(f"{_flag(name)} must be at least {least}, got {getattr(self, name)}")
        limit = parse_time(self.time)
        if self.signal and 2 * self.signal > limit:
            raise UserError(f"--signal {self.signal} s must be at most half of --time {self.time} ({limit} s), "
                            "so that each run of the job gets time to train; pass a smaller --signal")  # fmt: skip
        if self.mem is not None and not re.fullmatch(r"\d+[KMGT]?", self.mem):
            raise UserError(f"--mem {self.mem!r} must be a size such as 64G, 500M or 0 (all of a node's memory)")
        for name in ("partition", "account", "qos", "constraint"):
            value = getattr(self, name)
            if value is not None and not _WORD.fullmatch(value):
                raise UserError(f"{_flag(name)} {value!r} must be one word without quotes or backslashes")
        if not self.python.strip():
            raise UserError("--python must name a Python interpreter")

    def directives(self, spec: SweepSpec, slurm_dir: Path) -> list[str]:
        """The ``#SBATCH`` options of the job."""
        options = [
            f"--job-name=attnmel-{spec.name}",
            f"--nodes={self.nodes}",
            "--ntasks-per-node=1",  # one Ray node per allocated node: srun starts it as that task
            f"--cpus-per-task={self.cpus_per_node}",
        ]
        if self.gpus_per_node:
            options.append(f"--gpus-per-node={self.gpus_per_node}")
        if self.mem is not None:
            options.append(f"--mem={self.mem}")
        options.append(f"--time={self.time}")
        for name in ("partition", "account", "qos", "constraint"):
            if getattr(self, name) is not None:
                options.append(f"--{name}={getattr(self, name)}")
        options += [
            f"--chdir={slurm_dir}",
            f"--output={slurm_dir / folders.SLURM_LOG}",
            "--open-mode=append",  # a requeued job adds to its log instead of replacing it
            "--requeue",  # Slurm may requeue it (node failure, preemption), and so may the job itself
            "--dependency=singleton",  # one job of this sweep at a time: resubmitting twice never runs it twice
        ]
        if self.signal:
            options.append(f"--signal=B:{_SIGNAL}@{self.signal}")  # B: to the batch script only, not to Ray
        return [f"#SBATCH {option}" for option in options]


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def job_files(spec: SweepSpec) -> tuple[Path, Path, Path]:
    """The sweep folder, its launcher folder and the job script's path."""
    if is_uri(spec.storage):
        raise UserError(f"storage {spec.storage} is a URI: a Slurm job needs the sweep on a filesystem every node "
                        "mounts (--storage /shared/path); its script and logs live there")  # fmt: skip
    sweep = Path(sweep_path(spec))
    if not _WORD.fullmatch(str(sweep)):
        raise UserError(f"sweep folder {str(sweep)!r}: a Slurm job's folder must have no spaces, quotes or backslashes "
                        "in its path (sbatch reads #SBATCH lines word by word); pick another --storage")  # fmt: skip
    return sweep, sweep / folders.SLURM_DIR, sweep / folders.SLURM_DIR / folders.SLURM_SCRIPT


def _code_root() -> Path:
    """The folder holding this checkout's ``attnmel`` and ``orchestrator`` packages."""
    import orchestrator

    return Path(orchestrator.__file__).resolve().parents[1]


def job_script(spec: SweepSpec, job: SlurmJob) -> str:
    """The whole batch script for ``spec``: a function of its arguments and of the code root
    (and a time stamp in a comment)."""
    sweep, slurm_dir, script = job_files(spec)
    values = {
        "PYTHON": job.python,
        "SWEEP": str(sweep),
        "SPEC": str(slurm_dir / folders.SLURM_SPEC),
        "STARTED": str(sweep / folders.SWEEP_META),  # there once the sweep has started
        "SCRIPT": str(script),
        "JOIN_TIMEOUT": str(job.join_timeout),
        "EXIT_STOPPED": str(stop.EXIT_STOPPED),
        "STOP_SIGNAL": _SIGNAL,
    }
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    lines = [
        "#!/bin/bash",
        *job.directives(spec, slurm_dir),
        f"# Sweep {spec.name} ({spec.n_trials} trials) on {job.nodes} node(s), written by `attnmel sweep slurm` on {stamp}.",
        f"# Submit it again (sbatch {script}) to continue the sweep; regenerate it rather than edit it.",
        "",
        *(f"{name}={shlex.quote(value)}" for name, value in values.items()),
        f"export PYTHONPATH={shlex.quote(str(_code_root()))}${{PYTHONPATH:+:$PYTHONPATH}}  # the code that wrote this script",
        _BODY,
    ]
    return "\n".join(lines)


# The script's body: plain bash reading the variables above. No `set -e`: whatever fails, Ray
# is stopped and the sweep's exit code returned.
_BODY = r"""export PYTHONUNBUFFERED=1
set -uo pipefail
say() { echo "attnmel-slurm $(date +%T): $*"; }

# Slurm's pre-limit signal (sbatch --signal=B:...) reaches this shell only: pass it on to the
# driver, whose Tune stops the trials at their last checkpoints and saves its state.
stopping=0 driver=
on_stop() {
    stopping=1
    say "pre-limit signal: asking the sweep to stop"
    if [ -n "$driver" ]; then kill -s "$STOP_SIGNAL" "$driver" 2>/dev/null; fi
}
trap on_stop "$STOP_SIGNAL"

attempt=${SLURM_RESTART_COUNT:-0}
say "job $SLURM_JOB_ID, start $((attempt + 1)), $SLURM_JOB_NUM_NODES node(s): $SLURM_JOB_NODELIST"
mapfile -t nodes < <(scontrol show hostnames "$SLURM_JOB_NODELIST")
head_ip=${ATTNMEL_HEAD_IP:-$(hostname --ip-address | awk '{print $1}')}  # this script runs on nodes[0]

# This job's Ray is its own: a token only it knows, temporary folders named after it, and a
# block of 100 ports from its job id, moved on while the block's first port is taken here.
export RAY_AUTH_MODE=token
RAY_AUTH_TOKEN=$("$PYTHON" -c 'import secrets; print(secrets.token_hex(16))') || exit 1
export RAY_AUTH_TOKEN
listening() { (exec 3<>"/dev/tcp/$head_ip/$1") 2>/dev/null; }
slot=$((SLURM_JOB_ID % 220))
for _ in $(seq 220); do
    base=$((10000 + 100 * slot))  # 10000-31999: below Linux's ephemeral ports
    listening "$base" || break
    slot=$(((slot + 1) % 220))
done
gpus=${SLURM_GPUS_PER_NODE:-0}
ray_start=("$PYTHON" -m ray.scripts.scripts start --block --disable-usage-stats
    --temp-dir="/tmp/ray-$SLURM_JOB_ID-$attempt"
    --num-cpus="$SLURM_CPUS_PER_TASK" --num-gpus="${gpus##*:}"
    --node-manager-port=$((base + 1)) --object-manager-port=$((base + 2))
    --dashboard-agent-grpc-port=$((base + 3)) --dashboard-agent-listen-port=$((base + 4))
    --metrics-export-port=$((base + 5)) --runtime-env-agent-port=$((base + 6))
    --min-worker-port=$((base + 10)) --max-worker-port=$((base + 99)))
step=(srun --nodes=1 --ntasks=1 --cpus-per-task="$SLURM_CPUS_PER_TASK")
ray_steps=()
stop_ray() {  # srun passes SIGTERM on to `ray start --block`, which stops its node's Ray
    kill -s TERM "${ray_steps[@]}" 2>/dev/null
    for _ in $(seq 60); do
        alive=0
        for pid in "${ray_steps[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ "$alive" = 0 ] && break
        sleep 1
    done
    kill -s KILL "${ray_steps[@]}" 2>/dev/null
    wait "${ray_steps[@]}" 2>/dev/null
}

address="$head_ip:$base"
say "Ray head on ${nodes[0]} at $address, temporary folders /tmp/ray-$SLURM_JOB_ID-$attempt"
"${step[@]}" -w "${nodes[0]}" "${ray_start[@]}" --head --node-ip-address="$head_ip" --port="$base" \
    --ray-client-server-port=$((base + 7)) --include-dashboard=false &
ray_steps+=($!)
deadline=$((SECONDS + JOIN_TIMEOUT))
until listening "$base"; do
    if ! kill -0 "${ray_steps[0]}" 2>/dev/null || ((SECONDS >= deadline)); then
        say "error: the Ray head did not start on ${nodes[0]} within $JOIN_TIMEOUT s; its output is above"
        stop_ray
        exit 1
    fi
    sleep 1
done
for node in "${nodes[@]:1}"; do
    "${step[@]}" -w "$node" "${ray_start[@]}" --address="$address" &
    ray_steps+=($!)
done

if [ "$stopping" = 1 ]; then
    rc=$EXIT_STOPPED
else
    if [ -f "$STARTED" ]; then
        command=(sweep resume "$SWEEP")  # started before: continue it
    else
        command=(sweep run "$SPEC")
    fi
    say "attnmel ${command[*]}"
    "$PYTHON" -m orchestrator.cli "${command[@]}" --address "$address" \
        --wait-nodes "$SLURM_JOB_NUM_NODES" --wait-timeout "$JOIN_TIMEOUT" &
    driver=$!
    while kill -0 "$driver" 2>/dev/null; do wait "$driver"; done  # a trapped signal interrupts `wait`
    wait "$driver"
    rc=$?
fi
stop_ray
# Stopped: the driver says so, or the signal reached it before it listened (it had begun nothing).
if [ "$stopping" = 1 ] && { [ "$rc" = "$EXIT_STOPPED" ] || [ "$rc" = $((128 + $(kill -l "$STOP_SIGNAL"))) ]; }; then
    say "the sweep stopped before its end; requeueing job $SLURM_JOB_ID, which resumes it when it starts again"
    scontrol requeue "$SLURM_JOB_ID" || say "error: the requeue failed; continue the sweep with: sbatch $SCRIPT"
fi
say "exit code $rc"
exit "$rc"
"""


def _same_sweep(spec: SweepSpec, sweep: Path) -> None:
    """A sweep folder that exists must hold this very sweep (its job continues it) or nothing yet."""
    if not sweep.is_dir() or not [p for p in sweep.iterdir() if p.name != folders.SLURM_DIR]:
        return
    meta = sweep / folders.SWEEP_META
    if not meta.is_file():
        raise UserError(f"{sweep} exists and holds no sweep ({folders.SWEEP_META} is missing); pick a new name "
                        "with --set name=... or remove the folder")  # fmt: skip
    try:
        stored = spec_from_dict(read_json(str(meta))["spec"])
    except (UserError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{meta} is damaged ({type(exc).__name__}: {exc})") from None
    if stored != spec:
        raise UserError(f"{sweep} holds sweep {stored.name} of another spec; its job continues it as it is "
                        f"(sbatch {sweep / folders.SLURM_DIR / folders.SLURM_SCRIPT}), or pick a new name with --set name=...")  # fmt: skip


def write_job(spec: SweepSpec, job: SlurmJob) -> tuple[Path, list[Path]]:
    """Write the resolved spec and the job script into ``<sweep>/slurm/``; returns the script's
    path and the folders and files this call created (what to remove when submission fails)."""
    sweep, slurm_dir, script = job_files(spec)
    _same_sweep(spec, sweep)
    # what this call creates: the folders from the first missing one down (storage root too), the files
    created = [p for p in (*reversed(slurm_dir.parents), slurm_dir, slurm_dir / folders.SLURM_SPEC, script) if not p.exists()]
    slurm_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(slurm_dir / folders.SLURM_SPEC, dump_yaml(spec))
    atomic_write(script, job_script(spec, job))
    return script, created


def check_sbatch() -> str:
    """The ``sbatch`` this machine would run; a ``UserError`` when there is none."""
    found = shutil.which("sbatch")
    if found is None:
        raise UserError("sbatch is not on PATH: run `attnmel sweep slurm --submit` on a Slurm login node, or "
                        "write the script here without --submit and run `sbatch` on it there")  # fmt: skip
    return found


def submit_job(script: Path, created: list[Path] = ()) -> str:
    """``sbatch`` the script and return the job id; when sbatch refuses, its reason is one
    ``UserError`` line and what :func:`write_job` created is removed again."""
    try:
        done = subprocess.run([check_sbatch(), "--parsable", str(script)], capture_output=True, text=True, timeout=120)
        reason = None
        if done.returncode != 0:
            lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
            reason = lines[-1].removeprefix("sbatch: error: ") if lines else f"exit code {done.returncode}"
    except (OSError, subprocess.TimeoutExpired) as exc:
        reason = str(exc)
    if reason is not None:
        for path in sorted(created, key=lambda p: len(p.parts), reverse=True):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        raise UserError(f"sbatch refused the job: {reason}")
    return done.stdout.strip().split(";")[0]  # --parsable: "<job id>[;<cluster>]"
