"""DexYCB: s0 manifests on a full-shape tree, one real-format clip, the PAM layout with PAM's real
videos, broken trees, ``pam-bench data verify/show``, and the format of PAM's sample condition videos."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from .conftest import SAMPLES as ALL_SAMPLES
from .fixtures_dexycb import INTR, make_dexycb_clip, make_dexycb_skeleton, write_meta
from pam_bench.datasets.dexycb import SERIALS, SUBJECTS, DexYCB
from pam_bench.errors import InputError

SAMPLES = ALL_SAMPLES / "dexycb"
HAND_RGB = (92, 0, 255)


# ---------------------------------------------------------------------- manifests on the full shape
@pytest.fixture(scope="module")
def skeleton(tmp_path_factory):
    root = tmp_path_factory.mktemp("dexycb_full")
    seqs = make_dexycb_skeleton(root)
    return root, seqs


def pam_gen_video_filelist(root: Path, sequence_ind) -> list[str]:
    """PAM's gen_s0_split_filelist.py rule, re-stated on os.listdir (the reference)."""
    subjects = [s for s in os.listdir(root) if "subject" in s]
    subjects.sort(key=lambda x: int(x.split("-")[-1]))
    out = []
    for subject in subjects:
        seqs = sorted(s for s in os.listdir(root / subject) if (root / subject / s).is_dir())
        for i in sequence_ind:
            seq = seqs[i]
            serials = sorted(s for s in os.listdir(root / subject / seq) if (root / subject / seq / s).is_dir())
            out += [f"{subject}/{seq}/{s}" for s in serials]
    return out


def test_s0_pam_val_is_pams_list_in_pams_order(skeleton):
    root, seqs = skeleton
    split = DexYCB(root=root).split()
    assert split.name == "s0-pam-val" and len(split) == 1600
    assert list(split.ids) == pam_gen_video_filelist(root, [i for i in range(100) if i % 5 == 4])
    first = split.ids[0].split("/")
    assert first == [SUBJECTS[0], seqs[SUBJECTS[0]][4], SERIALS[0]]
    assert split.ids[-1].split("/") == [SUBJECTS[9], seqs[SUBJECTS[9]][99], SERIALS[7]]
    assert DexYCB(root=root).split().manifest_hash == split.manifest_hash


def test_official_s0_counts_and_relations(skeleton):
    root, _ = skeleton
    val = DexYCB(root=root, split="s0-val").split().ids
    test = DexYCB(root=root, split="s0-test").split().ids
    train = DexYCB(root=root, split="s0-train").split().ids
    pam = DexYCB(root=root, split="s0-pam-val").split().ids
    assert (len(val), len(test), len(train)) == (320, 1280, 6400)
    assert list(val) + list(test) == list(pam)  # PAM's val = the toolkit's val + test, same order
    assert not set(train) & set(pam)
    assert {i.split("/")[0] for i in val} == set(SUBJECTS[:2])
    assert list(train) == pam_gen_video_filelist(root, [i for i in range(100) if i % 5 != 4])


# ---------------------------------------------------------------------- one real-format clip
SUBJ, SEQ, SER = SUBJECTS[0], "20200709_141754", SERIALS[5]
CLIP_ID = f"{SUBJ}/{SEQ}/{SER}"


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    root = tmp_path_factory.mktemp("dexycb_clip")
    gt = make_dexycb_clip(root, SUBJ, SEQ, SER, n_frames=100)
    return root, gt, DexYCB(root=root).load(CLIP_ID)


def _torch_bilinear(frames: np.ndarray, h: int = 480, w: int = 720) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(frames).permute(0, 3, 1, 2).double()
    y = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
    return y.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()


