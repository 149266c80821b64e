"""Table 1's LaTeX from two measured runs compiles with pdflatex in a two-column conference paper and fits."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from pam_bench import weights as W
from pam_bench.cli import main
from pam_bench.run.loop import evaluate

DS = {"n_clips": 2, "frames": 16, "height": 48, "width": 64}

# A CVPR-sized two-column page: 6.875in text width, 3.25in columns.
PAPER = r"""\documentclass[10pt,twocolumn,letterpaper]{article}
\usepackage[textwidth=6.875in,textheight=8.875in,columnsep=0.3125in,top=1in]{geometry}
\usepackage{booktabs}
\usepackage{graphicx}
\begin{document}
\title{A paper}\author{Someone}\maketitle
\section{Results}
%s
\input{table1.tex}
%s
\end{document}
"""
FILLER = "Generated videos are compared with the ground truth on the same clips. " * 40


def _pdflatex() -> str:
    exe = shutil.which("pdflatex")
    if exe:
        return exe
    if os.environ.get("PAM_BENCH_REQUIRE_PDFLATEX"):
        pytest.fail("pdflatex not found but PAM_BENCH_REQUIRE_PDFLATEX is set "
                    "(apt-get install -y texlive-latex-base texlive-latex-recommended)")
    pytest.skip("pdflatex not installed (apt-get install -y texlive-latex-base texlive-latex-recommended); "
                "set PAM_BENCH_REQUIRE_PDFLATEX=1 to make this a failure")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("tex")
    metrics = ["ssim", "psnr", "mf"] + (["fvd"] if W.locate("i3d-k400") else [])
    out = []
    for m in ("oracle", "static"):
        evaluate(method=m, dataset="synthetic", metrics=metrics, out=base / m, dataset_options=DS, progress=False)
        out.append(str(base / m))
    return base, out, metrics


def _tex(runs, capsys, *extra) -> str:
    base, paths, _ = runs
    out = base / "table1.tex"
    try:
        main(["leaderboard", *paths, "--layout", "table1", "--format", "tex", "--out", str(out),
              "--label", f"{paths[0]}=Upper bound", "--label", f"{paths[1]}=First frame held", *extra])
    except SystemExit as e:
        assert not e.code
    capsys.readouterr()
    return out.read_text()


def test_table1_tex_is_booktabs_with_a_footnote_per_backend(runs, capsys):
    _, _, metrics = runs
    tex = _tex(runs, capsys)
    for rule in (r"\toprule", r"\midrule", r"\bottomrule"):
        assert rule in tex
    assert r"\begin{table*}" in tex and r"\end{table*}" in tex  # 2 label + metric columns + resolution
    assert "Upper bound" in tex and "First frame held" in tex
    assert "stylegan-v-torchscript" in tex  # named in the hidden-columns footnote, not as a column
    header = next(x for x in tex.splitlines() if x.startswith("Method &"))
    assert "stylegan" not in header and "[" not in header
    backends = next(x for x in tex.splitlines() if x.startswith("Backends:"))
    letters = {h.split("^{")[1][0] for h in header.split("&") if "^{" in h}
    for letter in letters:
        assert f"$^{{{letter}}}$" in backends
    if "fvd" in metrics:  # 2 clips: marked, and never bold
        fvd_cells = [x.split("&")[2] for x in tex.splitlines() if x.startswith(("Upper bound", "First frame"))]
        assert all(r"$^\dagger$" in c and r"\textbf" not in c for c in fvd_cells), fvd_cells


def test_table1_tex_compiles_in_a_two_column_paper_without_overfull_boxes(runs, capsys, tmp_path):
    exe = _pdflatex()
    tex = _tex(runs, capsys)
    (tmp_path / "table1.tex").write_text(tex)
    for all_cols in (False, True):
        if all_cols:
            (tmp_path / "table1.tex").write_text(_tex(runs, capsys, "--all-columns"))
        (tmp_path / "paper.tex").write_text(PAPER % (FILLER, FILLER))
        r = subprocess.run([exe, "-interaction=nonstopmode", "-halt-on-error", "paper.tex"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=180)
        log = (tmp_path / "paper.log").read_text(errors="replace")
        assert r.returncode == 0, log[-2000:]
        assert (tmp_path / "paper.pdf").stat().st_size > 0
        assert "Overfull \\hbox" not in log, [x for x in log.splitlines() if "Overfull" in x]
        assert "Overfull \\vbox" not in log
