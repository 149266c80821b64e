"""Leaderboards in the PAM paper's table layouts, with the paper's reported rows beside measured ones.

A board has *blocks* of rows, one per evaluation protocol: the paper's reported rows (from
``pam_bench/reported.csv``, package data, cited in ``leaderboards/README.md``) form one block, the measured results (results.json files) another.
Numbers of different protocols are never ranked against each other: the best value of a column is
marked (bold in md/tex/html) within each block, by the metric's own direction.

Columns are keyed by (metric, backend, version) like :func:`pam_bench.results.column_key`. When a metric
appears with more than one backend (e.g. MF measured with ``lk`` and reported with ``cotracker3``), it is
split into one column per backend with the backend in the header ("MF↑ [lk]", "MF↑ [cotracker3]"). A
reported value whose backend the paper does not state (SSIM, PSNR) shares the column of the single
measured backend, and the footnotes say so.

Measured results in one board must share one protocol: the same dataset manifest hash and the same number
of evaluated clips; anything else is refused with :class:`~pam_bench.errors.IncompatibleResults`.

For publishing: ``labels`` (``--label RUN=NAME``) names measured rows; a backend column without any
measured value (a reported-only backend, e.g. FVD [stylegan-v-torchscript] beside measured i3d-k400-port)
is hidden when there are measured rows, and a footnote names it (``all_columns`` / ``--all-columns`` shows
it). FVD from fewer clips than the paper's carries a mark and is never bold (pam_bench.report.smalln). The LaTeX is
booktabs, one footnote letter per backend, ``table*`` when the table needs the page width, and scaled down
only when wider than the line.
"""
from __future__ import annotations

import csv
import importlib.resources
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from .cells import ARROWS, tex_escape  # noqa: F401 (re-exported)
from .cells import fmt_value as _fmt_value
from .cells import label_cells as _label_cells
from .cells import label_headers as _label_headers
from .cells import tail_cells as _tail_cells
from .cells import tail_headers as _tail_headers
from ..errors import FlagError, IncompatibleResults, InputError, PamBenchError
from ..metrics import facts
from ..results import column_key, whole_frame_mark
from .smalln import MARK, PAPER_N, is_small
from .smalln import note as small_n_note

#: The default reported-numbers file (committed in the repository).
REPORTED_CSV = Path(str(importlib.resources.files("pam_bench") / "reported.csv"))  # package data
REPORTED_COLUMNS = ("table", "method", "venue", "metric", "value", "backend", "source", "note")



@dataclass(frozen=True)
class Layout:
    """One of the paper's tables: which metrics, which label columns, and the reported rows' protocol."""

    key: str
    title: str
    label_header: str
    metrics: tuple[str, ...]
    venue: bool = False
    resolution: bool = False
    reported_protocol: str = ""
    paper_n: int = PAPER_N  # clips behind the reported values (small-N marks below it)


LAYOUTS: dict[str, Layout] = {
    "table1": Layout("table1", "Table 1. Quantitative comparison on DexYCB", "Method",
                     ("fvd", "mf", "lpips", "ssim", "psnr", "mpjpe"), venue=True, resolution=True,
                     reported_protocol="reported: PAM paper Table 1, DexYCB s0 val, 1,600 clips of 49 frames"),
    "table2": Layout("table2", "Table 2. Quantitative results on OAKINK2", "Method",
                     ("fvd", "mf", "lpips", "ssim", "psnr", "mpjpe"),
                     reported_protocol="reported: PAM paper Table 2, OAKINK2 49-frame clips"),
    "table3": Layout("table3", "Table 3. Ablation on input conditions (DexYCB)", "Conditions",
                     ("fvd", "mf", "lpips", "ssim", "psnr", "mpjpe"),
                     reported_protocol="reported: PAM paper Table 3, DexYCB s0 val, 1,600 clips"),
    "supp2": Layout("supp2", "Supplementary Table 2. Masking probability and input-condition quality (DexYCB)",
                    "Settings", ("fvd", "psnr", "mpjpe"),
                    reported_protocol="reported: PAM supplementary Table 2, DexYCB s0 val (as Table 1); noise "
                                      "scale not stated"),
    "supp3": Layout("supp3", "Supplementary Table 3. Ablation on the Stage-I method", "Method (Stage-I)",
                    ("fvd", "mf", "mpjpe"),
                    reported_protocol="reported: PAM supplementary Table 3; dataset and clip count not stated"),
    "supp6": Layout("supp6", "Supplementary Table 6. Ablation on the I2V backbone (DexYCB)", "Encoder Type",
                    ("fvd", "psnr", "mpjpe"), venue=True,
                    reported_protocol="reported: PAM supplementary Table 6, DexYCB s0 val, 1,600 clips"),
}


