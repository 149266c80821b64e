"""Writers of DexYCB / OAKINK2 fixture trees in temporary folders (never committed data).

- :func:`make_dexycb_skeleton`: the full DexYCB shape (10 subjects x 100 sequences x 8 serials) with
  tiny meta.yml files and empty serial folders, created in shuffled order so sorting is exercised.
- :func:`make_dexycb_clip`: one real-format clip (color jpg, uint16 depth png, labels npz with
  seg/joint_2d/joint_3d/pose_m, meta.yml, calibration intrinsics yml) with known ground truth.
- :func:`make_oakink2_tree`: data/ frames, anno_preview pkl (torch tensors, plainly pickled, like the
  released files) and optionally PAM-prepared condition videos.
- :func:`fake_mano_npz`: a MANO-shaped model of random numbers (no real MANO data) for wiring tests.
"""
from __future__ import annotations

import pickle
import random
from pathlib import Path

import numpy as np

from pam_bench.datasets.dexycb import SERIALS, SUBJECTS

INTR = {"fx": 613.08, "fy": 612.0, "ppx": 313.03, "ppy": 245.01}


def seq_names(subject: str, n: int = 100, seed: int = 0) -> list[str]:
    """n distinct YYYYMMDD_HHMMSS names for a subject (the date of its folder name)."""
    date = subject.split("-")[0]
    rng = random.Random(f"{seed}:{subject}")
    secs = sorted(rng.sample(range(36000, 86000), n))
    return [f"{date}_{s // 3600:02d}{(s // 60) % 60:02d}{s % 60:02d}" for s in secs]


def write_meta(path: Path, serials=SERIALS, num_frames: int = 72, sides=("right",), extra: str = "") -> None:
    ser = "".join(f"- '{s}'\n" for s in serials)
    side = "".join(f"- {s}\n" for s in sides)
    text = (f"serials:\n{ser}num_frames: {num_frames}\nycb_ids:\n- 5\n- 10\nycb_grasp_ind: 0\n"
            f"mano_sides:\n{side}mano_calib:\n- 20200709-subject-01_right\n{extra}")
    path.write_text(text)


def make_dexycb_skeleton(root: Path, subjects=SUBJECTS, n_seq: int = 100, serials=SERIALS,
                         with_meta: bool = True) -> dict[str, list[str]]:
    """Full-shape tree, folders and meta.yml only. Returns subject -> sorted sequence names."""
    out = {}
    order = list(subjects)
    random.Random(1).shuffle(order)
    for subject in order:
        names = seq_names(subject, n_seq)
        shuffled = names[:]
        random.Random(2).shuffle(shuffled)
        for seq in shuffled:
            d = root / subject / seq
            for s in serials:
                (d / s).mkdir(parents=True, exist_ok=True)
            if with_meta:
                write_meta(d / "meta.yml", serials)
        out[subject] = names
    return out


def write_intrinsics(root: Path, serial: str, k: dict = INTR) -> Path:
    p = root / "calibration" / "intrinsics" / f"{serial}_640x480.yml"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("color:\n" + "".join(f"  {a}: {v}\n" for a, v in k.items())
                 + "depth:\n  fx: 1.0\n  fy: 1.0\n  ppx: 1.0\n  ppy: 1.0\n")
    return p


def _hand_joints(t: int) -> tuple[np.ndarray, np.ndarray]:
    """A plausible 21-joint hand drifting right over time: (joint_2d [21,2] px, joint_3d [21,3] m)."""
    ang = np.linspace(-0.9, 0.9, 5)
    pts = [(0.0, 0.0)]
    for f, a in enumerate(ang):
        for k in range(1, 5):
            r = 25.0 * k + 8 * (f == 0)
            pts.append((r * np.sin(a), -r * np.cos(a)))
    j2 = np.array(pts, np.float32) + np.array([300.0 + 2.0 * t, 300.0], np.float32)
    z = 0.6 + 0.002 * np.arange(21, dtype=np.float32) * (1 if t % 2 else -1)
    j3 = np.concatenate([(j2 - 320) / 600 * z[:, None], z[:, None]], 1).astype(np.float32)
    return j2, j3


def make_dexycb_clip(root: Path, subject: str, seq: str, serial: str, n_frames: int = 100,
                     no_hand=(4,), write_depth: bool = True, write_color: bool = True,
                     jpeg_quality: int = 90) -> dict:
    """One clip in the toolkit's formats. Returns ground truth per source frame."""
    from PIL import Image

    d = root / subject / seq / serial
    d.mkdir(parents=True, exist_ok=True)
    write_meta(root / subject / seq / "meta.yml", SERIALS, n_frames)
    write_intrinsics(root, serial)
    yy, xx = np.mgrid[0:480, 0:640]
    base = np.stack([xx, yy * 2, np.full_like(xx, 40)], -1).astype(np.uint8)
    gt = {"joint_2d": [], "joint_3d": [], "seg": [], "depth": []}
    for t in range(n_frames):
        img = base + np.array([3 * t % 256, 0, t % 256], np.uint8)  # uint8 wrap-around = % 256
        if write_color:
            Image.fromarray(img).save(d / f"color_{t:06d}.jpg", quality=jpeg_quality)
        seg = np.zeros((480, 640), np.uint8)
        seg[100:200, 400:520] = 5                      # an object (YCB id 5)
        if t in no_hand:
            j2 = np.full((1, 21, 2), -1, np.float32)
            j3 = np.full((1, 21, 3), -1, np.float32)
            pose_m = np.zeros((1, 51), np.float32)
        else:
            a, b = _hand_joints(t)
            j2, j3 = a[None], b[None]
            seg[250:330, 280 + t:360 + t] = 255        # the hand
            pose_m = np.full((1, 51), 0.1, np.float32)
        depth = np.where(seg > 0, 600 + (xx % 50), 1500).astype(np.uint16)
        depth[0:5] = 0                                 # sensor holes
        np.savez(d / f"labels_{t:06d}.npz", seg=seg, pose_y=np.zeros((2, 3, 4), np.float32),
                 pose_m=pose_m, joint_3d=j3, joint_2d=j2)
        if write_depth:
            Image.fromarray(depth).save(d / f"aligned_depth_to_color_{t:06d}.png")
        for k, v in (("joint_2d", j2), ("joint_3d", j3), ("seg", seg), ("depth", depth)):
            gt[k].append(v)
    return {k: np.stack(v) for k, v in gt.items()} | {"dir": d}


