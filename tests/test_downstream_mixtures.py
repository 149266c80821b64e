"""Real subsets, PAM's filtering, and hand crops."""
from __future__ import annotations

import math

import numpy as np
import pytest

from pam_bench.downstream import mixtures as MX


def test_real_subsets_are_by_video_deterministic_and_nested():
    ids = [f"clip_{i:03d}" for i in range(40)]
    subs = {p: MX.real_subset(ids, p, seed=7) for p in (0.25, 0.5, 0.75, 1.0)}
    assert [len(subs[p]) for p in (0.25, 0.5, 0.75, 1.0)] == [10, 20, 30, 40]
    assert subs[1.0] == ids
    assert set(subs[0.25]) <= set(subs[0.5]) <= set(subs[0.75])
    assert subs[0.5] == MX.real_subset(ids, 0.5, seed=7)  # deterministic
    assert subs[0.5] != MX.real_subset(ids, 0.5, seed=8)  # seeded
    assert subs[0.5] == [v for v in ids if v in set(subs[0.5])]  # split order kept
    assert MX.real_subset(ids, 0.0, 7) == []


@pytest.mark.parametrize("n", [4, 8, 10, 13, 40])
def test_filter_drops_exactly_the_worst_quarter(n):
    rng = np.random.default_rng(n)
    scores = {f"g{i:02d}": float(s) for i, s in enumerate(rng.uniform(5, 60, n))}
    kept, dropped = MX.filter_worst(scores, 0.25)
    n_drop = n - math.ceil(0.75 * n)
    assert len(dropped) == n_drop and len(kept) == n - n_drop
    worst = sorted(scores, key=scores.get)[n - n_drop:]  # highest MPJPE = least accurate
    assert set(dropped) == set(worst)
    assert max(scores[v] for v in kept) <= min(scores[v] for v in dropped) if dropped else True


def test_filter_unscored_count_as_worst_and_fraction_zero_keeps_all():
    scores = {"a": 10.0, "b": None, "c": 30.0, "d": 20.0, "e": float("nan"), "f": 5.0, "g": 1.0, "h": 2.0}
    kept, dropped = MX.filter_worst(scores, 0.25)
    assert set(dropped) == {"b", "e"}
    assert kept[:3] == ["g", "h", "f"]
    kept0, dropped0 = MX.filter_worst(scores, 0.0)
    assert dropped0 == [] and len(kept0) == 8
    with pytest.raises(ValueError):
        MX.filter_worst(scores, 1.0)


def test_table4_rows():
    rows = MX.table4_mixtures()
    assert [r.label for r in rows] == ["All real data", "All gen. data", "All gen. + 25% real data",
                                       "All gen. + 50% real data", "All gen. + 75% real data",
                                       "All gen. + 100% real data"]
    extra = MX.table4_mixtures(real_only_curve=True)
    assert [r.name for r in extra[6:]] == ["real-25", "real-50", "real-75"]
    assert not any(r.generated for r in extra[6:])


def test_crops_keep_exact_gt():
    """Crop intrinsics reproject the 3D joints onto the crop's 2D joints; the crop shows the hand."""
    from pam_bench.datasets.synthetic import SyntheticHOI
    from pam_bench.downstream.frames import ROOT_INDEX, FrameSet, extract

    ds = SyntheticHOI(split="train", n_clips=1, frames=3, height=96, width=128)
    s = ds.load("synthetic_0000")
    fs = extract(s, s.video, size=48, stride=2, enlarge=1.5)
    assert len(fs) == 2 and list(fs.frame) == [0, 2]
    proj = np.einsum("nij,npj->npi", fs.K, fs.xyz.astype(np.float64))
    np.testing.assert_allclose(proj[..., :2] / proj[..., 2:], fs.uv, atol=1e-3)
    assert (fs.uv > 0).all() and (fs.uv < 48).all()
    assert fs.images.shape == (2, 48, 48, 3) and fs.images.std() > 5
    assert ROOT_INDEX == 9
    again = FrameSet.load(_roundtrip(fs))
    np.testing.assert_array_equal(again.images, fs.images)
    assert again.verts is None and again.clip_id == "synthetic_0000"


def _roundtrip(fs):
    import tempfile
    from pathlib import Path

    p = Path(tempfile.mkdtemp()) / "f.npz"
    p.write_bytes(fs.to_bytes())
    return p
