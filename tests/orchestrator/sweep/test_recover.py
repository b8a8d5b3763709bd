"""orchestrator.sweep.recover: which saved state a resume may hand to Tune, and the trial list
rebuilt from a sweep's own folders. Folders as Tune and `fit` leave them, written by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from attnmel import checkpoint as ckpt
from attnmel.errors import UserError
from orchestrator.layout import folders
from orchestrator.sweep import recover
from orchestrator.layout.params import tune_params
from orchestrator.sweep.spec import load_spec
from orchestrator.sweep.trainable import point_key

OLD, NEW = "2026-01-01_00-00-00", "2026-01-02_00-00-00"


@pytest.fixture
def spec(make_spec):
    return load_spec(make_spec(name="rec", grid={"variants": ["vgg16_gap", "attnmel"], "seeds": [0]}))


def _trial_dir(sweep: Path, spec, index: int) -> Path:
    point = spec.points[index]
    trial_dir = sweep / folders.trial_dirname(f"abcde_{index:05d}", folders.point_label(point))
    trial_dir.mkdir(parents=True)
    (trial_dir / folders.PARAMS).write_text(json.dumps(tune_params(spec.train, point)))
    return trial_dir


def _state(sweep: Path, session: str, trials: dict[Path, tuple[str, dict]]) -> Path:
    """An experiment state in Tune's shape (trial entries are JSON strings), with its session's
    searcher file beside it."""
    data = [[json.dumps({"trial_id": d.name[:11], "status": status, "relative_logdir": d.name, "config": config}), "{}"]
            for d, (status, config) in trials.items()]  # fmt: skip
    path = sweep / f"experiment_state-{session}.json"
    path.write_text(json.dumps({"trial_data": data, "runner_data": {}}))
    (sweep / f"basic-variant-state-{session}.json").write_text("{}")
    return path


def _sweep(tmp_path: Path, spec) -> tuple[Path, list[Path]]:
    sweep = tmp_path / "rec"
    sweep.mkdir()
    (sweep / "sweep.json").write_text(json.dumps({"name": "rec"}))
    (sweep / "tuner.pkl").write_bytes(b"\x80\x05.")
    dirs = [_trial_dir(sweep, spec, i) for i in range(len(spec.points))]
    return sweep, dirs


def _params(spec, i):
    return tune_params(spec.train, spec.points[i])


def test_an_intact_newest_state_is_used_as_it_is(tmp_path, spec):
    sweep, dirs = _sweep(tmp_path, spec)
    newest = _state(sweep, NEW, {d: ("RUNNING", _params(spec, i)) for i, d in enumerate(dirs)})
    assert recover.choose_state(sweep) == newest
    assert [t.status for t in recover.read_state(newest)] == ["RUNNING", "RUNNING"]


@pytest.mark.parametrize("keep", [0.0, 0.001, 0.25, 0.5, 0.999])
def test_a_cut_state_without_an_earlier_one_refuses_with_one_line(tmp_path, spec, keep):
    sweep, dirs = _sweep(tmp_path, spec)
    state = _state(sweep, NEW, {d: ("RUNNING", _params(spec, i)) for i, d in enumerate(dirs)})
    data = state.read_bytes()
    state.write_bytes(data[: min(int(len(data) * keep), len(data) - 1)])
    before = sorted(p.name for p in sweep.iterdir())
    with pytest.raises(UserError) as refused:
        recover.choose_state(sweep)
    line = str(refused.value)
    assert "\n" not in line and state.name in line and "nothing was run" in line
    assert "--from-trials" in line and "--restart-errored" in line
    assert sorted(p.name for p in sweep.iterdir()) == before  # refusing touches nothing


def test_a_state_naming_a_trial_of_empty_config_is_refused(tmp_path, spec):
    """What Tune's own restart after a failed restore leaves: a trial whose params are {}."""
    sweep, dirs = _sweep(tmp_path, spec)
    _state(sweep, NEW, {dirs[0]: ("RUNNING", _params(spec, 0)), dirs[1]: ("PENDING", {})})
    with pytest.raises(UserError, match=r"config does not validate .*nothing was run"):
        recover.choose_state(sweep)


def test_the_newest_earlier_state_that_knows_every_trial_stands_in(tmp_path, spec, capsys):
    sweep, dirs = _sweep(tmp_path, spec)
    older = _state(sweep, OLD, {d: ("PENDING", _params(spec, i)) for i, d in enumerate(dirs)})
    newest = _state(sweep, NEW, {d: ("RUNNING", _params(spec, i)) for i, d in enumerate(dirs)})
    newest.write_bytes(newest.read_bytes()[:200])
    assert recover.choose_state(sweep) == older
    warning = capsys.readouterr().out
    assert f"{newest.name} is not JSON" in warning and f"resuming from the earlier {older.name}" in warning
    # the damaged session is out of Tune's sight (its state and its searcher file), kept aside
    left = sorted(p.name for p in sweep.iterdir() if p.name.endswith(".json") and p.name != "sweep.json")
    assert left == [f"basic-variant-state-{OLD}.json", older.name]
    aside = next(sweep.glob(f"{folders.SUPERSEDED_PREFIX}*"))
    assert sorted(p.name for p in aside.iterdir()) == [f"basic-variant-state-{NEW}.json", newest.name]


