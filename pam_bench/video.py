"""Video IO: the only module that touches codecs.

- read: decord (the client's choice), falling back to PyAV where decord cannot open a file.
- write: lossless by default (libx264rgb, qp 0: RGB stays bit-exact, so a codec never moves a metric);
  ``codec="h264"`` writes yuv420p crf 18 for viewing.
- Every error names the file and the problem (InputError).
"""
from __future__ import annotations

import contextlib
import os
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np

from .errors import InputError
from .types import Video


def read_video(path, max_frames: int | None = None) -> Video:
    """Decode a whole video file to uint8 [T,H,W,3] RGB."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such file")
    if path.stat().st_size == 0:
        raise InputError(path, "empty file")
    if path.suffix.lower() == ".gif":
        return _read_pyav(path, max_frames)
    try:
        return _read_decord(path, max_frames)
    except InputError:
        raise
    except Exception:  # decord cannot open some containers: PyAV decides
        return _read_pyav(path, max_frames)


@contextlib.contextmanager
def quiet_native_stderr():
    """Silence codec libraries' own log lines (ffmpeg, dmlc) while opening a file: a bad file is reported
    once, by us, as one line naming it."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, ValueError, OSError):  # captured stderr (pytest): nothing to silence
        yield
        return
    saved = os.dup(fd)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        sys.stderr.flush()
        os.dup2(devnull, fd)
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)
        os.close(devnull)


def _read_decord(path: Path, max_frames):
    import decord

    with quiet_native_stderr():
        vr = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
    n = len(vr)
    if n == 0:
        raise InputError(path, "no decodable frames")
    n = n if max_frames is None else min(n, max_frames)
    frames = vr.get_batch(list(range(n))).asnumpy()
    fps = float(vr.get_avg_fps() or 0) or 15.0
    return Video(np.ascontiguousarray(frames, dtype=np.uint8), fps)


def _read_pyav(path: Path, max_frames):
    import av
    import av.logging

    av.logging.set_level(av.logging.PANIC)
    frames = []
    try:
        with av.open(str(path)) as c:
            streams = [s for s in c.streams if s.type == "video"]
            if not streams:
                raise InputError(path, "has no video stream")
            st = streams[0]
            rate = st.average_rate or st.guessed_rate
            fps = float(rate) if rate else 15.0
            for fr in c.decode(st):
                frames.append(fr.to_ndarray(format="rgb24"))
                if max_frames is not None and len(frames) >= max_frames:
                    break
    except InputError:
        raise
    except Exception as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InputError(path, f"cannot decode video ({msg}); is it truncated or corrupt?") from None
    if not frames:
        raise InputError(path, "no decodable frames (truncated or corrupt?)")
    return Video(np.stack(frames).astype(np.uint8, copy=False), fps)


def probe(path) -> dict:
    """Frame count, size and fps without decoding pixels (decord metadata; PyAV fallback)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such file")
    try:
        import decord

        vr = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
        h, w = vr[0].shape[:2] if len(vr) else (0, 0)
        return {"frames": len(vr), "height": int(h), "width": int(w), "fps": float(vr.get_avg_fps())}
    except Exception:
        v = _read_pyav(path, None)
        return {"frames": v.num_frames, "height": v.height, "width": v.width, "fps": v.fps}


def write_video(path, video: Video, codec: str = "lossless") -> Path:
    """Write atomically (temporary file, then rename). ``codec``: "lossless" (default) or "h264"."""
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part.mp4")
    fr = video.frames
    h, w = fr.shape[1:3]
    rate = Fraction(video.fps).limit_denominator(1001)
    try:
        with av.open(str(tmp), mode="w") as c:
            if codec == "lossless":
                st = c.add_stream("libx264rgb", rate=rate)
                st.pix_fmt = "rgb24"
                st.options = {"qp": "0", "preset": "ultrafast"}
                fmt = "rgb24"
            elif codec == "h264":
                if h % 2 or w % 2:
                    raise InputError(path, f"h264 (yuv420p) needs even sizes, got {w}x{h}; use codec lossless")
                st = c.add_stream("libx264", rate=rate)
                st.pix_fmt = "yuv420p"
                st.options = {"crf": "18"}
                fmt = "rgb24"
            else:
                raise ValueError(f"unknown codec {codec!r}: use 'lossless' or 'h264'")
            st.width, st.height = w, h
            for f in fr:
                for pkt in st.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format=fmt)):
                    c.mux(pkt)
            for pkt in st.encode():
                c.mux(pkt)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def conform(video: Video, where, frames: int | None, size: tuple[int, int] | None, trim: bool, resize: bool
            ) -> Video:
    """Apply the explicit, documented adaptations: --trim keeps the first N frames; --resize stretches
    each frame to (H, W) bilinearly (PAM's own resize policy). Without the flag a mismatch is an error."""
    fr = video.frames
    if frames is not None and fr.shape[0] != frames:
        if trim and fr.shape[0] > frames:
            fr = fr[:frames]
        else:
            raise InputError(where, f"{fr.shape[0]} frames, expected {frames}"
                                    + ("" if fr.shape[0] > frames else " (too short to trim)"))
    if size is not None and fr.shape[1:3] != tuple(size):
        if not resize:
            raise InputError(where, f"size {fr.shape[1]}x{fr.shape[2]}, expected {size[0]}x{size[1]} "
                                    "(pass --resize to stretch explicitly)")
        fr = resize_frames(fr, size)
    return Video(np.ascontiguousarray(fr), video.fps) if fr is not video.frames else video


def resize_frames(frames: np.ndarray, size: tuple[int, int], nearest: bool = False) -> np.ndarray:
    import cv2

    h, w = size
    interp = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    return np.stack([cv2.resize(f, (w, h), interpolation=interp) for f in frames])
