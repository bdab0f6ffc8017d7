"""The package layout holds: dependencies flow one way and no module imports itself back.

Read from the installed package's source files, so it checks what a user gets.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

PACKAGES = ("runtime", "data", "bench", "train", "export")
#: What each package may import of the others at module level (SPEC section 2).
ALLOWED = {
    "runtime": set(),
    "data": {"runtime"},
    "bench": {"runtime", "data"},
    "train": {"runtime", "data"},
    "export": {"runtime", "data", "train"},
}
#: The one lazy import from the runtime into the data package: the demo's sample clip.
LAZY_RUNTIME_TO_DATA = {("sources", "digitvae.data.frames")}


def _modules(package: str) -> dict[str, Path]:
    folder = Path(importlib.import_module(f"digitvae.{package}").__file__).parent
    return {p.stem: p for p in folder.glob("*.py")}


def _imports(path: Path, package: str, *, top_level: bool) -> set[str]:
    """Absolute names of the digitvae modules ``path`` imports (at module level only, or anywhere)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = f"digitvae.{package}" + (f".{base}" if base else "")
            names = [f"{base}.{a.name}" for a in node.names] if node.level and not node.module else [base]
            found.update(n for n in names if n.startswith("digitvae."))
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("digitvae."))
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_dependencies_flow_one_way(package):
    for stem, path in _modules(package).items():
        for name in _imports(path, package, top_level=False):
            other = name.split(".")[1]
            if other == package or other in ALLOWED[package]:
                continue
            assert (stem, name) in LAZY_RUNTIME_TO_DATA, f"{package}/{path.name} imports {name}"


def test_the_runtime_imports_no_torch_training_or_data_code():
    for stem, path in _modules("runtime").items():
        tree = ast.parse(path.read_text())
        roots = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        roots |= {(n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and not n.level}
        assert not roots & {"torch", "onnx", "onnxscript", "tqdm"}, f"runtime/{path.name} imports {roots}"


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_circles_at_module_level(package):
    modules = _modules(package)
    graph = {stem: {n.split(".")[2] for n in _imports(path, package, top_level=True)
                    if n.startswith(f"digitvae.{package}.") and n.split(".")[2] in modules}
             for stem, path in modules.items()}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            assert state.get(nxt) != 1, f"import circle in {package}: {' -> '.join(trail + [node, nxt])}"
            if nxt not in state:
                visit(nxt, trail + [node])
        state[node] = 2

    for stem in graph:
        if stem not in state:
            visit(stem, [])


def test_the_circle_check_sees_a_circle(tmp_path, monkeypatch):
    """The check above can fail: two modules that import each other are found."""
    (tmp_path / "a.py").write_text("from . import b\n")
    (tmp_path / "b.py").write_text("from .a import x\n")
    found = {p.stem: _imports(p, "runtime", top_level=True) for p in tmp_path.glob("*.py")}
    assert found == {"a": {"digitvae.runtime.b"}, "b": {"digitvae.runtime.a"}}