def test_an_earlier_state_that_misses_a_trial_folder_cannot_stand_in(tmp_path, spec):
    """Tune would create that trial a second time."""
    sweep, dirs = _sweep(tmp_path, spec)
    _state(sweep, OLD, {dirs[0]: ("PENDING", _params(spec, 0))})
    _state(sweep, NEW, {d: ("RUNNING", _params(spec, i)) for i, d in enumerate(dirs)}).write_text("")
    with pytest.raises(UserError, match=rf"is empty, and no earlier state can stand in \(does not know trial folder "
                                        rf"{dirs[1].name}\)"):  # fmt: skip
        recover.choose_state(sweep)


def test_an_empty_tuner_file_is_refused(tmp_path, spec):
    sweep, dirs = _sweep(tmp_path, spec)
    _state(sweep, NEW, {d: ("RUNNING", _params(spec, i)) for i, d in enumerate(dirs)})
    (sweep / "tuner.pkl").write_bytes(b"")
    with pytest.raises(UserError, match="tuner.pkl is empty"):
        recover.choose_state(sweep)


def _resumable(folder: Path, epoch: int) -> Path:
    folder.mkdir()
    ckpt.save_checkpoint({"kind": "resume", "model": {"w": torch.zeros(8)}, "epoch": epoch}, folder / ckpt.LAST)
    ckpt.save_checkpoint({"kind": "model", "model": {"w": torch.zeros(8)}, "epoch": epoch}, folder / ckpt.BEST)
    return folder


def _finished(folder: Path) -> Path:
    folder.mkdir()
    ckpt.save_checkpoint({"kind": "model", "model": {"w": torch.zeros(8)}, "epoch": 2}, folder / ckpt.BEST)
    ckpt.write_predictions(folder, [("test", "ISIC_1", 1, 0.5)])
    ckpt.write_final(folder, {"best_epoch": 2})
    return folder


def test_from_trials_keeps_finished_trials_and_reruns_the_rest_from_their_last_intact_checkpoint(tmp_path, spec):
    sweep, (done, unfinished) = _sweep(tmp_path, spec)
    _finished(done / "checkpoint_000001")
    intact = _resumable(unfinished / "checkpoint_000000", 1)
    cut = _resumable(unfinished / "checkpoint_000001", 2)  # its copy was cut by the full disk
    (cut / ckpt.LAST).write_bytes((cut / ckpt.LAST).read_bytes()[:300])
    stray = sweep / "fffff_00000___seed_0"  # Tune's restart with an empty config
    stray.mkdir()
    (stray / folders.PARAMS).write_text("{}")
    (unfinished / folders.PARAMS).write_text("")  # cut too: the folder name says which point it ran
    state = _state(sweep, NEW, {done: ("TERMINATED", _params(spec, 0))})
    state.write_text("{")

    plan = recover.plan_rebuild(spec, sweep)
    assert plan.kept == [done.name] and plan.rerun == [spec.points[1]]
    assert plan.resume_from == {point_key(spec.points[1]): intact}
    moved = recover.apply_rebuild(plan, sweep)
    assert sorted(p.name for p in sweep.iterdir() if not p.name.startswith(".")) == [done.name, "sweep.json"]
    assert (sweep / moved[point_key(spec.points[1])] / ckpt.LAST).is_file()
    assert recover.finished_points(spec, sweep) == {point_key(spec.points[0])}
    assert recover.plan_rebuild(spec, sweep, restart=True).resume_from == {}


def test_a_finished_trial_whose_final_checkpoint_is_cut_is_named(tmp_path, spec):
    sweep, (done, other) = _sweep(tmp_path, spec)
    final = _finished(done / "checkpoint_000001")
    (final / ckpt.BEST).write_bytes((final / ckpt.BEST).read_bytes()[:100])
    state = _state(sweep, NEW, {done: ("TERMINATED", _params(spec, 0)), other: ("RUNNING", _params(spec, 1))})
    (line,) = recover.damaged_finished(sweep, state)
    assert line.startswith(f"{done.name}: finished, but checkpoint_000001/best.pt is 100 bytes") and "--from-trials" in line
    assert recover.finished_points(spec, sweep) == set()
