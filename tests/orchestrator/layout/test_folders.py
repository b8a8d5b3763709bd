"""orchestrator.layout.folders: trial folders are named by their trial id, and found by it."""

from __future__ import annotations

import pytest

from attnmel.errors import UserError
from orchestrator.layout import folders


@pytest.mark.parametrize("trial_id", ["ab12c_00003", "3fa4b1c2"])
def test_a_trial_folder_name_gives_back_its_id(trial_id):
    name = folders.trial_dirname(trial_id, "attnmel+lesion seed 0 lambda1=0.001")
    assert name.startswith(trial_id) and " " not in name and "+" not in name and "=" not in name
    assert folders.trial_id_of(name) == trial_id
    assert folders.trial_id_of(f"train_trial_{name}") == trial_id  # the naming of older Tune versions
    assert len(folders.trial_dirname(trial_id, "x" * 500)) <= 120


def test_find_trial_searches_every_sweep_and_refuses_ambiguity(tmp_path):
    for sweep, trial in (("a", "ab12c_00000"), ("a", "ab12c_00001"), ("b", "ab12c_00001")):
        folder = tmp_path / sweep / folders.trial_dirname(trial, "attnmel seed 0")
        folder.mkdir(parents=True)
        (folder / folders.PARAMS).write_text("{}")
    assert folders.find_trial(tmp_path, "ab12c_00000").parent.name == "a"
    with pytest.raises(UserError, match="matches 2 trials"):
        folders.find_trial(tmp_path, "ab12c_00001")
    with pytest.raises(UserError, match="ab12c_00009"):
        folders.find_trial(tmp_path, "ab12c_00009")
    with pytest.raises(UserError, match="does not exist"):
        folders.find_trial(tmp_path / "missing", "ab12c_00000")
