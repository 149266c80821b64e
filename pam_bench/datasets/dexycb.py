"""DexYCB (NVlabs/dex-ycb-toolkit) as PAM evaluates it: s0 splits, 49-frame clips at 480x720, conditions.

Layouts (``layout=``):

- ``raw``: the toolkit tree ``<root>/<subject>/<YYYYMMDD_HHMMSS>/<serial>/{color_%06d.jpg,
  aligned_depth_to_color_%06d.png, labels_%06d.npz}``, ``<root>/<subject>/<seq>/meta.yml`` and
  ``<root>/calibration/intrinsics/<serial>_640x480.yml``.
- ``pam``: the folders PAM's scripts prepare next to each other under one root:
  ``<root>/dexycb_videos/<subject>/<seq>/<serial>/video.mp4`` (the RGB clip, mp4v 30 fps),
  ``<root>/dexycb/...`` (the raw tree: labels, meta.yml, calibration; PAM's label column is the video
  path with ``dexycb_videos`` -> ``dexycb``) and ``<root>/dexycb_depth/<subject>/<seq>/<serial>/
  masked_color.mp4`` (DepthCrafter depth; PAM's depth column). PAM renders the seg and keypoint
  conditions on the fly from the labels (training/dataset.py), so there are no seg/keypoint videos.
- ``auto``: ``pam`` when ``<root>/dexycb_videos`` exists, else ``raw``.

Captions: PAM's ``dexycb_prompt.jsonl`` (gen_prompt.py lines ``{"video_path", "response"}``) at ``<root>/``
(``pam`` layout) or beside the toolkit folder (``raw``), or ``-d captions=FILE``: each sample's
``meta['caption']`` is its clip's caption (None when absent) and the file's sha256 joins the protocol.

Splits (ids ``<subject>/<seq>/<serial>``, ordered subject (numeric suffix) -> sequence (sorted name) ->
serial (sorted), the order of PAM's gen_s0_split_filelist.py, so clip k is the official evaluation
script's ``generated_{k:04d}.mp4``):

- ``s0-pam-val``: PAM's val list, all 10 subjects x sequences with index i%5==4 x 8 serials = 1,600.
- ``s0-train`` (= PAM's train): all subjects, i%5 != 4 (6,400); ``s0-val``: toolkit val, subjects 0-1,
  i%5==4 (320); ``s0-test``: toolkit test, subjects 2-9, i%5==4 (1,280).

Sample (``load``): frames ``range(0, N, N//49)[:49]``, stretched to 480x720 (bilinear RGB, nearest
labels); ``joints_2d`` = toolkit ``joint_2d`` scaled by (720/640, 480/480), ``joints_3d`` metres,
NaN where a frame has no hand (the toolkit writes -1); intrinsics scaled the same way.
Conditions: ``seg`` = labels through PAM's palette (pam_bench.render.seg_condition, hand 255 ->
(92,0,255) as hoi_utils.py's code does; the released sample video shows ~(185,0,255), we follow the
code); ``hand`` = PAM's skeleton drawn on the native 480x640 canvas then nearest-resized (PAM's
order of operations); ``depth`` = PAM's DepthCrafter video (bilinear to 480x720, black where the
labels are background) when present, else the sensor's aligned depth masked to the foreground
(``meta['depth_source']`` says which).

MANO vertices (``mano_dir=DIR``, optional): ``meta['mano_vertices']`` [T, 1, 778, 3] metres in the camera frame
(NaN where no hand), from ``pose_m`` and the subject's betas through smplx with the user's MANO file read by the
allow-list unpickler (:mod:`.dexycb_mano`); the MANO files' sha256 join the split's protocol.

Known differences from PAM: frames with no hand get an empty keypoint canvas (PAM draws its circles
at (-1,-1), a few corner pixels); the ``raw`` layout decodes the JPEGs (PAM's video.mp4 is an mp4v
re-encode of them, so its pixels differ slightly).
"""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import FlagError, InputError, OptionError
from ..options import choice
from ..types import PROTOCOL_FPS, PROTOCOL_FRAMES, PROTOCOL_HEIGHT, PROTOCOL_WIDTH, Dataset, Sample, Split, Video
from . import _common as C