@dataclass(frozen=True)
class Column:
    metric: str
    backend: str
    version: str
    direction: str
    label: str = ""

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.metric, self.backend, self.version)


@dataclass
class Row:
    label: str
    kind: str  # "reported" | "measured"
    venue: str = ""
    resolution: str = ""
    values: dict[tuple, float] = field(default_factory=dict)  # column key -> value
    text: dict[tuple, str] = field(default_factory=dict)  # column key -> as printed (reported rows)
    ci95: dict[tuple, tuple[float, float]] = field(default_factory=dict)
    source: str = ""
    note: str = ""
    path: str = ""
    n: str = ""
    marks: dict[tuple, str] = field(default_factory=dict)  # column key -> mark (" [whole-frame]", "†")
    small_n: set[tuple] = field(default_factory=set)  # column keys from fewer clips than the paper's


@dataclass
class Block:
    title: str
    rows: list[Row]
    best: set[tuple[int, tuple]] = field(default_factory=set)  # (row index, column key)


@dataclass
class Board:
    layout: Layout
    columns: list[Column]
    blocks: list[Block]
    footnotes: list[str]


# --- reported numbers ------------------------------------------------------------------------------

def load_reported(path: str | Path | None = None, table: str | None = None) -> list[dict[str, str]]:
    """Rows of reported.csv (optionally of one table), validated: a bad file is one clear error."""
    p = Path(path) if path else REPORTED_CSV
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(p, "no such file (the reported-numbers CSV)") from None
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in REPORTED_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise InputError(p, f"reported CSV lacks column(s) {missing}; expected {list(REPORTED_COLUMNS)}")
    rows = []
    for i, r in enumerate(reader, start=2):
        if facts.metric_class(r["metric"]) is not None:
            try:
                float(r["value"])
            except ValueError:
                raise InputError(p, f"line {i}: value {r['value']!r} of {r['metric']} is not a number") from None
        if table is None or r["table"] == table:
            rows.append(r)
    return rows


def _reported_rows(layout: Layout, reported: list[dict[str, str]]) -> list[Row]:
    by_method: dict[str, Row] = {}
    for r in reported:
        row = by_method.get(r["method"])
        if row is None:
            row = by_method[r["method"]] = Row(r["method"], "reported", venue=r["venue"], source=r["source"],
                                               note=r["note"])
        if r["metric"] == "resolution":
            row.resolution = r["value"]
        elif r["metric"] in layout.metrics:
            k = (r["metric"], r["backend"], "reported")
            row.values[k] = float(r["value"])
            row.text[k] = r["value"]
    return list(by_method.values())


# --- measured results --------------------------------------------------------------------------------

def _check_one_protocol(results: Sequence[dict]) -> None:
    first = results[0]
    for r in results[1:]:
        a, b = first["dataset"], r["dataset"]
        if a.get("manifest_hash") != b.get("manifest_hash"):
            raise IncompatibleResults(
                f"cannot put {first.get('_path', 'results')} and {r.get('_path', 'results')} in one table: they "
                f"were measured on different dataset manifests ({a.get('name')}/{a.get('split')} "
                f"{str(a.get('manifest_hash'))[:12]} vs {b.get('name')}/{b.get('split')} "
                f"{str(b.get('manifest_hash'))[:12]}); make one table per dataset")
        if (first.get("n_evaluated"), first.get("n_expected")) != (r.get("n_evaluated"), r.get("n_expected")):
            raise IncompatibleResults(
                f"cannot put {first.get('_path', 'results')} ({first.get('n_evaluated')}/{first.get('n_expected')} "
                f"clips) and {r.get('_path', 'results')} ({r.get('n_evaluated')}/{r.get('n_expected')} clips) in "
                "one table: different numbers of evaluated clips; finish (rerun to resume) the incomplete run")


