"""MANO joints of every caller, pinned on a tiny MANO-shaped model (random numbers, not the MANO data).

Two references, both written here:

- smplx's MANO layer built directly from the arrays, with each caller's documented convention around it
  (Stage I: GraspXL's translation inside the layer, smplx's fingertips; OAKINK2: wrist-centred then + tsl,
  manopth's per-side fingertips; DexYCB: 45 PCA coefficients through a random orthogonal
  hands_components and a non-zero hands_mean, manopth's definition written here). Same float32
  arithmetic, so the callers must agree to 1e-12: this pins the conventions exactly.
- MANO's definition in float64 numpy (shape and pose blend shapes, Rodrigues, the kinematic tree, linear
  blend skinning), independent of smplx, to float32 accuracy.
"""
from __future__ import annotations

import pickle

import numpy as np
import pytest

from .fixtures_dexycb import fake_mano_arrays, fake_mano_dir

smplx = pytest.importorskip("smplx")

#: smplx's MANO fingertip vertices (smplx/vertex_ids.py, VERTEX_IDS['mano']): thumb, index, middle, ring, pinky.
SMPLX_TIPS = (744, 320, 443, 554, 671)
#: manopth's ManoLayer fingertips (hassony2/manopth manolayer.py), per side.
MANOPTH_TIPS = {"right": (745, 317, 444, 556, 673), "left": (745, 317, 445, 556, 673)}
#: MANO's 16 joints + 5 tips -> wrist; thumb, index, middle, ring, little (each mcp, pip, dip, tip).
ORDER = (0, 13, 14, 15, 16, 1, 2, 3, 17, 4, 5, 6, 18, 10, 11, 12, 19, 7, 8, 9, 20)
SEED = {"right": 0, "left": 1}


def _smplx_forward(arrays, side, orient, pose, betas, transl=None, **config):
    """joints [B,16,3], vertices [B,778,3] (float64 of smplx's float32) from a layer built here."""
    import torch
    from smplx.utils import Struct

    config = {"use_pca": False, "flat_hand_mean": True, **config}
    layer = smplx.MANO("unused", is_rhand=side == "right", data_struct=Struct(**arrays), **config)
    t = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
    with torch.no_grad():
        out = layer(betas=t(betas), global_orient=t(orient), hand_pose=t(pose),
                    transl=None if transl is None else t(transl))
    return out.joints.numpy().astype(np.float64), out.vertices.numpy().astype(np.float64)


def _rodrigues(rv: np.ndarray) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_rotvec(rv.reshape(-1, 3)).as_matrix()


def _numpy_mano(a, full_pose, betas):
    """MANO's definition in float64 for one frame: (joints [16,3], vertices [778,3]), flat hand mean."""
    v_shaped = a["v_template"] + a["shapedirs"] @ betas
    J = a["J_regressor"] @ v_shaped
    R = _rodrigues(full_pose)  # [16,3,3]
    v_posed = v_shaped + a["posedirs"] @ (R[1:] - np.eye(3)).ravel()
    parents = a["kintree_table"][0].astype(np.int64)
    G = np.zeros((16, 4, 4))
    for k in range(16):
        local = np.eye(4)
        local[:3, :3] = R[k]
        local[:3, 3] = J[k] - (J[parents[k]] if k else 0)
        G[k] = local if k == 0 else G[parents[k]] @ local
    A = G.copy()
    A[:, :3, 3] -= np.einsum("kij,kj->ki", G[:, :3, :3], J)
    T = np.einsum("vk,kij->vij", a["weights"], A)
    verts = np.einsum("vij,vj->vi", T[:, :3, :3], v_posed) + T[:, :3, 3]
    return G[:, :3, 3], verts


def _with_tips(joints, verts, tips):
    return np.concatenate([joints, verts[:, list(tips)]], 1)[:, list(ORDER)]


def _random_pose(rng, n):
    return rng.normal(0, 0.4, (n, 3)), rng.normal(0, 0.3, (n, 45))