SUBJECTS = (
    "20200709-subject-01", "20200813-subject-02", "20200820-subject-03", "20200903-subject-04",
    "20200908-subject-05", "20200918-subject-06", "20200928-subject-07", "20201002-subject-08",
    "20201015-subject-09", "20201022-subject-10",
)
SERIALS = ("836212060125", "839512060362", "840412060917", "841412060263",
           "932122060857", "932122060861", "932122061900", "932122062010")
SEQUENCES_PER_SUBJECT = 100
NATIVE_H, NATIVE_W = 480, 640

#: split -> (subject indices, sequence-index predicate). All 8 serials in every s0 split.
SPLITS: dict[str, tuple[tuple[int, ...], Any]] = {
    "s0-pam-val": (tuple(range(10)), lambda i: i % 5 == 4),
    "s0-train": (tuple(range(10)), lambda i: i % 5 != 4),
    "s0-val": ((0, 1), lambda i: i % 5 == 4),
    "s0-test": (tuple(range(2, 10)), lambda i: i % 5 == 4),
}
#: dex-ycb-toolkit's YCB class names by the ids in meta.yml's ycb_ids
YCB_CLASSES = {
    1: "002_master_chef_can", 2: "003_cracker_box", 3: "004_sugar_box", 4: "005_tomato_soup_can",
    5: "006_mustard_bottle", 6: "007_tuna_fish_can", 7: "008_pudding_box", 8: "009_gelatin_box",
    9: "010_potted_meat_can", 10: "011_banana", 11: "019_pitcher_base", 12: "021_bleach_cleanser",
    13: "024_bowl", 14: "025_mug", 15: "035_power_drill", 16: "036_wood_block", 17: "037_scissors",
    18: "040_large_marker", 19: "051_large_clamp", 20: "052_extra_large_clamp", 21: "061_foam_brick",
}
LAYOUTS = ("auto", "raw", "pam")
DEPTH_SOURCES = ("auto", "depthcrafter", "sensor")

COLOR = "color_{:06d}.jpg"
DEPTH = "aligned_depth_to_color_{:06d}.png"
LABELS = "labels_{:06d}.npz"
PAM_VIDEO = "video.mp4"
PAM_DEPTH = "masked_color.mp4"
CAPTIONS = "dexycb_prompt.jsonl"
LABEL_KEYS = ("seg", "joint_2d", "joint_3d")

_SUFFIX = re.compile(r"(\d+)$")


def _subject_key(name: str) -> int:
    m = _SUFFIX.search(name)
    return int(m.group(1)) if m else -1


def _subdirs(path: Path) -> list[str]:
    try:
        return sorted(e.name for e in _scandir(path) if e.is_dir())
    except OSError as e:
        raise InputError(path, f"cannot list folder ({e.strerror or e})") from None


def _scandir(path: Path):
    import os

    with os.scandir(path) as it:
        return list(it)