def method_label(result: dict) -> str:
    """A row label: the method name plus the options that distinguish variants (conditions, checkpoint)."""
    m = result["method"]
    label = str(m.get("name", "?"))
    cond = m.get("conditions")
    if cond:
        label += f" w/ {'+'.join(cond) if isinstance(cond, (list, tuple)) else cond}"
    if isinstance(m.get("stage1"), dict):  # supp3: the Stage-I source (pam.stage1_sources)
        label += f", Stage I {m['stage1'].get('source')}"
    noise = m.get("condition_noise")  # supp2: clean vs noisy conditions (pam_bench.noise)
    label += f" + noisy cond (σ={noise['sigma']:g}/255)" if isinstance(noise, dict) else ""
    variant = m.get("variant")  # e.g. pam: "protocol=pam-bench, one shared prompt" (pam.generator)
    label += f" [{variant}]" if isinstance(variant, str) and variant else ""
    return label


def _measured_rows(layout: Layout, results: Sequence[dict], labels: dict[str, str] | None = None) -> list[Row]:
    from ..seeds import format_cell

    rows = []
    named = _match_labels(results, labels or {})
    for r in results:
        proto = r["dataset"].get("protocol") or {}
        res = f"{proto['height']}x{proto['width']}" if "height" in proto and "width" in proto else ""
        seeds = f" ({len(r['seeds'])} seeds)" if r.get("seeds") else ""
        row = Row(method_label(r) + seeds, "measured", venue="measured", resolution=res, path=r.get("_path", ""),
                  n=f"{r.get('n_evaluated')}/{r.get('n_expected')}")
        for name, m in r["metrics"].items():
            if name not in layout.metrics or m.get("value") is None:
                continue
            k = column_key(name, m)
            row.values[k] = float(m["value"])
            if format_cell(m, facts.decimals(name)):  # aggregated over seeds: mean ± std
                row.text[k] = format_cell(m, facts.decimals(name))
            if whole_frame_mark(name, m):  # csv keeps bare numbers, so its note column carries the mark
                row.marks[k] = whole_frame_mark(name, m)
                row.note = "; ".join(x for x in (row.note, f"{facts.label(name)}{row.marks[k]}") if x)
            if is_small(name, m, layout.paper_n):
                row.small_n.add(k)
                row.marks[k] = row.marks.get(k, "") + MARK
            if m.get("ci95"):
                row.ci95[k] = (float(m["ci95"][0]), float(m["ci95"][1]))
        rows.append(row)
    auto = [x.label for x in rows]
    for x in rows:  # same method twice (e.g. two checkpoints): disambiguate by the run folder
        if auto.count(x.label) > 1:
            x.label += f" ({Path(x.path).parent.name})"
    for x in rows:
        x.label = named.get(x.path, x.label)
    return rows


def parse_labels(pairs: Iterable[str]) -> dict[str, str]:
    """``--label RUN=NAME`` pairs (RUN: the run folder or results.json as given on the command line)."""
    out = {}
    for p in pairs:
        run, sep, name = p.partition("=")
        if not sep or not run.strip() or not name.strip():
            raise FlagError("--label", f"{p!r} must look like RUN=NAME (RUN: a run folder given as RESULTS)")
        out[run.strip()] = name.strip()
    return out


def _match_labels(results: Sequence[dict], labels: dict[str, str]) -> dict[str, str]:
    """results.json path -> row name; a RUN that names none of the results is a one-line error."""
    def keys(r: dict) -> set[Path]:
        p = Path(r.get("_path", "")).resolve()
        return {p, p.parent}

    out = {}
    for run, name in labels.items():
        target = Path(run).resolve()
        hits = [r for r in results if target in keys(r)]
        if not hits:
            raise FlagError("--label", f"{run!r} is none of the RESULTS given (use the run folder or results.json)")
        for r in hits:
            out[r.get("_path", "")] = name
    return out


