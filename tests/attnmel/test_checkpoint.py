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
