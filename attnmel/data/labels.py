"""Reading a ground-truth CSV by its declaration's :class:`~attnmel.data.datasets.base.LabelRule`.

Every problem becomes one line naming the file (and the line, for a row) and the row is
dropped, so ``attnmel data check`` lists them all and ``load_splits`` can stop at the first.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from attnmel.data.datasets.base import LabelRule

__all__ = ["LabelRow", "read_label_csv", "read_columns", "canonical_id", "labels_of_files"]


@dataclass(frozen=True)
class LabelRow:
    """One usable row: the image id as the file spells it, its label, its line, and the
    further columns the caller asked for (group, split)."""

    image_id: str
    label: int
    line: int
    cells: dict[str, str] = field(default_factory=dict)


def canonical_id(image_id: str, suffixes: Sequence[str]) -> str:
    """``image_id`` without a declared ending (ISIC 2019's ``_downsampled``): one image, one id."""
    for suffix in suffixes:
        if suffix and image_id.endswith(suffix):
            return image_id[: -len(suffix)]
    return image_id


def _rows(path: Path, problems: list[str]) -> list[list[str]] | None:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            return [row for row in csv.reader(f) if any(cell.strip() for cell in row)]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        problems.append(f"{path}: cannot read ({e})")
        return None


def _header_problem(path: Path, need: Sequence[str], header: list[str]) -> str:
    if len(need) <= 2:
        return f"{path}: header must contain {' and '.join(repr(n) for n in need)}, got {header}"
    missing = [n for n in need if n not in header]
    return f"{path}: header lacks {', '.join(repr(n) for n in missing)} (needs {', '.join(need)}), got {header}"


def read_label_csv(
    path: Path, rule: LabelRule, problems: list[str], *, extra: Sequence[str] = (), id_suffixes: Sequence[str] = ()
) -> list[LabelRow]:
    """The rows of ``path`` in file order; bad rows become ``problems`` (one line each) and are
    dropped. ``extra``: columns to return with each row (a missing one is a header problem).
    An id listed twice (also once with and once without a declared suffix) is a problem."""
    rows = _rows(path, problems)
    if rows is None:
        return []
    if rule.id_column is None:  # headerless (ISIC 2016): id, label
        first = 1 if rows and rows[0][0].strip().lower() in getattr(rule, "header_ids", ()) else 0
        index = {"0": 0, "1": 1}
        id_key = "0"
    else:
        header = [c.strip() for c in rows[0]] if rows else []
        need = list(dict.fromkeys([*rule.required(), *extra]))
        missing = [n for n in need if n not in header]
        if missing:
            problems.append(_header_problem(path, need, header))
            return []
        index = {n: header.index(n) for n in need}
        id_key, first = rule.id_column, 1
    width = max(index.values()) + 1
    out: list[LabelRow] = []
    seen: dict[str, int] = {}
    for line_no, row in enumerate(rows[first:], start=first + 1):
        if len(row) < width:
            problems.append(f"{path}:{line_no}: expected at least {width} columns, got {row}")
            continue
        cells = {name: row[i] for name, i in index.items()}
        image_id = cells[id_key].strip()
        if not image_id:
            problems.append(f"{path}:{line_no}: empty image id")
            continue
        label = rule.label(cells)
        if isinstance(label, str):
            problems.append(f"{path}:{line_no}: {image_id}: {label}")
            continue
        key = canonical_id(image_id, id_suffixes)
        if key in seen:
            problems.append(f"{path}:{line_no}: duplicate image id {image_id} (first on line {seen[key]})")
            continue
        seen[key] = line_no
        out.append(LabelRow(image_id, label, line_no, {n: cells[n].strip() for n in extra}))
    if not rows[first:]:
        problems.append(f"{path}: no rows")
    return out


def read_columns(path: Path, columns: Sequence[str], problems: list[str]) -> list[dict[str, str]]:
    """The named columns of a CSV with a header (groupings, metadata, duplicate pairs)."""
    rows = _rows(path, problems)
    if rows is None:
        return []
    header = [c.strip() for c in rows[0]] if rows else []
    missing = [c for c in columns if c not in header]
    if missing:
        problems.append(_header_problem(path, columns, header))
        return []
    index = [header.index(c) for c in columns]
    return [{c: (row[i].strip() if i < len(row) else "") for c, i in zip(columns, index)} for row in rows[1:]]


def _detect_rule(path: Path, problems: list[str]) -> LabelRule | None:
    """The first declared rule whose columns the file's header has (ISIC 2017, 2018/2019,
    2020 formats); the headerless ISIC 2016 format when the first row has two cells and a label."""
    from attnmel.data.datasets import DECLARATIONS

    rows = _rows(path, problems)
    if not rows:
        return None
    header = [c.strip() for c in rows[0]]
    rules = [f.rule for d in DECLARATIONS.values() if d.bind is None for f in d.splits.values()]
    for rule in rules:
        if rule.id_column is not None and all(c in header for c in rule.required()):
            return rule
    for rule in rules:
        if rule.id_column is None and len(rows[-1]) >= 2 and not isinstance(rule.label({"0": "", "1": rows[-1][1]}), str):
            return rule
    return None


def labels_of_files(
    files: Sequence[Path], path: Path, *, rule: LabelRule | None = None
) -> tuple[dict[Path, int], list[str]]:
    """The label of each image file from a ground-truth CSV (matched by file stem; an id with
    or without a declared suffix such as ``_downsampled`` matches), and notes. ``rule``: how
    the CSV reads (default: recognised from its header among the declared formats). Every
    problem, and an image without a label, is a ``UserError`` naming the CSV."""
    from attnmel.data.datasets import DECLARATIONS
    from attnmel.errors import UserError

    path = Path(path)
    if not path.is_file():
        raise UserError(f"--labels {path}: file not found")
    problems: list[str] = []
    rule = rule or _detect_rule(path, problems)
    if rule is None:
        formats = "; ".join(dict.fromkeys(", ".join(r.required()) for d in DECLARATIONS.values() if d.bind is None
                                          for f in d.splits.values() if (r := f.rule).id_column))  # fmt: skip
        raise UserError(problems[0] if problems else f"--labels {path}: no known ground-truth header ({formats}; "
                        "or give --label-column)")  # fmt: skip
    suffixes = tuple(dict.fromkeys(s for d in DECLARATIONS.values() for s in d.id_suffixes))
    rows = read_label_csv(path, rule, problems, id_suffixes=suffixes)
    if problems:
        raise UserError(problems[0] + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""))
    by_id = {canonical_id(r.image_id, suffixes): r.label for r in rows}
    labels, missing = {}, []
    for f in files:
        key = canonical_id(Path(f).stem, suffixes)
        if key in by_id:
            labels[Path(f)] = by_id[key]
        else:
            missing.append(Path(f))
    if missing:
        raise UserError(f"--labels {path}: {len(missing)} of the {len(files)} images have no label there "
                        f"(first: {missing[0].name})")  # fmt: skip
    notes = []
    if len(by_id) > len(labels):
        notes.append(f"{path}: {len(by_id) - len(labels)} labelled image(s) not among the images scored")
    return labels, notes
