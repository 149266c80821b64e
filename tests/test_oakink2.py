"""OAKINK2: clip lists (PAM's format), 49-frame chunks, PAM-prepared condition videos (PAM's real
samples), the anno_preview pickle (torch tensors) through the restricted unpickler, MANO joints with a
MANO-shaped random model against closed forms, broken inputs, and ``pam-bench data verify``."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

from pam_bench.datasets.oakink2 import TIPS, ManoHands, OakInk2, load_anno, quat_to_axis_angle
from pam_bench.errors import InputError, MissingResource
from pam_bench.geometry.mano import MANO_TO_HOUSE as SNAP_ORDER

from .conftest import SAMPLES as ALL_SAMPLES
from .conftest import data_missing
from .fixtures_dexycb import OAK_CAM, OAK_SEQ, fake_mano_arrays, fake_mano_dir, make_oakink2_tree, oak_anno

SAMPLES = ALL_SAMPLES / "oakink2"
CONDS = {(0, "processed_hand_keypoints", "output_hand.mp4"): SAMPLES / "val_hand.mp4",
         (0, "processed_seg_mask", "output_seg.mp4"): SAMPLES / "val_seg_mask.mp4",
         (0, "processed_depth", "color.mp4"): SAMPLES / "val_depth.mp4"}
HAVE_SAMPLES = data_missing(*CONDS.values()) is None
NEEDS_SAMPLES = pytest.mark.data(*CONDS.values())
ID0, ID1 = f"{OAK_SEQ}/{OAK_CAM}/0", f"{OAK_SEQ}/{OAK_CAM}/1"


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("oakink2")
    info = make_oakink2_tree(root, n_frames=98, conditions=CONDS if HAVE_SAMPLES else None)
    mano = fake_mano_dir(tmp_path_factory.mktemp("mano"))
    return root, info, mano


@pytest.fixture(scope="module")
def sample_videos():
    from pam_bench.video import read_video

    return {n: read_video(SAMPLES / f"val_{n}.mp4").frames for n in ("seg_mask", "hand", "depth")}


@pytest.fixture(scope="module")
def loaded(tree):
    root, info, mano = tree
    return OakInk2(root=root, mano_dir=mano).load(ID0)


# ---------------------------------------------------------------------- manifests
def test_clips_found_and_pam_clip_list(tree, tmp_path):
    root, info, mano = tree
    assert OakInk2(root=root).split().ids == (ID0, ID1)
    lst = tmp_path / "val_videos.txt"
    lst.write_text("# PAM list, a foreign machine's prefix\n"
                   f"/share/x/OakInk-v2_data/videos/{OAK_SEQ}/{OAK_CAM}/1/video.mp4\n"
                   f"\n{OAK_SEQ}/{OAK_CAM}/0\n")
    s = OakInk2(root=root, clip_list=lst).split()
    assert s.ids == (ID1, ID0) and s.name == "val_videos"
    assert len(s.protocol["clip_list_sha256"]) == 64


# ---------------------------------------------------------------------- one clip
def test_chunk_frames_and_intrinsics(tree, loaded):
    import torch
    import torch.nn.functional as F
    from PIL import Image

    root, info, mano = tree
    s = loaded
    assert s.meta["frame_ids"] == info["ids"][:49]
    assert s.video.frames.shape == (49, 480, 720, 3)
    src = np.stack([np.asarray(Image.open(info["dir"] / f"{f}.jpg").convert("RGB")) for f in info["ids"][:2]])
    ref = F.interpolate(torch.from_numpy(src).permute(0, 3, 1, 2).double(), size=(480, 720), mode="bilinear",
                        align_corners=False).round().byte().permute(0, 2, 3, 1).numpy()
    assert np.abs(s.video.frames[:2].astype(int) - ref.astype(int)).max() <= 2
    np.testing.assert_allclose(s.intrinsics, [[600 * 720 / 848, 0, 424 * 720 / 848], [0, 600, 240], [0, 0, 1]])
    s1 = OakInk2(root=root).load(ID1)
    assert s1.meta["frame_ids"] == info["ids"][49:98]


def _expected_joints(side: str, t: int):
    """Closed form for identity quaternions and zero betas: the rest joints (J_regressor @ v_template,
    fingertip vertices), wrist-centred, + tsl, then the fixture's camera."""
    a = fake_mano_arrays(0 if side == "right" else 1)
    rest = np.concatenate([a["J_regressor"] @ a["v_template"], a["v_template"][list(TIPS[side])]])[list(SNAP_ORDER)]
    tsl = np.array([0.1 * (side == "right") - 0.05, 0.01 * t, 0.0])
    world = rest - rest[0] + tsl
    anno = oak_anno([0])
    extr = anno["cam_extr"]["allocentric_top"][0]
    intr = anno["cam_intr"]["allocentric_top"][0]
    cam = world @ extr[:3, :3].T + extr[:3, 3]
    uv = cam @ intr.T
    px = uv[:, :2] / uv[:, 2:] * np.array([720 / 848, 1.0])
    return cam, px