class DexYCB(Dataset):
    """DexYCB s0 clips under PAM's protocol. See the module docstring for layouts, splits and rules."""

    name = "dexycb"

    def __init__(self, root=None, split: str = "s0-pam-val", layout: str = "auto", depth_source: str = "auto",
                 depth_dir=None, mano_dir=None, captions=None, **options):
        if root is None:
            raise FlagError("--root", "dexycb needs --root DEXYCB_DIR (the toolkit folder or PAM's data folder)")
        self.root = Path(root)
        if not self.root.is_dir():
            raise InputError(self.root, "no such folder (DexYCB root)")
        if split not in SPLITS:
            raise FlagError("--split", f"unknown DexYCB split {split!r}; known: {', '.join(SPLITS)}")
        choice("dexycb", "layout", layout, LAYOUTS)
        choice("dexycb", "depth_source", depth_source, DEPTH_SOURCES)
        if options:
            raise OptionError("dexycb", ", ".join(sorted(options)), "unknown -d option(s) of dataset dexycb")
        self.split_name = split
        self.layout = self._detect_layout() if layout == "auto" else layout
        self.depth_source = depth_source
        if self.layout == "pam":
            self.raw_root = self.root / "dexycb"
            self.video_root: Path | None = self.root / "dexycb_videos"
            default_depth = self.root / "dexycb_depth"
        else:
            self.raw_root = self.root
            self.video_root = None
            default_depth = self.root.parent / "dexycb_depth"  # PAM keeps data/dexycb and data/dexycb_depth
        self.depth_dir = Path(depth_dir) if depth_dir is not None else default_depth
        self.mano = None
        if mano_dir is not None:  # MANO vertices from pose_m (pam_bench.datasets.dexycb_mano)
            from .dexycb_mano import DexYCBMano

            self.mano = DexYCBMano(mano_dir)
        # PAM's caption file (gen_prompt.py jsonl): data/dexycb_prompt.jsonl beside the dataset folders
        caps = Path(captions) if captions else (self.root if self.layout == "pam" else self.root.parent) / CAPTIONS
        if captions and not caps.is_file():
            raise InputError(caps, "no such caption file (-d captions)")
        self.caption_file, self._caption_table = (caps if caps.is_file() else None), None
        self._split: Split | None = None
        self._meta_cache: dict[Path, dict] = {}

    # ------------------------------------------------------------------ manifest
    def _detect_layout(self) -> str:
        if (self.root / "dexycb_videos").is_dir():
            return "pam"
        if any("subject" in n for n in _subdirs(self.root)):
            return "raw"
        raise InputError(self.root, "neither a DexYCB toolkit root (<date>-subject-NN/ folders) nor a "
                                    "PAM-prepared root (dexycb_videos/)")

    @property
    def listing_root(self) -> Path:
        """The tree whose folders define the manifest (PAM lists dexycb_videos; the toolkit its root)."""
        return self.video_root if self.layout == "pam" else self.raw_root

    def _subjects(self) -> list[str]:
        base = self.listing_root
        if not base.is_dir():
            raise InputError(base, "missing (the folder of subject folders)")
        subjects = sorted((n for n in _subdirs(base) if "subject" in n), key=_subject_key)
        if len(subjects) != len(SUBJECTS):
            raise InputError(base, f"has {len(subjects)} subject folders; DexYCB s0 needs all "
                                   f"{len(SUBJECTS)} ({SUBJECTS[0]} ... {SUBJECTS[-1]})")
        return subjects

    def _sequences(self, subject: str) -> list[str]:
        d = self.listing_root / subject
        seqs = _subdirs(d)
        if len(seqs) != SEQUENCES_PER_SUBJECT:
            raise InputError(d, f"has {len(seqs)} sequence folders; DexYCB has {SEQUENCES_PER_SUBJECT} "
                                "per subject (the s0 split indexes them by position)")
        return seqs

    def _serials(self, subject: str, seq: str) -> list[str]:
        if self.layout == "raw":
            serials = self.meta(subject, seq).get("serials")
            where = self.raw_root / subject / seq / "meta.yml"
            serials = sorted(str(s) for s in serials)
        else:
            where = self.listing_root / subject / seq
            serials = _subdirs(where)
        if len(serials) != len(SERIALS):
            raise InputError(where, f"lists {len(serials)} camera serials; the s0 split uses all {len(SERIALS)}")
        return serials

    def split(self) -> Split:
        if self._split is None:
            subj_idx, keep = SPLITS[self.split_name]
            subjects = self._subjects()
            ids = []
            for si in subj_idx:
                subject = subjects[si]
                seqs = self._sequences(subject)
                for qi, seq in enumerate(seqs):
                    if keep(qi):
                        ids.extend(f"{subject}/{seq}/{ser}" for ser in self._serials(subject, seq))
            protocol = {"frames": PROTOCOL_FRAMES, "height": PROTOCOL_HEIGHT, "width": PROTOCOL_WIDTH,
                        "fps": PROTOCOL_FPS, "frame_rule": "range(0,N,N//49)[:49]",
                        "resize": "stretch, bilinear rgb / nearest labels", "layout": self.layout,
                        "depth_source": self.depth_source, "conditions": "pam-hoi_utils-v1"}
            if self.mano is not None:
                protocol["mano_vertices"] = self.mano.identity()
            if self.caption_file is not None:  # per-clip captions change the prompts, so the identity
                from ..weights import sha256_file
                protocol["captions"] = {"file": self.caption_file.name, "sha256": sha256_file(self.caption_file)}
            self._split = Split(self.name, self.split_name, tuple(ids), protocol)
        return self._split

    # ------------------------------------------------------------------ per-sequence metadata
    def meta(self, subject: str, seq: str) -> dict:
        """meta.yml of a sequence (cached), checked for the keys this loader needs."""
        path = self.raw_root / subject / seq / "meta.yml"
        if path not in self._meta_cache:
            m = C.read_yaml(path, "sequence meta.yml")
            if not isinstance(m, dict):
                raise InputError(path, "meta.yml is not a mapping")
            if not m.get("serials"):
                raise InputError(path, "meta.yml has no 'serials' list")
            self._meta_cache[path] = m
        return self._meta_cache[path]

    def intrinsics_native(self, serial: str) -> np.ndarray:
        """3x3 colour intrinsics at 640x480 from calibration/intrinsics/<serial>_640x480.yml."""
        return _intrinsics(self.raw_root / "calibration" / "intrinsics" / f"{serial}_{NATIVE_W}x{NATIVE_H}.yml")

    def clip_meta(self, sample_id: str) -> dict[str, Any]:
        """subject, grasp (the sequence: one recorded grasp), serial/camera, object (the grasped YCB object:
        ``ycb_ids[ycb_grasp_ind]`` of meta.yml, by its toolkit class name), object_id, grasp_ind, hand."""
        subject, seq, serial = self.parse_id(sample_id)
        m = self.meta(subject, seq)
        ids, g = m.get("ycb_ids") or [], m.get("ycb_grasp_ind")
        obj = ids[g] if isinstance(g, int) and 0 <= g < len(ids) and isinstance(ids[g], int) else None
        sides = m.get("mano_sides") or []
        return {"subject": subject, "grasp": seq, "sequence": seq, "serial": serial, "camera": serial,
                "object": YCB_CLASSES.get(obj, str(obj)) if obj is not None else None, "object_id": obj,
                "grasp_ind": g, "hand": str(sides[0]) if sides else None}

    # ------------------------------------------------------------------ one clip
    def parse_id(self, sample_id: str) -> tuple[str, str, str]:
        parts = str(sample_id).strip("/").split("/")
        if len(parts) != 3 or not all(parts):
            raise InputError(sample_id, "is not a DexYCB clip id <subject>/<YYYYMMDD_HHMMSS>/<serial>")
        return parts[0], parts[1], parts[2]

    def clip_dir(self, sample_id: str) -> Path:
        return self.raw_root.joinpath(*self.parse_id(sample_id))

    def num_frames(self, sample_id: str) -> int:
        """Source frames of a clip: video.mp4's count (PAM layout) or meta.yml num_frames (raw)."""
        subject, seq, serial = self.parse_id(sample_id)
        if self.layout == "pam":
            return C.count_frames(self.video_root / subject / seq / serial / PAM_VIDEO)
        m = self.meta(subject, seq)
        n = m.get("num_frames")
        if not isinstance(n, int) or n <= 0:
            raise InputError(self.raw_root / subject / seq / "meta.yml", "meta.yml has no positive 'num_frames'")
        return n

    def depthcrafter_path(self, sample_id: str) -> Path:
        return self.depth_dir.joinpath(*self.parse_id(sample_id)) / PAM_DEPTH

    def frame_indices(self, sample_id: str) -> list[int]:
        return C.pam_frame_indices(self.num_frames(sample_id), where=self.clip_dir(sample_id))

    def load(self, sample_id: str) -> Sample:
        subject, seq, serial = self.parse_id(sample_id)
        d = self.clip_dir(sample_id)
        if not d.is_dir():
            raise InputError(d, "missing (clip folder with the labels_*.npz files)")
        meta = self.meta(subject, seq)
        n_source = self.num_frames(sample_id)
        idx = C.pam_frame_indices(n_source, where=d)
        k_native = self.intrinsics_native(serial)
        keys = LABEL_KEYS + (("pose_m",) if self.mano is not None else ())
        labels = [C.read_npz(d / LABELS.format(i), keys) for i in idx]
        for i, lab in zip(idx, labels):
            _check_label(d / LABELS.format(i), lab)
        seg_native = np.stack([lab["seg"] for lab in labels]).astype(np.uint8)
        j2d = np.stack([_no_hand_nan(lab["joint_2d"][:1].astype(np.float32)) for lab in labels])  # [T,1,21,2]
        j3d = np.stack([_no_hand_nan(lab["joint_3d"][:1].astype(np.float32)) for lab in labels])  # [T,1,21,3]

        rgb = self._rgb(sample_id, idx)
        seg = C.resize_labels(seg_native)
        sx, sy = PROTOCOL_WIDTH / NATIVE_W, PROTOCOL_HEIGHT / NATIVE_H
        conditions = {"seg": _seg_video(seg), "hand": _hand_video(j2d, j3d)}
        depth_video, depth_source, depth_note = self._depth(sample_id, idx, seg)
        conditions["depth"] = depth_video
        sides = tuple(str(s) for s in (meta.get("mano_sides") or ["right"]))[:1]
        info = {
            "dataset": self.name, "layout": self.layout, "subject": subject, "sequence": seq, "serial": serial,
            "frame_indices": idx, "num_source_frames": n_source,
            "depth_source": depth_source, "depth_note": depth_note,
            "seg_palette": "PAM hoi_utils.py code (hand -> ADE20K[149] = (92,0,255))",
            "keypoints": "PAM showHandJoints on 480x640, nearest resize; empty canvas when no hand",
            "ycb_ids": meta.get("ycb_ids"), "ycb_grasp_ind": meta.get("ycb_grasp_ind"),
            "hand_frames": int(np.isfinite(j2d[:, 0, 0, 0]).sum()),
        }
        if self.mano is not None:
            info["mano_vertices"] = self._mano_vertices(subject, seq, sides[0], labels)
        if self.caption_file is not None:  # PAM's caption column for this clip (pam.prompts reads the jsonl)
            if self._caption_table is None:
                from pam.prompts import CaptionTable
                self._caption_table = CaptionTable(self.caption_file)
            info["caption"] = self._caption_table.lookup(sample_id)
        return Sample(id=sample_id, video=Video(rgb, PROTOCOL_FPS), conditions=conditions,
                      joints_2d=C.scale_points(j2d, sx, sy), joints_3d=j3d, hand_sides=sides,
                      intrinsics=C.scale_intrinsics(k_native, sx, sy), seg=seg, meta=info)

    def _mano_vertices(self, subject: str, seq: str, side: str, labels: list[dict]) -> np.ndarray:
        """[T, 1, 778, 3] metres, camera frame (NaN where no hand), from pose_m and the subject's betas."""
        where = self.raw_root / subject / seq / "meta.yml"
        calib = self.meta(subject, seq).get("mano_calib")
        if not calib:
            raise InputError(where, "meta.yml has no 'mano_calib' (needed for MANO vertices)")
        path = self.raw_root / "calibration" / f"mano_{calib[0]}" / "mano.yml"
        y = C.read_yaml(path, "MANO calibration")
        betas = y.get("betas") if isinstance(y, dict) else None
        if betas is None or len(betas) != 10:
            raise InputError(path, "MANO calibration needs 'betas' with 10 values")
        pose = np.stack([np.asarray(lab["pose_m"], np.float64).reshape(-1, 51)[0] for lab in labels])
        return self.mano.vertices(side, pose, np.asarray(betas, np.float64))[:, None]

    # ------------------------------------------------------------------ verify (pam-bench data verify)
    def verify(self, deep: bool = False, max_problems: int = 200) -> C.VerifyReport:
        """Check every clip of the split without decoding (names and sizes of the files PAM's frame rule
        needs); ``deep`` also decodes each clip with :meth:`load`. Never raises for bad data."""
        note = f"layout {self.layout}; depth_source {self.depth_source}; depth videos in {self.depth_dir}"
        rep = C.VerifyReport(self.name, str(self.root), self.split_name, notes=[note])
        ids = self._verify_ids(rep)
        if ids is None:
            return rep
        rep.counts["clips"] = len(ids)
        for serial in sorted({i.rsplit("/", 1)[-1] for i in ids}):
            p = self.raw_root / "calibration" / "intrinsics" / f"{serial}_{NATIVE_W}x{NATIVE_H}.yml"
            if not p.is_file():
                rep.add(p, "missing (camera intrinsics)")
        for sid in ids:
            before = len(rep.problems)
            self._verify_clip(sid, rep, deep)
            rep.bump("complete" if len(rep.problems) == before else "incomplete")
            if len(rep.problems) >= max_problems:
                rep.notes.append(f"stopped checking at {len(rep.problems)} problems (--max-problems {max_problems})")
                break
        return rep

    def _verify_ids(self, rep: C.VerifyReport) -> tuple[str, ...] | None:
        """The split's ids for verify: a sequence whose meta.yml or folders are bad is reported and listed
        with the s0 serials, so one bad file does not hide every other problem (None: no subjects at all)."""
        try:
            return self.split().ids
        except InputError:
            pass
        subj_idx, keep = SPLITS[self.split_name]
        try:
            subjects = self._subjects()
        except InputError as e:
            rep.add(e.path, e.problem)
            return None
        ids: list[str] = []
        for si in subj_idx:
            try:
                seqs = self._sequences(subjects[si])
            except InputError as e:
                rep.add(e.path, e.problem)
                continue
            for qi, seq in enumerate(seqs):
                if not keep(qi):
                    continue
                try:
                    serials = self._serials(subjects[si], seq)
                except InputError as e:
                    rep.add(e.path, e.problem)
                    serials = list(SERIALS)
                ids.extend(f"{subjects[si]}/{seq}/{ser}" for ser in serials)
        return tuple(ids)

    def _verify_clip(self, sid: str, rep: C.VerifyReport, deep: bool) -> None:
        d = self.clip_dir(sid)
        before = len(rep.problems)
        try:
            idx = C.pam_frame_indices(self.num_frames(sid), where=d)
        except InputError as e:
            rep.add(e.path, e.problem)
            return
        need = [d / LABELS.format(i) for i in idx]
        if self.layout == "raw":
            need += [d / COLOR.format(i) for i in idx]
        dc = self.depthcrafter_path(sid)
        use_dc = self.depth_source == "depthcrafter" or (self.depth_source == "auto" and dc.is_file())
        if use_dc:
            rep.bump("depthcrafter_videos")
            need.append(dc)
        else:
            rep.bump("sensor_depth_clips")
            need += [d / DEPTH.format(i) for i in idx]
        for p in C.missing_files(need):
            rep.add(p, "empty file" if p.exists() else "missing")
        if deep and len(rep.problems) == before:
            try:
                self.load(sid)
            except InputError as e:
                rep.add(e.path, e.problem)

    def _rgb(self, sample_id: str, idx: Sequence[int]) -> np.ndarray:
        if self.layout == "pam":
            from ..video import read_video

            path = self.video_root.joinpath(*self.parse_id(sample_id)) / PAM_VIDEO
            frames = C.take_frames(read_video(path).frames, idx, path)
        else:
            d = self.clip_dir(sample_id)
            frames = np.stack([C.read_rgb(d / COLOR.format(i)) for i in idx])
        if frames.shape[1:3] != (NATIVE_H, NATIVE_W):
            where = self.clip_dir(sample_id)
            raise InputError(where, f"frames are {frames.shape[2]}x{frames.shape[1]}, DexYCB is 640x480")
        return C.resize_rgb(frames)

    def _depth(self, sample_id: str, idx: Sequence[int], seg: np.ndarray) -> tuple[Video, str, str]:
        """PAM's DepthCrafter video when present (or required), else sensor depth masked the same way."""
        dc = self.depthcrafter_path(sample_id)
        fg = seg > 0
        if self.depth_source == "depthcrafter" or (self.depth_source == "auto" and dc.is_file()):
            from ..video import read_video

            frames = C.take_frames(read_video(dc).frames, idx, dc)
            frames = C.resize_rgb(frames)
            frames[~fg] = 0  # PAM: depth set to -1 (black) where the label is background
            return Video(frames, PROTOCOL_FPS), "depthcrafter", str(dc)
        d = self.clip_dir(sample_id)
        depth = np.stack([C.read_depth_png(d / DEPTH.format(i)) for i in idx])
        if depth.shape[1:] != (NATIVE_H, NATIVE_W):
            raise InputError(d / DEPTH.format(idx[0]), f"depth is {depth.shape[2]}x{depth.shape[1]}, expected 640x480")
        depth_m = C.resize_labels(depth).astype(np.float32) / 1000.0
        note = ("DexYCB aligned sensor depth (mm -> m), masked to the labelled foreground; DepthCrafter "
                f"video not found at {dc}")
        return _sensor_depth_video(depth_m, fg), "sensor-masked", note


