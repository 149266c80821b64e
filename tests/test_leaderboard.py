"""Leaderboards: the paper's layouts with reported rows beside measured ones, best marks, refusals."""
from __future__ import annotations

import copy
import csv
import io

import numpy as np
import pytest

from pam_bench.cli import main
from pam_bench.errors import IncompatibleResults, InputError
from pam_bench.run.loop import evaluate
from pam_bench.report.leaderboard import LAYOUTS, build, leaderboard, load_reported, render
from pam_bench.metrics.facts import direction
from pam_bench.results import load_results

DS = {"n_clips": 3, "frames": 4, "height": 48, "width": 64}
METHODS = ("oracle", "static", "sim-render")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("lb")
    out = {}
    for m in METHODS:
        evaluate(method=m, dataset="synthetic", metrics=["ssim", "psnr"], out=base / m, dataset_options=DS,
                 progress=False)
        out[m] = base / m
    return out


def _reported_value(table, method, metric):
    for r in load_reported(table=table):
        if r["method"] == method and r["metric"] == metric:
            return float(r["value"])
    return None


def test_reported_csv_is_consistent_across_the_papers_tables():
    rows = load_reported()
    assert {r["table"] for r in rows} == set(LAYOUTS)
    for r in rows:
        assert r["source"].startswith("PAM "), r  # every row cites where it comes from
        if r["metric"] in ("ssim", "mf", "lpips"):
            assert 0 < float(r["value"]) < 1, r
    # The same model (PAM with all conditions) is printed in Table 1, Table 3 and supp. Table 6.
    for metric in ("fvd", "mf", "lpips", "ssim", "psnr", "mpjpe"):
        assert _reported_value("table1", "PAM (Ours w/ all)", metric) == _reported_value(
            "table3", "Depth, Hand, Seg", metric)
    for metric in ("fvd", "psnr", "mpjpe"):
        assert _reported_value("table1", "PAM (Ours w/ all)", metric) == _reported_value(
            "supp6", "PAM (CogVideo w/ multi conds)", metric)
    # InterDyn's FVD/PSNR are the same numbers in Table 1 and supp. Table 6; its MPJPE only in the latter.
    for metric in ("fvd", "psnr"):
        assert _reported_value("table1", "InterDyn", metric) == _reported_value(
            "supp6", "InterDyn (SVD w/ single cond)", metric)
    assert _reported_value("table1", "InterDyn", "mpjpe") is None
    assert _reported_value("table1", "ManiVideo", "fvd") is None
    tags = {(r["metric"], r["backend"]) for r in rows if r["metric"] in ("fvd", "mf", "mpjpe")}
    assert tags == {("fvd", "stylegan-v-torchscript"), ("mf", "cotracker3"), ("mpjpe", "hamer")}


def test_table1_md_tex_csv_with_reported_rows_and_best_marks(runs, tmp_path):
    paths = [runs[m] for m in METHODS]
    results = [load_results(p) for p in paths]
    text = {fmt: leaderboard(paths, "table1", fmt, all_columns=True) for fmt in ("md", "tex", "csv")}
    for reported_method in ("CosHand", "InterDyn", "ManiVideo", "PAM (Ours w/ all)"):
        for fmt in ("md", "tex", "csv"):
            assert reported_method in text[fmt]
    # csv: measured values at full precision, equal to results.json
    rows = list(csv.DictReader(io.StringIO(text["csv"])))
    measured = {r["method"]: r for r in rows if r["kind"] == "measured"}
    assert set(measured) == set(METHODS)
    for res in results:
        row = measured[res["method"]["name"]]
        assert float(row["SSIM↑"]) == res["metrics"]["ssim"]["value"]
        assert float(row["PSNR↑"]) == res["metrics"]["psnr"]["value"]
        assert row["resolution"] == f"{DS['height']}x{DS['width']}"
    # best per block, by each metric's direction, recomputed independently
    best_ssim = max(METHODS, key=lambda m: float(measured[m]["SSIM↑"]))
    assert "SSIM↑" in measured[best_ssim]["best"]
    reported = {r["method"]: r for r in rows if r["kind"] == "reported"}
    for col, metric in (("FVD↓", "fvd"), ("LPIPS↓", "lpips"), ("PSNR↑", "psnr"), ("MPJPE↓", "mpjpe")):
        vals = {m: float(r[col]) for m, r in reported.items() if r[col]}
        pick = min if direction(metric) == "lower" else max
        winner = pick(vals, key=vals.get)
        assert col in reported[winner]["best"] and all(col not in reported[m]["best"] for m in vals if m != winner)
    assert reported["InterDyn"]["MPJPE↓"] == ""  # missing cells stay empty, never 0
    # md/tex: the bold marks and the printed reported numbers
    assert "**29.13**" in text["md"] and r"\textbf{29.13}" in text["tex"]
    best_psnr = max(results, key=lambda r: r["metrics"]["psnr"]["value"])
    assert f"**{best_psnr['metrics']['psnr']['value']:.2f}**" in text["md"]
    assert r"\begin{tabular}" in text["tex"] and r"\toprule" in text["tex"]
    # CLI writes files
    for fmt in ("md", "tex", "csv"):
        f = tmp_path / f"t1.{fmt}"
        main(["leaderboard", *map(str, paths), "--layout", "table1", "--format", fmt, "--out", str(f), "--all-columns"])
        assert f.read_text() == text[fmt]


