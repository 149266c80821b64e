"""Hand MPJPE: closed-form root alignment and mm conversion, counting rules, matching, and MediaPipe on
the real DexYCB clip (no GT joints file exists for it: MediaPipe's own detections on the original clip
serve as the reference for perturbed versions)."""
from __future__ import annotations

import numpy as np
import pytest

from pam_bench.errors import MissingResource
from pam_bench.metrics.hands import (JOINT_NAMES, MEDIAPIPE_NAMES, HandDetection, HandPoseBackend, HaMeRHands,
                             MediaPipeHands, get_backend, match_to_gt)
from pam_bench.metrics.hand import HandMPJPE, root_aligned_mpjpe
from pam_bench.types import Sample, Video

from .conftest import require_weights

# ---------------------------------------------------------------------------------------------
# closed forms


def _hand(seed: int = 0) -> np.ndarray:
    """A random but hand-sized 21x3 joint set in metres (camera frame, ~0.5 m away)."""
    rng = np.random.default_rng(seed)
    return np.array([0.0, 0.0, 0.5]) + rng.normal(scale=0.04, size=(21, 3))


def test_root_alignment_and_mm_closed_form():
    gt = _hand()
    # a global translation is removed by root alignment
    assert root_aligned_mpjpe(gt + np.array([0.3, -0.1, 0.2]), gt) == pytest.approx(0.0, abs=1e-15)
    # one non-root joint off by d: mean over 21 joints = d / 21
    d = 0.021
    pred = gt + np.array([0.05, 0.0, 0.0])
    pred[7] += np.array([0.0, d, 0.0])
    assert root_aligned_mpjpe(pred, gt) == pytest.approx(d / 21)
    # the root itself off by d: the other 20 joints move by d relative to it
    pred = gt.copy()
    pred[0] += np.array([0.0, 0.0, d])
    assert root_aligned_mpjpe(pred, gt) == pytest.approx(20 * d / 21)


class _Fixed(HandPoseBackend):
    """Test double: returns pre-set detections (the metric's counting and unit logic is under test)."""

    name = "fixed"
    frame_3d = "test"

    def __init__(self, dets):
        super().__init__()
        self.dets = dets
        self.seen = None

    def identity(self):
        return {"backend": self.name}

    def estimate(self, video, hand_sides=(), intrinsics=None):
        self.seen = video
        return self.dets


def _metric_with(dets) -> HandMPJPE:
    m = HandMPJPE()  # building the default backend touches no weights
    m.estimator = _Fixed(dets)
    return m


def test_mpjpe_counts_missing_and_undetected_frames_and_converts_to_mm():
    t = 5
    gt3 = np.stack([_hand(i) for i in range(t)])[:, None]  # [T,1,21,3]
    gt2 = np.random.default_rng(1).uniform(50, 400, size=(t, 1, 21, 2))
    gt3[1] = np.nan  # no GT hand in frame 1
    gt2[1] = np.nan
    d = 0.0042  # 4.2 mm on one joint
    dets = []
    for i in range(t):
        if i == 3:
            dets.append([])  # frame 3: nothing detected
            continue
        p3 = gt3[i, 0] + np.array([0.1, 0.2, -0.3])  # any origin: root alignment removes it
        if i == 0:
            p3 = p3.copy()
            p3[12] += np.array([d, 0.0, 0.0])
        p2 = gt2[i, 0] + np.array([3.0, 4.0])  # 5 px everywhere
        dets.append([HandDetection(p2 if np.isfinite(p2).all() else np.zeros((21, 2)), p3, "right", 0.9)])
    sample = Sample("s", Video(np.zeros((t, 32, 32, 3), np.uint8)), joints_3d=gt3, joints_2d=gt2,
                    hand_sides=("right",))
    gen = Video(np.full((t, 32, 32, 3), 7, np.uint8))
    m = _metric_with(dets)
    r = m.measure(sample, gen)
    assert m.estimator.seen is gen  # the estimator ran on the GENERATED video
    matched = [0, 2, 4]
    expected_mm = np.mean([d / 21 if i == 0 else 0.0 for i in matched]) * 1000.0
    assert r["value"] == pytest.approx(expected_mm)
    assert r["n_hand_frames_gt"] == 4 and r["n_frames_gt_missing"] == 1
    assert r["n_frames_undetected"] == 1 and r["detection_rate"] == pytest.approx(3 / 4)
    assert r["err_2d_px"] == pytest.approx(5.0) and r["pck_2d"] == 1.0
    m.update(r)
    res = m.compute()
    assert res.unit == "mm" and res.direction == "lower" and res.value == pytest.approx(expected_mm)


