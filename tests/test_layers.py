"""The layers (DESIGN.md "Layers", docs/internals.md): imports point one way between folders,
deferred imports (inside functions, under ``if TYPE_CHECKING:``) included. Every module's
imports are read with ``ast``, none is executed."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, anywhere in it, as absolute dotted names (``from a import
    b`` gives ``a`` and ``a.b``: b may be a module)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


@cache
def _graph() -> dict[str, set[str]]:
    files = [p for top in ("attnmel", "orchestrator") for p in (REPO / top).rglob("*.py")]
    return {_module_name(p): _imports(p) for p in files}


def _offenders(importer: str, imported: str) -> list[str]:
    """``module → name`` for every module in package ``importer`` importing inside ``imported``."""
    return sorted(f"{mod} → {name}" for mod, names in _graph().items() if _inside(mod, importer)
                  for name in names if _inside(name, imported))


def _inside(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_the_modules_are_found():
    graph = _graph()
    assert {"attnmel.checkpoint", "attnmel.models.backbone", "orchestrator.layout.folders",
            "orchestrator.sweep.tune", "orchestrator.results.page", "orchestrator.cli.reporting"} <= set(graph)
    # the reader sees deferred imports: tune's Optuna import sits inside a function
    assert "ray.tune.search.optuna" in graph["orchestrator.sweep.tune"]


@pytest.mark.parametrize(("importer", "imported"), [
    ("attnmel", "orchestrator"),
    ("attnmel", "ray"),
    ("orchestrator.sweep", "orchestrator.results"),
    ("orchestrator.sweep", "orchestrator.cli"),
    ("orchestrator.results", "orchestrator.sweep"),
    ("orchestrator.results", "orchestrator.cli"),
    ("orchestrator.results", "ray"),
    ("orchestrator.layout", "orchestrator.sweep"),
    ("orchestrator.layout", "orchestrator.results"),
    ("orchestrator.layout", "orchestrator.cli"),
    ("orchestrator.layout", "ray"),
    ("attnmel.models", "attnmel.checkpoint"),  # weights are read by attnmel.tensor_file
    ("attnmel.checkpoint", "attnmel.models"),  # sizes: attnmel.checkpoint_sizes
])
def test_no_import_points_up(importer, imported):
    assert _offenders(importer, imported) == []


def test_checkpoint_and_the_models_import_neither_way():
    """Checkpoint sizes (which build a model) live above both; the weights reader below both."""
    graph = _graph()
    models = [m for m in graph if _inside(m, "attnmel.models")]
    assert not [n for m in models for n in graph[m] if _inside(n, "attnmel.checkpoint")]
    assert not [n for n in graph["attnmel.checkpoint"] if _inside(n, "attnmel.models")]


def _folder(mod: str) -> str:
    """The folder a module belongs to: its package's folder (``attnmel.data.datasets``,
    ``orchestrator.sweep``); a module directly in ``attnmel/`` counts as one of its own
    (``attnmel.checkpoint``)."""
    path = REPO / Path(*mod.split("."))
    if path.is_dir():  # a package's __init__
        return mod
    package = mod.rpartition(".")[0]
    return mod if package == "attnmel" else package


def test_no_folder_imports_one_that_imports_it_back():
    """No circle between folders through any chain of imports, deferred ones included."""
    graph = _graph()
    edges: dict[str, set[str]] = {}
    for mod, names in graph.items():
        for name in names:
            if name in graph and _folder(name) != _folder(mod):
                edges.setdefault(_folder(mod), set()).add(_folder(name))
    reach = {f: set(targets) for f, targets in edges.items()}
    changed = True
    while changed:  # transitive closure
        changed = False
        for f, targets in reach.items():
            more = set().union(*(reach.get(t, set()) for t in targets)) - targets
            if more:
                targets |= more
                changed = True
    assert sorted(f for f, targets in reach.items() if f in targets) == []


def test_the_attnmel_tests_import_nothing_from_orchestrator():
    """attnmel runs alone, so do its tests: whatever needs the CLI is tested in tests/orchestrator/."""
    folder = REPO / "tests" / "attnmel"
    offenders = sorted(
        f"{path.relative_to(folder)} → {name}" for path in folder.rglob("*.py")
        for name in _imports(path) if _inside(name, "orchestrator") or _inside(name, "ray")
    )
    assert offenders == []