def test_mano_joints_match_closed_form(loaded):
    s = loaded
    assert s.hand_sides == ("left", "right")
    assert s.joints_3d.shape == (49, 2, 21, 3) and s.joints_2d.shape == (49, 2, 21, 2)
    for k, side in enumerate(("left", "right")):
        for t in (0, 30):
            cam, px = _expected_joints(side, t)
            np.testing.assert_allclose(s.joints_3d[t, k], cam, atol=1e-5)
            np.testing.assert_allclose(s.joints_2d[t, k], px, atol=1e-2)
    assert set(s.meta["mano"]) == {"left", "right"}


def test_quaternions_and_root_rotation(tree):
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(3)
    r = Rotation.random(5, random_state=4)
    q_xyzw = r.as_quat()
    q_wxyz = np.concatenate([q_xyzw[:, 3:], q_xyzw[:, :3]], 1) * 2.5  # not unit: normalised first
    got_r = Rotation.from_rotvec(quat_to_axis_angle(q_wxyz))  # same rotation (angle may exceed pi)
    np.testing.assert_allclose(got_r.as_matrix(), r.as_matrix(), atol=1e-10)
    assert np.allclose(quat_to_axis_angle(np.array([1.0, 0, 0, 0])), 0)
    # a root-only rotation turns the whole rest hand about the wrist (no pose blend shapes for the root)
    _, _, mano = tree
    hands = ManoHands(mano)
    q = np.zeros((1, 16, 4))
    q[..., 0] = 1
    rot = Rotation.from_rotvec([0.3, -0.5, 0.8])
    x, y, z, w = rot.as_quat()
    q[0, 0] = (w, x, y, z)
    tsl = rng.normal(size=(1, 3))
    got = hands.joints("right", q, np.zeros((1, 10)), tsl)[0]
    a = fake_mano_arrays(0)
    rest = np.concatenate([a["J_regressor"] @ a["v_template"], a["v_template"][list(TIPS["right"])]])[list(SNAP_ORDER)]
    want = (rest - rest[0]) @ rot.as_matrix().T + tsl[0]
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_mano_pkl_with_sparse_regressor_equals_npz(tree, tmp_path):
    _, _, mano_npz = tree
    mano_pkl = fake_mano_dir(tmp_path / "pkl", fmt="pkl")
    q = np.tile(np.array([0.9, 0.1, -0.2, 0.3]), (2, 16, 1))
    betas = np.full((2, 10), 0.5)
    tsl = np.zeros((2, 3))
    a = ManoHands(mano_npz).joints("left", q, betas, tsl)
    b = ManoHands(mano_pkl).joints("left", q, betas, tsl)
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_without_mano_joints_are_unavailable(tree):
    root, info, mano = tree
    s = OakInk2(root=root).load(ID1)
    assert s.joints_2d is None and s.joints_3d is None and s.hand_sides == ()
    assert "MANO" in s.meta["joints_unavailable"]
    assert s.intrinsics is not None  # intrinsics come from the annotation, no MANO needed
    assert set(s.meta["conditions_unavailable"]) == {"hand", "seg", "depth"} and not s.conditions