# ---------------------------------------------------------------------- OAKINK2
OAK_SEQ = "scene_01__A001++seq__5ad66440a8b11dd306f3__2023-04-27-19-41-45"
OAK_CAM = "104422071041"


def oak_anno(frame_ids, cam: str = OAK_CAM, cam_name: str = "allocentric_top", drop: tuple = ()) -> dict:
    """An anno_preview-like dict: torch tensors for MANO params (as released), numpy for cameras."""
    import torch

    intr = np.array([[600.0, 0, 424.0], [0, 600.0, 240.0], [0, 0, 1]])
    th = 0.3
    rot = np.array([[np.cos(th), -np.sin(th), 0], [np.sin(th), np.cos(th), 0], [0, 0, 1]])
    extr = np.eye(4)
    extr[:3, :3] = rot
    extr[:3, 3] = [0.05, -0.02, 0.8]
    raw_mano = {}
    for i, f in enumerate(frame_ids):
        e = {}
        for p in ("lh__", "rh__"):
            q = torch.zeros(1, 16, 4)
            q[..., 0] = 1.0
            e[p + "pose_coeffs"] = q
            e[p + "tsl"] = torch.tensor([[0.1 * (p == "rh__") - 0.05, 0.01 * i, 0.0]])
            e[p + "betas"] = torch.zeros(1, 10)
        raw_mano[f] = e
    anno = {"cam_def": {cam: cam_name}, "cam_selection": [cam_name],
            "cam_intr": {cam_name: {f: intr.copy() for f in frame_ids}},
            "cam_extr": {cam_name: {f: extr.copy() for f in frame_ids}},
            "frame_id_list": list(frame_ids), "mocap_frame_id_list": list(frame_ids), "obj_list": [],
            "obj_transf": {}, "raw_mano": raw_mano, "raw_smplx": {}}
    for k in drop:
        anno.pop(k)
    return anno


def make_oakink2_tree(root: Path, n_frames: int = 100, first_id: int = 1000, conditions: dict | None = None,
                      anno: bool = True) -> dict:
    """data/<seq>/<cam>/<id>.jpg (848x480, ids first_id + 4 k), anno_preview/<seq>.pkl and, per
    ``conditions`` {(chunk, folder, fname): source video path}, PAM condition videos (symlinks)."""
    from PIL import Image

    d = root / "data" / OAK_SEQ / OAK_CAM
    d.mkdir(parents=True, exist_ok=True)
    ids = [first_id + 4 * k for k in range(n_frames)]
    yy, xx = np.mgrid[0:480, 0:848].astype(np.uint8)
    base = np.stack([xx, yy, np.zeros_like(xx)], -1)
    for k, f in enumerate(ids):
        img = base + np.array([5 * k % 256, 0, k % 256], np.uint8)  # uint8 wrap-around = % 256
        Image.fromarray(img).save(d / f"{f}.jpg", quality=85)
    if anno:
        (root / "anno_preview").mkdir(parents=True, exist_ok=True)
        with open(root / "anno_preview" / f"{OAK_SEQ}.pkl", "wb") as fh:
            pickle.dump(oak_anno(ids), fh)
    for (chunk, folder, fname), src in (conditions or {}).items():
        p = root / folder / OAK_SEQ / OAK_CAM / str(chunk) / fname
        p.parent.mkdir(parents=True, exist_ok=True)
        p.symlink_to(src)
    return {"ids": ids, "dir": d}


def fake_mano_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    """MANO-shaped random arrays (778 vertices, 16 joints): NOT the MANO model, only its shapes."""
    rng = np.random.default_rng(seed)
    jr = rng.random((16, 778))
    jr /= jr.sum(1, keepdims=True)
    w = rng.random((778, 16))
    w /= w.sum(1, keepdims=True)
    parents = np.array([4294967295, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14], np.int64)
    return {"v_template": rng.normal(0, 0.05, (778, 3)), "shapedirs": rng.normal(0, 0.001, (778, 3, 10)),
            "posedirs": rng.normal(0, 0.001, (778, 3, 135)), "J_regressor": jr, "weights": w,
            "kintree_table": np.stack([parents, np.arange(16)]), "f": rng.integers(0, 778, (1538, 3)),
            "hands_components": np.eye(45), "hands_mean": np.zeros(45)}


def fake_mano_dir(root: Path, fmt: str = "npz") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for side, seed in (("RIGHT", 0), ("LEFT", 1)):
        arrays = fake_mano_arrays(seed)
        if fmt == "npz":
            np.savez(root / f"MANO_{side}.npz", **arrays)
        else:
            import scipy.sparse

            arrays["J_regressor"] = scipy.sparse.csc_matrix(arrays["J_regressor"])
            with open(root / f"MANO_{side}.pkl", "wb") as fh:
                pickle.dump(arrays, fh, protocol=2)
    return root
