"""OAKINK2 (oakink/OakInk2) clips the way PAM prepares them: 49-frame non-overlapping chunks at 480x720.

On disk (``--root OAKINK2_DIR``):

- ``data/<seq>/<serial>/<frame_id>.jpg`` (848x480; ``.png`` also accepted), ``<seq>`` like
  ``scene_01__A001++seq__<hash>__<date>``; frames sorted by integer id, chunk i = frames[49 i : 49 (i+1)]
  (PAM's gen_hand_seg_oakink2.py / clip_videos).
- ``anno_preview/<seq>.pkl``: ``cam_def`` (serial -> camera name), ``cam_intr[name][fid]`` [3,3],
  ``cam_extr[name][fid]`` [4,4] world->camera, ``raw_mano[fid]`` with ``{rh,lh}__pose_coeffs``
  [1,16,4] (quaternions wxyz), ``__tsl`` [1,3], ``__betas`` [1,10] (torch tensors in the released files).
- PAM-prepared (optional, used when present): ``videos/<seq>/<serial>/<i>/video.mp4`` (720x480),
  ``processed_hand_keypoints/.../output_hand.mp4``, ``processed_seg_mask/.../output_seg.mp4``,
  ``processed_depth/.../color.mp4`` (gen_oakink2_filelist.py's folder and file names).

Clips: ``clip_list=F`` (a text file; PAM's list format, one ``.../videos/<seq>/<serial>/<i>/video.mp4``
path per line, or ``<seq>/<serial>/<i>`` ids) in file order; without a list, every clip found, sorted.
The paper's 6,400/1,600 curation is not published, so the list is an input.

Conditions come from PAM's prepared videos (bilinear to 480x720 as PAM's Oakink2 loader does; depth
black where the seg video is black, PAM's mask_conditions threshold -0.85 = pixel <= 19). A condition
without its video is left out and ``meta['conditions_unavailable']`` says why: OAKINK2's seg needs the
object meshes and a MANO mesh rasterisation that this package does not reproduce.

GT joints (``joints_2d``/``joints_3d``, K=2 hands ``('left', 'right')``) need a MANO forward pass
(:mod:`pam_bench.geometry.mano`) with the user's MANO files (``mano_dir`` holding MANO_RIGHT.pkl /
MANO_LEFT.pkl, or numpy-only .npz conversions): manotorch's convention as PAM uses it (quaternion pose, no
PCA, flat hand mean, joints centred on the wrist then + tsl, fingertips = vertices 745/317/444/556/673
right, 745/317/445/556/673 left, SNAP joint order). Without MANO the joints are None and
``meta['joints_unavailable']`` says why.
"""
from __future__ import annotations

import io
import pickle
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import FlagError, InputError, MissingResource, OptionError
from ..types import PROTOCOL_FPS, PROTOCOL_FRAMES, PROTOCOL_HEIGHT, PROTOCOL_WIDTH, Dataset, Sample, Split, Video
from .. import safe_pickle as SP
from ..geometry import mano as M
from . import _common as C
from .pam_sample import PamSample, is_sample

NATIVE_H, NATIVE_W = 480, 848
CHUNK = PROTOCOL_FRAMES
HAND_SIDES = ("left", "right")
PREFIX = {"left": "lh__", "right": "rh__"}
ANNO_KEYS = ("cam_def", "cam_intr", "cam_extr", "raw_mano")
MANO_KEYS = ("pose_coeffs", "tsl", "betas")
#: (condition name, PAM folder, PAM file name) -- gen_oakink2_filelist.py
CONDITION_VIDEOS = (("hand", "processed_hand_keypoints", "output_hand.mp4"),
                    ("seg", "processed_seg_mask", "output_seg.mp4"),
                    ("depth", "processed_depth", "color.mp4"))
