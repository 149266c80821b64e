"""Per-frame hand crops with their GT, the unit every trainer consumes.

A clip (real video, or a generated video paired with the GT of the clip it was generated for) becomes
one :class:`FrameSet`: for every ``stride``-th frame and every hand with finite GT, a square crop
around the hand's 2D joints (SimpleHand's rule: the box of the in-image joints, or of all joints when
at most one is inside; centre of the box, side = ``enlarge`` x the longer box side), resized to
``size`` x ``size`` with bilinear interpolation (black outside the frame).

The crop is an affine map A of the image plane, so the crop keeps exact GT: ``K_crop = A K`` and
``uv_crop = A uv`` (``xyz`` stays in the camera frame, metres). Exporting crops to SimpleHand's format
is therefore a valid FreiHAND-style dataset (its loader re-crops around ``uv``).

Vertices: a dataset may put MANO vertices in ``sample.meta["mano_vertices"]`` (float [T, K, 778, 3],
camera frame, metres); they are carried along when present. None of the bundled datasets provides them
yet, so PA-MPVPE and vertex F-scores need a dataset that does.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ArgumentError, InputError
from ..types import Sample, Video

ROOT_INDEX = 9  # SimpleHand's training root (middle MCP)


@dataclass
class FrameSet:
    """Hand crops of one clip: images uint8 [N,S,S,3]; xyz [N,21,3] m; uv [N,21,2] crop px; K [N,3,3]."""

    clip_id: str
    images: np.ndarray
    xyz: np.ndarray
    uv: np.ndarray
    K: np.ndarray
    frame: np.ndarray  # int [N] frame index in the clip
    hand: np.ndarray  # int [N] hand index
    verts: np.ndarray | None = None  # [N, 778, 3] m, when the dataset gives MANO vertices
    side: np.ndarray | None = None  # float [N] crop side in source pixels (< size: the crop was upsampled)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def to_bytes(self) -> bytes:
        arrays = {k: getattr(self, k) for k in ("images", "xyz", "uv", "K", "frame", "hand")}
        for opt in ("verts", "side"):
            if getattr(self, opt) is not None:
                arrays[opt] = getattr(self, opt)
        buf = io.BytesIO()
        np.savez(buf, clip_id=np.asarray(self.clip_id), **arrays)
        return buf.getvalue()

    @classmethod
    def load(cls, path: Path) -> "FrameSet":
        try:
            with np.load(path, allow_pickle=False) as z:
                return cls(clip_id=str(z["clip_id"]), images=z["images"], xyz=z["xyz"], uv=z["uv"], K=z["K"],
                           frame=z["frame"], hand=z["hand"], verts=z["verts"] if "verts" in z else None,
                           side=z["side"] if "side" in z else None)
        except (OSError, ValueError, KeyError) as e:
            raise InputError(path, f"unreadable frame cache ({e}); delete it to rebuild") from None


def concat(sets: list[FrameSet]) -> FrameSet:
    """All frames of several clips in one set (clip_id '+'-joined; verts only when every set has them)."""
    sets = [s for s in sets if len(s)]
    if not sets:
        raise ArgumentError("no frames to concatenate")
    opt = {k: np.concatenate([getattr(s, k) for s in sets]) if all(getattr(s, k) is not None for s in sets)
           else None for k in ("verts", "side")}
    return FrameSet("+".join(s.clip_id for s in sets), *(np.concatenate([getattr(s, k) for s in sets])
                                                          for k in ("images", "xyz", "uv", "K", "frame", "hand")),
                    **opt)


def crop_box(uv: np.ndarray, width: int, height: int, enlarge: float) -> tuple[np.ndarray, float]:
    """Centre (x, y) and side of the square crop around 21 2D joints (see module doc)."""
    inside = (uv[:, 0] > 0) & (uv[:, 0] < width) & (uv[:, 1] > 0) & (uv[:, 1] < height)
    pts = uv[inside] if inside.sum() > 1 else uv
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    side = float(max(hi - lo)) * enlarge
    return (lo + hi) / 2.0, max(side, 8.0)


def crop_affine(center: np.ndarray, side: float, size: int) -> np.ndarray:
    """3x3 map from image pixels to crop pixels (pixel centres at integers on both sides)."""
    s = size / side
    a = np.eye(3)
    a[0, 0] = a[1, 1] = s
    a[0, 2] = (size - 1) / 2.0 - s * center[0]
    a[1, 2] = (size - 1) / 2.0 - s * center[1]
    return a


def extract(sample: Sample, video: Video, size: int = 128, stride: int = 1, enlarge: float = 1.5) -> FrameSet:
    """Crops of ``video`` (real or generated) with ``sample``'s GT (joints, intrinsics, vertices)."""
    import cv2

    if sample.joints_3d is None or sample.joints_2d is None or sample.intrinsics is None:
        raise InputError(sample.id, "downstream training needs joints_3d, joints_2d and intrinsics")
    j3 = np.asarray(sample.joints_3d, np.float64)
    j2 = np.asarray(sample.joints_2d, np.float64)
    if j3.shape[0] != video.num_frames:
        raise InputError(sample.id, f"GT has {j3.shape[0]} frames but the video {video.num_frames}")
    if sample.video is not None and sample.video.size != video.size:
        raise InputError(sample.id, f"video is {video.width}x{video.height}, the GT is for "
                                    f"{sample.video.width}x{sample.video.height}")
    verts_all = sample.meta.get("mano_vertices")
    K = np.asarray(sample.intrinsics, np.float64)
    h, w = video.size
    out: dict[str, list] = {k: [] for k in ("images", "xyz", "uv", "K", "frame", "hand", "verts", "side")}
    for t in range(0, video.num_frames, max(1, int(stride))):
        for k in range(j3.shape[1]):
            if not (np.isfinite(j3[t, k]).all() and np.isfinite(j2[t, k]).all()):
                continue
            c, side = crop_box(j2[t, k], w, h, enlarge)
            a = crop_affine(c, side, size)
            img = cv2.warpAffine(video.frames[t], a[:2], (size, size), flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
            uvh = np.c_[j2[t, k], np.ones(21)] @ a.T
            out["images"].append(img)
            out["xyz"].append(j3[t, k])
            out["uv"].append(uvh[:, :2])
            out["K"].append(a @ K)
            out["frame"].append(t)
            out["hand"].append(k)
            out["side"].append(side)
            if verts_all is not None:
                out["verts"].append(np.asarray(verts_all, np.float64)[t, k])
    n = len(out["images"])
    verts = np.asarray(out["verts"], np.float32).reshape(n, 778, 3) if verts_all is not None else None
    return FrameSet(
        clip_id=sample.id,
        images=np.asarray(out["images"], np.uint8).reshape(n, size, size, 3),
        xyz=np.asarray(out["xyz"], np.float32).reshape(n, 21, 3),
        uv=np.asarray(out["uv"], np.float32).reshape(n, 21, 2),
        K=np.asarray(out["K"], np.float64).reshape(n, 3, 3),
        frame=np.asarray(out["frame"], np.int32),
        hand=np.asarray(out["hand"], np.int32),
        verts=verts,
        side=np.asarray(out["side"], np.float64).reshape(n),
    )
