"""The code's floor plan: every module imports and has a docstring, functions stay short, the import graph
has no cycle, and ruff finds nothing.

The import graph counts every ``import`` statement of a module, at its top or inside a function (a lazy
import still ties the two modules together), resolved within the three packages ``pam_bench``, ``pam`` and
``baselines``: ``from . import x`` is an edge to the submodule ``x`` when there is one, else to the
package itself. A cycle is reported as the chain of modules that closes it.
"""
from __future__ import annotations

import ast
import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("pam_bench", "pam", "baselines")

def project_modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the three packages."""
    out = {}
    for pkg in PACKAGES:
        for f in sorted((REPO / pkg).rglob("*.py")):
            parts = list(f.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = f
    return out


def _owner(name: str | None, mods) -> str | None:
    """The longest prefix of ``name`` that is a project module (None: not ours)."""
    while name and name not in mods:
        name = name.rpartition(".")[0]
    return name or None


def _targets(node: ast.AST, package: list[str], mods) -> set[str]:
    if isinstance(node, ast.Import):
        return {t for t in (_owner(a.name, mods) for a in node.names) if t}
    if not isinstance(node, ast.ImportFrom):
        return set()
    if node.level:
        base = package[: len(package) - (node.level - 1)]
        module = ".".join(base + ([node.module] if node.module else []))
    else:
        module = node.module or ""
    out = set()
    for a in node.names:
        sub = f"{module}.{a.name}"
        t = sub if sub in mods else _owner(module, mods)
        if t:
            out.add(t)
    return out


def import_graph() -> dict[str, set[str]]:
    mods = project_modules()
    graph = {}
    for name, path in mods.items():
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            edges |= _targets(node, package, mods)
        edges.discard(name)
        graph[name] = edges
    return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """Tarjan's algorithm (iterative); components with more than one module, i.e. the cycles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = set()
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.add(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(frozenset(comp))
    return out


def cycle_path(graph: dict[str, set[str]], component: frozenset[str]) -> list[str]:
    """One cycle inside a strongly connected component, as a chain that ends where it starts."""
    start = min(component)
    prev = {start: None}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(graph[v] & component):
            if w == start:
                path, x = [], v
                while x is not None:
                    path.append(x)
                    x = prev[x]
                return path[::-1] + [start]
            if w not in prev:
                prev[w] = v
                queue.append(w)
    return sorted(component)


def test_cycle_finder_on_a_known_graph():
    g = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}}
    (comp,) = strongly_connected(g)
    assert comp == {"a", "b", "c"}
    assert cycle_path(g, comp) == ["a", "b", "c", "a"]


def test_graph_resolves_relative_and_submodule_imports():
    g = import_graph()
    assert "pam_bench.raster" in g["pam_bench.datasets.synthetic"]  # from .. import raster as R
    assert "pam_bench.geometry.camera" in g["pam_bench.raster"]  # from .geometry.camera import ...
    assert "pam.checkpoint" in g["pam.pipeline"]  # from . import checkpoint as ckpt
    assert "pam_bench.errors" in g["baselines.svd"]  # from pam_bench.errors import ...


def test_no_import_cycle():
    graph = import_graph()
    cycles = strongly_connected(graph)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(cycle_path(graph, c)) for c in cycles)


#: Functions allowed over MAX_FUNCTION_LINES: the two model-class factories (one class body each).
LONG_FUNCTIONS = {"baselines.svd_controlnet._build_controlnet_class", "pam_bench.metrics.i3d._modules"}
MAX_FUNCTION_LINES = 60
#: Modules without a docstring yet (none).
NO_DOCSTRING_YET: set[str] = set()


def test_every_module_has_a_docstring_and_short_functions():
    missing, long = [], []
    for name, path in project_modules().items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        if not ast.get_docstring(tree) and name not in NO_DOCSTRING_YET:
            missing.append(name)
        for n in ast.walk(tree):
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = n.end_lineno - n.lineno + 1
                if lines > MAX_FUNCTION_LINES and f"{name}.{n.name}" not in LONG_FUNCTIONS:
                    long.append(f"{name}.{n.name} ({lines} lines)")
    assert not missing, f"modules without a docstring: {missing}"
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"


#: Modules not imported by the test, with the reason.
NOT_IMPORTED = {"pam_bench.__main__": "runs the CLI on import (python -m pam_bench; covered by the CLI tests)"}


def test_main_module_runs_the_cli():
    """``pam_bench.__main__`` is not imported in-process (it would run the CLI): it is run."""
    r = subprocess.run([sys.executable, "-m", "pam_bench", "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "evaluate" in r.stdout, r.stderr[-2000:]


@pytest.mark.parametrize("name", sorted(set(project_modules()) - set(NOT_IMPORTED)))
def test_module_imports(name):
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name and e.name.partition(".")[0] in PACKAGES:
            raise
        pytest.skip(f"optional package {e.name!r} is not installed")


def _ruff() -> list[str] | None:
    """The ruff command: $RUFF, ruff on PATH or beside this Python, or the installed module."""
    for exe in (os.environ.get("RUFF"), shutil.which("ruff"), str(Path(sys.executable).with_name("ruff"))):
        if exe and Path(exe).is_file():
            return [exe]
    if importlib.util.find_spec("ruff") is not None:
        return [sys.executable, "-m", "ruff"]
    return None


def test_ruff_finds_nothing():
    cmd = _ruff()
    if cmd is None:
        pytest.skip("ruff is not installed (pip install 'pam-bench[test]' installs it; make setup does)")
    p = subprocess.run([*cmd, "check", "--no-cache", "--output-format", "concise", str(REPO)], cwd=REPO,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
