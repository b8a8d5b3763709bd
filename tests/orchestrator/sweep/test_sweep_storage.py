"""A 2-trial sweep whose storage is a real small filesystem: full from the start, then grown;
read-only in the middle, then writable again. Each ends with one line per trial and one line
saying how to go on, leaves nothing that reads as finished, never runs a trial of an empty
config, and after `sweep resume` holds every trial once with the numbers of an uninterrupted run.

One embedded Ray serves the module; the commands run in this process through `attnmel`'s
own entry point, their output read from the file descriptors (Ray's worker lines included).
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.layout.params import trial_config
from orchestrator.results.build import build_tables
from orchestrator.sweep.spec import load_spec

from _sweep_helpers import check_tables

pytestmark = [pytest.mark.ray, pytest.mark.slow]

EPOCHS = 2
# epoch 1 writes its resumable state before its result: the first checkpoint Tune copies is
# a resumable one (last.pt and best.pt), the second the final one
TRAIN = {"optim": {"epochs": EPOCHS}, "runtime": {"background_checkpoint": False}}
GRID = {"variants": ["vgg16_gap", "attnmel+lesion"], "seeds": [0]}
NUMBERS = ["epoch", "lr", "train_loss", "val_auc", "val_ap", "test_auc", "test_ap"]


@pytest.fixture(scope="module")
def embedded_ray(sweep_cache):
    import ray

    os.environ["ATTNMEL_CACHE"] = str(sweep_cache)  # the workers inherit it
    os.environ.pop("RAY_ADDRESS", None)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=True)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def reference(embedded_ray, sweep_data, tmp_path_factory):
    """Each trial's epochs as `fit` gives them uninterrupted, keyed by (variant, roi)."""
    from _sweep_helpers import TINY_TRAIN
    import yaml

    from attnmel.train import fit

    spec_file = tmp_path_factory.mktemp("ref") / "ref.yaml"
    spec_file.write_text(yaml.safe_dump({
        "name": "ref", "dataset": {"name": "isic2017", "root": str(sweep_data)},
        "train": {**TINY_TRAIN, "optim": {**TINY_TRAIN["optim"], **TRAIN["optim"]},
                  "runtime": {**TINY_TRAIN["runtime"], **TRAIN["runtime"]}}, "grid": GRID,
    }))  # fmt: skip
    spec = load_spec(spec_file)
    out = {}
    for i, point in enumerate(spec.points):
        cfg = trial_config(spec.train, point)
        rows = list(fit(cfg, tmp_path_factory.mktemp(f"ref{i}") / "run"))
        out[(cfg.model.variant, cfg.data.roi)] = [{k: r[k] for k in NUMBERS} for r in rows]
    return out


def _same_as_uninterrupted(sweep_dir: Path, reference) -> None:
    trials, epochs = check_tables(sweep_dir, n_trials=2, epochs=EPOCHS)
    for trial in trials.itertuples():
        rows = epochs[epochs["trial_id"] == trial.trial_id].sort_values("epoch")
        got = [{k: (int(r[k]) if k == "epoch" else r[k]) for k in NUMBERS} for _, r in rows.iterrows()]
        assert got == reference[(trial.variant, trial.roi)], trial.trial_dir


def _no_trial_of_empty_config(sweep_dir: Path) -> None:
    params = [json.loads(p.read_text() or "null") for p in sweep_dir.glob("*/params.json")]
    assert len(params) == 2 and all(p and p.get("train") and p.get("point") for p in params), params


class _PeakUse:
    """The most a filesystem held while the block ran (sampled every 5 ms)."""

    def __init__(self, path: Path) -> None:
        self.path, self.peak, self._stop = path, 0, threading.Event()

    def _used(self) -> int:
        stat = os.statvfs(self.path)
        return (stat.f_blocks - stat.f_bfree) * stat.f_frsize

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._used())
            time.sleep(0.005)

    def __enter__(self) -> "_PeakUse":
        self.base = self._used()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def _attnmel(args: list[str], capfd, log: Path) -> tuple[int, str]:
    """Run ``attnmel ARGS`` here; its exit code and everything it wrote (also appended to ``log``)."""
    code = main(args)
    captured = capfd.readouterr()
    out = captured.out + captured.err
    with open(log, "a") as handle:
        handle.write(f"$ attnmel {' '.join(args)}\n{out}# exit {code}\n")
    return code, out


def test_a_full_storage_stops_the_sweep_and_resume_finishes_it_once_space_is_freed(
    embedded_ray, make_spec, small_fs, capfd, reference, tmp_path
):
    fs, log = small_fs(40), tmp_path / "driver.log"
    spec = make_spec(name="full", grid=GRID, train=TRAIN, storage=str(fs.path / "results"))
    sweep_dir = fs.path / "results" / "full"

    code, out = _attnmel(["sweep", "run", str(spec)], capfd, log)
    assert code == 2 and "need about" in out and "--force" in out and not sweep_dir.exists()

    code, out = _attnmel(["sweep", "run", str(spec), "--force"], capfd, log)
    assert code == 2 and "Traceback" not in out
    failed = [line for line in out.splitlines() if "] " in line and ": no space left on device writing" in line]
    assert 1 <= len(failed) <= 2, out[-3000:]
    last = out.strip().splitlines()[-1]
    assert last.startswith("attnmel: error: the sweep stopped: no space left on device writing")
    assert f"then `attnmel sweep resume {sweep_dir}`" in last
    assert "TERMINATED" not in set(build_tables(sweep_dir).trials["status"])  # nothing reads as finished

    fs.grow(1000)
    with _PeakUse(fs.path) as use:
        code, out = _attnmel(["sweep", "resume", str(sweep_dir)], capfd, log)
        if code == 2:  # Tune's copy of its state was cut by the full disk, and there is no earlier one
            assert out.strip().splitlines()[-1].startswith(f"attnmel: error: cannot resume {sweep_dir}: Tune's")
            assert "--from-trials" in out and "Traceback" not in out
            code, out = _attnmel(["sweep", "resume", str(sweep_dir), "--from-trials"], capfd, log)
    assert code == 0, out[-3000:]
    _no_trial_of_empty_config(sweep_dir)
    _same_as_uninterrupted(sweep_dir, reference)

    from orchestrator.sweep.storage import storage_need

    loaded = load_spec(spec)
    estimate = storage_need([trial_config(loaded.train, p) for p in loaded.points], 2)
    with open(log, "a") as handle:  # the numbers behind the estimate, for the record
        handle.write(f"# storage: estimated {estimate / 1e6:.1f} MB; the resume's peak {use.peak / 1e6:.1f} MB "
                     f"(from {use.base / 1e6:.1f} MB), {(fs_used := use._used()) / 1e6:.1f} MB at the end\n")
    print(f"storage: estimated {estimate / 1e6:.1f} MB, peak {use.peak / 1e6:.1f} MB, end {fs_used / 1e6:.1f} MB")  # report:
    assert use.peak - use.base <= estimate  # an upper bound, as preflight uses it


