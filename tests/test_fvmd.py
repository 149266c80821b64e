"""FVMD: the paper's equations re-implemented here with plain loops, tracks with known velocity statistics,
streaming, the real DexYCB clip and the harness (GT side cached)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from pam_bench.errors import MissingResource, PamBenchError
from pam_bench.metrics import fvmd as F
from pam_bench.types import Sample, Video



# ---------------------------------------------------------------------------------------------
# an independent implementation, written from the paper's equations and the public code's constants


def ref_feature(tracks: np.ndarray) -> np.ndarray:
    """Loops over frames and points: V = [0, Y_t - Y_{t-1}], A = [0, V_t - V_{t-1}]; cubes of 4 frames x
    5x5 points of the 20x20 grid; 8 angle bins of atan2(x, y); weight ceil(log2(min(|v|,255)+1))/8."""
    n_f, n_p = tracks.shape[:2]
    vel = np.zeros((n_f, n_p, 2))
    for t in range(1, n_f):
        for n in range(n_p):
            d = tracks[t, n] - tracks[t - 1, n]
            vel[t, n] = d if np.all(np.isfinite(d)) else 0.0
    acc = np.zeros((n_f, n_p, 2))
    for t in range(1, n_f):
        acc[t] = vel[t] - vel[t - 1]
    out = []
    for field in (vel, acc):
        h = np.zeros((4, 4, 4, 8))
        for t in range(n_f):
            for n in range(n_p):
                i, j = divmod(n, 20)
                x, y = field[t, n]
                b = int(math.floor((math.atan2(x, y) + math.pi) / (math.pi / 4)))
                b = min(max(b, 0), 7)
                m = min(math.hypot(x, y), 255.0)
                w = math.ceil(min(max(math.log2(m + 1.0), 0.0), 8.0)) / 8.0
                h[t // 4, i // 5, j // 5, b] += w
        out.append(h.reshape(-1))
    return np.concatenate(out)


def ref_fvmd(real: np.ndarray, gen: np.ndarray, eps: float = 1e-5) -> float:
    """The public code's formula: |mu_g - mu_r|^2 + Tr S_g + Tr S_r - 2 Tr sqrtm((S_g + eps)(S_r + eps)),
    S unbiased (np.cov). pam-bench uses Tr(S + eps I) in the trace terms too: + 2 D eps exactly."""
    import scipy.linalg

    mg, mr = gen.mean(0), real.mean(0)
    sg, sr = np.cov(gen, rowvar=False), np.cov(real, rowvar=False)
    off = eps * np.eye(sg.shape[0])
    root = scipy.linalg.sqrtm((sg + off) @ (sr + off)).real
    return float(np.sum((mg - mr) ** 2) + np.trace(sg) + np.trace(sr) - 2 * np.trace(root))


def grid_tracks(rng, mean_v, sd_v, frames: int = 16, lost: float = 0.0) -> np.ndarray:
    """Tracks from the 20x20 grid with i.i.d. per-step velocities N(mean_v, sd_v^2) (px per frame)."""
    q = F.query_grid()
    steps = rng.normal(mean_v, sd_v, size=(frames - 1, q.shape[0], 2))
    tr = np.concatenate([q[None], q[None] + np.cumsum(steps, axis=0)])
    if lost:
        for n in np.flatnonzero(rng.random(q.shape[0]) < lost):
            tr[rng.integers(1, frames):, n] = np.nan
    return tr


class QueueTracker:
    """A stand-in tracker that returns prepared tracks in order (the metric's tracking step is tested
    separately with LK on the real clip)."""

    name = "queue"

    def __init__(self, tracks):
        self.queue = list(tracks)

    def track(self, video, queries):
        np.testing.assert_allclose(queries, F.query_grid())
        tr = self.queue.pop(0)
        return tr, np.isfinite(tr).all(-1)


def _blank(frames: int = 16) -> Video:
    return Video(np.zeros((frames, 8, 8, 3), np.uint8))


# ---------------------------------------------------------------------------------------------
# the construction


def test_query_grid_is_the_papers_20x20_grid():
    q = F.query_grid()
    assert q.shape == (400, 2)
    assert q[0].tolist() == [8.0, 8.0] and q[19].tolist() == [248.0, 8.0] and q[20].tolist() == [8.0, 8.0 + 240 / 19]
    assert q[-1].tolist() == [248.0, 248.0]


def test_constant_velocity_histogram_closed_form():
    """Every point moves by (3, -4) px per frame: |v| = 5 -> weight ceil(log2 6)/8 = 3/8 in the bin of
    atan2(3, -4); frame 0 is padding. Acceleration is zero except frame 1 (V_1 - 0), as the equation says."""
    v = np.array([3.0, -4.0])
    q = np.round(F.query_grid())  # integer starts: every difference is exact (any |v| > 0 gets >= 1/8)
    tracks = q[None] + np.arange(16)[:, None, None] * v
    feat = F.segment_feature(tracks)
    b = int((math.atan2(3.0, -4.0) + math.pi) // (math.pi / 4))
    w = 3 / 8
    vel = np.zeros((4, 4, 4, 8))
    vel[0, :, :, b] = 3 * 25 * w  # frames 1..3 of the first time cube, 25 points per cell
    vel[1:, :, :, b] = 4 * 25 * w
    acc = np.zeros((4, 4, 4, 8))
    acc[0, :, :, b] = 25 * w
    np.testing.assert_array_equal(feat, np.concatenate([vel.reshape(-1), acc.reshape(-1)]))
    assert feat.shape == (F.FEATURE_DIM,)


def test_feature_equals_loop_reference_on_random_tracks_with_lost_points():
    rng = np.random.default_rng(0)
    for k in range(3):
        tr = grid_tracks(rng, mean_v=(k - 1.0, 0.5), sd_v=3.0 * (k + 1), lost=0.2)
        np.testing.assert_allclose(F.segment_feature(tr), ref_feature(tr), rtol=0, atol=1e-12)


def test_segments_and_stride():
    assert F.segment_starts(49) == list(range(34))
    assert F.segment_starts(49, 15) == [0, 15, 30]
    assert F.segment_starts(15) == []


# ---------------------------------------------------------------------------------------------
# the metric on tracks with known velocity statistics


def _metric_on(real_tracks, gen_tracks, **opts) -> tuple[F.FVMD, list[dict]]:
    m = F.FVMD(**opts)
    m.tracker = QueueTracker([t for pair in zip(real_tracks, gen_tracks) for t in pair])
    payloads = []
    for i in range(len(real_tracks)):
        s = Sample(f"c{i}", _blank())
        payloads.append({**m.measure_reference(s), **m.measure(s, _blank())})
    return m, payloads


def test_fvmd_equals_independent_pipeline_and_orders_velocity_distributions():
    rng = np.random.default_rng(1)
    real = [grid_tracks(rng, (1.0, 0.0), 2.0) for _ in range(24)]
    same = [grid_tracks(rng, (1.0, 0.0), 2.0) for _ in range(24)]
    fast = [grid_tracks(rng, (6.0, 0.0), 2.0) for _ in range(24)]
    values = {}
    for name, gen in (("same", same), ("fast", fast)):
        m, payloads = _metric_on(real, gen)
        for p in payloads:
            m.update(p)
        res = m.compute()
        assert res.n == 24 and res.extras["n_segments_gen"] == 24 and res.backend == "lk"
        values[name] = res.value
    assert 0 < values["same"] < values["fast"]
    # the value equals the reference pipeline (loops + np.cov + scipy sqrtm), and the full-dimension path
    expect = ref_fvmd(np.stack([ref_feature(t) for t in real]), np.stack([ref_feature(t) for t in fast]))
    assert values["fast"] == pytest.approx(expect + 2 * F.FEATURE_DIM * F.EPS, rel=1e-6)


def test_streaming_in_any_order_equals_one_pass():
    rng = np.random.default_rng(2)
    real = [grid_tracks(rng, (0.0, 1.0), 1.5) for _ in range(10)]
    gen = [grid_tracks(rng, (0.5, 1.0), 2.5, lost=0.1) for _ in range(10)]
    m, payloads = _metric_on(real, gen)
    for p in payloads:
        m.update(p)
    streamed = m.compute().value
    m.reset()
    for i in rng.permutation(len(payloads)):
        m.update(payloads[i])
    assert m.compute().value == pytest.approx(streamed, rel=1e-9)
    gen_all = np.concatenate([p["gen_feat"] for p in payloads])
    real_all = np.concatenate([p["real_feat"] for p in payloads])
    one_pass = F.fvmd_distance(*_moments(gen_all), *_moments(real_all))  # the full-dimension path
    assert streamed == pytest.approx(one_pass, rel=1e-7)
    assert F.fvmd_from_rows(real_all, gen_all) == pytest.approx(one_pass, rel=1e-7)


def _moments(x):
    x = np.asarray(x, np.float64)
    return x.mean(0), np.cov(x, rowvar=False)


def test_unavailable_and_bad_options():
    m = F.FVMD()
    m.update({"real_feat": None, "real_reason": "no video", "gen_feat": None, "gen_reason": "no video"})
    res = m.compute()
    assert res.value is None and "at least 2 segments" in res.unavailable
    assert m.measure(Sample("x", _blank(10)), _blank(10))["gen_reason"].startswith("video has 10 frames")
    with pytest.raises(PamBenchError, match="stride"):
        F.FVMD(stride=0)
    with pytest.raises(PamBenchError, match="point tracker"):
        F.FVMD(tracker="pips")


def test_cotracker3_backend_is_recorded_and_checked(tmp_path, monkeypatch):
    monkeypatch.setenv("PAM_BENCH_HOME", str(tmp_path))
    m = F.FVMD(tracker="cotracker3")
    assert m.backend == "cotracker3" and m.key.startswith("fvmd@1-cotracker3")
    with pytest.raises(MissingResource):
        m.check_ready()


def test_bootstrap_interval_contains_the_value():
    rng = np.random.default_rng(3)
    real = [grid_tracks(rng, (1.0, 0.0), 2.0) for _ in range(12)]
    gen = [grid_tracks(rng, (3.0, 0.0), 2.0) for _ in range(12)]
    m, payloads = _metric_on(real, gen, bootstrap=8)
    for p in payloads:
        m.update(p)
    res = m.compute()
    lo, hi = res.ci95
    assert lo <= res.value <= hi
    assert "basic" in res.extras["interval"]["method"]


# ---------------------------------------------------------------------------------------------
# real data and real tracking


def test_lk_tracks_of_a_known_translation_vote_into_its_angle_bin():
    """A textured image translated by (2, -1) px per frame at 256x256: LK's velocity histogram puts its
    mass in the bin of atan2(2, -1) with weight ceil(log2(sqrt(5)+1))/8 = 2/8."""
    from scipy.ndimage import gaussian_filter, shift

    rng = np.random.default_rng(0)
    base = gaussian_filter(rng.normal(size=(300, 300)), 2.0)
    base = (base - base.min()) / (base.max() - base.min()) * 255
    frames = [shift(base, (-1.0 * k, 2.0 * k), order=3, mode="wrap")[:256, :256] for k in range(16)]
    rgb = np.repeat(np.clip(np.round(np.stack(frames)), 0, 255).astype(np.uint8)[..., None], 3, -1)
    from pam_bench.metrics.trackers import LucasKanadeTracker

    feat = F.FVMD().features(Video(rgb))["feat"][0].astype(np.float64)
    vel = feat[:F.FIELD_DIM].reshape(4, 4, 4, 8)
    b = int((math.atan2(2.0, -1.0) + math.pi) // (math.pi / 4))
    assert vel[..., b].sum() / vel.sum() > 0.95
    tracks, _ = LucasKanadeTracker().track(Video(rgb), F.query_grid())  # points leaving the frame are lost
    valid_steps = int(np.isfinite(tracks).all(-1)[1:].sum())
    assert valid_steps > 0.8 * 15 * 400
    assert vel[..., b].sum() == pytest.approx(valid_steps * 2 / 8, rel=0.02)


def test_real_dexycb_clip_ranks_gt_like_below_static_and_time_reversed(dexycb_clip):
    """Reference: the real clip's 34 segments. A re-rendered GT (blur + brightness: other pixels, the same
    motion) must score below the first frame held and below the clip played backwards."""
    import cv2

    f = dexycb_clip[:49]
    gt = Video(f)
    m = F.FVMD()
    ref = m.measure_reference(Sample("dex", gt))
    assert ref["real_feat"].shape == (34, F.FEATURE_DIM)

    def score(frames):
        m.reset()
        m.update({**ref, **m.measure(Sample("dex", gt), Video(np.ascontiguousarray(frames)))})
        return m.compute().value

    gt_like = np.clip(np.stack([cv2.GaussianBlur(x, (5, 5), 1.0) for x in f]).astype(np.int16) + 12, 0, 255)
    v_gt = score(gt_like.astype(np.uint8))
    v_static = score(np.repeat(f[:1], 49, 0))
    v_rev = score(f[::-1])
    assert v_gt < v_static and v_gt < v_rev, (v_gt, v_static, v_rev)


def test_harness_caches_the_gt_side(tmp_path):
    """evaluate with fvmd: the GT features land in the GT cache; a second method reuses them."""
    from pam_bench.run.gt_cache import gt_cache_dir
    from pam_bench.run.loop import evaluate

    ds_opts = {"n_clips": 3, "frames": 18, "height": 48, "width": 64}
    cache = tmp_path / "gt"
    res = evaluate("oracle", "synthetic", metrics=["fvmd"], out=tmp_path / "o", dataset_options=ds_opts,
                   gt_cache=cache, progress=False)
    fv = res["metrics"]["fvmd"]
    assert fv["backend"] == "lk" and fv["n"] == 3 and fv["extras"]["n_segments_real"] == 9
    assert abs(fv["value"]) < 1e-6  # the GT against itself
    m = F.FVMD()
    files = list(gt_cache_dir(res["dataset"]["manifest_hash"], m.key, cache).iterdir())
    assert len(files) == 3
    res2 = evaluate("static", "synthetic", metrics=["fvmd"], out=tmp_path / "s", dataset_options=ds_opts,
                    gt_cache=cache, progress=False)
    assert res2["metrics"]["fvmd"]["value"] > 1.0