# ---------------------------------------------------------------------- helpers (pure functions)
@lru_cache(maxsize=64)
def _intrinsics_cached(path: str, mtime: float) -> np.ndarray:
    y = C.read_yaml(Path(path), "camera intrinsics")
    try:
        c = y["color"]
        fx, fy, cx, cy = (float(c[k]) for k in ("fx", "fy", "ppx", "ppy"))
    except (KeyError, TypeError, ValueError):
        raise InputError(path, "intrinsics yml needs color: {fx, fy, ppx, ppy}") from None
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def _intrinsics(path: Path) -> np.ndarray:
    if not path.is_file():
        raise InputError(path, "missing (camera intrinsics; DexYCB's calibration/intrinsics folder)")
    return _intrinsics_cached(str(path), path.stat().st_mtime).copy()


def _check_label(path: Path, lab: dict) -> None:
    seg, j2, j3 = lab["seg"], lab["joint_2d"], lab["joint_3d"]
    if seg.shape != (NATIVE_H, NATIVE_W):
        raise InputError(path, f"'seg' has shape {seg.shape}, expected (480, 640)")
    if seg.dtype.kind not in "iub":
        raise InputError(path, f"'seg' is {seg.dtype}, expected integer labels")
    bad = np.unique(seg[((seg > 149) & (seg != 255)) | (seg < 0)])
    if bad.size:
        raise InputError(path, f"'seg' holds label(s) {bad[:5].tolist()}; expected 0 (background), 1..149 (objects) "
                               "or 255 (hand)")
    if j2.ndim != 3 or j2.shape[1:] != (21, 2) or j2.shape[0] < 1:
        raise InputError(path, f"'joint_2d' has shape {j2.shape}, expected (1, 21, 2)")
    if j3.ndim != 3 or j3.shape[1:] != (21, 3) or j3.shape[0] < 1:
        raise InputError(path, f"'joint_3d' has shape {j3.shape}, expected (1, 21, 3)")


