"""Stage I from D-Grasp: reader on test-written files in its layout, clear errors, and PAM's full mode fed by
each Stage-I source (tiny checkpoint)."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from pam import stage1_sources as src
from pam.stage1_dgrasp import DGRASP_TO_HOUSE, dgrasp_sequence, quat_wxyz_to_matrix, read_dgrasp
from pam.stage1_pose import ObjectSpec, builtin_sequence
from pam_bench.errors import InputError


def dgrasp_arrays(T: int = 12, seed: int = 0):
    """A motion in D-Grasp's layout (world frame, z up, D-Grasp joint order) from a known camera-frame one.
    Returns (arrays, the camera-frame house-order joints, the camera-frame object rotations)."""
    seq = builtin_sequence(T)
    rng = np.random.default_rng(seed)
    rot = Rotation.from_rotvec(rng.normal(size=(T, 3)) * 0.3)
    R_cam = seq.object_rotation @ rot.as_matrix()  # a rotating object, camera frame
    # camera -> world with the framing the reader uses (object start at OBJECT_TARGET)
    Rw = src.WORLD_TO_CAMERA
    obj_world = np.array([0.3, -0.2, 0.8]) + np.cumsum(rng.normal(size=(T, 3)) * 0.002, 0)
    t = src.OBJECT_TARGET - Rw @ obj_world[0]
    to_world = lambda x: (x - t) @ Rw  # inverse of x_cam = Rw x_world + t  # noqa: E731
    joints_house_world = to_world(seq.joints_3d)
    dg = np.empty_like(joints_house_world)
    dg[:, list(DGRASP_TO_HOUSE)] = joints_house_world  # house[i] = dgrasp[map[i]]
    R_world = Rw.T @ R_cam
    q = Rotation.from_matrix(R_world).as_quat()  # x, y, z, w
    obj_pose = np.concatenate([obj_world, q[:, [3, 0, 1, 2]]], 1)
    arrays = {"joint_pos": dg.reshape(T, 63).astype(np.float32), "obj_pose": obj_pose,
              "qpos": rng.normal(size=(T, 51))}
    expect_joints = joints_house_world @ Rw.T + t
    expect_obj_t = obj_world @ Rw.T + t
    return arrays, expect_joints, R_cam, expect_obj_t


def test_quaternion_matches_scipy():
    q = Rotation.random(20, random_state=1)
    xyzw = q.as_quat()
    assert np.allclose(quat_wxyz_to_matrix(xyzw[:, [3, 0, 1, 2]]), q.as_matrix(), atol=1e-12)


@pytest.mark.parametrize("fmt", ["npz", "npy", "pkl"])
def test_reader_round_trip(tmp_path, fmt):
    arrays, joints, R_cam, obj_t = dgrasp_arrays()
    f = tmp_path / f"motion.{fmt}"
    if fmt == "npz":
        np.savez(f, **arrays)
    elif fmt == "npy":
        np.save(f, arrays, allow_pickle=True)
    else:
        f.write_bytes(pickle.dumps({"joint_pos_list": arrays["joint_pos"].reshape(-1, 21, 3),
                                    "obj_pose_list": arrays["obj_pose"]}))
    seq = read_dgrasp(f)
    assert seq.joints_world.shape == (12, 21, 3)
    assert (seq.qpos is None) == (fmt == "pkl")
    R, t = src._framing(seq.object_position[0])
    ps = dgrasp_sequence(f, ObjectSpec(), R, t)
    assert ps.source == "dgrasp"
    assert np.allclose(ps.joints_3d, joints, atol=1e-5)  # float32 storage
    assert np.allclose(ps.object_rotation, R_cam, atol=1e-9)
    assert np.allclose(ps.object_translation, obj_t, atol=1e-12)
    assert np.allclose(ps.object_translation[0], src.OBJECT_TARGET)


def _write(tmp_path, **arrays):
    f = tmp_path / f"bad{len(list(tmp_path.glob('bad*')))}.npz"
    np.savez(f, **arrays)
    return f


def test_malformed_files_name_the_file(tmp_path):
    a, *_ = dgrasp_arrays(T=5)
    cases = [
        (_write(tmp_path, obj_pose=a["obj_pose"]), "no 'joint_pos'"),
        (_write(tmp_path, joint_pos=a["joint_pos"][:, :60], obj_pose=a["obj_pose"]), "joint_pos shape"),
        (_write(tmp_path, joint_pos=a["joint_pos"], obj_pose=a["obj_pose"][:, :6]), "obj_pose shape"),
        (_write(tmp_path, joint_pos=a["joint_pos"], obj_pose=a["obj_pose"][:4]), "obj_pose shape"),
        (_write(tmp_path, joint_pos=a["joint_pos"], obj_pose=a["obj_pose"] * 2), "unit length"),
        (_write(tmp_path, joint_pos=a["joint_pos"], obj_pose=a["obj_pose"], qpos=np.zeros((5, 48))), "qpos"),
    ]
    for f, msg in cases:
        with pytest.raises(InputError, match=msg) as e:
            read_dgrasp(f)
        assert str(f) in str(e.value)
    plain = tmp_path / "plain.npy"
    np.save(plain, np.zeros((5, 63)))
    with pytest.raises(InputError, match="plain float64 array"):
        read_dgrasp(plain)
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"joint_pos": Rotation.identity()}))  # not numpy-only
    with pytest.raises(InputError, match="numpy-only"):
        read_dgrasp(evil)
    with pytest.raises(InputError, match="no such file"):
        read_dgrasp(tmp_path / "missing.npz")


def test_folder_of_per_clip_files(tmp_path):
    a, *_ = dgrasp_arrays(T=6)
    np.savez(tmp_path / "clip__00.npz", **a)
    assert src.file_for(tmp_path, "clip/00") == tmp_path / "clip__00.npz"
    with pytest.raises(InputError, match="clip/01"):
        src.file_for(tmp_path, "clip/01")


def test_option_errors():
    from pam.generator import PAMGenerator

    with pytest.raises(ValueError, match="mode=full"):
        PAMGenerator(mode="i2v", stage1="builtin")
    with pytest.raises(ValueError, match="stage1_file"):
        PAMGenerator(mode="full", stage1="dgrasp")
    with pytest.raises(ValueError, match="one of"):
        PAMGenerator(mode="full", stage1="grasptta")


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    from tests.tiny_pam import write_tiny_checkpoint

    return write_tiny_checkpoint(tmp_path_factory.mktemp("pam") / "PAM_DIR", mode="full")


class FakePipe:
    """Stands in for PAMPipeline (no diffusers): records what Stage II/III would receive."""

    size, num_frames = (32, 48), 9

    def __init__(self):
        self.calls, self.stages = [], []

    def stage(self, name):
        import contextlib

        self.stages.append(name)
        return contextlib.nullcontext()

    def run(self, conds, selected, seed, first_frame, *args, **kw):
        self.calls.append((conds, first_frame))
        with self.stage("stage2"), self.stage("stage3"):
            return conds["hand"], None


def test_stage1_wiring_without_models(tmp_path, monkeypatch):
    monkeypatch.setenv("PAM_BENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setattr("pam.generator.PAMGenerator.check_ready", lambda self: None)
    monkeypatch.setattr("pam.checkpoint.checkpoint_hashes", lambda *a: {"x": "0"})
    from pam.generator import PAMGenerator
    from pam_bench.types import Sample, Video

    a, *_ = dgrasp_arrays(T=20)
    f = tmp_path / "motion.npz"
    np.savez(f, **a)
    g = PAMGenerator(checkpoint=tmp_path, mode="full", stage1="dgrasp", stage1_file=str(f))
    assert g.identity()["stage1"]["files_sha256"]["motion.npz"]
    g._pipe = FakePipe()
    sample = Sample(id="c", video=Video(np.zeros((7, 40, 56, 3), np.uint8), 15.0))  # no conditions at all
    v = g.generate(sample, seed=0)
    assert v.frames.shape == (7, 40, 56, 3) and v.fps == 15.0
    conds, first = g._pipe.calls[0]
    assert first is None  # Stage II makes the first frame
    expect = src.render_for_clip("dgrasp", f, "c", 7, (32, 48))
    assert all(np.array_equal(conds[k], expect[k]) for k in ("depth", "seg", "hand"))
    assert g._pipe.stages == ["stage1", "stage2", "stage3"]


@pytest.mark.slow
def test_full_mode_from_each_stage1_source(tiny_dir, tmp_path, monkeypatch):
    """builtin and dgrasp feed Stage II+III; the Stage-I render, not the sample's conditions, drives it."""
    monkeypatch.setenv("PAM_BENCH_HOME", str(tmp_path / "home"))
    from pam.generator import PAMGenerator
    from pam_bench.datasets.synthetic import SyntheticHOI

    ds = SyntheticHOI(n_clips=1, frames=7, height=40, width=56)
    sample = ds.load(ds.split().ids[0])
    a, *_ = dgrasp_arrays(T=20)
    f = tmp_path / "motion.npz"
    np.savez(f, **a)
    import contextlib

    from pam.pipeline import PAMPipeline

    pipe = PAMPipeline(tiny_dir, mode="full")  # loaded once, shared (loading is the slow part on CPU)
    stages = []
    pipe.stage_timer = lambda s: (stages.append(s), contextlib.nullcontext())[1]
    outs = {}
    blank = type(sample)(id=sample.id, video=sample.video, conditions={})  # the sample's own are unused
    for name, opts in (("builtin", {}), ("dgrasp", {"stage1_file": str(f)})):
        g = PAMGenerator(checkpoint=tiny_dir, mode="full", steps=1, stage1=name, **opts)
        ident = g.identity()
        assert ident["stage1"]["source"] == name
        assert ("files_sha256" in ident["stage1"]) == (name == "dgrasp")
        g._pipe = pipe
        v = g.generate(blank, seed=3)
        assert v.frames.shape == sample.video.frames.shape
        outs[name] = v.frames
    assert stages == ["stage1", "stage2", "stage3"] * 2
    assert not np.array_equal(outs["builtin"], outs["dgrasp"])
    # the clean identity (no stage1) has no stage1 key: existing run folders stay valid
    assert "stage1" not in PAMGenerator(checkpoint=tiny_dir, mode="full").identity()


def test_stage1_renders_hand_and_object(tmp_path):
    a, *_ = dgrasp_arrays(T=10)
    f = tmp_path / "m.npz"
    np.savez(f, **a)
    conds = src.render_for_clip("dgrasp", f, "x", 5, (32, 48))
    assert set(conds) == {"depth", "seg", "hand"}
    assert all(v.shape == (5, 32, 48, 3) and v.dtype == np.uint8 for v in conds.values())
    assert (conds["seg"].max(-1) > 0).mean() > 0.01  # something visible in frame
