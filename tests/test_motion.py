"""Motion Fidelity and point trackers: closed forms, a brute-force reference, and the real DexYCB clip."""
from __future__ import annotations

import numpy as np
import pytest

from pam_bench.errors import MissingResource
from pam_bench.metrics.motion import (MotionFidelity, foreground_mask, motion_fidelity,
                                      sample_query_points, track_correlation, track_steps)
from pam_bench.metrics.trackers import CoTracker3Tracker, LucasKanadeTracker, get_tracker
from pam_bench.types import Sample, Video

from .conftest import SAMPLES, require_data

# ---------------------------------------------------------------------------------------------
# helpers


def _texture(h: int = 160, w: int = 200, seed: int = 0) -> np.ndarray:
    """A smooth random texture (gaussian-filtered noise), float64 in [0, 255]."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    img = gaussian_filter(rng.normal(size=(h, w)), 2.0)
    img = (img - img.min()) / (img.max() - img.min())
    return img * 255.0


def _to_video(gray_frames) -> Video:
    f = np.clip(np.round(np.stack(gray_frames)), 0, 255).astype(np.uint8)
    return Video(np.repeat(f[..., None], 3, axis=-1))


def _brute_mf(tr_a, vis_a, tr_b, vis_b, convention="mean", min_step=0.01, zero_rule="agree"):
    """Independent loop implementation of the documented rules (no vectorisation shared with the code)."""
    def steps(tr, vis):
        out = []
        for n in range(tr.shape[1]):
            s = []
            for k in range(1, tr.shape[0]):
                ok = (np.isfinite(tr[k, n]).all() and np.isfinite(tr[k - 1, n]).all()
                      and vis[k, n] and vis[k - 1, n])
                s.append(tr[k, n] - tr[k - 1, n] if ok else None)
            out.append(s)
        return out

    def corr(t, u):  # steps lost in either track count 0; steps lost in both are skipped
        num, count = 0.0, 0
        for a, b in zip(t, u):
            if a is None and b is None:
                continue
            if a is None or b is None:
                count += 1
                continue
            za, zb = np.hypot(*a) < min_step, np.hypot(*b) < min_step
            if za or zb:
                if zero_rule == "exclude":
                    continue
                num += 1.0 if (za and zb) else 0.0
            else:
                num += float(np.dot(a, b) / (np.hypot(*a) * np.hypot(*b)))
            count += 1
        return num / count if count else None

    sa, sb = steps(tr_a, vis_a), steps(tr_b, vis_b)
    has = [any(x is not None for x in t) for t in sa]
    A = [t for t, h in zip(sa, has) if h]  # GT tracks without a step: dropped
    # generated tracks are kept, unless the same query point has no GT step either
    B = [u for i, u in enumerate(sb) if len(sb) != len(sa) or has[i] or any(x is not None for x in u)]
    if not A:
        return None
    c = [[corr(t, u) for u in B] for t in A]
    ta = [max(x for x in row if x is not None) for row in c if any(x is not None for x in row)]
    tb = [max(c[i][j] for i in range(len(A)) if c[i][j] is not None) for j in range(len(B))
          if any(c[i][j] is not None for i in range(len(A)))]
    if not ta or not tb:
        return None
    a, b = np.mean(ta), np.mean(tb)
    return (a + b) / 2 if convention == "mean" else a + b


# ---------------------------------------------------------------------------------------------
# trackers


def test_lk_recovers_subpixel_translation():
    """LK on a textured image shifted by a known sub-pixel translation: within 0.1 px."""
    from scipy.ndimage import shift

    base = _texture()
    d = np.array([1.6, -2.3])  # (dx, dy) per frame
    frames = [shift(base, (k * d[1], k * d[0]), order=3, mode="reflect") for k in range(4)]
    video = _to_video(frames)
    ys, xs = np.mgrid[50:110:12, 60:140:12]
    q = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float64)
    tracks, vis = LucasKanadeTracker().track(video, q)
    assert tracks.shape == (4, q.shape[0], 2) and vis.shape == (4, q.shape[0])
    assert vis.all()
    expected = q[None] + np.arange(4)[:, None, None] * d[None, None]
    assert np.abs(tracks - expected).max() < 0.1


def test_lk_forward_backward_loses_points_for_good():
    """A frame of unrelated content breaks the forward-backward check; lost stays lost (NaN)."""
    base = _texture()
    noise = _texture(seed=7)
    video = _to_video([base, base, noise, base])
    q = np.array([[80.0, 80.0], [100.0, 60.0], [120.0, 90.0]])
    tracks, vis = LucasKanadeTracker().track(video, q)
    assert vis[:2].all()
    assert np.allclose(tracks[1], q)  # identical frames: no motion
    lost = ~vis[2]
    assert lost.any()
    assert not vis[3][lost].any()  # lost from then on, even though frame 3 equals frame 0
    assert np.isnan(tracks[2:, lost]).all()


def test_tracker_registry_and_query_checks():
    assert isinstance(get_tracker("lk"), LucasKanadeTracker)
    with pytest.raises(Exception, match="unknown point tracker"):
        get_tracker("raft")
    v = _to_video([_texture()] * 2)
    with pytest.raises(ValueError, match="inside"):
        LucasKanadeTracker().track(v, np.array([[500.0, 10.0]]))


def test_cotracker_missing_names_package_and_checkpoint(monkeypatch, tmp_path):
    monkeypatch.setenv("PAM_BENCH_HOME", str(tmp_path))
    t = CoTracker3Tracker()
    with pytest.raises(MissingResource) as e:
        t.check_ready()
    msg = str(e.value)
    import importlib.util

    if importlib.util.find_spec("cotracker") is None:
        assert "cotracker" in msg and "pip install" in msg and "scaled_offline.pth" in msg
    else:  # package present: the checkpoint is what is missing
        assert "scaled_offline.pth" in msg
    with pytest.raises(MissingResource):
        MotionFidelity(tracker="cotracker3").check_ready()


# ---------------------------------------------------------------------------------------------
# MF math (closed forms and a brute-force reference)


def test_zero_displacement_rules_never_nan():
    t = 5
    static = np.zeros((t, 1, 2))
    moving = np.cumsum(np.ones((t, 1, 2)), axis=0)
    vis = np.ones((t, 1), bool)
    assert motion_fidelity(static, vis, static, vis)["value"] == 1.0  # both zero -> 1
    r = motion_fidelity(static, vis, moving, vis)
    assert r["value"] == 0.0 and np.isfinite(r["term_gt_to_gen"])  # one zero -> 0
    assert motion_fidelity(moving, vis, -moving, vis)["value"] == pytest.approx(-1.0)  # opposite
    # half the steps zero on one side: mean over steps
    half = moving.copy()
    half[2:] = half[2]
    assert motion_fidelity(moving, vis, half, vis)["value"] == pytest.approx(0.5)


def test_convention_mean_vs_sum():
    rng = np.random.default_rng(3)
    a = np.cumsum(rng.normal(size=(9, 6, 2)), axis=0)
    b = np.cumsum(rng.normal(size=(9, 8, 2)), axis=0)
    va, vb = np.ones((9, 6), bool), np.ones((9, 8), bool)
    m = motion_fidelity(a, va, b, vb, "mean")
    s = motion_fidelity(a, va, b, vb, "sum")
    assert s["value"] == pytest.approx(m["term_gt_to_gen"] + m["term_gen_to_gt"])
    assert m["value"] == pytest.approx(s["value"] / 2)
    assert motion_fidelity(a, va, a, va, "sum")["value"] == pytest.approx(2.0)
    with pytest.raises(ValueError):
        motion_fidelity(a, va, b, vb, "max")


def test_mf_matches_brute_force_with_lost_tracks_and_zero_steps():
    rng = np.random.default_rng(11)
    t, n, m = 8, 7, 7
    a = np.cumsum(rng.normal(size=(t, n, 2)), axis=0)
    b = np.cumsum(rng.normal(size=(t, m, 2)), axis=0)
    a[3:, 0] = a[3, 0]  # a track that stops moving
    b[:, 1] = b[0, 1]  # a static generated track
    va, vb = np.ones((t, n), bool), np.ones((t, m), bool)
    va[4:, 2] = False  # lost after frame 3
    a[4:, 2] = np.nan
    va[1:, 3] = False  # lost on every step: dropped
    vb[6:, 0] = False
    vb[1:, 3] = False  # lost on every step, as its GT track 3: dropped
    vb[1:, 4] = False  # a generated track lost on every step while GT track 4 moves: kept, scores 0
    vb[2, 2] = False  # occluded for one frame (cotracker-style, position stays finite)
    for conv in ("mean", "sum"):
        for rule in ("agree", "exclude"):
            got = motion_fidelity(a, va, b, vb, conv, zero_rule=rule)
            assert got["value"] == pytest.approx(_brute_mf(a, va, b, vb, conv, zero_rule=rule), abs=1e-12)
    got = motion_fidelity(a, va, b, vb)
    assert got["n_tracks_gt"] == n - 1 and got["n_tracks_dropped_gt"] == 1
    assert got["n_tracks_gen"] == m - 1 and got["n_tracks_lost_gen"] == 1 and got["n_tracks_dropped_gen"] == 1


def test_paper_literal_zero_rule_excludes_0_over_0_steps():
    t = 5
    static = np.zeros((t, 1, 2))
    moving = np.cumsum(np.ones((t, 1, 2)), axis=0)
    vis = np.ones((t, 1), bool)
    r = motion_fidelity(static, vis, static, vis, zero_rule="exclude")  # every step 0/0: nothing to compare
    assert r["value"] is None and "0/0" in r["reason"]
    half = moving.copy()
    half[2:] = half[2]  # steps 3.. zero on one side: left out, so the remaining steps agree fully
    assert motion_fidelity(moving, vis, half, vis, zero_rule="exclude")["value"] == pytest.approx(1.0)
    assert motion_fidelity(moving, vis, half, vis)["value"] == pytest.approx(0.5)
    with pytest.raises(ValueError):
        motion_fidelity(moving, vis, half, vis, zero_rule="nan")


def _lose_after(tracks, vis, j):
    """The same tracks, lost (NaN, invisible) from frame j on, as LK reports a loss."""
    tr, vi = tracks.copy(), vis.copy()
    tr[j:] = np.nan
    vi[j:] = False
    return tr, vi


def test_losing_tracks_cannot_raise_mf_synthetic():
    """Generated tracks that follow the GT (noisy) and then are lost after j steps never score above the
    same tracks fully tracked, in either term; lost after 2 steps they score at most 2/F per pair."""
    rng = np.random.default_rng(4)
    t, n = 25, 30
    gt = np.cumsum(rng.normal(size=(t, n, 2)), axis=0)
    gen = gt + np.cumsum(rng.normal(scale=0.3, size=(t, n, 2)), axis=0)
    vis = np.ones((t, n), bool)
    full = motion_fidelity(gt, vis, gen, vis)
    for j in (1, 2, 3, 6, 12):
        lost = motion_fidelity(gt, vis, *_lose_after(gen, vis, j))
        assert lost["value"] <= full["value"] + 1e-12
        assert lost["term_gen_to_gt"] <= full["term_gen_to_gt"] + 1e-12
        assert lost["value"] <= (j - 1) / (t - 1) + 1e-12  # j frames = j-1 valid steps of t-1
    every = motion_fidelity(gt, vis, *_lose_after(gen, vis, 0))  # every generated track lost: 0, not None
    assert every["value"] == 0.0 and every["n_tracks_lost_gen"] == n


def test_all_tracks_lost_gives_none_with_reason():
    a = np.zeros((4, 3, 2))
    vis = np.zeros((4, 3), bool)
    vis[0] = True
    r = motion_fidelity(a, vis, a, np.ones((4, 3), bool))
    assert r["value"] is None and "no GT track" in r["reason"]


def test_corr_equals_printed_formula_when_all_steps_valid():
    """With every step valid, corr = (1/F) sum_k cos(v_k, v~_k) exactly as printed in the paper."""
    rng = np.random.default_rng(5)
    a = np.cumsum(rng.normal(size=(6, 3, 2)), axis=0)
    b = np.cumsum(rng.normal(size=(6, 4, 2)), axis=0)
    v, va = track_steps(a, np.ones((6, 3), bool))
    w, vb = track_steps(b, np.ones((6, 4), bool))
    c = track_correlation(v, va, w, vb)
    ref = np.array([[np.mean([np.dot(v[i, k], w[j, k]) / np.linalg.norm(v[i, k]) / np.linalg.norm(w[j, k])
                              for k in range(5)]) for j in range(4)] for i in range(3)])
    assert np.allclose(c, ref)


def test_query_points_seeded_and_inside_mask():
    mask = np.zeros((40, 50), bool)
    mask[10:20, 5:30] = True
    p1 = sample_query_points(mask, (40, 50), 100, 123)
    p2 = sample_query_points(mask, (40, 50), 100, 123)
    assert np.array_equal(p1, p2) and p1.shape == (100, 2)
    assert mask[p1[:, 1].astype(int), p1[:, 0].astype(int)].all()
    assert len({tuple(p) for p in p1}) == 100  # distinct
    assert not np.array_equal(p1, sample_query_points(mask, (40, 50), 100, 124))
    small = np.zeros((40, 50), bool)
    small[0, :7] = True
    assert sample_query_points(small, (40, 50), 100, 0).shape == (7, 2)


def test_foreground_source_priority():
    frames = np.zeros((2, 8, 10, 3), np.uint8)
    seg_video = frames.copy()
    seg_video[0, 2:4, 2:4] = (92, 0, 255)
    s = Sample("x", Video(frames), conditions={"seg": Video(seg_video)})
    mask, src = foreground_mask(s)
    assert src == "conditions.seg" and mask.sum() == 4
    labels = np.zeros((2, 8, 10), np.uint8)
    labels[0, 5, 5] = 255
    s.seg = labels
    mask, src = foreground_mask(s)
    assert src == "seg" and mask.sum() == 1
    s2 = Sample("z", Video(frames), conditions={"seg": Video(seg_video)}, meta={"seg_source": "seg-videos"})
    assert foreground_mask(s2)[1] == "seg-videos"
    mask, src = foreground_mask(Sample("y", Video(frames)))
    assert mask is None and src == "whole-frame"


# ---------------------------------------------------------------------------------------------
# real DexYCB clip (LK is fast: the whole module stays well under a minute)


@pytest.fixture(scope="module")
def dexycb_sample(dexycb_clip) -> Sample:
    """The first 49 frames stretched to 480x720 (PAM's clip protocol) + PAM's seg condition video."""
    from pam_bench.video import read_video, resize_frames

    seg_path = SAMPLES / "dexycb" / "val_seg_mask.mp4"
    require_data(seg_path)
    frames = resize_frames(dexycb_clip[:49], (480, 720))
    return Sample("dexycb-val", Video(frames, 15.0), conditions={"seg": read_video(seg_path)})


@pytest.fixture(scope="module")
def mf_values(dexycb_sample):
    frames = dexycb_sample.video.frames
    rng = np.random.default_rng(0)
    variants = {
        "same": frames,
        "reversed": frames[::-1],
        "static": np.repeat(frames[:1], len(frames), axis=0),
        "shuffled": frames[rng.permutation(len(frames))],
        "black_after_3": np.concatenate([frames[:4], np.zeros_like(frames[4:])]),
        "reversed_black_after_3": np.concatenate([frames[::-1][:4], np.zeros_like(frames[4:])]),
    }
    m = MotionFidelity()
    return {k: m.measure(dexycb_sample, Video(np.ascontiguousarray(v), 15.0)) for k, v in variants.items()}


def test_mf_identity_is_maximum(mf_values):
    same = mf_values["same"]
    assert same["value"] == pytest.approx(1.0, abs=1e-12)
    assert same["foreground"] == "conditions.seg" and same["n_points"] == 100
    assert same["n_tracks_used"] > 0 and same["convention"] == "mean"


@pytest.mark.parametrize("variant", ["reversed", "static", "shuffled"])
def test_mf_falls_for_corrupted_motion(mf_values, variant):
    r = mf_values[variant]
    assert r["value"] is not None and np.isfinite(r["value"])
    assert r["value"] < 0.9 * mf_values["same"]["value"]


def test_clip_going_black_scores_no_more_than_fully_tracked(mf_values):
    """The issue's case: every generated track is lost after frame 3 (it scored 0.545 under the old rule,
    above the reversed clip's 0.470). Now it is bounded by 3 valid steps of 48 per pair and stays below the
    same clip fully tracked (the GT itself, and the reversed clip)."""
    black, rev_black = mf_values["black_after_3"], mf_values["reversed_black_after_3"]
    assert black["share_steps_lost_gen"] > 0.9  # at most 3 of 48 steps survive
    for r in (black, rev_black):  # the old rule gave 0.545; a pair scores at most 3 / (GT track's steps)
        assert r["value"] is not None and r["value"] < 0.2
    assert black["value"] <= mf_values["same"]["value"]
    assert rev_black["value"] <= mf_values["reversed"]["value"]


def test_tracks_lost_after_a_few_steps_score_no_more_than_fully_tracked(dexycb_sample):
    """Real DexYCB tracks (LK) of the generated clip, truncated as a tracker loses them, against the same
    tracks complete: MF never rises, in either term (reversed and shuffled clips, several loss points)."""
    m = MotionFidelity()
    mask, _ = foreground_mask(dexycb_sample)
    q = sample_query_points(mask, dexycb_sample.video.size, 100, 0)
    tr_gt, vis_gt = m.tracker.track(dexycb_sample.video, q)
    frames = dexycb_sample.video.frames
    for gen in (frames, frames[::-1], frames[np.random.default_rng(1).permutation(len(frames))]):
        tr, vis = m.tracker.track(Video(np.ascontiguousarray(gen), 15.0), q)
        full = motion_fidelity(tr_gt, vis_gt, tr, vis)
        _, k_gt = track_steps(tr_gt, vis_gt)
        n_gt = k_gt.sum(axis=1)[k_gt.any(axis=1)]
        for j in (2, 4, 10, 25):
            lost = motion_fidelity(tr_gt, vis_gt, *_lose_after(tr, vis, j))
            assert lost["value"] <= full["value"] + 1e-12, j
            assert lost["term_gen_to_gt"] <= full["term_gen_to_gt"] + 1e-12, j
            # independent bound: j - 1 surviving steps against a GT track of n steps give at most (j-1)/n
            assert lost["term_gt_to_gen"] <= np.mean(np.minimum(1.0, (j - 1) / n_gt)) + 1e-12, j


def test_mf_sum_convention_on_real_clip(dexycb_sample, mf_values):
    rev = Video(np.ascontiguousarray(dexycb_sample.video.frames[::-1]), 15.0)
    r = MotionFidelity(mf_convention="sum").measure(dexycb_sample, rev)
    assert r["value"] == pytest.approx(2 * mf_values["reversed"]["value"])
    same = MotionFidelity(mf_convention="sum").measure(dexycb_sample, dexycb_sample.video)
    assert same["value"] == pytest.approx(2.0)


def test_mf_metric_aggregates_and_keys_differ(mf_values):
    m = MotionFidelity()
    for k in ("same", "reversed"):
        m.update(mf_values[k])
    res = m.compute()
    assert res.n == 2 and res.value == pytest.approx((1.0 + mf_values["reversed"]["value"]) / 2)
    assert res.backend == "lk" and res.direction == "higher"
    src = res.extras["point_source"]
    assert src["counts"] == {"conditions.seg": 2} and src["whole_frame"] == 0 and not src["whole_frame_any"]
    assert "1" in res.extras["rules"]["zero_step"] and res.extras["rules"]["zero_rule"] == "agree"
    assert MotionFidelity(zero_rule="exclude").key != m.key
    assert MotionFidelity(mf_convention="sum").key != m.key
    with pytest.raises(ValueError):
        MotionFidelity(mf_convention="avg")


def test_mf_rejects_mismatched_pair(dexycb_sample):
    from pam_bench.errors import InputError

    with pytest.raises(InputError):
        MotionFidelity().measure(dexycb_sample, Video(dexycb_sample.video.frames[:10]))


def test_unknown_options_are_rejected_and_options_change_the_key():
    from pam_bench.errors import PamBenchError

    with pytest.raises(PamBenchError, match="mf_conventon"):
        MotionFidelity(mf_conventon="sum")
    m = MotionFidelity(fb_threshold="2")  # CLI strings become numbers
    assert m.tracker.fb_threshold == 2.0 and m.key != MotionFidelity().key
    assert MotionFidelity(n_points="50").key != MotionFidelity().key