def _no_hand_nan(j: np.ndarray) -> np.ndarray:
    """The toolkit writes -1 for every coordinate of a frame without a hand: those become NaN."""
    out = j.copy()
    missing = np.all(out == -1, axis=(-2, -1))
    out[missing] = np.nan
    return out


def _seg_video(seg: np.ndarray) -> Video:
    from ..render import seg_condition

    return Video(np.stack([seg_condition(s) for s in seg]), PROTOCOL_FPS)


def _hand_video(j2d_native: np.ndarray, j3d: np.ndarray) -> Video:
    """PAM: showHandJoints on a black 480x640 canvas (limb order reversed when wrist z < last-joint z),
    then nearest resize to 480x720. Hands with NaN joints (no hand in the frame) draw nothing."""
    from ..render import keypoint_condition

    frames = [keypoint_condition(j2, NATIVE_H, NATIVE_W, wrist_z=j3[:, 0, 2], last_z=j3[:, -1, 2])
              for j2, j3 in zip(j2d_native, j3d)]
    return Video(C.resize_rgb(np.stack(frames), nearest=True), PROTOCOL_FPS)


def _sensor_depth_video(depth_m: np.ndarray, fg: np.ndarray) -> Video:
    """Sensor depth through render.depth_condition with one near/far for the whole clip (foreground
    pixels with a valid reading), so brightness means the same depth in every frame."""
    from ..render import depth_condition

    valid = fg & (depth_m > 0)
    near = far = None
    if valid.any():
        near, far = float(depth_m[valid].min()), float(depth_m[valid].max())
    frames = [depth_condition(d, v, near=near, far=far) for d, v in zip(depth_m, valid)]
    return Video(np.stack(frames), PROTOCOL_FPS)