#: PAM's mask_conditions: black where every channel <= -0.85 in [-1, 1], i.e. pixel <= 19.125.
SEG_BLACK_MAX = 19
#: OAKINK2's fingertip vertices (thumb, index, middle, ring, little), per side: the table of manopth's
#: ManoLayer (hassony2/manopth, manolayer.py), kept by manotorch (lixiny/manotorch), the layer OakInk2 uses.
TIPS = {"right": (745, 317, 444, 556, 673), "left": (745, 317, 445, 556, 673)}
MANO_HOW = ("MANO is licence-restricted: download MANO_RIGHT.pkl and MANO_LEFT.pkl from "
            "https://mano.is.tue.mpg.de and pass their folder with -d mano_dir=DIR")
IMAGE_EXTS = (".jpg", ".jpeg", ".png")
_INT = re.compile(r"^\d+$")


# ---------------------------------------------------------------------- safe pickle loading
def _tensor_from_bytes(b: bytes):
    """torch.storage._load_from_bytes, but with torch.load(weights_only=True)."""
    import torch

    if not isinstance(b, (bytes, bytearray)):
        raise pickle.UnpicklingError(f"a tensor storage must be bytes, got {type(b).__name__}")
    return torch.load(io.BytesIO(b), weights_only=True)


#: A plainly pickled torch tensor needs two callables: the storage bytes go through
#: ``torch.load(weights_only=True)`` (the stock ``_load_from_bytes`` uses weights_only=False);
#: ``_rebuild_tensor_v2`` is on torch's own weights-only allow-list.
ANNO_ALLOW = {**SP.NUMPY_DATA,
              ("torch.storage", "_load_from_bytes"): _tensor_from_bytes,
              ("torch._utils", "_rebuild_tensor_v2"): SP.real("torch._utils", "_rebuild_tensor_v2")}


def load_anno(path: Path) -> dict:
    """anno_preview/<seq>.pkl through the :data:`ANNO_ALLOW` allow-list, checked for the keys used here."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "missing (OAKINK2 anno_preview annotation)")
    data = SP.load(path, ANNO_ALLOW, what="a readable annotation pickle")
    if not isinstance(data, dict):
        raise InputError(path, f"annotation must be a dict, got {type(data).__name__}")
    absent = [k for k in ANNO_KEYS if k not in data]
    if absent:
        raise InputError(path, f"annotation has no {', '.join(repr(k) for k in absent)}")
    return data


def _np(x) -> np.ndarray:
    """numpy view of a numpy array or a torch tensor."""
    if hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def quat_to_axis_angle(q: np.ndarray) -> np.ndarray:
    """wxyz quaternions [..., 4] -> axis-angle [..., 3] (normalised first; angle = 2 atan2(|v|, w))."""
    q = np.asarray(q, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    v = q[..., 1:]
    s = np.linalg.norm(v, axis=-1, keepdims=True)
    angle = 2.0 * np.arctan2(s, q[..., :1])
    with np.errstate(invalid="ignore", divide="ignore"):
        axis = np.where(s > 1e-12, v / s, 0.0)
    return axis * angle


class ManoHands:
    """Both MANO hands (:mod:`pam_bench.geometry.mano`) with OAKINK2's convention around the forward pass."""

    def __init__(self, mano_dir: Path):
        self.mano_dir = Path(mano_dir)
        self.files = {side: M.model_file(self.mano_dir, side, MANO_HOW) for side in HAND_SIDES}
        self._layers: dict[str, Any] = {}

    def identity(self) -> dict:
        from ..weights import sha256_file

        return {side: {"file": str(p), "sha256": sha256_file(p)} for side, p in self.files.items()}

    def layer(self, side: str):
        if side not in self._layers:
            self._layers[side] = M.layer(self.files[side], side, use_pca=False, flat_hand_mean=True)
        return self._layers[side]

    def joints(self, side: str, pose_coeffs: np.ndarray, betas: np.ndarray, tsl: np.ndarray) -> np.ndarray:
        """[B,21,3] world joints (SNAP order) for quaternion poses [B,16,4], betas [B,10], tsl [B,3]."""
        aa = quat_to_axis_angle(pose_coeffs.reshape(-1, 16, 4)).reshape(-1, 48)
        joints, verts = M.forward(self.layer(side), aa[:, :3], aa[:, 3:], betas.reshape(-1, 10))
        j = M.joints21(joints, verts, TIPS[side])
        return j - j[:, :1] + tsl.reshape(-1, 1, 3)  # manotorch center_idx=0, then + tsl


