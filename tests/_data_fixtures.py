"""Fixtures and helpers the data tests and the ``attnmel data`` command tests share: small
synthetic datasets in the official layouts, the real ISIC 2017 copy, and a real HTTP server on
127.0.0.1 serving synthetic archives under their official names. Loaded for the whole suite by
``pytest_plugins`` in tests/conftest.py."""

from __future__ import annotations

import http.server
import shutil
import threading
import zipfile
from pathlib import Path

import pytest

from attnmel.data.datasets import DATASETS
from attnmel.data.download import archives
from attnmel.data.synth import write_synthetic

REPO = Path(__file__).resolve().parents[1]
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


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves files from ``server.files``; honours Range; can cut the first response short."""

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):
        srv = self.server
        srv.requests.append((self.path, self.headers.get("Range")))
        data = srv.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        start, status = 0, 200
        rng = self.headers.get("Range")
        if rng and srv.honour_range:
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        body = data[start:]
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        if self.path in srv.cut_once:  # simulate a dropped connection: promise everything, send a third
            srv.cut_once.discard(self.path)
            self.wfile.write(body[: len(body) // 3])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture
def server():
    """A threaded HTTP server on 127.0.0.1 (``.url``): put bytes in ``.files`` by path (see
    ``publish``); ``.requests`` lists what was asked; ``.cut_once`` and ``.honour_range``
    steer it."""
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.files, srv.requests, srv.cut_once, srv.honour_range = {}, [], set(), True
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    yield srv
    srv.shutdown()
    srv.server_close()


def _zip_folder(folder: Path, flat: bool = False) -> bytes:
    out = folder.parent / (folder.name + ".ziptmp")
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("__MACOSX/._junk", b"resource fork")  # present in many real archives
        for p in sorted(folder.rglob("*")):
            zf.write(p, p.relative_to(folder) if flat else p.relative_to(folder.parent))
    data = out.read_bytes()
    out.unlink()
    return data


def publish(server, dataset: str, source: Path, flat: set[str] = frozenset()) -> None:
    """Put the official archives of a synthetic dataset on the server."""
    for a in archives(dataset):
        data = (source / a.name).read_bytes() if a.folder is None else _zip_folder(source / a.folder, a.name in flat)
        server.files[f"/{a.year}/{a.name}"] = data


@pytest.fixture(scope="module")
def copies(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """Per declared dataset: a full synthetic copy, and one of only what its test split needs."""
    base = tmp_path_factory.mktemp("split_only")
    out = {}
    for name in DATASETS:
        full, alone = base / f"{name}-full", base / f"{name}-test"
        write_synthetic(name, full, size=32, seed=7)
        write_synthetic(name, alone, size=32, seed=7, splits=["test"])
        out[name] = full, alone
    return out