def _registered(sweep_dir: Path) -> str | None:
    """A trial folder whose result.json in storage names its first checkpoint: Tune has it."""
    for result in sweep_dir.glob("*/result.json"):
        for line in result.read_text().splitlines():
            try:
                if json.loads(line).get("checkpoint_dir_name") == "checkpoint_000000":
                    return result.parent.name
            except json.JSONDecodeError:
                pass
    return None


def _state_bytes(value: object) -> bytes:
    """Every string in an entry of Tune's saved state; Tune writes objects JSON cannot hold (a
    trial's checkpoint manager) as hex of their pickle, which names the checkpoint folders."""
    if isinstance(value, str):
        try:
            inner = json.loads(value)
        except ValueError:
            inner = None
        return _state_bytes(inner) if isinstance(inner, (dict, list)) else value.encode()
    if isinstance(value, dict):
        if value.get("_type") == "CLOUDPICKLE_FALLBACK":
            return bytes.fromhex(value["value"])
        return b"\n".join(_state_bytes(v) for v in value.values())
    if isinstance(value, list):
        return b"\n".join(_state_bytes(v) for v in value)
    return b""


def _saved_state_holds(sweep_dir: Path, trial_id: str, checkpoint: str) -> bool:
    """Whether Tune's newest saved experiment state gives trial ``trial_id`` its checkpoint
    folder ``checkpoint``: a resume then restores the trial from it."""
    newest = max(sweep_dir.glob("experiment_state-*.json"), key=lambda p: p.stat().st_mtime)
    for entry in json.loads(newest.read_text())["trial_data"]:
        state = json.loads(entry[0]) if isinstance(entry[0], str) else entry[0]
        if str(state.get("trial_id")) == trial_id:
            return checkpoint.encode() in _state_bytes(entry)
    return False


def test_a_storage_turned_read_only_mid_sweep_resumes_where_it_stopped(
    embedded_ray, make_spec, small_fs, capfd, reference, tmp_path, monkeypatch
):
    fs, log = small_fs(1000), tmp_path / "driver.log"
    spec = make_spec(name="ro", grid=GRID, train=TRAIN, storage=str(fs.path / "results"))
    sweep_dir = fs.path / "results" / "ro"
    # Tune copies result.json and its state into storage every 0.5 s (10 s by default), so the
    # moment a checkpoint is registered shows on disk at once
    monkeypatch.setenv("TUNE_GLOBAL_CHECKPOINT_S", "0.5")
    turned: list[str] = []

    def turn_read_only() -> None:  # once Tune has a trial's first (resumable) checkpoint
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not turned:
            name = _registered(sweep_dir) if sweep_dir.is_dir() else None
            if name is not None:
                fs.read_only()
                turned.append(name)
            time.sleep(0.01)

    watcher = threading.Thread(target=turn_read_only, daemon=True)
    watcher.start()
    code, out = _attnmel(["sweep", "run", str(spec)], capfd, log)
    watcher.join(5)
    assert turned and code == 2 and "Traceback" not in out
    # the first write to fail, a trial's copy or Tune's own state, stops the sweep
    last = out.strip().splitlines()[-1]
    assert last.startswith("attnmel: error: the sweep stopped: ") and "read-only file system" in last
    assert "make the storage writable" in last and f"then `attnmel sweep resume {sweep_dir}`" in last

    fs.writable()
    trial_id = turned[0][:11]
    # what the resume restores from: Tune's last state saved before the turn (none since)
    held = _saved_state_holds(sweep_dir, trial_id, "checkpoint_000000")
    code, out = _attnmel(["sweep", "resume", str(sweep_dir)], capfd, log)
    assert code == 0, out[-3000:]
    assert "resuming sweep ro" in out
    assert f"[{trial_id}] " in out
    retrained = [line for line in out.splitlines() if line.startswith(f"[{trial_id}]") and "epoch 1/" in line]
    _no_trial_of_empty_config(sweep_dir)
    _same_as_uninterrupted(sweep_dir, reference)  # the numbers match either way
    # The trial whose checkpoint Tune's saved state held goes on from it: its epoch 1 is not
    # trained again. Tune saves its state on its own clock, so the turn can come first (CI saw it).
    if not held:
        pytest.skip(f"Tune's last state before the turn did not yet hold trial {trial_id}'s checkpoint, "
                    "so the resume rightly trained its epoch 1 again")
    assert not retrained, retrained