def test_aggregation_pooled_over_frames_or_per_video_with_missed_detections_beside():
    """Two videos, 1 and 3 matched hand-frames: pooled (dex-ycb-toolkit) weighs frames, per-video weighs
    videos; both report the same missed-detection totals. References written out by hand."""
    payloads = [
        {"value": 10.0, "sum_err_mm": 10.0, "n_frames_3d": 1, "n_hand_frames_gt": 4, "n_frames_undetected": 3},
        {"value": 20.0, "sum_err_mm": 60.0, "n_frames_3d": 3, "n_hand_frames_gt": 3, "n_frames_undetected": 0},
        {"value": None, "reason": "no hand detected in any frame with a GT hand", "n_frames_3d": 0,
         "n_hand_frames_gt": 2, "n_frames_undetected": 2},
    ]
    pooled, per_video = HandMPJPE(), HandMPJPE(aggregate="videos")
    for m in (pooled, per_video):
        for p in payloads:
            m.update(dict(p))
    rp, rv = pooled.compute(), per_video.compute()
    assert rp.value == pytest.approx((10.0 + 60.0) / 4)  # 17.5 mm over 4 hand-frames
    assert rv.value == pytest.approx((10.0 + 20.0) / 2)  # 15 mm over 2 videos
    assert rp.backend == "mediapipe/pooled-frames" and rv.backend == "mediapipe/per-video"
    assert pooled.key == per_video.key  # the per-video payloads are shared; only the column differs
    for r in (rp, rv):
        assert r.extras["missed"] == {"n_hand_frames_gt": 9, "n_frames_undetected": 5,
                                      "n_videos_no_detection": 1, "detection_rate": pytest.approx(4 / 9)}
    assert rp.extras["n_frames_pooled"] == 4 and rp.ci95[0] <= rp.value <= rp.ci95[1]
    # payloads cached before sum_err_mm existed pool as value * n_frames_3d
    old = HandMPJPE()
    for p in payloads[:2]:
        old.update({k: v for k, v in p.items() if k != "sum_err_mm"})
    assert old.compute().value == pytest.approx(17.5)
    with pytest.raises(ValueError, match="aggregate"):
        HandMPJPE(aggregate="clips")


def test_no_gt_joints_gives_none_with_reason():
    m = _metric_with([])
    r = m.measure(Sample("oakink", Video(np.zeros((2, 8, 8, 3), np.uint8))), Video(np.zeros((2, 8, 8, 3), np.uint8)))
    assert r == {"value": None, "reason": "no GT joints"}
    m.update(r)
    res = m.compute()
    assert res.value is None and "no GT joints" in res.unavailable


def test_nothing_detected_is_none_not_zero():
    gt3 = np.stack([_hand(i) for i in range(3)])[:, None]
    m = _metric_with([[], [], []])
    r = m.measure(Sample("s", None, joints_3d=gt3, hand_sides=("left",)), Video(np.zeros((3, 8, 8, 3), np.uint8)))
    assert r["value"] is None and r["detection_rate"] == 0.0 and r["n_frames_undetected"] == 3


