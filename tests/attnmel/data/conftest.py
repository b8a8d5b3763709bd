"""Fixtures for the data-layer tests: small synthetic datasets in the official layouts."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from attnmel.data.synth import write_synthetic

REPO = Path(__file__).resolve().parents[3]
REAL_ISIC2017 = REPO / ".." / "shared" / "isic2017"


@pytest.fixture(scope="session")
def synth2017_ro(tmp_path_factory) -> Path:
    """A synthetic ISIC 2017 dataset shared by the session: never modify it (use synth2017)."""
    root = tmp_path_factory.mktemp("isic2017")
    write_synthetic("isic2017", root, n_train=12, n_val=6, n_test=6, size=48, melanoma_fraction=0.35, seed=1)
    return root


@pytest.fixture(scope="session")
def synth2016_ro(tmp_path_factory) -> Path:
    """A synthetic ISIC 2016 dataset shared by the session: never modify it (use synth2016)."""
    root = tmp_path_factory.mktemp("isic2016")
    write_synthetic("isic2016", root, n_train=20, n_test=8, size=48, melanoma_fraction=0.3, seed=2)
    return root


@pytest.fixture
def synth2017(synth2017_ro, tmp_path) -> Path:
    """A private, modifiable copy of the synthetic ISIC 2017 dataset."""
    return Path(shutil.copytree(synth2017_ro, tmp_path / "isic2017"))


@pytest.fixture
def synth2016(synth2016_ro, tmp_path) -> Path:
    """A private, modifiable copy of the synthetic ISIC 2016 dataset."""
    return Path(shutil.copytree(synth2016_ro, tmp_path / "isic2016"))


@pytest.fixture
def real_isic2017() -> Path:
    """The real (downsized) ISIC 2017 copy beside the repository; skip when absent."""
    if not (REAL_ISIC2017 / "ISIC-2017_Training_Part3_GroundTruth.csv").is_file():
        pytest.skip(f"real ISIC 2017 data not found at {REAL_ISIC2017.resolve()}")
    return REAL_ISIC2017.resolve()


@pytest.fixture
def cli():
    """Run the real ``attnmel`` entry point in a subprocess: ``cli("data", "check", ...)``."""

    def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "orchestrator.cli", *map(str, args)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run