# ---------------------------------------------------------------------- the dataset
def parse_clip_line(line: str, where: Any) -> tuple[str, str, int]:
    """PAM list line ``.../videos/<seq>/<serial>/<i>/video.mp4`` or an id ``<seq>/<serial>/<i>``."""
    parts = [p for p in line.replace("\\", "/").split("/") if p]
    if parts and parts[-1].endswith(".mp4"):
        parts = parts[:-1]
    if len(parts) < 3 or not _INT.match(parts[-1]):
        raise InputError(where, f"cannot read a clip from {line!r} (expected .../videos/<seq>/<serial>/<i>/"
                                "video.mp4 or <seq>/<serial>/<i>)")
    if any(p in (".", "..") for p in parts[-3:-1]):
        raise InputError(where, f"clip {line!r} has a '.' or '..' sequence or camera name: reads stay inside --root")
    return parts[-3], parts[-2], int(parts[-1])


class OakInk2(Dataset):
    """OAKINK2 49-frame clips (see the module docstring)."""

    name = "oakink2"

    def __init__(self, root=None, clip_list=None, mano_dir=None, split=None, require_joints=False, **options):
        if root is None:
            raise FlagError("--root", "oakink2 needs --root OAKINK2_DIR")
        self.root = Path(root)
        if not self.root.is_dir():
            raise InputError(self.root, "no such folder (OAKINK2 root)")
        if options:
            raise OptionError("oakink2", ", ".join(sorted(options)), "unknown -d option(s) of dataset oakink2")
        self.clip_list = Path(clip_list) if clip_list else None
        if self.clip_list is not None and not self.clip_list.is_file():
            raise InputError(self.clip_list, "missing (clip list file)")
        default_name = self.clip_list.stem if self.clip_list else "all"
        if split not in (None, "all", "list", default_name):
            raise FlagError("--split", f"OAKINK2 has no published split {split!r}: pass the clip list file "
                                        "with -d clip_list=F (PAM's list format is read)")
        self.split_name = default_name
        self.mano: ManoHands | None = ManoHands(Path(mano_dir)) if mano_dir else None
        if require_joints and self.mano is None:
            raise MissingResource("MANO model (mano_dir)",
                                  "OAKINK2 joints need a MANO forward pass: download MANO_RIGHT.pkl and "
                                  "MANO_LEFT.pkl from https://mano.is.tue.mpg.de and pass -d mano_dir=DIR")
        self._split: Split | None = None
        self._anno: dict[str, dict] = {}
        # PAM's shipped sample (first frame + conditions, no GT video) is read as it is (pam_sample.py)
        self._sample = PamSample(self.root, self.name) if is_sample(self.root) else None

    # ------------------------------------------------------------------ paths
    def data_dir(self, seq: str, cam: str) -> Path:
        return self.root / "data" / seq / cam

    def video_path(self, seq: str, cam: str, i: int) -> Path:
        return self.root / "videos" / seq / cam / str(i) / "video.mp4"

    def condition_path(self, folder: str, fname: str, seq: str, cam: str, i: int) -> Path:
        return self.root / folder / seq / cam / str(i) / fname

    def anno_path(self, seq: str) -> Path:
        return self.root / "anno_preview" / f"{seq}.pkl"

    def parse_id(self, sample_id: str) -> tuple[str, str, int]:
        parts = str(sample_id).strip("/").split("/")
        if len(parts) != 3 or not _INT.match(parts[2]):
            raise InputError(sample_id, "is not an OAKINK2 clip id <seq>/<serial>/<chunk>")
        return parts[0], parts[1], int(parts[2])

    # ------------------------------------------------------------------ manifest
    def split(self) -> Split:
        if self._sample is not None:
            return self._sample.split("pam-sample")
        if self._split is None:
            clips = self._clips_from_list() if self.clip_list else self._clips_found()
            protocol = {"frames": CHUNK, "height": PROTOCOL_HEIGHT, "width": PROTOCOL_WIDTH, "fps": PROTOCOL_FPS,
                        "chunking": "sorted frame ids, non-overlapping 49-frame chunks",
                        "resize": "stretch 848x480 -> 720x480 bilinear", "conditions": "pam-prepared-videos"}
            if self.clip_list:
                from ..weights import sha256_file

                protocol["clip_list_sha256"] = sha256_file(self.clip_list)
            ids = tuple(f"{s}/{c}/{i}" for s, c, i in clips)
            self._split = Split(self.name, self.split_name, ids, protocol)
        return self._split

    def _clips_from_list(self) -> list[tuple[str, str, int]]:
        clips, seen = [], set()
        with open(self.clip_list, "r") as f:
            lines = f.read().splitlines()
        for n, line in enumerate(lines, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            where = f"{self.clip_list}:{n}"
            seq, cam, i = parse_clip_line(line, where)
            if (seq, cam, i) in seen:
                raise InputError(where, f"clip {seq}/{cam}/{i} is listed twice")
            seen.add((seq, cam, i))
            if not (self.video_path(seq, cam, i).is_file() or self.data_dir(seq, cam).is_dir()):
                raise InputError(where, f"names clip {seq}/{cam}/{i}, but neither {self.video_path(seq, cam, i)} "
                                        f"nor {self.data_dir(seq, cam)} exists")
            clips.append((seq, cam, i))
        if not clips:
            raise InputError(self.clip_list, "lists no clips")
        return clips

    def _clips_found(self) -> list[tuple[str, str, int]]:
        found: set[tuple[str, str, int]] = set()
        vids = self.root / "videos"
        if vids.is_dir():
            for p in vids.glob("*/*/*/video.mp4"):
                if _INT.match(p.parent.name):
                    found.add((p.parts[-4], p.parts[-3], int(p.parts[-2])))
        data = self.root / "data"
        if data.is_dir():
            for seq_dir in sorted(x for x in data.iterdir() if x.is_dir()):
                for cam_dir in sorted(x for x in seq_dir.iterdir() if x.is_dir()):
                    n = len(self._frame_ids(seq_dir.name, cam_dir.name))
                    found.update((seq_dir.name, cam_dir.name, i) for i in range(n // CHUNK))
        if not found:
            raise InputError(self.root, "has no OAKINK2 clips (expected data/<seq>/<serial>/<frame>.jpg or "
                                        "videos/<seq>/<serial>/<i>/video.mp4)")
        return sorted(found)

    def _frame_files(self, seq: str, cam: str) -> dict[int, Path]:
        """frame id -> image file of data/<seq>/<serial>, sorted by id (empty when the folder is absent)."""
        d = self.data_dir(seq, cam)
        if not d.is_dir():
            return {}
        files = {int(p.stem): p for p in d.iterdir() if p.suffix.lower() in IMAGE_EXTS and _INT.match(p.stem)}
        return dict(sorted(files.items()))

    def _frame_ids(self, seq: str, cam: str) -> list[int]:
        return list(self._frame_files(seq, cam))

    def chunk_frame_ids(self, seq: str, cam: str, i: int) -> list[int] | None:
        """The 49 OAKINK2 frame ids of chunk i (None when data/<seq>/<serial> is absent)."""
        ids = self._frame_ids(seq, cam)
        if not ids:
            return None
        chunk = ids[i * CHUNK:(i + 1) * CHUNK]
        if len(chunk) < CHUNK:
            raise InputError(self.data_dir(seq, cam), f"has {len(ids)} frames: no complete 49-frame chunk {i}")
        return chunk

    def clip_meta(self, sample_id: str) -> dict[str, Any]:
        """sequence, scene (the sequence name's ``scene_XX`` prefix), serial/camera, chunk, and object: the
        sequence's ``obj_list`` from anno_preview (joined with '+'; None when the file is absent)."""
        seq, cam, i = self.parse_id(sample_id)
        obj = None
        if self.anno_path(seq).is_file():
            objs = self.anno(seq).get("obj_list")
            obj = "+".join(str(o) for o in objs) if isinstance(objs, (list, tuple)) and objs else None
        return {"sequence": seq, "scene": seq.split("__")[0], "serial": cam, "camera": cam, "chunk": i,
                "object": obj}

    # ------------------------------------------------------------------ loading
    def anno(self, seq: str) -> dict:
        if seq not in self._anno:
            self._anno = {seq: load_anno(self.anno_path(seq))}  # keep one sequence: the files are large
        return self._anno[seq]

    def load(self, sample_id: str) -> Sample:
        if self._sample is not None:
            return self._sample.load(sample_id)
        seq, cam, i = self.parse_id(sample_id)
        fids = self.chunk_frame_ids(seq, cam, i)
        rgb, rgb_source = self._rgb(seq, cam, i, fids)
        meta: dict[str, Any] = {"dataset": self.name, "sequence": seq, "serial": cam, "chunk": i,
                                "frame_ids": fids, "rgb_source": rgb_source,
                                "conditions_unavailable": {}, "condition_sources": {}}
        conditions = self._conditions(seq, cam, i, meta)
        j2d = j3d = k = None
        if fids is None:
            meta["joints_unavailable"] = f"no frame ids: {self.data_dir(seq, cam)} is absent"
        else:
            anno = self.anno(seq)
            cam_name = self._cam_name(anno, seq, cam)
            k_native = self._intr(anno, seq, cam_name, fids[0])
            k = C.scale_intrinsics(k_native, PROTOCOL_WIDTH / NATIVE_W, PROTOCOL_HEIGHT / NATIVE_H)
            if self.mano is None:
                meta["joints_unavailable"] = ("no MANO model: OAKINK2 joints need a MANO forward pass; pass "
                                              "-d mano_dir=DIR with MANO_RIGHT.pkl and MANO_LEFT.pkl")
            else:
                j2d, j3d = self._joints(anno, seq, cam_name, fids)
                meta["mano"] = self.mano.identity()
        return Sample(id=sample_id, video=Video(rgb, PROTOCOL_FPS), conditions=conditions, joints_2d=j2d,
                      joints_3d=j3d, hand_sides=HAND_SIDES if j2d is not None else (), intrinsics=k, meta=meta)

    def _rgb(self, seq: str, cam: str, i: int, fids: Sequence[int] | None) -> tuple[np.ndarray, str]:
        vp = self.video_path(seq, cam, i)
        if vp.is_file():
            from ..video import read_video

            frames = read_video(vp).frames
            frames = C.take_frames(frames, C.pam_frame_indices(frames.shape[0], where=vp), vp)
            return C.resize_rgb(frames), str(vp)
        if fids is None:
            raise InputError(vp, f"missing, and so is {self.data_dir(seq, cam)}")
        files = self._frame_files(seq, cam)
        frames = np.stack([C.read_rgb(files[f]) for f in fids])
        return C.resize_rgb(frames), str(self.data_dir(seq, cam))

    def _conditions(self, seq: str, cam: str, i: int, meta: dict) -> dict[str, Video]:
        from ..video import read_video

        out: dict[str, Video] = {}
        for name, folder, fname in CONDITION_VIDEOS:
            p = self.condition_path(folder, fname, seq, cam, i)
            if not p.is_file():
                meta["conditions_unavailable"][name] = f"no PAM-prepared video at {p}"
                continue
            frames = read_video(p).frames
            frames = C.take_frames(frames, C.pam_frame_indices(frames.shape[0], where=p), p)
            out[name] = Video(C.resize_rgb(frames), PROTOCOL_FPS)
            meta["condition_sources"][name] = str(p)
        if "depth" in out and "seg" in out:
            black = (out["seg"].frames <= SEG_BLACK_MAX).all(axis=-1)
            d = out["depth"].frames.copy()
            d[black] = 0
            out["depth"] = Video(d, PROTOCOL_FPS)
            meta["depth_masked_by"] = "seg video (PAM mask_conditions, pixel <= 19 in all channels)"
        return out

    def _cam_name(self, anno: dict, seq: str, cam: str):
        cam_def = anno["cam_def"]
        if cam not in cam_def:
            raise InputError(self.anno_path(seq), f"cam_def has no camera {cam!r} (has {', '.join(map(str, cam_def))})")
        return cam_def[cam]

    def _intr(self, anno: dict, seq: str, cam_name, fid: int) -> np.ndarray:
        try:
            return _np(anno["cam_intr"][cam_name][fid]).astype(np.float64).reshape(3, 3)
        except (KeyError, IndexError, ValueError):
            raise InputError(self.anno_path(seq), f"cam_intr has no 3x3 entry for {cam_name!r} frame {fid}") from None

    def _joints(self, anno: dict, seq: str, cam_name, fids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """[T,2,21,2] pixels at 720x480 and [T,2,21,3] camera metres, hands ordered ('left', 'right')."""
        where = self.anno_path(seq)
        j3d = np.full((len(fids), 2, 21, 3), np.nan)
        for k, side in enumerate(HAND_SIDES):
            params = {key: [] for key in MANO_KEYS}
            for f in fids:
                entry = anno["raw_mano"].get(f) if hasattr(anno["raw_mano"], "get") else None
                if entry is None:
                    raise InputError(where, f"raw_mano has no frame {f}")
                for key in MANO_KEYS:
                    if PREFIX[side] + key not in entry:
                        raise InputError(where, f"raw_mano[{f}] has no {PREFIX[side] + key!r}")
                    params[key].append(_np(entry[PREFIX[side] + key]).astype(np.float64))
            world = self.mano.joints(side, np.stack(params["pose_coeffs"]), np.stack(params["betas"]),
                                     np.stack(params["tsl"]))
            for t, f in enumerate(fids):
                try:
                    extr = _np(anno["cam_extr"][cam_name][f]).astype(np.float64).reshape(4, 4)
                except (KeyError, IndexError, ValueError):
                    raise InputError(where, f"cam_extr has no 4x4 entry for {cam_name!r} frame {f}") from None
                j3d[t, k] = world[t] @ extr[:3, :3].T + extr[:3, 3]
        intr = np.stack([self._intr(anno, seq, cam_name, f) for f in fids])  # [T,3,3]
        uvw = np.einsum("tij,tknj->tkni", intr, j3d)
        j2d = uvw[..., :2] / uvw[..., 2:3]
        j2d = C.scale_points(j2d, PROTOCOL_WIDTH / NATIVE_W, PROTOCOL_HEIGHT / NATIVE_H)
        return j2d.astype(np.float32), j3d.astype(np.float32)

    # ------------------------------------------------------------------ verify
    def verify(self, deep: bool = False, max_problems: int = 200) -> C.VerifyReport:
        """Every clip: RGB source, PAM condition videos, annotation pickle (names only; ``deep`` loads)."""
        note = "MANO: " + (str(self.mano.mano_dir) if self.mano else "not given (joints unavailable)")
        rep, ids = C.start_report(self, note)
        if ids is None:
            return rep
        if self._sample is not None:  # PAM's shipped sample: load its one clip
            rep.notes.append("PAM's shipped sample: first frame and conditions, no GT video (generate only)")
            try:
                self.load(ids[0])
                rep.bump("complete")
            except InputError as e:
                rep.add(e.path, e.problem)
            return rep
        for sid in ids:
            before = len(rep.problems)
            seq, cam, i = self.parse_id(sid)
            has_video = self.video_path(seq, cam, i).is_file()
            has_data = self.data_dir(seq, cam).is_dir()
            if not (has_video or has_data):
                rep.add(self.video_path(seq, cam, i), "missing (and no data/ frames)")
            for name, folder, fname in CONDITION_VIDEOS:
                p = self.condition_path(folder, fname, seq, cam, i)
                if p.is_file():
                    rep.bump(f"{name}_videos")
                else:
                    rep.add(p, f"missing ({name} condition video)")
            if has_data and not self.anno_path(seq).is_file():
                rep.add(self.anno_path(seq), "missing (annotation: intrinsics and MANO parameters)")
            if deep and len(rep.problems) == before:
                try:
                    self.load(sid)
                except (InputError, MissingResource) as e:
                    rep.add(getattr(e, "path", sid), str(e))
            rep.bump("complete" if len(rep.problems) == before else "incomplete")
            if len(rep.problems) >= max_problems:
                rep.notes.append(f"stopped checking at {len(rep.problems)} problems (--max-problems {max_problems})")
                break
        return rep
