"""pam_bench.datasets.synthetic: deterministic procedural HOI clips."""
from __future__ import annotations

import numpy as np
import pytest

from pam_bench import raster
from pam_bench import render as R
from pam_bench.datasets import synthetic as S
from pam_bench.errors import PamBenchError
from pam_bench.types import Sample

SMALL = dict(n_clips=3, frames=6, height=120, width=180)


@pytest.fixture(scope="module")
def full_sample() -> Sample:
    """One clip at the protocol size (49 x 480 x 720): rendered once for the module."""
    return S.SyntheticHOI().load("synthetic_0001")


def test_split_is_cheap_and_pinned(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("split() must not render")

    monkeypatch.setattr(raster, "render_scene", boom)
    ds = S.SyntheticHOI()
    sp = ds.split()
    assert sp.dataset == "synthetic" and sp.name == "val"
    assert sp.ids == tuple(f"synthetic_{i:04d}" for i in range(8))
    assert sp.protocol["frames"] == 49 and sp.protocol["height"] == 480 and sp.protocol["width"] == 720
    assert {"fps", "seed", "n_clips", "version"} <= set(sp.protocol)
    assert sp.manifest_hash == S.SyntheticHOI().split().manifest_hash
    assert sp.manifest_hash != S.SyntheticHOI(seed=1).split().manifest_hash
    assert S.SyntheticHOI(split="test").split().name == "test"
    assert ds.identity()["n"] == 8


def test_full_size_sample_shapes(full_sample):
    s = full_sample
    assert s.id == "synthetic_0001"
    assert s.video.frames.shape == (49, 480, 720, 3) and s.video.frames.dtype == np.uint8
    assert s.video.fps == 15.0
    assert list(s.conditions) == ["depth", "seg", "hand"]
    for v in s.conditions.values():
        assert v.frames.shape == (49, 480, 720, 3) and v.frames.dtype == np.uint8
    assert s.joints_2d.shape == (49, 1, 21, 2) and s.joints_2d.dtype == np.float32
    assert s.joints_3d.shape == (49, 1, 21, 3) and s.joints_3d.dtype == np.float32
    assert s.hand_sides == ("right",)
    assert s.intrinsics.shape == (3, 3)
    assert s.seg.shape == (49, 480, 720)
    assert s.meta["depth_source"] == "synthetic-zbuffer" and s.meta["generator"] == S.VERSION


def test_joints_project_through_intrinsics(full_sample):
    s = full_sample
    K = s.intrinsics
    p = s.joints_3d.astype(np.float64) @ K.T
    uv = p[..., :2] / p[..., 2:3]
    np.testing.assert_allclose(uv, s.joints_2d, atol=1e-3)
    assert (s.joints_3d[..., 2] > 0.2).all() and (s.joints_3d[..., 2] < 1.5).all()
    # principal point at the centre, 4:3 sensor stretched to 3:2 like PAM's DexYCB frames
    assert K[0, 2] == pytest.approx(359.5) and K[1, 2] == pytest.approx(239.5)
    assert K[0, 0] / K[1, 1] == pytest.approx(720 / 640)


def test_plausible_hand(full_sample):
    j = full_sample.joints_3d[:, 0].astype(np.float64)
    bones = np.linalg.norm(j[:, [b for _, b in R.LIMBS]] - j[:, [a for a, _ in R.LIMBS]], axis=-1)
    assert (bones > 0.015).all() and (bones < 0.1).all()
    np.testing.assert_allclose(bones, np.broadcast_to(bones[0], bones.shape), atol=1e-6)  # rigid bones
    # fingers curl: fingertip-to-wrist distance shrinks between the first and a grasping frame
    tips = [8, 12, 16, 20]
    d0 = np.linalg.norm(j[0, tips] - j[0, 0], axis=-1)
    d1 = np.linalg.norm(j[-1, tips] - j[-1, 0], axis=-1)
    assert (d1 < d0 - 0.01).all()


def test_labels_and_conditions_consistent(full_sample):
    s = full_sample
    obj = s.meta["object_label"]
    assert 1 <= obj <= 21
    seg = s.seg[::6]  # every 6th frame keeps the test fast
    assert set(np.unique(seg)) <= {0, obj, 255}
    assert (seg == 255).any(axis=(1, 2)).all()  # the hand is in every frame
    assert (seg == obj).any(axis=(1, 2)).all()
    np.testing.assert_array_equal(s.conditions["seg"].frames[::6], R.seg_condition(seg))
    depth = s.conditions["depth"].frames[::6]
    assert depth[seg == 0].max() == 0
    assert (depth[seg > 0].max(-1) > 0).mean() > 0.99
    t = 30
    hand = R.keypoint_condition(s.joints_2d[t], 480, 720, s.joints_3d[t, :, 0, 2], s.joints_3d[t, :, -1, 2],
                                canvas_size=(480, 640))
    np.testing.assert_array_equal(s.conditions["hand"].frames[t], hand)
    fg = (seg > 0).mean()
    assert 0.01 < fg < 0.3  # mostly background, like PAM's conditions


def _centroid(mask):
    ys, xs = np.nonzero(mask)
    return np.array([xs.mean(), ys.mean()])


def test_motion_is_camera_visible(full_sample):
    s = full_sample
    obj = s.meta["object_label"]
    hand_move = np.linalg.norm(s.joints_2d[-1, 0, 0] - s.joints_2d[0, 0, 0])
    assert hand_move > 40
    obj_move = np.linalg.norm(_centroid(s.seg[-1] == obj) - _centroid(s.seg[0] == obj))
    assert obj_move > 30
    step = np.abs(np.diff(s.video.frames.astype(np.int16), axis=0)).mean(axis=(1, 2, 3))
    assert (step > 0).mean() > 0.9  # nearly every frame changes


def test_texture_is_trackable(full_sample):
    import cv2

    f0 = cv2.cvtColor(full_sample.video.frames[0], cv2.COLOR_RGB2GRAY)
    f1 = cv2.cvtColor(full_sample.video.frames[1], cv2.COLOR_RGB2GRAY)
    pts = cv2.goodFeaturesToTrack(f0, maxCorners=400, qualityLevel=0.01, minDistance=7)
    assert pts is not None and len(pts) >= 150
    nxt, status, _ = cv2.calcOpticalFlowPyrLK(f0, f1, pts, None)
    assert status.mean() > 0.8
    # the static background stays put for LK (camera is static)
    x, y = pts[:, 0, 0].astype(int), pts[:, 0, 1].astype(int)
    bg = (full_sample.seg[0][y, x] == 0) & (full_sample.seg[1][y, x] == 0)
    ok = status[:, 0].astype(bool) & bg
    err = np.linalg.norm((nxt - pts)[ok, 0], axis=1)
    assert np.median(err) < 0.5
    # hand (skin texture) and object (checker) carry corners of their own, not just silhouettes
    for label in (255, full_sample.meta["object_label"]):
        inner = cv2.erode((full_sample.seg[0] == label).astype(np.uint8), np.ones((5, 5), np.uint8))
        corners = cv2.goodFeaturesToTrack(f0, maxCorners=200, qualityLevel=0.01, minDistance=4, mask=inner)
        assert corners is not None and len(corners) >= 30, label


def test_object_texture_has_detail(full_sample):
    s = full_sample
    obj = s.seg[0] == s.meta["object_label"]
    gray = s.video.frames[0].astype(float).mean(-1)
    gy, gx = np.gradient(gray)
    assert np.hypot(gx, gy)[obj].mean() > 3.0


def test_determinism_and_seeds():
    a = S.SyntheticHOI(**SMALL).load("synthetic_0002")
    b = S.SyntheticHOI(**SMALL).load("synthetic_0002")
    np.testing.assert_array_equal(a.video.frames, b.video.frames)
    for k in a.conditions:
        np.testing.assert_array_equal(a.conditions[k].frames, b.conditions[k].frames)
    np.testing.assert_array_equal(a.joints_3d, b.joints_3d)
    np.testing.assert_array_equal(a.seg, b.seg)
    c = S.SyntheticHOI(seed=5, **SMALL).load("synthetic_0002")
    assert not np.array_equal(a.video.frames, c.video.frames)
    d = S.SyntheticHOI(**SMALL).load("synthetic_0001")
    assert not np.array_equal(a.video.frames, d.video.frames)
    assert a.video.frames.shape == (6, 120, 180, 3)


def test_memoises_last_sample():
    ds = S.SyntheticHOI(**SMALL)
    assert ds.load("synthetic_0000") is ds.load("synthetic_0000")


def test_bad_inputs():
    with pytest.raises(PamBenchError, match="unknown option"):
        S.SyntheticHOI(colour="red")
    ds = S.SyntheticHOI(**SMALL)
    for bad in ("synthetic_0003", "synthetic_x", "dexycb_0000"):
        with pytest.raises(PamBenchError, match="unknown sample id"):
            ds.load(bad)
    # string options (as given on the command line with -o key=value) are accepted
    assert len(S.SyntheticHOI(n_clips="2").split()) == 2


def test_registry_entry_loads():
    from pam_bench.registry import REGISTRY

    assert REGISTRY.load("dataset", "synthetic") is S.SyntheticHOI


#: sha256 of small embedded clips (frames, conditions, joints) per synthetic VERSION. The split's manifest
#: names VERSION, not a hash of the code, so a refactor leaves run identities and the GT cache alone; this
#: pin is what makes a change to the drawn pixels fail here until VERSION is bumped (and a new pin added).
_DRAWN = {"pam_bench.synthetic v1": "7cc520f8f81a5c15cc118dff2231f40040295bc0fd0dd968be8bb7d1936cd6fa"}


def _drawn_hash() -> str:
    import hashlib

    ds = S.SyntheticHOI(n_clips=3, frames=4, height=48, width=64)
    h = hashlib.sha256()
    for sid in ds.split().ids:
        s = ds.load(sid)
        h.update(s.video.frames.tobytes())
        for name in sorted(s.conditions):
            h.update(name.encode())
            h.update(s.conditions[name].frames.tobytes())
        h.update(np.ascontiguousarray(s.joints_2d, np.float32).tobytes())
        h.update(np.ascontiguousarray(s.joints_3d, np.float32).tobytes())
    return h.hexdigest()


def test_drawn_clips_are_pinned_by_version():
    from pam_bench.datasets.synthetic import VERSION

    assert VERSION in _DRAWN, f"no content pin for {VERSION}: add {_drawn_hash()}"
    assert _drawn_hash() == _DRAWN[VERSION], "the drawn clips changed: bump synthetic.VERSION and pin the new hash"