# ---------------------------------------------------------------------- Stage I (GraspXL)
def _graspxl(n=4, seed=5):
    from pam.stage1_pose import GraspXLSequence

    rng = np.random.default_rng(seed)
    rot, pose = _random_pose(rng, n)
    trans = rng.normal(0, 0.2, (n, 3))
    return GraspXLSequence(trans, rot, pose, {"obj": {"trans": trans.copy(), "rot": rot.copy()}})


def test_stage1_graspxl_joints_pinned(tmp_path):
    from pam.stage1_pose import graspxl_joints

    a = fake_mano_arrays(0)
    (tmp_path / "MANO_RIGHT.pkl").write_bytes(pickle.dumps(a))  # a numpy-only MANO pickle
    seq = _graspxl()
    got = graspxl_joints(seq, tmp_path)
    assert got.dtype == np.float64 and got.shape == (4, 21, 3)
    zeros = np.zeros((4, 10))
    j, v = _smplx_forward(a, "right", seq.hand_rot, seq.hand_pose, zeros, seq.hand_trans)
    np.testing.assert_allclose(got, _with_tips(j, v, SMPLX_TIPS), rtol=0, atol=1e-12)
    for t in range(4):
        jn, vn = _numpy_mano(a, np.r_[seq.hand_rot[t], seq.hand_pose[t]], zeros[t])
        np.testing.assert_allclose(got[t], _with_tips(jn[None], vn[None], SMPLX_TIPS)[0] + seq.hand_trans[t],
                                   atol=2e-6)


# ---------------------------------------------------------------------- OAKINK2 (quaternions, wrist-centred)
def _quats(rng, n):
    from scipy.spatial.transform import Rotation

    xyzw = Rotation.from_rotvec(rng.normal(0, 0.4, (n * 16, 3))).as_quat()
    return np.concatenate([xyzw[:, 3:], xyzw[:, :3]], 1).reshape(n, 16, 4)


@pytest.mark.parametrize("fmt", ["npz", "pkl"])
@pytest.mark.parametrize("side", ["right", "left"])
def test_oakink2_joints_pinned(tmp_path, side, fmt):
    from pam_bench.datasets.oakink2 import ManoHands, quat_to_axis_angle

    rng = np.random.default_rng(7)
    q, betas, tsl = _quats(rng, 3), rng.normal(0, 0.5, (3, 10)), rng.normal(0, 0.3, (3, 3))
    got = ManoHands(fake_mano_dir(tmp_path / "mano", fmt=fmt)).joints(side, q, betas, tsl)
    assert got.dtype == np.float64 and got.shape == (3, 21, 3)
    a = fake_mano_arrays(SEED[side])
    if fmt == "pkl":  # the .pkl's sparse J_regressor is read back F-ordered (scipy's csc toarray), which
        a["J_regressor"] = np.asfortranarray(a["J_regressor"])  # changes smplx's float32 summation order
    aa = quat_to_axis_angle(q).reshape(3, 48)
    j, v = _smplx_forward(a, side, aa[:, :3], aa[:, 3:], betas)
    want = _with_tips(j, v, MANOPTH_TIPS[side])
    np.testing.assert_allclose(got, want - want[:, :1] + tsl[:, None], rtol=0, atol=1e-12)
    for t in range(3):
        jn, vn = _numpy_mano(a, aa[t], betas[t])
        ref = _with_tips(jn[None], vn[None], MANOPTH_TIPS[side])[0]
        np.testing.assert_allclose(got[t], ref - ref[0] + tsl[t], atol=2e-6)


