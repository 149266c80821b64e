"""The package is self-contained: a wheel built from the repository, installed (not editable) into a fresh
virtual environment outside the repository, runs ``pam-bench leaderboard --layout table1``.

The wheel is built from a copy of the package sources (so the build leaves nothing in the checkout) with
``pip wheel --no-deps --no-build-isolation`` (no network). The fresh environment sees the test
interpreter's installed packages through a ``.pth`` line (torch and friends are not downloaded again), but
not the repository: no PYTHONPATH, and the working directory is a temporary folder.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _have(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PYTHONNOUSERSITE"] = "1"
    return env


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    p = subprocess.run(cmd, cwd=cwd, env=_clean_env(), capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, f"{' '.join(map(str, cmd))} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}"
    return p


@pytest.mark.skipif(not (_have("pip") and _have("setuptools")), reason="needs pip and setuptools to build a wheel")
def test_wheel_installed_outside_the_repo_runs_the_leaderboard(tmp_path):
    src = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("pam_bench", "pam", "baselines"):
        shutil.copytree(REPO / name, src / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
          "-w", str(dist), str(src)], tmp_path)
    wheels = list(dist.glob("pam_bench-*.whl"))
    assert len(wheels) == 1, wheels

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path)
    py = venv / "bin" / "python"
    site = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     tmp_path).stdout.strip())
    outer = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "_outer_env.pth").write_text("\n".join(sorted(outer)) + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index", "-q",
          str(wheels[0])], tmp_path)

    work = tmp_path / "elsewhere"
    work.mkdir()
    where = _run([str(py), "-c", "import pam_bench; print(pam_bench.__file__)"], work).stdout.strip()
    assert Path(where).resolve().is_relative_to(site.resolve()), where  # the installed copy, not the checkout
    out = _run([str(venv / "bin" / "pam-bench"), "leaderboard", "--layout", "table1", "--format", "csv"],
               work).stdout
    # the reported rows come from the packaged CSV: every method the paper's Table 1 lists is in the table
    from pam_bench.report.leaderboard import load_reported

    methods = {r["method"] for r in load_reported(table="table1")}
    assert len(methods) >= 3, methods
    missing = [m for m in methods if m not in out]
    assert not missing, f"reported rows missing from the installed copy's table: {missing}\n{out}"
    # the C source of the pixel kernels ships in the wheel, so the installed copy compiles them too
    code = "from pam_bench.metrics import native; native.kernels(); print(native.info()['pixel_kernels'], " \
           "native.SOURCE.is_file())"
    kernels = _run([str(py), "-c", code], work).stdout.split()
    assert kernels[1] == "True", kernels
    if any(shutil.which(c) for c in ("cc", "gcc", "clang")) and not os.environ.get("CC"):
        assert kernels[0] == "c", kernels


def test_weights_doc_lists_every_pin():
    """docs/weights.md (cited by docstrings) states what pam_bench.weights pins: every name, file, size and
    sha256."""
    from pam_bench.weights import PINNED

    doc = (REPO / "docs" / "weights.md").read_text(encoding="utf-8")
    for p in PINNED.values():
        assert f"`{p.name}`" in doc and f"`{p.filename}`" in doc, p.name
        for h in (p.sha256, p.archive_sha256):
            if h:
                assert h in doc, (p.name, h)
        if p.size:
            assert f"{p.size:,}" in doc, (p.name, p.size)
        if p.archive:
            assert f"`{p.archive}`" in doc and f"`{p.member}`" in doc, p.name


def test_no_docstring_cites_a_path_outside_the_repository():
    """Docstrings cite files of the repository only (the docs beside it are not shipped)."""
    import ast

    bad = []
    for root in ("pam_bench", "pam", "baselines"):
        for f in sorted((REPO / root).rglob("*.py")):
            tree = ast.parse(f.read_text(encoding="utf-8"))
            nodes = [tree] + [n for n in ast.walk(tree)
                              if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
            for n in nodes:
                doc = ast.get_docstring(n) or ""
                for marker in ("../shared", "/work/", "shared/docs", "shared/data"):
                    if marker in doc:
                        bad.append(f"{f.relative_to(REPO)}: {getattr(n, 'name', '<module>')} cites {marker}")
                for cited in _cited_docs(doc):
                    if not (REPO / cited).is_file():
                        bad.append(f"{f.relative_to(REPO)}: cites {cited}, which is not in the repository")
    assert not bad, "\n".join(bad)


def _cited_docs(doc: str) -> list[str]:
    import re

    return re.findall(r"\bdocs/[\w.-]+\.md\b", doc)