def test_matching_by_side_then_nearest_wrist():
    def det(x, side):
        j = np.zeros((21, 2))
        j[0] = (x, 100.0)
        return HandDetection(j, np.zeros((21, 3)), side, 0.9)

    dets = [det(100, "right"), det(500, "left")]
    match, how = match_to_gt(dets, ("left", "right"), np.array([[110.0, 100.0], [490.0, 100.0]]))
    assert match[0] is dets[1] and match[1] is dets[0] and how == ["side", "side"]  # side beats distance
    # a mislabelled single detection: falls back to the nearest wrist
    match, how = match_to_gt([det(480, "left")], ("right",), np.array([[490.0, 100.0]]), np.array([50.0]))
    assert match[0] is not None and how == ["wrist"]
    # ... but only within the gate (the GT hand's box diagonal): a far detection is something else
    match, how = match_to_gt([det(100, "left")], ("right",), np.array([[490.0, 100.0]]), np.array([50.0]))
    assert match == [None] and how == ["none"]
    # no GT wrist and no side match: unmatched (never guessed)
    match, how = match_to_gt([det(480, "left")], ("right",), None)
    assert match == [None] and how == ["none"]
    # two same-side candidates: the nearer wrist wins
    dets = [det(100, "right"), det(300, "right")]
    match, _ = match_to_gt(dets, ("right",), np.array([[290.0, 100.0]]))
    assert match[0] is dets[1]


def test_joint_order_matches_mediapipe_enum():
    pytest.importorskip("mediapipe")
    from mediapipe.tasks.python.vision import HandLandmarksConnections
    from mediapipe.tasks.python.vision.hand_landmarker import HandLandmark

    assert [lm.name for lm in HandLandmark] == list(MEDIAPIPE_NAMES)
    assert [int(lm) for lm in HandLandmark] == list(range(21))
    assert len(JOINT_NAMES) == 21
    # each finger chain is consecutive and starts at 1, 5, 9, 13, 17 (DexYCB / OpenPose order)
    chains = [HandLandmarksConnections.HAND_THUMB_CONNECTIONS, HandLandmarksConnections.HAND_INDEX_FINGER_CONNECTIONS,
              HandLandmarksConnections.HAND_MIDDLE_FINGER_CONNECTIONS,
              HandLandmarksConnections.HAND_RING_FINGER_CONNECTIONS,
              HandLandmarksConnections.HAND_PINKY_FINGER_CONNECTIONS]
    for f, chain in enumerate(chains):
        base = 1 + 4 * f
        assert [(c.start, c.end) for c in chain] == [(base, base + 1), (base + 1, base + 2), (base + 2, base + 3)]
        assert JOINT_NAMES[base].endswith("_mcp") and JOINT_NAMES[base + 3].endswith("_tip")


def test_hamer_missing_names_package_and_checkpoint(monkeypatch):
    monkeypatch.delenv("PAM_BENCH_HAMER_DIR", raising=False)
    with pytest.raises(MissingResource) as e:
        HaMeRHands().check_ready()
    msg = str(e.value)
    import importlib.util

    if importlib.util.find_spec("hamer") is None:
        assert "hamer" in msg and "pip install" in msg and "hamer.ckpt" in msg
    else:
        assert "hamer.ckpt" in msg
    with pytest.raises(MissingResource):
        HandMPJPE(backend="hamer").check_ready()
    with pytest.raises(Exception, match="unknown hand-pose backend"):
        get_backend("openpose")


def test_mediapipe_missing_weights_is_a_clear_error(monkeypatch, tmp_path):
    pytest.importorskip("mediapipe")
    monkeypatch.setenv("PAM_BENCH_HOME", str(tmp_path))
    monkeypatch.delenv("PAM_BENCH_WEIGHT_HAND_LANDMARKER", raising=False)
    with pytest.raises(MissingResource, match="hand_landmarker.task"):
        MediaPipeHands().check_ready()


def test_mediapipe_mpjpe_key_follows_its_configuration_without_reading_weights(monkeypatch, tmp_path):
    """The key holds the estimator identity (mode, confidences, num_hands, pinned landmarker sha256, mediapipe
    version); computing it reads no weight file, and without mediapipe it is the one-line MissingResource."""
    import importlib.util

    monkeypatch.setenv("PAM_BENCH_HOME", str(tmp_path))  # no weights here
    monkeypatch.delenv("PAM_BENCH_WEIGHT_HAND_LANDMARKER", raising=False)
    if importlib.util.find_spec("mediapipe") is not None:
        k = HandMPJPE().key
        assert k == HandMPJPE(mode="image", min_detection_confidence="0.5").key  # defaults spelled out
        assert k.startswith("mpjpe@2-mediapipe-pck10-e")
        others = {HandMPJPE(mode="video").key, HandMPJPE(num_hands=1).key,
                  HandMPJPE(min_detection_confidence=0.6).key, HandMPJPE(pck_px=5).key}
        assert len(others) == 4 and k not in others
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(MissingResource, match="python package 'mediapipe'") as e:
        HandMPJPE().key
    assert "\n" not in str(e.value)


