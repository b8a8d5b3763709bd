"""The sweep's page while it runs: refreshed after each finished trial by a Tune callback that
survives a driver kill and a resume, and a page that cannot be written never fails the sweep."""

from __future__ import annotations

import pickle
import re

import pytest

from _results_fixtures import scored_sweep
from _sweep_helpers import WatchedDriver, run_attnmel
from orchestrator.cli.reporting import write_sweep_page
from orchestrator.layout.folders import PAGE
from orchestrator.sweep.page_refresh import PageRefresh, refresh_page


def test_a_page_that_cannot_be_written_is_one_printed_line(tmp_path, capsys):
    sweep_dir, _ = scored_sweep(tmp_path, "blocked", seeds=1)
    (sweep_dir / PAGE).mkdir()  # a folder where the page should go: the rename fails
    assert refresh_page(sweep_dir, write_sweep_page, live=True) is None
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and out[0].startswith(f"page {sweep_dir / PAGE}: not written (")
    assert sorted(p.name for p in sweep_dir.glob(".*tmp*")) == []  # nothing half-written left


def test_the_callback_pickles_without_its_thread():
    """Tune pickles its callbacks into the experiment state; a resumed sweep unpickles them."""
    local = PageRefresh("/data/results/x", write_sweep_page)
    remote = PageRefresh("s3://bucket/results/x", write_sweep_page)
    for callback, enabled in ((local, True), (remote, False)):
        copy = pickle.loads(pickle.dumps(callback))
        assert copy.enabled is enabled and copy._thread is None and not copy._wanted.is_set()
        assert copy.write is write_sweep_page


@pytest.mark.ray
@pytest.mark.slow
def test_page_refreshed_while_running_survives_a_kill_and_ends_with_the_resume(tmp_path, make_spec, cli_env):
    # One at a time, the second trial six times longer than the first: the page written after
    # the first one ends has the whole second trial to appear in.
    spec = make_spec(name="watched", grid={"variants": ["attnmel"], "seeds": [0], "optim.epochs": [2, 12]},
                     max_concurrent=1)  # fmt: skip
    sweep_dir = tmp_path / "results" / "watched"
    page = sweep_dir / PAGE

    def one_trial_done(line: str | None) -> bool:
        return line is None and page.exists() and "Sweep running: 1 of 2 trials done" in page.read_text()

    driver = WatchedDriver(["sweep", "run", str(spec), "--num-cpus", "2"], cli_env, tmp_path / "driver.log",
                           kill_when=one_trial_done, poll=0.25)  # fmt: skip
    assert driver.wait(timeout=600) is None, driver.output[-3000:]  # killed with the page showing one trial
    text = page.read_text()
    assert '<meta http-equiv="refresh"' in text and "1 TERMINATED" in text  # still reloading: nothing ended it

    proc = run_attnmel(["sweep", "resume", str(sweep_dir), "--num-cpus", "2"], cli_env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"page: {page}" in proc.stdout
    text = page.read_text()
    assert "Sweep ended: 2 of 2 trials done (2 TERMINATED)" in text and 'http-equiv="refresh"' not in text
    # the last page draws Fig. 3 from the trials' own checkpoints and the dataset's images
    fig3 = text[text.index('id="fig3"'):text.index('id="trials"')]
    assert '<img src="data:image/png;base64,' in fig3 and 'alt="Grid of ' in fig3, re.sub(r"base64,[^\"]*", "", fig3)