def test_other_layouts_have_the_papers_columns(runs):
    paths = [runs["static"]]
    t2 = leaderboard(paths, "table2", "csv", all_columns=True)
    assert "PAM w/ all" in t2 and "68.76" in t2
    t3 = leaderboard(paths, "table3", "md", all_columns=True)
    assert "| Conditions |" in t3 and "Depth, Seg (reported)" in t3
    s6 = leaderboard(paths, "supp6", "md", all_columns=True)
    header = s6.splitlines()[2]
    assert "FVD↓" in header and "PSNR↑" in header and "MPJPE↓" in header and "MF" not in header
    assert "28.15" in s6


def test_backends_are_split_into_columns(runs):
    res = load_results(runs["static"])
    res["metrics"]["mf"] = {"value": 0.5, "direction": "higher", "backend": "lk", "version": "1", "n": 3,
                            "ci95": None, "unit": "", "extras": {}, "unavailable": None}
    board = build([res], "table1", all_columns=True)
    labels = [c.label for c in board.columns]
    assert "MF↑ [lk]" in labels and "MF↑ [cotracker3]" in labels and "MF↑" not in labels
    rep = {r.label: r for r in board.blocks[0].rows}
    cot = next(c for c in board.columns if c.label == "MF↑ [cotracker3]")
    lk = next(c for c in board.columns if c.label == "MF↑ [lk]")
    assert rep["CosHand"].values[cot.key] == _reported_value("table1", "CosHand", "mf")
    assert lk.key not in rep["CosHand"].values
    meas = board.blocks[1].rows[0]
    assert meas.values[lk.key] == 0.5 and cot.key not in meas.values


def test_mixed_protocols_are_refused(runs, tmp_path):
    other = tmp_path / "other"
    evaluate(method="static", dataset="synthetic", metrics=["ssim"], out=other,
             dataset_options={**DS, "n_clips": 2}, progress=False)
    with pytest.raises(IncompatibleResults, match="different dataset manifests"):
        leaderboard([runs["static"], other], "table1")
    a, b = load_results(runs["static"]), copy.deepcopy(load_results(runs["oracle"]))
    b["n_evaluated"] -= 1
    with pytest.raises(IncompatibleResults, match="numbers of evaluated clips"):
        build([a, b], "table1")


