"""Training mixtures of Table 4 and PAM's pose-accuracy filtering of generated videos.

- Real subsets are chosen **by video** (never by frame, so frames of one clip never straddle subsets):
  one seeded permutation of the real clip ids, and the p% subset is its first ``round(p * n)`` ids, so
  the 25% subset lies inside the 50% subset, and so on (the comparison adds data, it never swaps it).
- Filtering (PAM supplementary: "discard the bottom 25% of the generated videos based on pose
  accuracy"): each generated video has a score = the hand MPJPE (mm, lower is better) of a hand-pose
  backend on the generated frames against its GT joints. Videos are ranked from best to worst (a video
  with no score, e.g. no hand detected, counts as the worst; ties broken by id), and the worst
  ``n - ceil(n * (1 - drop_fraction))`` are dropped (n = 8, fraction 0.25 -> 2 dropped).
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from ..errors import ArgumentError

#: Table 4's real-data fractions for "All gen. + p% real data".
REAL_FRACTIONS = (0.25, 0.5, 0.75, 1.0)


@dataclass(frozen=True)
class Mixture:
    """One training set: ``real_fraction`` of the real clips (0 = none) plus, optionally, the generated set."""

    name: str
    label: str
    real_fraction: float
    generated: bool

    def to_json(self) -> dict:
        return {"name": self.name, "label": self.label, "real_fraction": self.real_fraction,
                "generated": self.generated}


def table4_mixtures(fractions: Sequence[float] = REAL_FRACTIONS, real_only_curve: bool = False) -> list[Mixture]:
    """Table 4's rows (all real; all generated; generated + p% real), plus p%-real-only rows on request."""
    rows = [Mixture("real-100", "All real data", 1.0, False), Mixture("gen", "All gen. data", 0.0, True)]
    for p in fractions:
        pct = int(round(100 * p))
        rows.append(Mixture(f"gen+real-{pct}", f"All gen. + {pct}% real data", float(p), True))
    if real_only_curve:
        for p in fractions:
            pct = int(round(100 * p))
            if pct != 100:
                rows.append(Mixture(f"real-{pct}", f"{pct}% real data only", float(p), False))
    return rows


def real_subset(ids: Sequence[str], fraction: float, seed: int) -> list[str]:
    """The first ``round(fraction * n)`` ids of a seeded permutation (nested across fractions), in split order."""
    if not 0.0 <= fraction <= 1.0:
        raise ArgumentError(f"real fraction must be in [0, 1], got {fraction}")
    ids = list(ids)
    order = np.random.default_rng([int(seed), zlib.crc32(b"pam-bench real subset")]).permutation(len(ids))
    keep = set(order[: int(round(fraction * len(ids)))].tolist())
    return [v for i, v in enumerate(ids) if i in keep]


def rank_by_accuracy(scores: Mapping[str, float | None]) -> list[str]:
    """Ids from the most to the least accurate (lower score is better; None is the worst; ties by id)."""
    def key(v: str):
        s = scores[v]
        bad = s is None or not math.isfinite(float(s))
        return (bad, float(s) if not bad else 0.0, v)

    return sorted(scores, key=key)


def filter_worst(scores: Mapping[str, float | None], drop_fraction: float = 0.25) -> tuple[list[str], list[str]]:
    """(kept, dropped) ids: drop the worst ``drop_fraction`` by pose accuracy (see module doc)."""
    if not 0.0 <= drop_fraction < 1.0:
        raise ArgumentError(f"drop fraction must be in [0, 1), got {drop_fraction}")
    ranked = rank_by_accuracy(scores)
    n_keep = math.ceil(len(ranked) * (1.0 - drop_fraction) - 1e-9)
    return ranked[:n_keep], ranked[n_keep:]