def _directions(results: Sequence[dict]) -> dict[str, str]:
    d = {n: facts.direction(n) for n in {n for lay in LAYOUTS.values() for n in lay.metrics}}
    for r in results:
        for name, m in r["metrics"].items():
            d.setdefault(name, m["direction"])
            if d[name] != m["direction"]:
                raise IncompatibleResults(f"metric '{name}' has direction {m['direction']} in "
                                          f"{r.get('_path')} but {d[name]} elsewhere")
    return d


def _columns(layout: Layout, measured: list[Row], reported: list[Row], directions: dict[str, str],
             footnotes: list[str]) -> list[Column]:
    cols: list[Column] = []
    for name in layout.metrics:
        mkeys = sorted({k for r in measured for k in r.values if k[0] == name})
        rkeys = sorted({k for r in reported for k in r.values if k[0] == name})
        keys = list(mkeys)
        for k in rkeys:
            if k[1] == "" and len(mkeys) == 1:  # the paper does not name this metric's implementation
                for r in reported:
                    if k in r.values:
                        r.values[mkeys[0]] = r.values.pop(k)
                        r.text[mkeys[0]] = r.text.pop(k)
                footnotes.append(f"{facts.label(name)}: measured with {mkeys[0][1]} "
                                 f"(v{mkeys[0][2]}); the paper does not state its implementation.")
            else:
                keys.append(k)
        split = len(keys) > 1
        for k in keys:
            label = f"{facts.label(name)}{ARROWS[directions[name]]}"
            if split:
                tag = k[1] or "unstated"
                if sum(1 for j in keys if j[1] == k[1]) > 1:
                    tag += f" v{k[2]}"
                label += f" [{tag}]"
            cols.append(Column(name, k[1], k[2], directions[name], label))
    return cols


def _mark_best(block: Block, columns: list[Column]) -> None:
    for c in columns:
        vals = [(i, r.values[c.key]) for i, r in enumerate(block.rows)
                if c.key in r.values and math.isfinite(r.values[c.key]) and c.key not in r.small_n]
        if len(vals) < 2:
            continue
        best = (min if c.direction == "lower" else max)(v for _, v in vals)
        block.best |= {(i, c.key) for i, v in vals if v == best}


def _hide_empty(cols: list[Column], meas: list[Row], footnotes: list[str]) -> list[Column]:
    """Drop backend columns that no measured row fills (only when there are measured rows)."""
    if not meas:
        return cols
    keep = [c for c in cols if any(c.key in r.values for r in meas)]
    hidden = [c.label if "[" in c.label else f"{c.label} [{c.backend or 'unstated'}]" for c in cols if c not in keep]
    if hidden:
        footnotes.append(f"Hidden: {', '.join(hidden)} (reported with a backend not measured here; "
                         "--all-columns shows them).")
    return keep


def build(results: Sequence[dict], layout: str = "table1", reported: str | Path | None = None,
          include_reported: bool = True, labels: dict[str, str] | None = None,
          all_columns: bool = False) -> Board:
    """A board for ``layout`` from loaded results (``results.load_results``) and the reported CSV."""
    if layout not in LAYOUTS:
        raise PamBenchError(f"unknown layout '{layout}'; known: {', '.join(LAYOUTS)}")
    lay = LAYOUTS[layout]
    results = list(results)
    if results:
        _check_one_protocol(results)
    rep = _reported_rows(lay, load_reported(reported, lay.key)) if include_reported else []
    meas = _measured_rows(lay, results, labels)
    footnotes: list[str] = []
    cols = _columns(lay, meas, rep, _directions(results), footnotes)
    if not all_columns:
        cols = _hide_empty(cols, meas, footnotes)
    blocks = []
    if rep:
        sources = sorted({r.source for r in rep})
        sources = [s for s in sources if not any(o != s and o.startswith(s) for o in sources)]
        blocks.append(Block(lay.reported_protocol, rep))
        footnotes.insert(0, "Reported rows are copied from: " + "; ".join(sources) +
                         " (pam_bench/reported.csv, cited in leaderboards/README.md).")
    if meas:
        d = results[0]["dataset"]
        blocks.append(Block(f"measured: {d.get('name')}/{d.get('split')}, {results[0].get('n_evaluated')} clips, "
                            f"manifest {str(d.get('manifest_hash'))[:12]}", meas))
        skipped = sorted({n for r in results for n in r["metrics"] if n not in lay.metrics})
        if skipped:
            footnotes.append(f"Measured metrics not in this layout: {', '.join(skipped)}.")
    for b in blocks:
        _mark_best(b, cols)
    if any(r.small_n for r in meas):
        footnotes.append(small_n_note(lay.paper_n))
    footnotes.append("Best value per column within each block (reported / measured) in bold; the blocks use "
                     "different protocols and are not ranked against each other.")
    bk = "; ".join(f"{c.label}: {c.backend or 'unstated'}" + ("" if c.version == "reported" else f"@{c.version}")
                   for c in cols)
    footnotes.append(f"Backends: {bk}.")
    return Board(lay, cols, blocks, footnotes)


