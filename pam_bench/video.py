"""Video IO: the only module that touches codecs.

- read: one of ``DECODERS`` (PyAV by default, single-threaded per clip: the evaluate pipeline decodes
  several clips at once; ``PAM_BENCH_DECODER=decord|opencv`` or ``decoder=`` picks another path), falling
  back to PyAV where decord or OpenCV cannot open a file. Every path returns the same pixels: one YUV->RGB conversion
  (``YUV_TO_RGB``: libswscale, BT.601 matrix and limited 16-235 range for untagged files, the file's own
  matrix/range tags where it has them) — tests/test_decoders.py holds every path to identical frames on
  lossless RGB, yuv420p h264 and mpeg4 files (decord hands MPEG-4 part 2 to PyAV: see _read_decord).
  ``decode_info()`` records the choice in results.json.
- write: lossless by default (libx264rgb, qp 0: RGB stays bit-exact, so a codec never moves a metric);
  ``codec="h264"`` writes yuv420p crf 18 for viewing; ``codec="mpeg4"`` (benchmarks) MPEG-4 part 2.
- Every error names the file and the problem (InputError).
"""
from __future__ import annotations

import contextlib
import os
import sys
import threading
from fractions import Fraction
from pathlib import Path

import numpy as np

from .errors import FlagError, InputError
from .types import Video


def _check_file(path: Path) -> None:
    if path.is_symlink() and not path.exists():
        try:
            os.stat(path)
        except OSError as e:
            raise InputError(path, "symbolic link loop" if e.errno == 40 else "dangling symbolic link") from None
    if not path.is_file():
        raise InputError(path, "no such file")
    if path.stat().st_size == 0:
        raise InputError(path, "empty file")


#: The decoder paths, fastest first (measured by ``pam-bench bench --what decode``).
DECODERS = ("pyav", "decord", "opencv")
#: The one YUV->RGB conversion every path applies (recorded in results.json's env block).
YUV_TO_RGB = ("libswscale rgb24; matrix BT.601 (SMPTE 170M) and limited range (16-235) unless the file tags "
              "another matrix or full range (then the tags); planar RGB (lossless libx264rgb) is copied")


def default_decoder() -> str:
    """``PAM_BENCH_DECODER`` when set (pyav, decord or opencv), else the fastest path, PyAV."""
    name = os.environ.get("PAM_BENCH_DECODER", "").strip().lower() or DECODERS[0]
    if name not in DECODERS:
        raise FlagError("PAM_BENCH_DECODER", f"unknown decoder {name!r}; use one of {', '.join(DECODERS)}")
    return name


def decode_info() -> dict:
    """The decoder path and its YUV->RGB conversion, for results.json (pixels are equal on every path; the
    decoder packages' versions are recorded beside it, from their metadata)."""
    return {"decoder": default_decoder(), "yuv_to_rgb": YUV_TO_RGB, "threads_per_clip": 1}


def read_video(path, max_frames: int | None = None, expect_frames: int | None = None, trim: bool = False,
               decoder: str | None = None, threads: int = 1) -> Video:
    """Decode a video file to uint8 [T,H,W,3] RGB.

    ``expect_frames``: the frame count the caller needs. The container's frame count is probed before any
    frame is decoded: a longer file is an InputError (or, with ``trim``, only its first ``expect_frames``
    are decoded), so memory stays bounded by the expected length; decoding also stops one frame past it
    when the container under-reports its length.
    """
    path = Path(path)
    _check_file(path)
    if expect_frames is not None:
        n = probe_frames(path)
        if n is not None and n > expect_frames and not trim:
            raise InputError(path, f"{n} frames, expected {expect_frames} (pass --trim to keep the first "
                                   f"{expect_frames})")
        cap = expect_frames if trim else expect_frames + 1
        max_frames = cap if max_frames is None else min(max_frames, cap)
    decoder = decoder or default_decoder()
    if path.suffix.lower() == ".gif" or decoder == "pyav":
        v = _read_pyav(path, max_frames, threads)
    else:
        try:
            v = (_read_decord if decoder == "decord" else _read_opencv)(path, max_frames)
        except InputError:
            raise
        except Exception:  # decord/OpenCV cannot open some containers: PyAV decides
            v = _read_pyav(path, max_frames)
    if expect_frames is not None and not trim and v.num_frames > expect_frames:
        raise InputError(path, f"more than {expect_frames} frames (the container said fewer); expected "
                               f"{expect_frames} (pass --trim to keep the first {expect_frames})")
    return v