@NEEDS_SAMPLES
def test_conditions_from_pams_prepared_videos(loaded, sample_videos):
    s = loaded
    assert set(s.conditions) == {"hand", "seg", "depth"} and not s.meta["conditions_unavailable"]
    seg, depth = s.conditions["seg"].frames, s.conditions["depth"].frames
    assert seg.shape == depth.shape == s.conditions["hand"].frames.shape == (49, 480, 720, 3)
    np.testing.assert_array_equal(seg, sample_videos["seg_mask"])
    black = (seg <= 19).all(-1)
    assert (depth[black] == 0).all()
    raw = sample_videos["depth"]
    np.testing.assert_array_equal(depth[~black], raw[~black])


@NEEDS_SAMPLES
def test_pam_sample_condition_videos_format(sample_videos):
    seg, hand, depth = sample_videos["seg_mask"], sample_videos["hand"], sample_videos["depth"]
    assert seg.shape == hand.shape == depth.shape == (49, 480, 720, 3)
    seg_fg, d_fg = seg.max(-1) > 19, depth.max(-1) > 19
    assert 0.6 < 1 - seg_fg.mean() < 0.98 and (hand.max(-1) <= 19).mean() > 0.9
    assert (seg_fg & d_fg).sum() / (seg_fg | d_fg).sum() > 0.9  # depth black where seg is background
    # both hands share label 1 -> (61, 230, 250) in PAM's OAKINK2 palette: the colour is present
    assert (np.abs(seg[seg_fg].astype(int) - (61, 230, 250)).max(-1) < 30).mean() > 0.05


# ---------------------------------------------------------------------- the annotation pickle
def test_anno_pickle_with_torch_tensors_loads_and_code_is_refused(tree, tmp_path):
    root, info, mano = tree
    anno = load_anno(root / "anno_preview" / f"{OAK_SEQ}.pkl")
    assert anno["raw_mano"][info["ids"][0]]["rh__pose_coeffs"].shape == (1, 16, 4)

    class Evil:
        def __reduce__(self):
            import os

            return (os.system, ("echo pwned",))

    p = tmp_path / "evil.pkl"
    p.write_bytes(pickle.dumps({"cam_def": Evil()}))
    with pytest.raises(InputError, match="refusing"):
        load_anno(p)


# ---------------------------------------------------------------------- broken inputs
@pytest.fixture
def small_tree(tmp_path):
    root = tmp_path / "oak"
    make_oakink2_tree(root, n_frames=49)
    return root


def test_pkl_with_missing_keys(small_tree):
    p = small_tree / "anno_preview" / f"{OAK_SEQ}.pkl"
    with open(p, "wb") as fh:
        pickle.dump(oak_anno([1000], drop=("raw_mano", "cam_intr")), fh)
    with pytest.raises(InputError) as e:
        OakInk2(root=small_tree).load(ID0)
    assert str(p) in str(e.value) and "'cam_intr'" in str(e.value) and "'raw_mano'" in str(e.value)


def test_clip_list_naming_absent_files(small_tree, tmp_path):
    lst = tmp_path / "list.txt"
    lst.write_text(f"{OAK_SEQ}/{OAK_CAM}/0\n/x/videos/scene_99__Z/{OAK_CAM}/0/video.mp4\n")
    with pytest.raises(InputError) as e:
        OakInk2(root=small_tree, clip_list=lst).split()
    assert f"{lst}:2" in str(e.value) and "scene_99__Z" in str(e.value)


def test_clip_list_bad_line_and_missing_list(small_tree, tmp_path):
    lst = tmp_path / "list.txt"
    lst.write_text("just-a-name\n")
    with pytest.raises(InputError, match=f"{lst}:1"):
        OakInk2(root=small_tree, clip_list=lst).split()
    with pytest.raises(InputError, match="missing"):
        OakInk2(root=small_tree, clip_list=tmp_path / "nope.txt")