# --- rendering ------------------------------------------------------------------------------------------

def to_markdown(board: Board) -> str:
    lay = board.layout
    headers = _label_headers(lay) + [c.label for c in board.columns] + _tail_headers(lay)
    lines = [f"**{lay.title}**", "", "| " + " | ".join(headers) + " |",
             "|" + "|".join([":---"] * len(_label_headers(lay)) + ["---:"] * len(board.columns)
                            + [":---:"] * len(_tail_headers(lay))) + "|"]
    for b in board.blocks:
        lines.append("| *" + b.title + "* |" + " |" * (len(headers) - 1))
        for i, r in enumerate(b.rows):
            cells = [(f"**{_fmt_value(r, c)}**" if (i, c.key) in b.best else _fmt_value(r, c))
                     for c in board.columns]
            lines.append("| " + " | ".join(_label_cells(lay, r) + cells + _tail_cells(lay, r)) + " |")
    lines.append("")
    lines += [f"- {f}" for f in board.footnotes]
    return "\n".join(lines) + "\n"


def to_csv(board: Board) -> str:
    """Wide CSV: one line per row, full-precision values, the block, the source and the best columns."""
    lay = board.layout
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["block", "kind", lay.label_header.lower().replace(" ", "_"), "venue"]
               + [c.label for c in board.columns]
               + ["resolution", "n", "source", "note", "best", "small_n"])
    for b in board.blocks:
        for i, r in enumerate(b.rows):
            vals = [(r.text.get(c.key) or repr(r.values[c.key])) if c.key in r.values else "" for c in board.columns]
            best = ";".join(c.label for c in board.columns if (i, c.key) in b.best)
            small = ";".join(c.label for c in board.columns if c.key in r.small_n)  # pam_bench.report.smalln
            w.writerow([b.title, r.kind, r.label, r.venue] + vals
                       + [r.resolution, r.n, r.source or r.path, r.note, best, small])
    return buf.getvalue()


FORMATS = {"md": to_markdown, "csv": to_csv}
TEX = "tex"  # rendered by pam_bench.report.latex (which needs only pam_bench.report.cells)


def render(board: Board, fmt: str = "md") -> str:
    if fmt == TEX:
        from .latex import to_latex

        return to_latex(board)
    if fmt not in FORMATS:
        raise PamBenchError(f"unknown format '{fmt}'; known: {', '.join([*FORMATS, TEX])} (html: pam_bench.report.html)")
    return FORMATS[fmt](board)


def leaderboard(paths: Iterable[str | Path], layout: str = "table1", fmt: str = "md",
                reported: str | Path | None = None, include_reported: bool = True,
                labels: dict[str, str] | None = None, all_columns: bool = False) -> str:
    """Load results (files or run folders) and render a board as md, tex or csv."""
    from ..results import load_results

    return render(build([load_results(p) for p in paths], layout, reported, include_reported, labels, all_columns),
                  fmt)


def board_rows(board: Board) -> list[dict[str, Any]]:
    """Flat rows (for the HTML page and for tests): label, kind, block, values by column label, best flags."""
    out = []
    for b in board.blocks:
        for i, r in enumerate(b.rows):
            out.append({"label": r.label, "kind": r.kind, "block": b.title, "venue": r.venue,
                        "resolution": r.resolution, "path": r.path, "n": r.n, "source": r.source,
                        "values": {c.label: r.values.get(c.key) for c in board.columns},
                        "text": {c.label: _fmt_value(r, c) for c in board.columns},
                        "best": [c.label for c in board.columns if (i, c.key) in b.best]})
    return out
