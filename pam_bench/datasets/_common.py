"""Helpers shared by the real-data datasets (DexYCB, OAKINK2): PAM's frame rule, file readers that
name the file in every error, geometry rescaling and the ``verify`` report.

Readers decode with PIL because it raises on a truncated JPEG/PNG (OpenCV warns and returns a
partially grey image), so a broken file is an error, never silently wrong pixels.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from ..errors import InputError
from ..types import PROTOCOL_FRAMES, PROTOCOL_HEIGHT, PROTOCOL_WIDTH


def pam_frame_indices(num_frames: int, frames: int = PROTOCOL_FRAMES, where: Any = "<clip>") -> list[int]:
    """PAM's sampling rule (training/dataset.py): ``range(0, N, N // frames)`` truncated to ``frames``.

    For N = 72 this is the first 49 frames; for N >= 98 every (N // 49)-th frame.
    """
    if num_frames < frames:
        raise InputError(where, f"has {num_frames} frames; the PAM protocol needs at least {frames}")
    return list(range(0, num_frames, num_frames // frames))[:frames]


def scale_points(points: np.ndarray, sx: float, sy: float) -> np.ndarray:
    """Pixel coordinates under a stretch resize (x*sx, y*sy); NaN stays NaN."""
    out = np.array(points, dtype=np.float32, copy=True)
    out[..., 0] *= sx
    out[..., 1] *= sy
    return out


def scale_intrinsics(k: np.ndarray, sx: float, sy: float) -> np.ndarray:
    """Intrinsics for a stretched image, consistent with :func:`scale_points` (fx, cx by sx; fy, cy by sy)."""
    out = np.array(k, dtype=np.float64, copy=True)
    out[0, :] *= sx
    out[1, :] *= sy
    return out


def _open_image(path: Path, what: str, convert: str | None = None) -> np.ndarray:
    """Decode an image file fully; InputError naming the file when it is missing or truncated."""
    from PIL import Image

    path = Path(path)
    if not path.is_file():
        raise InputError(path, f"missing ({what})")
    try:
        with Image.open(path) as im:
            im.load()
            return np.asarray(im.convert(convert) if convert else im)
    except (OSError, SyntaxError, ValueError) as e:
        raise InputError(path, f"unreadable {what} ({e}); is it truncated?") from None


def read_rgb(path: Path) -> np.ndarray:
    """uint8 [H,W,3] RGB from a JPEG/PNG; InputError naming the file when missing or truncated."""
    return _open_image(path, "colour frame", "RGB").astype(np.uint8, copy=False)


def read_depth_png(path: Path) -> np.ndarray:
    """uint16 [H,W] depth PNG (millimetres); InputError naming the file otherwise."""
    arr = _open_image(path, "aligned depth frame")
    if arr.ndim != 2:
        raise InputError(path, f"depth PNG must be single-channel, got shape {arr.shape}")
    return arr.astype(np.uint16, copy=False)


def read_npz(path: Path, keys: Sequence[str], what: str = "labels file") -> dict[str, np.ndarray]:
    """The named arrays of an .npz (no pickles allowed); InputError naming the file otherwise."""
    import zipfile

    path = Path(path)
    if not path.is_file():
        raise InputError(path, f"missing ({what})")
    try:
        with np.load(path, allow_pickle=False) as z:
            absent = [k for k in keys if k not in z.files]
            if absent:
                raise InputError(path, f"{what} has no {', '.join(repr(k) for k in absent)} "
                                       f"(found {', '.join(z.files) or 'nothing'})")
            return {k: np.asarray(z[k]) for k in keys}
    except InputError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise InputError(path, f"unreadable {what} ({e})") from None


def read_yaml(path: Path, what: str) -> Any:
    """Parse a YAML file with the safe loader; InputError naming the file otherwise."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise InputError(path, f"missing ({what})")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        with open(path, "r") as f:
            return yaml.load(f, Loader=loader)
    except (OSError, yaml.YAMLError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InputError(path, f"unreadable {what} ({msg})") from None


def resize_rgb(frames: np.ndarray, nearest: bool = False,
               size: tuple[int, int] = (PROTOCOL_HEIGHT, PROTOCOL_WIDTH)) -> np.ndarray:
    """Stretch uint8 [T,H,W,3] to the protocol size (bilinear, or nearest for label-like images)."""
    from ..video import resize_frames

    if frames.shape[1:3] == tuple(size):
        return np.ascontiguousarray(frames)
    if nearest:
        return resize_labels(frames, size)
    return resize_frames(frames, size)


def resize_labels(labels: np.ndarray, size: tuple[int, int] = (PROTOCOL_HEIGHT, PROTOCOL_WIDTH)) -> np.ndarray:
    """Nearest-neighbour stretch of [T,H,W(,C)] label-like arrays with PAM's (torch legacy 'nearest')
    index rule floor(dst * src / dst), in exact integer arithmetic (pam_bench.render.nearest_resize)."""
    from ..render import nearest_resize

    if labels.shape[1:3] == tuple(size):
        return np.ascontiguousarray(labels)
    return np.stack([nearest_resize(lab, size[0], size[1]) for lab in labels])


def count_frames(path: Path) -> int:
    """Frame count of a video file without decoding pixels."""
    from ..video import probe

    return int(probe(path)["frames"])


def take_frames(frames: np.ndarray, indices: Sequence[int], where: Any) -> np.ndarray:
    """frames[indices] with a clear error when the video is too short for PAM's index rule."""
    if len(indices) and max(indices) >= frames.shape[0]:
        raise InputError(where, f"has {frames.shape[0]} frames; PAM's frame rule needs index {max(indices)}")
    return frames[list(indices)]


@dataclass
class VerifyReport:
    """What ``pam-bench data verify`` prints: counts, and every missing or unreadable file with a reason."""

    dataset: str
    root: str
    split: str
    counts: dict[str, int] = field(default_factory=dict)
    problems: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, path: Any, reason: str) -> None:
        self.problems.append((str(path), reason))

    def bump(self, key: str, n: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + n


def start_report(ds, note: str) -> tuple[VerifyReport, tuple[str, ...] | None]:
    """A dataset's verify report with its first note and the split's ids (None when the split itself
    cannot be listed; the reason is then already in the report)."""
    rep = VerifyReport(ds.name, str(ds.root), ds.split_name)
    rep.notes.append(note)
    try:
        ids = ds.split().ids
    except InputError as e:
        rep.add(e.path, e.problem)
        return rep, None
    rep.counts["clips"] = len(ids)
    return rep, ids


def missing_files(paths: Iterable[Path]) -> list[Path]:
    """The paths that are absent or empty (stat only, nothing decoded)."""
    out = []
    for p in paths:
        try:
            if p.stat().st_size == 0:
                out.append(p)
        except OSError:
            out.append(p)
    return out