_QUIET = threading.Lock()
_QUIET_STATE = {"depth": 0, "saved": None, "fd": None}


@contextlib.contextmanager
def quiet_native_stderr():
    """Silence codec libraries' own log lines (ffmpeg, dmlc) while opening a file: a bad file is reported
    once, by us, as one line naming it.

    The process-wide stderr descriptor is swapped once, under a lock with a reference count: the first
    thread to enter points it at /dev/null, the last to leave restores it, so threads that enter and
    leave out of order never leave stderr silenced.
    """
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, ValueError, OSError):  # captured stderr (pytest): nothing to silence
        yield
        return
    st = _QUIET_STATE
    with _QUIET:
        if st["depth"] == 0:
            sys.stderr.flush()
            devnull = os.open(os.devnull, os.O_WRONLY)
            st["saved"], st["fd"] = os.dup(fd), fd
            os.dup2(devnull, fd)
            os.close(devnull)
        st["depth"] += 1
    try:
        yield
    finally:
        with _QUIET:
            st["depth"] -= 1
            if st["depth"] == 0:
                os.dup2(st["saved"], st["fd"])
                os.close(st["saved"])
                st["saved"] = st["fd"] = None


def probe_frames(path) -> int | None:
    """The container's frame count without decoding a frame (None when it does not say)."""
    path = Path(path)
    try:
        import av

        with av.open(str(path)) as c:
            streams = [s for s in c.streams if s.type == "video"]
            n = int(streams[0].frames) if streams else 0
        if n:
            return n
    except Exception:  # noqa: BLE001 - PyAV cannot read the header: ask decord
        pass
    try:
        import decord

        with quiet_native_stderr():
            vr = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
        return int(len(vr)) or None
    except Exception:  # noqa: BLE001 - unreadable: the decoder reports it with the file's name
        return None


def _codec_name(path: Path) -> str | None:
    try:
        import av

        with av.open(str(path)) as c:
            return c.streams.video[0].codec_context.name if c.streams.video else None
    except Exception:  # noqa: BLE001 - unreadable header: the decoder reports it
        return None


def _read_decord(path: Path, max_frames):
    """decord, except for MPEG-4 part 2: decord's bundled (older) libavcodec reconstructs some of its blocks
    differently from the encoder's own (at most 2 levels, on ~1e-6 of the pixels of a PyAV-written mpeg4
    file), so the decord path hands mpeg4 to PyAV and every path keeps identical frames."""
    if _codec_name(path) == "mpeg4":
        return _read_pyav(path, max_frames)
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


def _read_opencv(path: Path, max_frames):
    import cv2

    with quiet_native_stderr():
        cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    try:
        if not cap.isOpened():
            raise RuntimeError("OpenCV cannot open it")
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0) or 15.0
        frames = _Frames(path, max_frames, int(max(0, cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)) or None)
        while max_frames is None or frames.n < max_frames:
            ok, f = cap.read()
            if not ok:
                break
            frames.add(f[..., ::-1])  # BGR -> RGB
    finally:
        cap.release()
    if not frames.n:
        raise RuntimeError("no frames")
    return frames.video(fps)


def _rgb(frame) -> np.ndarray:
    """One frame to uint8 HxWx3 RGB by YUV_TO_RGB: the tags when the file has them, else BT.601 limited."""
    cs = frame.colorspace if frame.colorspace not in (0, 2) else "ITU601"  # AVCOL_SPC_RGB/UNSPECIFIED
    rng = frame.color_range or 1  # AVCOL_RANGE_UNSPECIFIED -> MPEG (limited)
    return frame.to_ndarray(format="rgb24", src_colorspace=cs, src_color_range=rng)


