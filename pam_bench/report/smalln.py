"""Small-N results made visible: FVD from fewer clips than the paper's is biased and not comparable.

FVD's Fréchet distance between two 400-d Gaussians is biased upward at small N (below 401 videos its
covariance is rank-deficient), so an FVD from 2 or 200 clips cannot stand beside the paper's 1,600-clip
values. Which metrics: those whose class declares ``n_dependent`` (:class:`pam_bench.metrics.base.Metric`).
Wherever a result is shown, such a value carries :data:`MARK`: ``evaluate`` prints a warning on the
console, every table cell gets the mark with a footnote, and the leaderboard never marks it best.
"""
from __future__ import annotations

from ..metrics import facts

#: Clips in the paper's evaluation (DexYCB s0 val: 1,600; the OAKINK2 curation is 1,600 too).
PAPER_N = 1600
MARK = "†"


def is_small(name: str, metric: dict, paper_n: int = PAPER_N) -> bool:
    """True for an N-dependent metric (its class's ``n_dependent``) measured on fewer clips than the paper's."""
    if metric.get("value") is None or not facts.n_dependent(name):
        return False
    n = metric.get("n")
    return n is None or int(n) < paper_n


def note(paper_n: int = PAPER_N) -> str:
    return (f"{MARK} FVD from fewer clips than the paper's {paper_n:,}: biased upward at small N (rank-deficient "
            "covariance below 401 videos); not comparable with the reported values and never marked best.")


def warnings_for(result: dict, paper_n: int = PAPER_N) -> list[str]:
    """Console warnings for one results dict: small-N metrics, and any warning a metric recorded."""
    out = []
    for name, m in result.get("metrics", {}).items():
        if is_small(name, m, paper_n):
            out.append(f"{name.upper()} from N={m.get('n')} clips (the paper uses {paper_n:,}) is biased at small N "
                       "and not comparable with the paper's values")
        w = (m.get("extras") or {}).get("warning")
        if w:
            out.append(f"{name}: {w}")
    return out
