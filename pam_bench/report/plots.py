"""Fig. 7-style plots (matplotlib Agg, PNG): a metric against the share of real training data, with the
real-data-only baseline as a dashed horizontal line. Used by the downstream (SimpleHand) study.

A *panel* is ``{"x": [25, 50, 75, 100], "y": [...] or {"series label": [...], ...}, "baseline": float|None,
"ylabel": str, "title": str}``. Missing values (None/NaN) are gaps in the line, never zeros.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import ArgumentError

BASELINE_LABEL = "100% real data only"


def _as_float(values: Sequence[Any]) -> np.ndarray:
    return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)


def draw_series(ax, x: Sequence[float], y: Sequence[Any] | Mapping[str, Sequence[Any]], baseline: float | None = None,
                xlabel: str = "real data (%)", ylabel: str = "", title: str = "",
                baseline_label: str = BASELINE_LABEL) -> None:
    """One panel on a matplotlib Axes: solid lines with markers per series, a dashed baseline."""
    xs = _as_float(x)
    series = dict(y) if isinstance(y, Mapping) else {"": y}
    for label, ys in series.items():
        ys = _as_float(ys)
        if ys.shape != xs.shape:
            raise ArgumentError(f"series {label!r} has {ys.size} values for {xs.size} x positions")
        ax.plot(xs, ys, marker="o", linestyle="-", label=label or None)
    if baseline is not None:
        ax.axhline(float(baseline), color="gray", linestyle="--", linewidth=1.2, label=baseline_label)
    ax.set_xticks(xs)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if any(series) or baseline is not None:
        ax.legend(fontsize=8)


def figure(panels: Sequence[Mapping[str, Any]], ncols: int | None = None, width: float = 3.6, height: float = 3.0):
    """A matplotlib Figure (Agg canvas, no pyplot state) with one panel per entry."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not panels:
        raise ArgumentError("no panels to plot")
    n = len(panels)
    ncols = ncols or min(n, 4)
    nrows = int(np.ceil(n / ncols))
    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, p in zip(axes, panels):
        draw_series(ax, p["x"], p["y"], p.get("baseline"), p.get("xlabel", "real data (%)"), p.get("ylabel", ""),
                    p.get("title", ""), p.get("baseline_label", BASELINE_LABEL))
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig


def save_png(panels: Sequence[Mapping[str, Any]], out: str | Path, dpi: int = 150, **kw) -> Path:
    """Write the panels as a PNG (atomic) and return its path."""
    import io

    from ..store import atomic_write_bytes

    fig = figure(panels, **kw)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    atomic_write_bytes(Path(out), buf.getvalue())
    return Path(out)
