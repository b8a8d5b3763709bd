"""Checkpoint writing helpers: host copies and the background writer."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from attnmel.checkpoint import FORMAT, BackgroundWriter, host_copy, load_checkpoint, save_checkpoint
from attnmel.errors import UserError


def test_host_copy_is_a_snapshot_that_later_in_place_changes_do_not_reach():
    weight = torch.zeros(3)
    state = {"model": {"w": weight}, "history": [{"epoch": 1}], "pair": (torch.ones(2), 5), "name": "x"}
    copy = host_copy(state)
    weight.add_(1.0)
    state["pair"][0].mul_(3.0)
    assert torch.equal(copy["model"]["w"], torch.zeros(3))
    assert torch.equal(copy["pair"][0], torch.ones(2)) and isinstance(copy["pair"], tuple)
    assert copy["history"] == [{"epoch": 1}] and copy["name"] == "x"
    assert copy["model"]["w"].data_ptr() != weight.data_ptr()


def test_host_copy_into_an_earlier_copy_reuses_its_buffers_where_shapes_match():
    state = {"w": torch.arange(4.0), "b": torch.ones(2), "history": [{"epoch": 1}]}
    first = host_copy(state)
    state["w"].add_(10.0)
    state["b"] = torch.ones(3)  # another shape: a fresh buffer
    second = host_copy(state, into=first)
    assert second["w"].data_ptr() == first["w"].data_ptr()  # the same memory, refilled
    assert torch.equal(second["w"], torch.arange(4.0) + 10.0)
    assert second["b"].shape == (3,) and second["b"].data_ptr() != state["b"].data_ptr()
    writer = BackgroundWriter()
    a = writer.host_state({"w": torch.zeros(5)})
    b = writer.host_state({"w": torch.full((5,), 2.0)})
    writer.close()
    assert a["w"].data_ptr() == b["w"].data_ptr() and torch.equal(b["w"], torch.full((5,), 2.0))


def test_background_writer_runs_writes_in_order_one_at_a_time_off_the_calling_thread():
    log: list[tuple[str, str]] = []
    running = threading.Lock()

    def write(name: str) -> None:
        assert running.acquire(blocking=False), "two writes at once"
        try:
            time.sleep(0.05)
            log.append((name, threading.current_thread().name))
        finally:
            running.release()

    writer = BackgroundWriter()
    assert writer.wait() is False  # nothing pending
    writer.submit(write, "first")
    writer.submit(write, "second")  # waits for the first
    assert writer.wait() is True
    writer.close()
    assert [name for name, _ in log] == ["first", "second"]
    assert all(thread != threading.current_thread().name for _, thread in log)


def test_background_writer_raises_a_failed_write_in_the_training_thread_and_close_waits():
    def fail() -> None:
        raise OSError("No space left on device")

    writer = BackgroundWriter()
    writer.submit(fail)
    with pytest.raises(OSError, match="No space left"):
        writer.wait()
    done = []
    writer.submit(lambda: (time.sleep(0.1), done.append(True)))
    writer.close()  # lets the pending write finish
    assert done == [True]


@pytest.mark.cuda
def test_host_copy_of_a_cuda_state_lands_in_page_locked_memory_and_is_reused():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    state = {"w": torch.randn(8, device="cuda")}
    first = host_copy(state)
    assert first["w"].device.type == "cpu" and first["w"].is_pinned()
    assert torch.equal(first["w"], state["w"].cpu())
    state["w"].mul_(2.0)
    second = host_copy(state, into=first)
    assert second["w"].data_ptr() == first["w"].data_ptr() and torch.equal(second["w"], state["w"].cpu())


def test_older_format_model_checkpoints_load_and_resumable_states_are_refused_with_one_line(tmp_path):
    """Format /2 (convolutions before batch norm with biases): its weights fold on load, but its
    optimiser state holds a momentum buffer per bias and cannot resume the folded model."""
    for kind in ("model", "resume"):
        torch.save({"format": "attnmel-checkpoint/2", "kind": kind, "model": {}}, tmp_path / f"{kind}.pt")
    assert load_checkpoint(tmp_path / "model.pt", kind="model")["kind"] == "model"
    with pytest.raises(UserError, match="older version .* cannot resume") as info:
        load_checkpoint(tmp_path / "resume.pt", kind="resume")
    assert "\n" not in str(info.value)
    save_checkpoint({"kind": "resume"}, tmp_path / "new.pt")
    assert load_checkpoint(tmp_path / "new.pt", kind="resume")["format"] == FORMAT
    torch.save({"format": "attnmel-checkpoint/1", "kind": "model"}, tmp_path / "ancient.pt")
    with pytest.raises(UserError, match="not an AttnMel checkpoint"):
        load_checkpoint(tmp_path / "ancient.pt")


# --------------------------------------------------------------------------- storage faults


def _state(n: int, value: float) -> dict:
    return {"kind": "resume", "model": {"w": torch.full((n,), float(value))}, "epoch": int(value)}


def test_a_directory_never_holds_more_than_two_states_of_a_checkpoint(small_fs):
    """The previous state is linked before the new one is written, so a disk with room for two
    states (and not three) takes every save; one that fails keeps the last state whole."""
    from attnmel.checkpoint import LAST, PREVIOUS, load_checkpoint, save_checkpoint
    from attnmel.errors import StorageError

    n = 250_000  # 1 MB of float32 per state
    fs = small_fs(2.6)
    for epoch in range(1, 5):
        save_checkpoint(_state(n, epoch), fs.path / LAST, keep_previous=True)
        assert load_checkpoint(fs.path / LAST)["epoch"] == epoch
        if epoch > 1:
            assert load_checkpoint(fs.path / PREVIOUS)["epoch"] == epoch - 1
    with pytest.raises(StorageError, match="no space left on device writing .*last.pt"):
        save_checkpoint(_state(3 * n, 5), fs.path / LAST, keep_previous=True)
    assert load_checkpoint(fs.path / LAST)["epoch"] == 4 == load_checkpoint(fs.path / PREVIOUS)["epoch"]
    assert not [p for p in fs.path.iterdir() if p.name.startswith(".")]


def _finished_folder(folder):
    """A finished run's final files as `fit` writes them, with final.json last."""
    import json

    from attnmel.checkpoint import ATTENTION, BEST, save_checkpoint, write_epochs, write_final
    from attnmel.checkpoint import write_predictions

    folder.mkdir()
    save_checkpoint({"kind": "model", "model": {"w": torch.arange(40.0)}, "epoch": 2}, folder / BEST)
    write_predictions(folder, [("val", "ISIC_0000001", 1, 0.25), ("test", "ISIC_0000002", 0, 1 / 3)])
    (folder / ATTENTION).write_text(json.dumps([{"map": "pool3", "split": "test", "jaccard_mean": 0.5}]))
    write_epochs(folder, [{"epoch": 1, "val_auc": 0.5}, {"epoch": 2, "val_auc": 0.75}])
    write_final(folder, {"best_epoch": 2})
    return folder