class _Frames:
    """Decoded frames written straight into one uint8 [T,H,W,3] array, so a video never exists twice (a list
    of frames and its stacked copy) and no frame-sized buffers pile up in the allocator's arenas while
    clips decode in parallel threads.

    ``wanted``: the most frames the caller wants (the array is sized for them); else ``count``, the
    container's own frame count, which a file may misstate: it sizes the array only up to 1 GiB, and the
    array grows when more frames come."""

    def __init__(self, path: Path, wanted: int | None, count: int | None = None):
        self.path, self.wanted, self.count, self.n, self.buf = path, wanted, count, 0, None

    def add(self, frame: np.ndarray) -> None:
        if self.buf is None:
            cap = self.wanted or min(self.count or 64, max(1, (1 << 30) // max(1, frame.nbytes)))
            self.buf = np.empty((max(1, cap), *frame.shape), dtype=np.uint8)
        elif frame.shape != self.buf.shape[1:]:
            raise InputError(self.path, f"frame {self.n} is {frame.shape[1]}x{frame.shape[0]}, the first frame "
                                        f"{self.buf.shape[2]}x{self.buf.shape[1]}")
        if self.n == len(self.buf):  # longer than the container said: grow
            grown = np.empty((2 * len(self.buf), *self.buf.shape[1:]), dtype=np.uint8)
            grown[:self.n] = self.buf
            self.buf = grown
        self.buf[self.n] = frame
        self.n += 1

    def video(self, fps: float) -> Video:
        if self.buf is None:
            raise InputError(self.path, "no decodable frames (truncated or corrupt?)")
        frames = self.buf[:self.n]
        return Video(frames if 4 * self.n >= 3 * len(self.buf) else frames.copy(), fps)  # a view, unless mostly unused


def _read_pyav(path: Path, max_frames, threads: int = 1):
    import av
    import av.logging

    av.logging.set_level(av.logging.PANIC)
    try:
        with av.open(str(path)) as c:
            streams = [s for s in c.streams if s.type == "video"]
            if not streams:
                raise InputError(path, "has no video stream")
            st = streams[0]
            if threads > 1:
                st.thread_type, st.thread_count = "FRAME", int(threads)
            else:  # libavcodec's default (0) is one slice thread per core: one thread means one
                st.thread_count = 1
            rate = st.average_rate or st.guessed_rate
            fps = float(rate) if rate else 15.0
            frames = _Frames(path, max_frames, int(st.frames or 0) or None)
            for fr in c.decode(st):
                frames.add(_rgb(fr))
                if max_frames is not None and frames.n >= max_frames:
                    break
    except InputError:
        raise
    except Exception as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InputError(path, f"cannot decode video ({msg}); is it truncated or corrupt?") from None
    return frames.video(fps)


def probe(path) -> dict:
    """Frame count, size and fps without decoding pixels (decord metadata; PyAV fallback)."""
    path = Path(path)
    _check_file(path)
    try:
        import decord

        with quiet_native_stderr():
            vr = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
        h, w = vr[0].shape[:2] if len(vr) else (0, 0)
        return {"frames": len(vr), "height": int(h), "width": int(w), "fps": float(vr.get_avg_fps())}
    except Exception:
        v = _read_pyav(path, None)
        return {"frames": v.num_frames, "height": v.height, "width": v.width, "fps": v.fps}


def write_video(path, video: Video, codec: str = "lossless") -> Path:
    """Write atomically (temporary file, then rename). ``codec``: "lossless" (default), "h264" or "mpeg4"."""
    import av

    from .fsutil import ensure_dir, file_mode

    path = Path(path)
    ensure_dir(path.parent)
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
            elif codec == "mpeg4":  # the DexYCB sample's codec (MPEG-4 part 2, yuv420p), for the benchmarks
                st = c.add_stream("mpeg4", rate=rate)
                st.pix_fmt = "yuv420p"
                st.options = {"qscale": "3"}
                fmt = "rgb24"
            else:
                raise FlagError("--codec", f"unknown codec {codec!r}: use 'lossless', 'h264' or 'mpeg4'")
            st.width, st.height = w, h
            for f in fr:
                for pkt in st.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format=fmt)):
                    c.mux(pkt)
            for pkt in st.encode():
                c.mux(pkt)
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except OSError as e:  # disk full, read-only folder...: one line naming the file
        from .fsutil import os_error

        raise os_error(path, e) from None
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
