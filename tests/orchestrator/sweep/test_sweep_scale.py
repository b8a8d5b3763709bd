"""What a sweep leaves behind as it grows: Tune checkpoints only every ``runtime.checkpoint_every``
epochs, and a finished trial's storage no larger than its model's weights once (issue #12).
The timing side (overhead, per-trial start-up, 100+ trials) is ``benchmarks/sweep_costs.py``."""

from __future__ import annotations

import json

import pytest
import torch

from attnmel.models import create_model

from _sweep_helpers import run_attnmel

pytestmark = [pytest.mark.ray, pytest.mark.slow]

SMALL_FILES = 1_000_000  # config, data info, epochs, predictions, attention, Tune's result files


def test_checkpoint_interval_and_storage_per_finished_trial(tmp_path, make_spec, cli_env):
    spec_file = make_spec(
        name="scale",
        grid={"variants": ["vgg16_gap"], "seeds": [0, 1]},
        train={"optim": {"epochs": 4}, "runtime": {"checkpoint_every": 2}},
        max_concurrent=2,
    )
    proc = run_attnmel(["sweep", "run", str(spec_file), "--num-cpus", "2"], cli_env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    weights = sum(t.numel() * t.element_size() for t in create_model("vgg16_gap", weights="none").state_dict().values())
    trial_dirs = [p.parent for p in (tmp_path / "results" / "scale").glob("*/result.json")]
    assert len(trial_dirs) == 2
    for trial_dir in trial_dirs:
        rows = [json.loads(line) for line in (trial_dir / "result.json").read_text().splitlines()]
        assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
        # epoch 2's state (every 2) is written while epoch 3 trains and goes to Tune with epoch
        # 3's result; epoch 4 ends the run
        assert [r["checkpoint_dir_name"] for r in rows] == [None, None, "checkpoint_000000", "checkpoint_000001"]
        assert sorted(p.name for p in trial_dir.glob("checkpoint_*")) == ["checkpoint_000001"]
        kept = sum(p.stat().st_size for p in trial_dir.rglob("*") if p.is_file())
        assert weights < kept <= weights + SMALL_FILES, (kept, weights)
        state = torch.load(trial_dir / "checkpoint_000001" / "best.pt", map_location="cpu", weights_only=True)
        assert state["kind"] == "model" and "optimizer" not in state