def test_frames_follow_pams_index_rule_and_stretch(clip):
    from PIL import Image

    root, gt, s = clip
    idx = list(range(0, 100, 100 // 49))[:49]
    assert s.meta["frame_indices"] == idx and s.meta["num_source_frames"] == 100
    assert s.video.frames.shape == (49, 480, 720, 3) and s.video.fps == 15.0
    src = np.stack([np.asarray(Image.open(gt["dir"] / f"color_{i:06d}.jpg").convert("RGB")) for i in idx[:5]])
    diff = np.abs(s.video.frames[:5].astype(int) - _torch_bilinear(src).astype(int))
    assert diff.max() <= 2


def test_joints_intrinsics_and_missing_hand(clip):
    root, gt, s = clip
    idx = s.meta["frame_indices"]
    assert s.joints_2d.shape == (49, 1, 21, 2) and s.joints_3d.shape == (49, 1, 21, 3)
    t_missing = idx.index(4)  # the fixture's frame without a hand
    assert np.isnan(s.joints_2d[t_missing]).all() and np.isnan(s.joints_3d[t_missing]).all()
    ok = [t for t in range(49) if t != t_missing]
    ref = gt["joint_2d"][idx][ok] * np.array([720 / 640, 1.0], np.float32)
    np.testing.assert_allclose(s.joints_2d[ok], ref, rtol=1e-6)
    np.testing.assert_array_equal(s.joints_3d[ok], gt["joint_3d"][idx][ok])
    k = s.intrinsics
    np.testing.assert_allclose([k[0, 0], k[1, 1], k[0, 2], k[1, 2]],
                               [INTR["fx"] * 1.125, INTR["fy"], INTR["ppx"] * 1.125, INTR["ppy"]])
    # the scaled intrinsics project the 3D joints onto the scaled 2D joints (fixture joints are consistent
    # only up to its own toy camera, so check the scaling relation instead: K' = diag(1.125, 1, 1) K)
    np.testing.assert_allclose(k, np.diag([1.125, 1.0, 1.0]) @ DexYCB(root=root).intrinsics_native(SER))
    assert s.hand_sides == ("right",)
    assert s.meta["hand_frames"] == 48


def test_seg_labels_and_seg_condition(clip):
    from pam_bench.render import ADE20K_PALETTE, seg_condition

    root, gt, s = clip
    idx = s.meta["frame_indices"]
    cols = (np.arange(720) * 640) // 720  # torch 'nearest': floor(dst * src / dst)
    np.testing.assert_array_equal(s.seg, gt["seg"][idx][:, :, cols])
    seg = s.conditions["seg"].frames
    np.testing.assert_array_equal(seg, seg_condition(s.seg))
    assert (seg[s.seg == 255] == HAND_RGB).all()
    assert (seg[s.seg == 0] == 0).all()
    assert (seg[s.seg == 5] == ADE20K_PALETTE[5]).all()


def test_hand_condition_drawn_on_native_canvas(clip):
    from pam_bench.render import keypoint_condition, nearest_resize

    root, gt, s = clip
    idx = s.meta["frame_indices"]
    hand = s.conditions["hand"].frames
    assert hand.shape == (49, 480, 720, 3)
    for t in (0, 7):
        j2, j3 = gt["joint_2d"][idx[t]], gt["joint_3d"][idx[t]]
        native = keypoint_condition(j2, 480, 640, wrist_z=j3[:, 0, 2], last_z=j3[:, -1, 2])
        np.testing.assert_array_equal(hand[t], nearest_resize(native, 480, 720))
        x, y = np.round(j2[0, 0] * [720 / 640, 1]).astype(int)  # the wrist is drawn where it should be
        assert hand[t, y - 1:y + 2, x - 1:x + 2].max() > 0
    assert hand[idx.index(4)].max() == 0  # no hand: empty canvas


def test_sensor_depth_masked_to_foreground(clip):
    root, gt, s = clip
    depth = s.conditions["depth"].frames
    assert s.meta["depth_source"] == "sensor-masked"
    assert depth.shape == (49, 480, 720, 3)
    assert (depth[s.seg == 0] == 0).all()
    fg = s.seg > 0
    fg[:, :5] = False  # sensor holes in the fixture
    assert (depth[fg].max(-1) > 0).all()


# ---------------------------------------------------------------------- PAM layout, PAM's real videos
@pytest.mark.data(SAMPLES / "val_video.mp4", SAMPLES / "val_depth.mp4")
def test_pam_layout_reads_video_mp4_and_depthcrafter(tmp_path):
    from pam_bench.video import read_video

    make_dexycb_clip(tmp_path / "dexycb", SUBJ, SEQ, SER, n_frames=72, write_color=False, write_depth=False)
    for sub, name, src in (("dexycb_videos", "video.mp4", "val_video.mp4"),
                           ("dexycb_depth", "masked_color.mp4", "val_depth.mp4")):
        p = tmp_path / sub / SUBJ / SEQ / SER / name
        p.parent.mkdir(parents=True)
        p.symlink_to(SAMPLES / src)
    ds = DexYCB(root=tmp_path)
    assert ds.layout == "pam"
    s = ds.load(CLIP_ID)
    assert s.meta["frame_indices"] == list(range(49)) and s.meta["depth_source"] == "depthcrafter"
    ref = _torch_bilinear(read_video(SAMPLES / "val_video.mp4").frames[:3])
    assert np.abs(s.video.frames[:3].astype(int) - ref.astype(int)).max() <= 2
    depth = s.conditions["depth"].frames
    assert depth.shape == (49, 480, 720, 3)
    assert (depth[s.seg == 0] == 0).all()
    raw = _torch_bilinear(read_video(SAMPLES / "val_depth.mp4").frames[:2])
    fg = s.seg[:2] > 0
    assert np.abs(depth[:2][fg].astype(int) - raw[fg].astype(int)).max() <= 2


# ---------------------------------------------------------------------- broken trees
@pytest.fixture(scope="module")
def small_clip(tmp_path_factory):
    root = tmp_path_factory.mktemp("dexycb_small")
    make_dexycb_clip(root, SUBJ, SEQ, SER, n_frames=49, jpeg_quality=50)
    return root


@pytest.fixture
def broken(small_clip, tmp_path):
    root = tmp_path / "dex"
    shutil.copytree(small_clip, root)
    return root


def _raises(fn, path) -> str:
    with pytest.raises(InputError) as e:
        fn()
    assert str(path) in str(e.value), str(e.value)
    return str(e.value)


def test_missing_labels_file(broken):
    p = broken / SUBJ / SEQ / SER / "labels_000010.npz"
    p.unlink()
    assert "missing" in _raises(lambda: DexYCB(root=broken).load(CLIP_ID), p)


def test_truncated_jpg(broken):
    p = broken / SUBJ / SEQ / SER / "color_000003.jpg"
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    assert "truncated" in _raises(lambda: DexYCB(root=broken).load(CLIP_ID), p)


def test_missing_intrinsics(broken):
    p = broken / "calibration" / "intrinsics" / f"{SER}_640x480.yml"
    p.unlink()
    assert "intrinsics" in _raises(lambda: DexYCB(root=broken).load(CLIP_ID), p)


def test_meta_without_serials(broken):
    p = broken / SUBJ / SEQ / "meta.yml"
    p.write_text("num_frames: 49\nmano_sides:\n- right\n")
    assert "serials" in _raises(lambda: DexYCB(root=broken).load(CLIP_ID), p)


def test_labels_without_joint_2d(broken):
    p = broken / SUBJ / SEQ / SER / "labels_000000.npz"
    np.savez(p, seg=np.zeros((480, 640), np.uint8), joint_3d=np.zeros((1, 21, 3), np.float32))
    assert "joint_2d" in _raises(lambda: DexYCB(root=broken).load(CLIP_ID), p)


def test_too_few_frames(broken):
    write_meta(broken / SUBJ / SEQ / "meta.yml", num_frames=30)
    assert "at least 49" in _raises(lambda: DexYCB(root=broken).load(CLIP_ID), broken / SUBJ / SEQ / SER)


def test_wrong_subject_count(tmp_path):
    for s in SUBJECTS[:3]:
        (tmp_path / s).mkdir()
    assert "3 subject folders" in _raises(lambda: DexYCB(root=tmp_path).split(), tmp_path)


def test_wrong_sequence_count(tmp_path):
    make_dexycb_skeleton(tmp_path, n_seq=2, with_meta=False)
    _raises(lambda: DexYCB(root=tmp_path).split(), tmp_path / SUBJECTS[0])


def test_not_a_dexycb_root_and_bad_options(tmp_path):
    _raises(lambda: DexYCB(root=tmp_path), tmp_path)
    with pytest.raises(InputError, match="unknown DexYCB split"):
        DexYCB(root=tmp_path, split="s3-val")


# ---------------------------------------------------------------------- CLI
def test_cli_verify_lists_missing_files_and_fails(skeleton, tmp_path):
    from click.testing import CliRunner

    from pam_bench.cli import cli

    root, seqs = skeleton
    res = CliRunner().invoke(cli, ["data", "verify", "--dataset", "dexycb", "--root", str(root),
                                   "--list"])
    assert res.exit_code == 1, res.output
    assert "clips: 1600" in res.output and "INCOMPLETE" in res.output
    first = root / SUBJECTS[0] / seqs[SUBJECTS[0]][4] / SERIALS[0] / "labels_000000.npz"
    assert f"{first}: missing" in res.output


def test_cli_show_writes_side_by_side_png(small_clip, tmp_path):
    from click.testing import CliRunner
    from PIL import Image

    from pam_bench.cli import cli

    out = tmp_path / "show.png"
    res = CliRunner().invoke(cli, ["data", "show", "--dataset", "dexycb", "--root", str(small_clip),
                                   "--id", CLIP_ID, "--frame", "2", "--out", str(out)])
    assert res.exit_code == 0, res.output
    img = np.asarray(Image.open(out))
    assert img.shape == (480, 720 * 5, 3)
    s = DexYCB(root=small_clip).load(CLIP_ID)
    np.testing.assert_array_equal(img[:, :720], s.video.frames[2])
    np.testing.assert_array_equal(img[:, 720:1440], s.conditions["seg"].frames[2])


# ---------------------------------------------------------------------- PAM's sample condition videos
@pytest.mark.data(SAMPLES / "val_seg_mask.mp4", SAMPLES / "val_hand_keypoints.mp4", SAMPLES / "val_depth.mp4")
def test_pam_sample_condition_videos_format():
    from pam_bench.render import nearest_resize
    from pam_bench.video import read_video

    seg = read_video(SAMPLES / "val_seg_mask.mp4").frames
    hand = read_video(SAMPLES / "val_hand_keypoints.mp4").frames
    depth = read_video(SAMPLES / "val_depth.mp4").frames
    assert seg.shape == hand.shape == (49, 480, 720, 3)
    assert depth.shape == (49, 384, 640, 3)  # DepthCrafter's size; the loader stretches it
    seg_fg = seg.max(-1) > 19
    assert 0.8 < 1 - seg_fg.mean() < 0.98  # mostly black background
    assert (hand.max(-1) <= 19).mean() > 0.95
    d_fg = np.stack([nearest_resize(f, 480, 720) for f in depth]).max(-1) > 19
    iou = (seg_fg & d_fg).sum() / (seg_fg | d_fg).sum()
    assert iou > 0.9  # depth is black exactly where the seg is background (up to codec edges)


# ---------------------------------------------------------------------- end to end through the CLI
def test_evaluate_oracle_on_a_fixture_tree(tmp_path):
    """`pam-bench evaluate --method oracle --dataset dexycb --root R` on a full-shape tree whose first
    s0-pam-val clip is real-format: the oracle scores SSIM 1 and the PSNR cap, in PAM's clip order."""
    import json

    from pam_bench.cli import main
    from pam_bench.metrics.pixel import PSNR_CAP_DB

    root = tmp_path / "dexycb"
    make_dexycb_skeleton(root)
    first = DexYCB(root=root, split="s0-pam-val").split().ids[0]
    subj, seq, ser = first.split("/")
    make_dexycb_clip(root, subj, seq, ser, n_frames=49, jpeg_quality=60)
    out = tmp_path / "run"
    try:
        main(["evaluate", "--method", "oracle", "--dataset", "dexycb", "--root", str(root), "--split",
              "s0-pam-val", "--limit", "1", "--metrics", "ssim,psnr", "--out", str(out), "--no-progress"])
    except SystemExit as e:
        assert not e.code
    r = json.loads((out / "results.json").read_text())
    assert r["dataset"]["name"] == "dexycb" and r["dataset"]["split"] == "s0-pam-val"
    assert r["n_evaluated"] == 1
    assert r["metrics"]["ssim"]["value"] == pytest.approx(1.0, abs=1e-12)
    assert r["metrics"]["psnr"]["value"] == PSNR_CAP_DB
    assert [json.loads(x)["video_id"] for x in (out / "per_video.jsonl").read_text().splitlines()] == [first]


def test_cli_verify_checks_past_a_missing_meta_yml(tmp_path):
    """One missing meta.yml is reported with everything else, not instead of it; problems are counted by kind."""
    import re

    from click.testing import CliRunner

    from pam_bench.cli import cli

    root = tmp_path / "dexycb"
    seqs = make_dexycb_skeleton(root)
    meta = root / SUBJECTS[0] / seqs[SUBJECTS[0]][4] / "meta.yml"  # a sequence of s0-pam-val (index % 5 == 4)
    meta.unlink()
    res = CliRunner().invoke(cli, ["data", "verify", "--dataset", "dexycb", "--root", str(root)])
    assert res.exit_code == 1, res.output
    assert "clips: 1600" in res.output
    assert f"{meta}: missing" in res.output
    total = int(re.search(r"INCOMPLETE: (\d+) problem", res.output).group(1))
    assert total > 1000  # every other clip was checked too (the skeleton has no frames)
    assert len(res.output.splitlines()) < 40  # counts by kind and a few paths, not one line per file
    assert "--list shows all" in res.output