def test_bad_reported_csv_is_one_clear_error(runs, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("table,method,metric,value\ntable1,x,fvd,1\n")
    with pytest.raises(InputError, match="lacks column"):
        leaderboard([runs["static"]], reported=bad)
    bad.write_text("table,method,venue,metric,value,backend,source,note\ntable1,x,,fvd,oops,,src,\n")
    with pytest.raises(InputError, match="not a number"):
        leaderboard([runs["static"]], reported=bad)
    with pytest.raises(Exception, match="unknown format"):
        render(build([], "table1"), "pdf")


def test_measured_only_board(runs):
    board = build([load_results(runs["oracle"]), load_results(runs["static"])], "table1", include_reported=False)
    assert len(board.blocks) == 1 and all(r.kind == "measured" for r in board.blocks[0].rows)
    assert [c.label for c in board.columns] == ["SSIM↑", "PSNR↑"]  # one backend each: no split headers


def test_fig7_plot_draws_series_and_dashed_baseline(tmp_path):
    from PIL import Image

    from pam_bench.report.plots import figure, save_png

    x = [25, 50, 75, 100]
    y = {"all conds": [6.1, 5.5, None, 5.3], "seg only": [6.4, 5.9, 5.6, 5.5]}
    panels = [{"x": x, "y": y, "baseline": 5.5, "ylabel": "PA-MPJPE (mm)"},
              {"x": x, "y": [0.75, 0.80, 0.798, 0.8025], "baseline": 0.7953, "ylabel": "F@5"}]
    fig = figure(panels)
    ax = fig.axes[0]
    dashed = [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"]
    assert len(dashed) == 1 and set(dashed[0].get_ydata()) == {5.5}
    solid = [ln for ln in ax.get_lines() if ln.get_linestyle() == "-"]
    assert [ln.get_label() for ln in solid] == list(y)
    assert np.isnan(solid[0].get_ydata()[2])  # a missing value is a gap, not a zero
    assert list(solid[1].get_xdata()) == x
    png = save_png(panels, tmp_path / "fig7.png", dpi=50)
    with Image.open(png) as im:
        assert im.format == "PNG" and im.size[0] > im.size[1] > 0


def test_reported_only_backend_columns_are_hidden_by_default(runs):
    res = load_results(runs["static"])
    board = build([res], "table1")
    labels = [c.label for c in board.columns]
    assert labels == ["SSIM↑", "PSNR↑"]  # the only metrics measured; FVD etc. were reported with other backends
    assert any(f.startswith("Hidden:") and "FVD↓ [stylegan-v-torchscript]" in f for f in board.footnotes)
    assert len(build([res], "table1", all_columns=True).columns) > 2
    reported_only = build([], "table1")  # nothing measured: nothing is hidden
    assert "FVD↓" in [c.label for c in reported_only.columns]


def test_labels_name_rows_and_unknown_runs_are_refused(runs, tmp_path):
    text = leaderboard([runs["static"], runs["oracle"]], "table1", "md", labels={str(runs["static"]): "Held"})
    assert "| Held | measured |" in text and "| oracle | measured |" in text
    with pytest.raises(InputError, match="--label"):
        leaderboard([runs["static"]], "table1", "md", labels={str(tmp_path / "nope"): "X"})


def test_small_n_fvd_is_marked_and_never_bold():
    import copy as _copy

    base = {"schema_version": 1, "method": {"name": "a"}, "dataset": {"name": "d", "manifest_hash": "h"},
            "n_expected": 2, "n_evaluated": 2, "_path": "/x/a/results.json",
            "metrics": {"fvd": {"value": 100.0, "direction": "lower", "backend": "i3d-k400-port", "version": "1",
                                "n": 2, "ci95": None}}}
    other = _copy.deepcopy(base)
    other["method"]["name"], other["_path"] = "b", "/x/b/results.json"
    other["metrics"]["fvd"]["value"] = 200.0
    board = build([base, other], "table1", include_reported=False)
    meas = board.blocks[0]
    assert not meas.best  # 2 clips < the paper's 1,600: no winner
    md = render(board, "md")
    rows = [x for x in md.splitlines() if x.startswith(("| a |", "| b |"))]
    assert len(rows) == 2 and "100.00†" in rows[0] and "200.00†" in rows[1] and "**" not in "".join(rows)
    assert any("†" in f and "1,600" in f for f in board.footnotes)
    rows = list(csv.DictReader(io.StringIO(render(board, "csv"))))
    assert [r["small_n"] for r in rows] == ["FVD↓", "FVD↓"] and rows[0]["FVD↓"] == "100.0"
    for r in (base, other):
        r["metrics"]["fvd"]["n"] = 1600
    assert build([base, other], "table1", include_reported=False).blocks[0].best