# ---------------------------------------------------------------------- DexYCB (PCA pose, + translation)
def _pca_mano_dir(root, side):
    """A tiny MANO .pkl (sparse J_regressor) whose hands_components are a random orthogonal 45x45 matrix and
    whose hands_mean is not zero, so that neither the PCA nor the mean can be skipped unseen."""
    import scipy.sparse

    rng = np.random.default_rng(20 + SEED[side])
    a = fake_mano_arrays(SEED[side])
    a["hands_components"] = np.linalg.qr(rng.normal(size=(45, 45)))[0]
    a["hands_mean"] = rng.normal(0, 0.2, 45)
    root.mkdir(parents=True)
    with open(root / f"MANO_{side.upper()}.pkl", "wb") as fh:
        pickle.dump({**a, "J_regressor": scipy.sparse.csc_matrix(a["J_regressor"])}, fh, protocol=2)
    a["J_regressor"] = np.asfortranarray(a["J_regressor"])  # as the .pkl's sparse regressor reads back
    return root, a


@pytest.mark.parametrize("side", ["right", "left"])
def test_dexycb_vertices_follow_manopth_pca(tmp_path, side):
    """pose_m's 45 coefficients are manopth's ManoLayer(use_pca=True, ncomps=45, flat_hand_mean=False):
    full hand pose = coeffs @ hands_components + hands_mean (written here), not axis-angle."""
    from pam_bench.datasets.dexycb_mano import DexYCBMano

    rng = np.random.default_rng(9)
    rot, pca = _random_pose(rng, 3)
    pose_m = np.concatenate([rot, pca, rng.normal(0, 0.2, (3, 3))], 1)
    pose_m[1] = 0  # no hand in that frame
    betas = rng.normal(0, 0.5, 10)
    mano_dir, a = _pca_mano_dir(tmp_path / "mano", side)
    got = DexYCBMano(mano_dir).vertices(side, pose_m, betas)
    assert got.dtype == np.float64 and got.shape == (3, 778, 3) and np.isnan(got[1]).all()

    full_hand = pose_m[:, 3:48] @ a["hands_components"][:45] + a["hands_mean"]  # manopth's definition
    b = np.tile(betas, (3, 1))
    _, want = _smplx_forward(a, side, pose_m[:, :3], full_hand, b, pose_m[:, 48:])  # explicit pose, no mean
    keep = [0, 2]
    np.testing.assert_allclose(got[keep], want[keep], rtol=0, atol=1e-9)
    for t in keep:
        _, vn = _numpy_mano(a, np.r_[pose_m[t, :3], full_hand[t]], betas)
        np.testing.assert_allclose(got[t], vn + pose_m[t, 48:], atol=2e-6)

    # the old reading (smplx use_pca=True, num_pca_comps=45: PCA silently off, coefficients as axis-angle)
    _, old = _smplx_forward(a, side, pose_m[:, :3], pose_m[:, 3:48], b, pose_m[:, 48:], use_pca=True,
                            num_pca_comps=45, flat_hand_mean=False)
    assert np.abs(got[keep] - old[keep]).max() > 1e-3


def test_dexycb_identity_names_the_pca_convention(tmp_path):
    """The fixed vertices carry convention version 2, so the split's manifest hash (run store, GT cache,
    results comparison, ``check``) differs from runs made with the old axis-angle reading."""
    from pam_bench.datasets.dexycb_mano import DexYCBMano
    from pam_bench.types import Split

    ident = DexYCBMano(fake_mano_dir(tmp_path / "mano", fmt="pkl")).identity()
    assert ident["version"] == 2 and "coeffs @ hands_components + hands_mean" in ident["convention"]
    old = {"convention": "manopth ncomps=45 flat_hand_mean=False via smplx", "sha256": ident["sha256"]}
    hashes = {Split("dexycb", "s0-train", ("a",), {"mano_vertices": i}).manifest_hash for i in (ident, old)}
    assert len(hashes) == 2


def test_pca_layer_refuses_a_model_without_enough_components(tmp_path):
    from pam_bench.errors import InputError
    from pam_bench.geometry.mano import layer

    a = fake_mano_arrays(0)
    a["hands_components"] = a["hands_components"][:6]
    np.savez(tmp_path / "MANO_RIGHT.npz", **a)
    with pytest.raises(InputError, match="45 PCA components") as e:
        layer(tmp_path / "MANO_RIGHT.npz", "right", use_pca=True, num_pca_comps=45, flat_hand_mean=False)
    assert "MANO_RIGHT.npz" in str(e.value)