def test_no_mano_when_joints_are_needed(small_tree, tmp_path):
    with pytest.raises(MissingResource, match="mano_dir"):
        OakInk2(root=small_tree, require_joints=True)
    empty = tmp_path / "empty_mano"
    empty.mkdir()
    with pytest.raises(MissingResource) as e:
        OakInk2(root=small_tree, mano_dir=empty)
    assert str(empty / "MANO_LEFT.pkl") in str(e.value) or str(empty / "MANO_RIGHT.pkl") in str(e.value)


def test_chunk_beyond_the_frames(small_tree):
    with pytest.raises(InputError) as e:
        OakInk2(root=small_tree).load(f"{OAK_SEQ}/{OAK_CAM}/1")
    assert str(small_tree / "data" / OAK_SEQ / OAK_CAM) in str(e.value)


def test_missing_annotation_named(small_tree):
    p = small_tree / "anno_preview" / f"{OAK_SEQ}.pkl"
    p.unlink()
    with pytest.raises(InputError) as e:
        OakInk2(root=small_tree).load(ID0)
    assert str(p) in str(e.value) and "missing" in str(e.value)


# ---------------------------------------------------------------------- CLI
@NEEDS_SAMPLES
def test_cli_verify_ok_and_incomplete(tree, tmp_path):
    from click.testing import CliRunner

    from pam_bench.cli import cli

    root, info, mano = tree
    lst = tmp_path / "ok.txt"
    lst.write_text(f"{OAK_SEQ}/{OAK_CAM}/0\n")
    ok = CliRunner().invoke(cli, ["data", "verify", "--dataset", "oakink2", "--root", str(root),
                                  "-d", f"clip_list={lst}"])
    assert ok.exit_code == 0, ok.output
    assert "clips: 1" in ok.output and "OK" in ok.output
    bad = CliRunner().invoke(cli, ["data", "verify", "--dataset", "oakink2", "--root", str(root)])
    assert bad.exit_code == 1
    assert str(root / "processed_seg_mask" / OAK_SEQ / OAK_CAM / "1" / "output_seg.mp4") in bad.output


# ---------------------------------------------------------------------- PAM's shipped sample, as it is

@pytest.mark.data(SAMPLES / "val_image.png", *CONDS.values())
def test_shipped_sample_generates_with_one_documented_command(tmp_path):
    """README: `pam-bench evaluate --method sim-render --dataset oakink2 --root <testdata>/pam_samples/oakink2
    --metrics none`. The sample has no GT video: metrics are refused before any work, generation runs."""
    import json

    from pam_bench.cli import main
    from pam_bench.video import read_video

    root = SAMPLES
    base = ["evaluate", "--method", "sim-render", "--dataset", "oakink2", "--root", str(root), "--no-progress"]
    with pytest.raises(SystemExit) as e:
        main([*base, "--metrics", "ssim", "--out", str(tmp_path / "scored")])
    assert e.value.code == 2 and not (tmp_path / "scored" / "videos").exists()
    main([*base, "--metrics", "none", "--out", str(tmp_path / "o")])
    res = json.loads((tmp_path / "o" / "results.json").read_text())
    assert res["n_evaluated"] == 1 and res["metrics"] == {} and res["dataset"]["protocol"]["reference"] == "none"
    v = read_video(tmp_path / "o" / "videos" / "val.mp4").frames
    assert v.shape == (49, 480, 720, 3)
    s = OakInk2(root=root).load("val")
    assert set(s.conditions) == {"seg", "hand", "depth"} and s.video is None
    assert s.first_frame.shape == (480, 720, 3)
    black = (s.conditions["seg"].frames <= 19).all(axis=-1)
    assert (s.conditions["depth"].frames[black] == 0).all()  # PAM's mask_conditions
