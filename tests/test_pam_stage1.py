"""Stage I: GraspXL reader, the built-in approach -> grasp -> move generator, rendering to conditions."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

from pam import stage1_pose as s1
from pam_bench.errors import InputError, MissingResource
from pam_bench.render import HAND_LABEL


def _graspxl_dict(T=7, obj="mug_1"):
    rng = np.random.default_rng(0)
    f = np.float32
    return {"right_hand": {"trans": rng.normal(size=(T, 3)).astype(f), "rot": rng.normal(size=(T, 3)).astype(f),
                           "pose": rng.normal(size=(T, 45)).astype(f)},
            obj: {"trans": rng.normal(size=(T, 3)).astype(f), "rot": rng.normal(size=(T, 3)).astype(f)}}


def test_read_graspxl(tmp_path):
    d = _graspxl_dict()
    f = tmp_path / "mano_0.npy"
    f.write_bytes(pickle.dumps(d))
    seq = s1.read_graspxl(f)
    assert seq.hand_pose.shape == (7, 45) and list(seq.objects) == ["mug_1"]
    np.testing.assert_array_equal(seq.hand_trans, d["right_hand"]["trans"].astype(np.float64))
    np.testing.assert_array_equal(seq.objects["mug_1"]["rot"], d["mug_1"]["rot"].astype(np.float64))
    np.save(tmp_path / "saved.npy", np.array(d, dtype=object), allow_pickle=True)  # np.save of a dict
    assert s1.read_graspxl(tmp_path / "saved.npy").hand_rot.shape == (7, 3)


@pytest.mark.parametrize("mutate, msg", [
    (lambda d: d.pop("right_hand"), "right_hand"),
    (lambda d: d["right_hand"].__setitem__("pose", np.zeros((7, 44))), "pose"),
    (lambda d: d["mug_1"].pop("rot"), "mug_1"),
    (lambda d: d.pop("mug_1"), "no object"),
])
def test_read_graspxl_rejects_malformed_files(tmp_path, mutate, msg):
    d = _graspxl_dict()
    mutate(d)
    f = tmp_path / "bad.npy"
    f.write_bytes(pickle.dumps(d))
    with pytest.raises(InputError, match=msg) as e:
        s1.read_graspxl(f)
    assert str(f) in str(e.value)


def test_read_graspxl_refuses_code_in_pickles(tmp_path):
    f = tmp_path / "evil.npy"
    f.write_bytes(pickle.dumps({"right_hand": print}))
    with pytest.raises(InputError, match="numpy-only"):
        s1.read_graspxl(f)


def test_graspxl_joints_need_mano(tmp_path):
    f = tmp_path / "mano_0.npy"
    f.write_bytes(pickle.dumps(_graspxl_dict()))
    with pytest.raises(MissingResource, match="MANO_RIGHT.pkl") as e:
        s1.graspxl_sequence(f, s1.ObjectSpec(), np.eye(3), np.zeros(3))
    assert "builtin_sequence" in str(e.value)
    with pytest.raises(MissingResource, match="MANO model"):
        s1.graspxl_sequence(f, s1.ObjectSpec(), np.eye(3), np.zeros(3), mano_dir=tmp_path)


def test_axis_angle_matches_scipy():
    from scipy.spatial.transform import Rotation

    from pam_bench.geometry.rotations import axis_angle_to_matrix

    rv = np.random.default_rng(1).normal(size=(20, 3))
    rv[0] = 0
    np.testing.assert_allclose(axis_angle_to_matrix(rv), Rotation.from_rotvec(rv).as_matrix(), atol=1e-12)


def test_min_jerk_profile():
    s = np.linspace(0, 1, 101)
    y = s1.min_jerk(s)
    assert y[0] == 0 and y[-1] == 1 and np.all(np.diff(y) >= 0)
    h = 1e-4  # zero velocity at both ends
    assert abs(s1.min_jerk(np.array([h]))[0]) / h < 1e-6 and abs(1 - s1.min_jerk(np.array([1 - h]))[0]) / h < 1e-6


def _bone_lengths(j):
    from pam_bench.render import LIMBS

    return np.stack([np.linalg.norm(j[:, b] - j[:, a], axis=-1) for a, b in LIMBS], 1)


def test_builtin_sequence_phases():
    T = 41
    obj = s1.ObjectSpec("cylinder", (0.03, 0.05))
    seq = s1.builtin_sequence(T, obj=obj, move=(0.0, -0.1, 0.0), phases=(0.4, 0.3, 0.3))
    assert len(seq) == T and seq.source == "builtin"
    bl = _bone_lengths(seq.joints_3d)
    np.testing.assert_allclose(bl, np.broadcast_to(bl[0], bl.shape), atol=1e-12)  # rigid bones throughout
    t = seq.object_translation
    a_end, g_end = int(0.4 * (T - 1)), int(0.7 * (T - 1))
    np.testing.assert_allclose(t[: g_end + 1], np.broadcast_to(t[0], (g_end + 1, 3)))  # still until grasped
    np.testing.assert_allclose(t[-1] - t[0], [0.0, -0.1, 0.0], atol=1e-12)  # then moved by `move`
    wrist = seq.joints_3d[:, 0]
    np.testing.assert_allclose(wrist[a_end + 1: g_end + 1], np.broadcast_to(wrist[a_end + 1], (g_end - a_end, 3)),
                               atol=1e-12)  # the hand holds still while the fingers close
    np.testing.assert_allclose(wrist[g_end:] - wrist[g_end], t[g_end:] - t[g_end], atol=1e-12)  # moves with it
    tips = seq.joints_3d[:, [8, 12, 16, 20]]
    # fingers close: fingertips get nearer the object at the end of the grasp than at its start
    d0 = np.linalg.norm(tips[a_end] - t[a_end], axis=-1).mean()
    d1 = np.linalg.norm(tips[g_end] - t[g_end], axis=-1).mean()
    assert d1 < d0


def test_render_conditions_follow_pam_conventions():
    seq = s1.builtin_sequence(5, move=(0.0, -0.08, 0.0), phases=(0.2, 0.2, 0.6))
    K = s1.default_intrinsics(96, 144)
    conds, sim, j2 = s1.render_conditions(seq, K, 96, 144)
    assert set(conds) == {"depth", "seg", "hand"}
    for v in (*conds.values(), sim):
        assert v.frames.shape == (5, 96, 144, 3)
    from pam_bench.render import ADE20K_PALETTE, HAND_PALETTE_INDEX

    seg = conds["seg"].frames
    hand_rgb, obj_rgb = ADE20K_PALETTE[HAND_PALETTE_INDEX], ADE20K_PALETTE[seq.obj.label]
    assert (seg == hand_rgb).all(-1).any() and (seg == obj_rgb).all(-1).any()
    assert HAND_LABEL == 255
    fg = seg.max(-1) > 0
    assert not (conds["depth"].frames.max(-1)[~fg] > 0).any()  # depth is black off the foreground
    assert (conds["hand"].frames.max(-1) > 0).sum() > 50
    np.testing.assert_allclose(j2[:, 0], (seq.joints_3d @ K.T)[..., :2] / (seq.joints_3d @ K.T)[..., 2:])
    ys = [np.nonzero((f == obj_rgb).all(-1))[0].mean() for f in seg]
    assert ys[-1] < ys[0] - 5  # the object is lifted (image y decreases)


def test_graspxl_through_a_numpy_only_mano_model(tmp_path):
    """A synthetic numpy-only MANO model: at zero pose the joints are the regressed rest joints, so the
    output must be J_regressor @ v_template (16 joints) + the 5 tip vertices, in the house order."""
    pytest.importorskip("smplx")
    from scipy.spatial.transform import Rotation

    from pam_bench.geometry.mano import MANO_TO_HOUSE

    V, rng = 778, np.random.default_rng(0)
    jreg = np.zeros((16, V))
    jreg[np.arange(16), 100 + np.arange(16)] = 1.0
    parents = [-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14]
    model = dict(v_template=rng.normal(size=(V, 3)) * 0.05, shapedirs=np.zeros((V, 3, 10)),
                 posedirs=np.zeros((V, 3, 135)), J_regressor=jreg, weights=np.eye(16)[rng.integers(0, 16, V)],
                 kintree_table=np.array([[2 ** 32 - 1] + parents[1:], list(range(16))], np.int64),
                 f=np.zeros((10, 3), np.int64), hands_components=np.eye(45), hands_mean=np.zeros(45))
    (tmp_path / "MANO_RIGHT.pkl").write_bytes(pickle.dumps(model))
    d = _graspxl_dict(T=3)
    for k in ("rot", "pose", "trans"):
        d["right_hand"][k][:] = 0
    f = tmp_path / "mano_0.npy"
    f.write_bytes(pickle.dumps(d))
    rest = np.concatenate([model["v_template"][100:116], model["v_template"][list(s1.MANO_TIP_VERTICES)]])
    want = rest[list(MANO_TO_HOUSE)]
    Rc, tc = Rotation.from_euler("xyz", [0.3, -0.2, 0.1]).as_matrix(), np.array([0.0, 0.1, 0.5])
    seq = s1.graspxl_sequence(f, s1.ObjectSpec(), Rc, tc, mano_dir=tmp_path)
    assert seq.source == "graspxl+mano" and seq.joints_3d.shape == (3, 21, 3)
    np.testing.assert_allclose(seq.joints_3d[0], want @ Rc.T + tc, atol=1e-6)
    obj = d["mug_1"]
    np.testing.assert_allclose(seq.object_rotation[1], Rc @ Rotation.from_rotvec(obj["rot"][1]).as_matrix(),
                               atol=1e-6)
    np.testing.assert_allclose(seq.object_translation[2], Rc @ obj["trans"][2] + tc, atol=1e-6)
