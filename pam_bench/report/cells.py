"""How a leaderboard's cells print, shared by the Markdown, CSV, LaTeX and HTML renderers.

The arrows, and the label/value/tail cells of a row; metric labels and decimals are facts of the metric
classes (pam_bench.metrics.facts).
Measured values print with the paper's decimals plus their mark (``†``: small N, pam_bench.report.smalln); reported
values print exactly as the paper printed them.
"""
from __future__ import annotations

from ..metrics import facts

ARROWS = {"lower": "↓", "higher": "↑"}

_TEX_ESCAPE = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
               "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}",
               "↓": r"$\downarrow$", "↑": r"$\uparrow$", "–": "--", "’": "'", "±": r"$\pm$"}


def tex_escape(s: str) -> str:
    return "".join(_TEX_ESCAPE.get(ch, ch) for ch in s)


def fmt_value(row, c) -> str:
    """A row's value in column ``c`` (a leaderboard Row and Column): '–' when absent, never 0."""
    if c.key not in row.values:
        return "–"
    if c.key in row.text:  # as the paper printed it, or mean ± std over seeds
        return row.text[c.key] + row.marks.get(c.key, "")
    return f"{row.values[c.key]:.{facts.decimals(c.metric)}f}" + row.marks.get(c.key, "")


def label_headers(lay) -> list[str]:
    return [lay.label_header] + (["Venue"] if lay.venue else [])


def label_cells(lay, row) -> list[str]:
    name = row.label + (" (reported)" if row.kind == "reported" else "")
    return [name] + ([row.venue or "–"] if lay.venue else [])


def tail_headers(lay) -> list[str]:
    return (["Resolution"] if lay.resolution else [])


def tail_cells(lay, row) -> list[str]:
    return ([row.resolution or "–"] if lay.resolution else [])
