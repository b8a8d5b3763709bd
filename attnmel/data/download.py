"""Fetch the official ISIC challenge archives (each declaration lists its own) into the official layout.

* Resumable: bytes go to ``<root>/.downloads/<name>.part``; a rerun asks the server for the
  rest with an HTTP Range request and appends (a server that ignores Range sends the whole
  file again, which then replaces the partial one).
* Verified: the byte count must equal the server's Content-Length (or the total in
  Content-Range) and, where we know it, the archive's published size.
* Safe: every member of a zip is checked before anything is extracted; an absolute path,
  a ``..`` component or a symbolic link is refused (zip-slip). Members land in a temporary
  folder under ``root`` and are moved into place only when the whole archive extracted.
* Bare CSVs (ground truth of 2016/2017/2019/2020, metadata, groupings, duplicates) are placed
  as they are; zipped ground truth (2018) is unpacked like the images.

Archives that hold their files at the top level, or under a differently named folder, are
put under the official folder name, so the layout is the official one either way.
"""

from __future__ import annotations

import http.client
import os
import shutil
import stat
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath

from attnmel.data.datasets import DECLARATIONS, declaration
from attnmel.data.datasets.base import Archive
from attnmel.errors import UserError

__all__ = [
    "BASE_URL",
    "PARTS",
    "KNOWN_SIZES",
    "Archive",
    "archives",
    "download_file",
    "safe_extract",
    "download_dataset",
]

BASE_URL = "https://isic-challenge-data.s3.amazonaws.com"
# images: image archives (2017's also hold the Part 2 superpixel PNGs and metadata); labels:
# ground truth; lesion: Part 1 masks; dermo: Part 2 feature JSONs (2017); meta: metadata,
# lesion groupings. Which a dataset has: ``declaration(name).parts``.
PARTS = tuple(dict.fromkeys(p for d in DECLARATIONS.values() for p in d.parts))
# Published archive sizes in bytes, checked on top of Content-Length. Only sizes we have
# verified belong here; an archive that is missing is checked against the server alone
# (``Archive.about`` is the challenge page's rounded size, shown, never checked).
KNOWN_SIZES: dict[str, int] = {}
_CHUNK = 1 << 20


def archives(
    dataset: str, parts: Sequence[str] | None = None, splits: Sequence[str] | None = None
) -> list[Archive]:
    """The official files of ``dataset`` for the given parts (all parts by default) and
    splits (default all; ``Declaration.archives_of``: a carved split fetches training's)."""
    decl = declaration(dataset)
    if not decl.archives:
        raise UserError(f"dataset {dataset!r} has no official archives to download")
    parts = list(parts or decl.parts)
    for p in parts:
        if p not in decl.parts:
            raise UserError(f"unknown part {p!r} for {dataset}; choose from {', '.join(decl.parts)}")
    chosen = decl.archives if splits is None else decl.archives_of(splits)
    return [a for a in chosen if a.part in parts]


def _total_size(response) -> int | None:
    """Full size of the resource: Content-Range's total for 206, else Content-Length."""
    content_range = response.headers.get("Content-Range")
    if content_range and "/" in content_range:
        total = content_range.rsplit("/", 1)[1].strip()
        return int(total) if total.isdigit() else None
    length = response.headers.get("Content-Length")
    return int(length) if length and length.isdigit() else None


def download_file(
    url: str,
    dest: Path,
    *,
    expected_size: int | None = None,
    timeout: float = 60.0,
    progress: Callable[[int, int | None], None] | None = None,
) -> Path:
    """Download ``url`` to ``dest`` via ``dest.part``, resuming a partial file; return ``dest``.

    Raises ``UserError`` when the server fails, or when the size does not match (a
    short read keeps the ``.part`` file so the next call resumes).
    """
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:
            # Nothing left to send from offset `have`: whole if the server's total agrees.
            total = _total_size(e)
            if total == have and expected_size in (None, have):
                return _finish(part, dest, have, have, url)
            part.unlink()
            raise UserError(f"{url}: partial download did not match the server's file; run again") from None
        raise UserError(f"{url}: download failed (HTTP {e.code} {e.reason})") from None
    except (urllib.error.URLError, OSError) as e:
        raise UserError(f"{url}: download failed ({getattr(e, 'reason', e)})") from None
    with response:
        resumed = response.status == 206
        if resumed and not response.headers.get("Content-Range", "").startswith(f"bytes {have}-"):
            raise UserError(f"{url}: server resumed at the wrong offset ({response.headers.get('Content-Range')})")
        if have and not resumed:
            have = 0  # the server ignored Range and sends everything: start over
        total = _total_size(response)
        if expected_size is not None and total is not None and total != expected_size:
            raise UserError(f"{url}: server reports {total} bytes, expected {expected_size}")
        with open(part, "ab" if resumed else "wb") as f:
            try:
                while chunk := response.read(_CHUNK):
                    f.write(chunk)
                    have += len(chunk)
                    if progress:
                        progress(have, total)
            except (OSError, ValueError, http.client.HTTPException) as e:  # connection dropped mid-way
                raise UserError(f"{url}: interrupted after {have} bytes ({e}); run again to resume") from None
    return _finish(part, dest, have, expected_size if expected_size is not None else total, url)


