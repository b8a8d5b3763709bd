"""download: against a real HTTP server on 127.0.0.1 serving synthetic archives in the official names."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest

from attnmel.data.download import archives, download_dataset, download_file, safe_extract
from attnmel.data.layout import check_layout
from attnmel.errors import UserError
from tests._data_fixtures import publish


@pytest.mark.parametrize("dataset", ["isic2017", "isic2016"])
def test_download_unpacks_into_the_official_layout(server, tmp_path, request, dataset):
    source = request.getfixturevalue(f"synth{dataset[-4:]}_ro")
    flat = {a.name for a in archives(dataset) if a.part == "lesion"}  # a zip without its top folder
    publish(server, dataset, source, flat)
    root = tmp_path / "data"
    handled = download_dataset(dataset, root, base_url=server.url)
    assert sorted(handled) == sorted(a.name for a in archives(dataset))
    expected, _ = check_layout(dataset, source)
    report, problems = check_layout(dataset, root)
    assert problems == [] and report == expected
    assert not (root / "__MACOSX").exists()
    n_requests = len(server.requests)
    download_dataset(dataset, root, base_url=server.url)  # a rerun: everything is done already
    assert len(server.requests) == n_requests


def test_parts_select_archives(server, synth2017_ro, tmp_path):
    publish(server, "isic2017", synth2017_ro)
    download_dataset("isic2017", tmp_path, parts=["labels"], base_url=server.url)
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == sorted(
        a.name for a in archives("isic2017") if a.part == "labels"
    )
    with pytest.raises(UserError, match="dermo"):
        archives("isic2016", ["dermo"])


def test_interrupted_download_resumes_with_a_range_request(server, tmp_path):
    payload = os.urandom(300_000)
    server.files["/f.bin"] = payload
    server.cut_once.add("/f.bin")
    dest = tmp_path / "f.bin"
    with pytest.raises(UserError, match="resume"):
        download_file(f"{server.url}/f.bin", dest)
    part = tmp_path / "f.bin.part"
    have = part.stat().st_size
    assert 0 < have < len(payload) and not dest.exists()
    download_file(f"{server.url}/f.bin", dest)
    assert server.requests[-1] == ("/f.bin", f"bytes={have}-")
    assert dest.read_bytes() == payload and not part.exists()


def test_server_ignoring_range_restarts_cleanly(server, tmp_path):
    payload = os.urandom(50_000)
    server.files["/f.bin"] = payload
    server.honour_range = False
    (tmp_path / "f.bin.part").write_bytes(b"stale bytes from some other file")
    download_file(f"{server.url}/f.bin", tmp_path / "f.bin")
    assert (tmp_path / "f.bin").read_bytes() == payload


def test_partial_file_already_complete(server, tmp_path):
    payload = os.urandom(1000)
    server.files["/f.bin"] = payload
    (tmp_path / "f.bin.part").write_bytes(payload)  # the previous run died just before the rename
    download_file(f"{server.url}/f.bin", tmp_path / "f.bin")
    assert (tmp_path / "f.bin").read_bytes() == payload


def test_size_differing_from_the_known_size_is_refused(server, synth2016_ro, tmp_path):
    publish(server, "isic2016", synth2016_ro)
    name = "ISBI2016_ISIC_Part3_Training_Data.zip"
    sizes = {name: len(server.files[f"/2016/{name}"]) + 1}
    with pytest.raises(UserError, match=f"expected {sizes[name]}"):
        download_dataset("isic2016", tmp_path, parts=["images"], base_url=server.url, known_sizes=sizes)
    assert not (tmp_path / "ISBI2016_ISIC_Part3_Training_Data").exists()


def test_http_error_is_one_line(server, tmp_path):
    with pytest.raises(UserError, match="HTTP 404"):
        download_file(f"{server.url}/missing.zip", tmp_path / "missing.zip")


@pytest.mark.parametrize(
    "evil",
    ["../evil.txt", "ISIC-2017_Training_Data/../../evil.txt", "/tmp/attnmel-evil.txt", "symlink"],
)
def test_zip_slip_is_refused_before_extracting_anything(tmp_path, evil):
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ISIC-2017_Training_Data/ISIC_0000000.jpg", b"fine")
        if evil == "symlink":
            info = zipfile.ZipInfo("ISIC-2017_Training_Data/link")
            info.external_attr = (0o120777 << 16)  # S_IFLNK
            zf.writestr(info, "/etc/passwd")
        else:
            zf.writestr(evil, b"gotcha")
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(UserError, match="refusing member"):
        safe_extract(archive, root, "ISIC-2017_Training_Data")
    assert list(root.iterdir()) == []  # not even the harmless member
    assert not (tmp_path / "evil.txt").exists() and not Path("/tmp/attnmel-evil.txt").exists()


@pytest.mark.parametrize("dataset", ["isic2018", "isic2019", "isic2020"])
def test_the_newer_collections_download_into_their_official_layout(server, tmp_path, dataset):
    from attnmel.data.synth import write_synthetic

    source = tmp_path / "source"
    write_synthetic(dataset, source, size=24, seed=4)
    publish(server, dataset, source)
    root = tmp_path / "data"
    said: list[str] = []
    handled = download_dataset(dataset, root, base_url=server.url, progress=said.append)
    assert sorted(handled) == sorted(a.name for a in archives(dataset))
    assert {p for p, _ in server.requests} == {f"/{a.year}/{a.name}" for a in archives(dataset)}
    expected, _ = check_layout(dataset, source)
    report, problems = check_layout(dataset, root)
    assert problems == [] and report == expected
    big = [a for a in archives(dataset) if a.about]
    assert all(any(a.name in line and a.about in line for line in said) for a in big)  # the size is announced


def test_a_folder_with_a_csv_has_nothing_to_download(tmp_path):
    with pytest.raises(UserError, match="no official archives"):
        archives("csv")


def test_every_archive_belongs_to_a_split_of_its_declaration():
    from attnmel.data.datasets import DECLARATIONS, SPLITS

    for name, decl in DECLARATIONS.items():
        assert decl.archives_of(SPLITS) == decl.archives, name
    assert [a.name for a in archives("isic2020", splits=["test"])] == [a.name for a in archives("isic2020")]


@pytest.mark.parametrize("dataset", ["isic2018", "isic2019"])
def test_a_test_split_downloads_alone(server, tmp_path, dataset):
    from attnmel.data.synth import write_synthetic

    source = tmp_path / "source"
    write_synthetic(dataset, source, size=24, seed=4)
    publish(server, dataset, source)
    root = tmp_path / "data"
    handled = download_dataset(dataset, root, splits=["test"], base_url=server.url)
    wanted = archives(dataset, splits=["test"])
    assert sorted(handled) == sorted(a.name for a in wanted) and len(wanted) < len(archives(dataset))
    assert {p for p, _ in server.requests} == {f"/{a.year}/{a.name}" for a in wanted}
    expected, _ = check_layout(dataset, source, splits=["test"])
    report, problems = check_layout(dataset, root, splits=["test"])
    assert problems == [] and report == expected
    assert check_layout(dataset, root)[1]  # the training files are not there
