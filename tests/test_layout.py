"""The package layout: one import name, floors that only look down, no import cycles.

Every module's imports are read from its syntax tree (imports inside functions included, and the
literal module names handed to ``importlib.import_module``), so the rules hold for lazy imports too:

* ``sim`` imports nothing else of the project (its cocotb ``testbenches`` may drive ``rtl``);
* ``algo`` and ``pim`` import only ``sim``; ``rtl`` imports ``sim`` and ``pim``;
* the top floor (``spikeforge`` itself, its CLI, API, benchmarks, studies and flows) is imported
  by nothing below it;
* no two modules import each other, directly or through others (imports under
  ``if TYPE_CHECKING:`` are annotations only and never run, so they do not count).

The wheel test builds the distribution and checks that ``spikeforge`` is its only import package.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: installed package -> folder in the repository (pyproject's package-dir)
FLOOR_DIRS = {
    "spikeforge.sim": ROOT / "sim",
    "spikeforge.algo": ROOT / "algo",
    "spikeforge.pim": ROOT / "pim",
    "spikeforge.rtl": ROOT / "rtl",
    "spikeforge": ROOT / "spikeforge",
}
#: floor -> the floors it may import (itself included)
ALLOWED = {
    "sim": {"sim"},
    "sim.testbenches": {"sim.testbenches", "sim", "rtl", "pim"},
    "algo": {"algo", "sim"},
    "pim": {"pim", "sim"},
    "rtl": {"rtl", "sim", "pim"},
    "top": {"top", "algo", "sim", "pim", "rtl"},
}


def _modules() -> dict[str, Path]:
    """Every project module, by its installed dotted name."""
    found: dict[str, Path] = {}
    for package, folder in FLOOR_DIRS.items():
        for path in folder.rglob("*.py"):
            rel = path.relative_to(folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            name = ".".join([package, *parts])
            if package == "spikeforge" and parts and parts[0] in ("algo", "rtl", "pim", "sim"):
                continue
            found[name] = path
    return found


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The project module ``name`` refers to (a module, or the package holding a name)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and ast.unparse(node.test) in (
        "TYPE_CHECKING",
        "typing.TYPE_CHECKING",
    )


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node except those under ``if TYPE_CHECKING:`` (annotations only, never executed)."""
    nodes: list[ast.AST] = []
    todo = [tree]
    while todo:
        node = todo.pop()
        nodes.append(node)
        todo.extend(c for c in ast.iter_child_nodes(node) if not _is_type_checking(c))
    return nodes


def _imports(name: str, path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    uses_importlib = False
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parent = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{parent}.{base}".rstrip(".")
            for alias in node.names:
                targets.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
        elif isinstance(node, ast.Attribute) and node.attr == "import_module":
            uses_importlib = True
    if uses_importlib:  # literal module names in a module that imports by name
        for node in ast.walk(tree):
            literal = isinstance(node, ast.Constant) and isinstance(node.value, str)
            if literal and node.value.startswith("spikeforge.") and _resolve(node.value):
                targets.add(node.value)
    return {r for t in targets if t.startswith("spikeforge") and (r := _resolve(t)) and r != name}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def floor(name: str) -> str:
    """Which floor a module belongs to."""
    if name.startswith("spikeforge.sim.testbenches"):
        return "sim.testbenches"
    for part in ("sim", "algo", "pim", "rtl"):
        if name == f"spikeforge.{part}" or name.startswith(f"spikeforge.{part}."):
            return part
    return "top"


def test_the_module_walk_finds_every_floor() -> None:
    counts = {f: sum(floor(m) == f for m in MODULES) for f in ALLOWED}
    assert all(counts.values()), counts
    assert len(MODULES) > 90


def test_floors_only_look_down() -> None:
    wrong = [
        f"{module} ({floor(module)}) imports {target} ({floor(target)})"
        for module, targets in sorted(GRAPH.items())
        for target in sorted(targets)
        if floor(target) not in ALLOWED[floor(module)]
    ]
    assert not wrong, "\n".join(wrong)
    assert sum(len(t) for t in GRAPH.values()) > 200  # the walk did see the imports


def test_no_import_cycles() -> None:
    """Tarjan's strongly connected components over the module graph: every one is a single
    module. A package importing its own submodules is not a cycle (the submodule never imports
    its package's ``__init__`` back in this project)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in GRAPH[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for node in GRAPH:
        if node not in index:
            visit(node)
    assert not cycles, "\n".join(" <-> ".join(c) for c in cycles)


def test_pyproject_lists_every_package() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    declared = set(config["packages"])
    on_disk = {name for name, path in MODULES.items() if path.name == "__init__.py"}
    assert declared == on_disk
    assert config["package-dir"] == {k: os.path.relpath(v, ROOT) for k, v in FLOOR_DIRS.items()}


def test_numpy_only_parts_import_without_torch_or_amaranth() -> None:
    code = (
        "import sys\n"
        "import spikeforge, spikeforge.sim.bundle, spikeforge.sim.golden, spikeforge.sim.results\n"
        "import spikeforge.sim.semantics, spikeforge.sim.datasets\n"
        "heavy = sorted(m for m in ('torch', 'amaranth', 'cocotb') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/"
    )
    assert out.stdout.strip() == ""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The distribution's wheel, built by the project's own build backend (no network)."""
    out = tmp_path_factory.mktemp("wheel")
    build = f"import sys, setuptools.build_meta as b; print(b.build_wheel({str(out)!r}))"
    work = tmp_path_factory.mktemp("build-src")
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    # build from a copy of the tracked tree so that build/ and egg-info never land in the checkout
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    for rel in files:
        src = ROOT / rel
        if src.is_file():
            dst = work / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes(src.read_bytes())
    result = subprocess.run(
        [sys.executable, "-c", build], cwd=work, capture_output=True, text=True, env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return out / result.stdout.strip().splitlines()[-1]


def test_wheel_has_one_import_package(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"spikeforge"}
    for required in (
        "spikeforge/py.typed",
        "spikeforge/__init__.py",
        "spikeforge/cli/__init__.py",
        "spikeforge/sim/golden.py",
        "spikeforge/algo/methods/__init__.py",
        "spikeforge/rtl/chip/top.py",
        "spikeforge/pim/model.py",
        "spikeforge/sim/testbenches/chip.py",
    ):
        assert required in names, required
    # every module of the tree is in the wheel, under its installed name
    shipped = {n for n in names if n.endswith(".py")}
    expected = {
        name.replace(".", "/") + ("/__init__.py" if path.name == "__init__.py" else ".py")
        for name, path in MODULES.items()
    }
    assert expected <= shipped, sorted(expected - shipped)[:10]
    licenses = [n for n in names if n.endswith("LICENSE")]
    assert licenses, "the wheel carries no LICENSE"
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(wheel).read(metadata).decode()
    assert "License-Expression: MIT" in text
    assert "Requires-Dist: torch<3,>=2.2" in text or "Requires-Dist: torch>=2.2,<3" in text