# ---------------------------------------------------------------------------------------------
# MediaPipe on the real DexYCB clip (~30-90 ms per frame on CPU)


@pytest.fixture(scope="module")
def mp_detections(dexycb_clip):
    require_weights("hand-landmarker")
    return MediaPipeHands().estimate(Video(dexycb_clip, 15.0))


@pytest.mark.weights
def test_mediapipe_finds_the_hand_on_real_clip(mp_detections, dexycb_clip):
    n = len(dexycb_clip)
    found = [d for d in mp_detections if d]
    assert len(mp_detections) == n
    assert len(found) >= n - 7  # 70 of 72 reported in weights.md
    h, w = dexycb_clip.shape[1:3]
    for d in (x[0] for x in found):
        assert d.joints_2d.shape == (21, 2) and d.joints_3d.shape == (21, 3)
        assert np.isfinite(d.joints_3d).all() and 0.0 <= d.score <= 1.0
        assert (d.joints_2d[:, 0] > -0.1 * w).all() and (d.joints_2d[:, 0] < 1.1 * w).all()
        # world landmarks are metric: wrist to middle MCP of an adult hand is ~6-12 cm
        assert 0.04 < np.linalg.norm(d.joints_3d[9] - d.joints_3d[0]) < 0.15
    sides = [x[0].side for x in found]
    assert sides.count("right") >= 0.9 * len(sides)  # one right hand (see pam_bench.metrics.hands docstring)


@pytest.mark.weights
def test_mediapipe_handedness_flips_with_the_image(dexycb_clip, mp_detections):
    idx = [i for i, d in enumerate(mp_detections) if i >= 20 and d and d[0].score > 0.9][:4]
    flipped = Video(np.ascontiguousarray(dexycb_clip[idx, :, ::-1]), 15.0)
    dets = MediaPipeHands().estimate(flipped)
    pairs = [(i, d[0]) for i, d in zip(idx, dets) if d]
    assert len(pairs) >= 2
    for i, d in pairs:
        assert d.side != mp_detections[i][0].side


@pytest.mark.weights
def test_mpjpe_on_real_clip_against_mediapipe_reference(dexycb_clip, mp_detections):
    """Reference = MediaPipe on the original frames; 'generated' = the same frames shifted by (6, 4) px."""
    idx = np.arange(0, 48, 2)
    t = len(idx)
    j2 = np.full((t, 1, 21, 2), np.nan)
    j3 = np.full((t, 1, 21, 3), np.nan)
    for k, i in enumerate(idx):
        if mp_detections[i]:
            j2[k, 0], j3[k, 0] = mp_detections[i][0].joints_2d, mp_detections[i][0].joints_3d
    frames = np.ascontiguousarray(dexycb_clip[idx])
    sample = Sample("dexycb", Video(frames, 15.0), joints_2d=j2, joints_3d=j3, hand_sides=("right",))
    m = HandMPJPE()
    same = m.measure(sample, sample.video)
    assert same["value"] == pytest.approx(0.0, abs=1e-9) and same["detection_rate"] == 1.0
    assert same["n_frames_gt_missing"] == int((~np.isfinite(j3).all(axis=(-1, -2))).sum())
    dx, dy = 6, 4
    shifted = np.pad(frames, ((0, 0), (dy, 0), (dx, 0), (0, 0)), mode="edge")[:, :frames.shape[1], :frames.shape[2]]
    r = m.measure(sample, Video(np.ascontiguousarray(shifted), 15.0))
    assert r["detection_rate"] >= 0.9
    # the 2D error is about the shift (7.2 px); the root-aligned 3D pose barely changes under a shift
    assert 0.5 * np.hypot(dx, dy) < r["err_2d_px"] < 2.0 * np.hypot(dx, dy)
    assert 0.0 < r["value"] < 20.0
    assert 0.0 < r["pck_2d"] <= 1.0