# ---------------------------------------------------------------------- the one loader
def _official_layout(monkeypatch, arrays: dict, protocol: int) -> bytes:
    """The official MANO_RIGHT.pkl's layout: chumpy ``Ch`` objects (array in state ``x``) and a scipy sparse
    J_regressor. chumpy is faked here under its real module name, only for pickling."""
    import sys
    import types

    import scipy.sparse

    mod = types.ModuleType("chumpy.ch")

    class Ch:
        def __init__(self, x):
            self.x, self._dirty_vars = x, set()

    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    mod.Ch = Ch
    monkeypatch.setitem(sys.modules, "chumpy", types.ModuleType("chumpy"))
    monkeypatch.setitem(sys.modules, "chumpy.ch", mod)
    raw = {k: Ch(v) if k in ("v_template", "shapedirs", "weights") else v for k, v in arrays.items()}
    raw["J_regressor"] = scipy.sparse.csc_matrix(arrays["J_regressor"])
    raw["bs_style"] = "lbs"  # other entries of the real file are ignored
    return pickle.dumps(raw, protocol=protocol)


@pytest.mark.parametrize("protocol", [0, 2])
def test_stage1_reads_the_official_chumpy_pickle(tmp_path, monkeypatch, protocol):
    from pam.stage1_pose import graspxl_joints
    from pam_bench.geometry.mano import MANO_FIELDS, load_model

    a = fake_mano_arrays(0)
    (tmp_path / "MANO_RIGHT.pkl").write_bytes(_official_layout(monkeypatch, a, protocol))
    got = load_model(tmp_path / "MANO_RIGHT.pkl")
    assert set(got) == set(MANO_FIELDS)
    for k in MANO_FIELDS:
        np.testing.assert_array_equal(got[k], a[k])
    seq = _graspxl(n=2)
    joints = graspxl_joints(seq, tmp_path)
    for t in range(2):
        jn, vn = _numpy_mano(a, np.r_[seq.hand_rot[t], seq.hand_pose[t]], np.zeros(10))
        np.testing.assert_allclose(joints[t], _with_tips(jn[None], vn[None], SMPLX_TIPS)[0] + seq.hand_trans[t],
                                   atol=2e-6)


@pytest.mark.parametrize("content, msg", [
    (lambda a: [1, 2], "not a dict"),
    (lambda a: {k: v for k, v in a.items() if k != "posedirs"}, "no posedirs"),
    (lambda a: b"not a pickle", "not a readable MANO model"),
])
def test_bad_mano_files_are_one_line_naming_the_file(tmp_path, content, msg):
    from pam.stage1_pose import graspxl_joints
    from pam_bench.errors import InputError

    body = content(fake_mano_arrays(0))
    f = tmp_path / "MANO_RIGHT.pkl"
    f.write_bytes(body if isinstance(body, bytes) else pickle.dumps(body))
    with pytest.raises(InputError, match=msg) as e:
        graspxl_joints(_graspxl(n=1), tmp_path)
    assert str(f) in str(e.value) and "\n" not in str(e.value)


def test_a_missing_model_names_the_expected_file(tmp_path):
    from pam_bench.datasets.oakink2 import ManoHands
    from pam_bench.errors import MissingResource

    with pytest.raises(MissingResource) as e:
        ManoHands(tmp_path)
    assert str(tmp_path / "MANO_LEFT.pkl") in str(e.value) and "mano.is.tue.mpg.de" in str(e.value)


def test_one_mano_reader_and_one_layer():
    """Only pam_bench/geometry/mano.py builds smplx's MANO layer or admits chumpy's pickled objects."""
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    found = {str(f.relative_to(repo)) for pkg in ("pam_bench", "pam", "baselines") for f in (repo / pkg).rglob("*.py")
             if any(s in f.read_text(encoding="utf-8") for s in ("smplx.MANO(", '"chumpy.ch"'))}
    assert found == {"pam_bench/geometry/mano.py"}