@pytest.mark.parametrize("name", ["final.json", "best.pt", "predictions.csv", "attention.json", "epochs.jsonl"])
def test_a_final_folder_cut_anywhere_names_the_file(tmp_path, name):
    """Property over every cut point: a copy of a finished run with one file cut short (as a
    full disk leaves Tune's copy) is never taken for a whole one, and the answer names the file."""
    from attnmel.checkpoint import final_problem

    whole = _finished_folder(tmp_path / "whole")
    assert final_problem(whole) is None
    data = (whole / name).read_bytes()
    cut = tmp_path / "cut"
    # every cut of the small files; of best.pt's container (~1.5 kB) every 7th and the whole tail
    points = range(len(data)) if len(data) < 400 else sorted({*range(0, len(data), 7), *range(len(data) - 64, len(data))})
    for at in points:
        if cut.exists():
            for p in cut.iterdir():
                p.unlink()
            cut.rmdir()
        cut.mkdir()
        for p in whole.iterdir():
            (cut / p.name).write_bytes(p.read_bytes()[:at] if p.name == name else p.read_bytes())
        problem = final_problem(cut)
        assert problem is not None and problem.startswith(name), (at, problem)


def test_checkpoint_sizes_follow_fits_rule_for_resumable_states():
    from dataclasses import replace

    from attnmel.checkpoint_sizes import checkpoint_sizes
    from attnmel.config import TrainConfig

    base = TrainConfig()

    def sizes(epochs, every=1, background=True, momentum=0.9):
        return checkpoint_sizes(replace(base, optim=replace(base.optim, epochs=epochs, momentum=momentum),
                                        runtime=replace(base.runtime, checkpoint_every=every,
                                                        background_checkpoint=background)))  # fmt: skip

    assert (sizes(2).written, sizes(2).reported) == (1, 0)  # epoch 1's state lands with the final result
    assert (sizes(2, background=False).written, sizes(2, background=False).reported) == (1, 1)
    assert (sizes(50, every=5).written, sizes(50, every=5).reported) == (9, 9)
    assert (sizes(51, every=5).written, sizes(51, every=5).reported) == (10, 9)
    with_momentum, without = sizes(2), sizes(2, momentum=0.0)
    assert with_momentum.model == without.model
    # SGD's momentum: one buffer per trained parameter, about the weights again
    assert 1.9 < with_momentum.resume / with_momentum.model < 2.1
    assert without.resume - without.model < 0.01 * without.model