def _finish(part: Path, dest: Path, have: int, total: int | None, url: str) -> Path:
    if total is not None and have != total:
        raise UserError(f"{url}: got {have} of {total} bytes; run again to resume")
    os.replace(part, dest)
    return dest


def _is_junk(name: str) -> bool:
    p = PurePosixPath(name)
    return p.parts[:1] == ("__MACOSX",) or p.name in (".DS_Store", "Thumbs.db")


def _member_targets(zf: zipfile.ZipFile, zip_name: str, folder: str) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
    """Validate every member and map it to its path under root (official folder first)."""
    members = []
    for info in zf.infolist():
        name = info.filename.replace("\\", "/")
        p = PurePosixPath(name)
        if name.startswith("/") or p.is_absolute() or ".." in p.parts or (p.parts and ":" in p.parts[0]):
            raise UserError(f"{zip_name}: refusing member {info.filename!r}: it would land outside the dataset folder")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise UserError(f"{zip_name}: refusing member {info.filename!r}: symbolic links are not extracted")
        if info.is_dir() or _is_junk(name):
            continue
        members.append((info, PurePosixPath(*[q for q in p.parts if q not in ("", ".")])))
    tops = {p.parts[0] for _, p in members if len(p.parts) > 1}
    nested = all(len(p.parts) > 1 for _, p in members)
    # One common top folder (official or not) is replaced by the official name; flat archives get it added.
    strip = 1 if nested and len(tops) == 1 else 0
    return [(info, PurePosixPath(folder, *p.parts[strip:])) for info, p in members]


def safe_extract(zip_path: Path, root: Path, folder: str) -> list[Path]:
    """Extract ``zip_path`` into ``root/folder``; refuse unsafe members before writing anything."""
    root = Path(root)
    try:
        zf = zipfile.ZipFile(zip_path)
    except zipfile.BadZipFile as e:
        raise UserError(f"{zip_path}: not a valid zip archive ({e})") from None
    with zf:
        targets = _member_targets(zf, Path(zip_path).name, folder)
        base = root.resolve()
        for _, rel in targets:
            if not (base / rel).resolve().is_relative_to(base):
                raise UserError(f"{Path(zip_path).name}: refusing member {rel}: it would land outside {root}")
        tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=root))
        try:
            for info, rel in targets:
                out = tmp / rel
                out.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(out, "wb") as dst:
                    shutil.copyfileobj(src, dst, _CHUNK)
            placed = []
            for _, rel in targets:  # all extracted: now move into place
                final = root / rel
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp / rel, final)
                placed.append(final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return placed


def download_dataset(
    dataset: str,
    root: Path,
    *,
    parts: Sequence[str] | None = None,
    splits: Sequence[str] | None = None,
    base_url: str = BASE_URL,
    keep_archives: bool = False,
    known_sizes: dict[str, int] | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[str]:
    """Download and unpack ``dataset``'s official files under ``root`` (those of ``parts`` and
    ``splits``, default all); return the files handled.

    A rerun skips archives already unpacked (a ``.done`` marker in ``root/.downloads`` and
    the target present) and resumes a partial download.
    """
    root = Path(root).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    sizes = KNOWN_SIZES if known_sizes is None else known_sizes
    work = root / ".downloads"
    handled = []
    for archive in archives(dataset, parts, splits):
        done = work / (archive.name + ".done")
        target = root / (archive.folder or archive.name)
        if done.exists() and target.exists():  # finished by an earlier run
            handled.append(archive.name)
            continue
        url = archive.url(base_url)
        if progress:
            progress(f"fetching {url}" + (f" (about {archive.about})" if archive.about else ""))
        on_bytes = _percent_reporter(archive.name, progress) if progress else None
        if archive.folder is None:  # a bare CSV goes straight to its official place
            download_file(url, target, expected_size=sizes.get(archive.name), progress=on_bytes)
        else:
            zip_path = download_file(url, work / archive.name, expected_size=sizes.get(archive.name), progress=on_bytes)
            safe_extract(zip_path, root, archive.folder)
            if not keep_archives:
                zip_path.unlink()
        work.mkdir(parents=True, exist_ok=True)
        done.touch()
        handled.append(archive.name)
    return handled


def _percent_reporter(name: str, say: Callable[[str], None]) -> Callable[[int, int | None], None]:
    """A byte-progress callback that says something at every further 10 %."""
    last = [-1]

    def report(have: int, total: int | None) -> None:
        if total:
            step = have * 10 // total * 10  # 0, 10, ..., 100
            if step > last[0]:
                last[0] = step
                say(f"  {name}: {step}% of {total / 1e6:.1f} MB")

    return report
