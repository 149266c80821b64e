"""An interval for a whole-set statistic (a Fréchet distance) by resampling clips.

Fréchet distances estimated from finite samples are biased upwards, so a *percentile* bootstrap
interval (the quantiles of the replicates) sits above the estimate and can miss it entirely. The
*basic* (pivotal) bootstrap reflects the replicates around the estimate instead:
``[2 d - q(1 - a/2), 2 d - q(a/2)]`` where ``q`` are quantiles of the replicate distances. It
estimates the bias from the replicates (``mean(d*) - d``) and removes it, so the interval is centred
on a bias-corrected value and always contains ``d`` whenever the replicates straddle their median
(the lower end is clipped at 0, a distance's floor).

Resampling is paired and by clip: a drawn clip brings all its rows (e.g. FVMD's segments) on both the
reference and the generated side. The rule is named in the result (``method``), so a later, better
rule can replace this function without changing its callers.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from ..errors import ArgumentError

METHOD = "basic (pivotal) bootstrap over clips, paired"


def resampled_interval(rows: Sequence[tuple[np.ndarray | None, np.ndarray | None]],
                       distance: Callable[[np.ndarray, np.ndarray], float], value: float, replicates: int,
                       seed: int = 0, level: float = 0.95) -> tuple[tuple[float, float] | None, str]:
    """(interval or None, method). ``rows[i] = (real rows [S_i, D] or None, generated rows or None)``;
    ``distance(real, gen)`` computes the statistic of stacked rows; ``value`` is the full-set estimate."""
    rng = np.random.default_rng(seed)
    n = len(rows)
    vals = []
    for _ in range(int(replicates)):
        counts = np.bincount(rng.integers(0, n, size=n), minlength=n)
        sides = []
        for j in (0, 1):
            parts = [np.repeat(r[j], c, axis=0) for r, c in zip(rows, counts) if c and r[j] is not None]
            sides.append(np.concatenate(parts) if parts else None)
        real, gen = sides
        if real is None or gen is None or real.shape[0] < 2 or gen.shape[0] < 2:
            continue
        vals.append(distance(real, gen))
    return bootstrap_interval(value, vals, "basic", level), METHOD


def bootstrap_interval(value: float, replicates, method: str = "basic",
                       level: float = 0.95) -> tuple[float, float] | None:
    """A bootstrap interval from replicate values: 'basic' (pivotal; the lower end clipped at 0, a
    distance's floor) or 'percentile' (kept for comparison; biased upwards for a Fréchet distance)."""
    r = np.asarray(replicates, dtype=np.float64)
    r = r[np.isfinite(r)]
    if r.size < 2:
        return None
    a = (1 - level) / 2
    lo, hi = float(np.quantile(r, a)), float(np.quantile(r, 1 - a))
    if method == "percentile":
        return lo, hi
    if method == "basic":
        return max(0.0, 2 * value - hi), max(0.0, 2 * value - lo)
    raise ArgumentError(f"interval method must be 'basic' or 'percentile', got {method!r}")
