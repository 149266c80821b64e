"""Point trackers: follow given query points (x, y at frame 0) through a video.

Every tracker has ``track(video, queries) -> (tracks, visible)``:

- ``queries``: float [N, 2] pixel coordinates (x, y) in frame 0, pixel centres at integers
  (OpenCV's convention).
- ``tracks``: float64 [T, N, 2] positions. ``lk``: ``tracks[0] == queries`` exactly. ``cotracker3``:
  ``tracks[0]`` is the official predictor's output, which differs from the queries by float32 rounding
  (up to 1.5e-5 px measured against the official predictor), so compare with a tolerance. Where a
  backend has *lost* a point (``lk``) the position is NaN from then on.
- ``visible``: bool [T, N]; ``visible[0]`` is all True.

Backends (looked up by name in ``TRACKERS``; no string dispatch):

- ``lk`` (offline default): OpenCV pyramidal Lucas-Kanade on grayscale frames (window 21x21,
  3 pyramid levels, i.e. ``maxLevel=2``), frame to frame, with a forward-backward check: a point
  whose backward-tracked position misses its start by more than ``fb_threshold`` px (1 px), whose
  status flag is 0, or that leaves the image is *lost* from that frame on (visible False, NaN).
- ``cotracker3``: the paper's tracker, facebookresearch/co-tracker's ``CoTrackerPredictor``
  (CoTracker3 offline, window 60) with a user-supplied ``scaled_offline.pth`` (weights name
  ``cotracker3``; state dict loaded with ``torch.load(weights_only=True)``). Queries are passed
  explicitly as (t=0, x, y), so exactly those points are tracked; visibility is the package's own
  ``> 0.9`` threshold. CoTracker's visibility means *occluded*, not lost: an occluded point keeps a
  finite (estimated) position and may become visible again.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..errors import ArgumentError, InputError, MissingResource, require_packages
from ..types import Video


@runtime_checkable
class PointTracker(Protocol):
    """What a point tracker offers (see the module docstring for the array contract)."""

    name: str

    def track(self, video: Video, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ...

    def identity(self) -> dict[str, Any]:
        ...

    def check_ready(self) -> None:
        ...


def _check_queries(video: Video, queries: np.ndarray) -> np.ndarray:
    q = np.asarray(queries, dtype=np.float64)
    if q.ndim != 2 or q.shape[1] != 2:
        raise ArgumentError(f"queries must be [N, 2] (x, y), got {q.shape}")
    if q.shape[0] == 0:
        raise ArgumentError("no query points")
    if not np.isfinite(q).all():
        raise ArgumentError("query points must be finite")
    h, w = video.size
    if (q[:, 0] < 0).any() or (q[:, 0] > w - 1).any() or (q[:, 1] < 0).any() or (q[:, 1] > h - 1).any():
        raise ArgumentError(f"query points must lie inside the {w}x{h} frame")
    return q


class LucasKanadeTracker:
    """OpenCV pyramidal Lucas-Kanade with a forward-backward consistency check (no weights)."""

    name = "lk"

    def __init__(self, device: str = "cpu", win_size: int = 21, levels: int = 3, fb_threshold: float = 1.0,
                 max_iter: int = 30, eps: float = 0.01):
        del device  # CPU only (OpenCV)
        self.win_size = int(win_size)
        self.levels = int(levels)
        self.fb_threshold = float(fb_threshold)
        self.max_iter = int(max_iter)
        self.eps = float(eps)

    def check_ready(self) -> None:
        require_packages("cv2", how="pip install opencv-contrib-python")

    def identity(self) -> dict[str, Any]:
        import cv2

        return {"tracker": self.name, "opencv": cv2.__version__, "win_size": self.win_size,
                "levels": self.levels, "fb_threshold_px": self.fb_threshold,
                "criteria": [self.max_iter, self.eps]}

    def _lk(self, a: np.ndarray, b: np.ndarray, pts: np.ndarray):
        import cv2

        crit = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, self.max_iter, self.eps)
        p = pts.reshape(-1, 1, 2).astype(np.float32)
        out, st, _ = cv2.calcOpticalFlowPyrLK(a, b, p, None, winSize=(self.win_size, self.win_size),
                                              maxLevel=self.levels - 1, criteria=crit)
        return out.reshape(-1, 2).astype(np.float64), st.reshape(-1).astype(bool)

    def track(self, video: Video, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import cv2

        q = _check_queries(video, queries)
        t_len, n = video.num_frames, q.shape[0]
        h, w = video.size
        tracks = np.full((t_len, n, 2), np.nan, dtype=np.float64)
        visible = np.zeros((t_len, n), dtype=bool)
        tracks[0], visible[0] = q, True
        prev = cv2.cvtColor(video.frames[0], cv2.COLOR_RGB2GRAY)
        for t in range(1, t_len):
            cur = cv2.cvtColor(video.frames[t], cv2.COLOR_RGB2GRAY)
            alive = np.flatnonzero(visible[t - 1])
            if alive.size:
                p0 = tracks[t - 1, alive]
                p1, st1 = self._lk(prev, cur, p0)
                back, st2 = self._lk(cur, prev, p1)
                fb = np.linalg.norm(back - p0, axis=1)
                inside = (p1[:, 0] >= 0) & (p1[:, 0] <= w - 1) & (p1[:, 1] >= 0) & (p1[:, 1] <= h - 1)
                ok = st1 & st2 & (fb <= self.fb_threshold) & inside & np.isfinite(p1).all(axis=1)
                tracks[t, alive[ok]] = p1[ok]
                visible[t, alive[ok]] = True
            prev = cur
        return tracks, visible


class CoTracker3Tracker:
    """CoTracker3 offline (the paper's tracker) from a user-supplied checkpoint; lazy import."""

    name = "cotracker3"
    #: the package's own visibility threshold (cotracker/predictor.py: ``visibilities > 0.9``)
    VISIBILITY_THRESHOLD = 0.9
    WINDOW_LEN = 60  # hubconf's cotracker3_offline
    PIP = 'pip install "cotracker @ git+https://github.com/facebookresearch/co-tracker"'

    def __init__(self, device: str = "cpu", checkpoint: str | Path | None = None):
        self.device = device
        self.checkpoint = checkpoint
        self._model = None
        self._sha256: str | None = None

    def _checkpoint_path(self) -> Path:
        from .. import weights as W

        if self.checkpoint is not None:
            p = Path(self.checkpoint)
            if not p.is_file():
                raise MissingResource(f"CoTracker3 checkpoint {p}",
                                      "pass an existing scaled_offline.pth (facebookresearch/co-tracker)")
            return p
        return W.path("cotracker3")

    def check_ready(self) -> None:
        require_packages("cotracker", label="CoTracker3", how=f"{self.PIP}; it also needs the checkpoint "
                         "scaled_offline.pth (weights name 'cotracker3')")
        self._checkpoint_path()

    def identity(self) -> dict[str, Any]:
        from .. import weights as W

        p = self._checkpoint_path()
        if self._sha256 is None:
            self._sha256 = W.sha256_file(p)
        return {"tracker": self.name, "checkpoint": p.name, "checkpoint_sha256": self._sha256,
                "window_len": self.WINDOW_LEN, "visibility_threshold": self.VISIBILITY_THRESHOLD,
                "queries": "explicit (t=0, x, y)"}

    def _build(self):
        if self._model is not None:
            return self._model
        self.check_ready()
        import torch
        from cotracker.predictor import CoTrackerPredictor

        p = self._checkpoint_path()
        try:
            state = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - any unpickling failure is a bad file
            raise InputError(p, f"not a tensor-only CoTracker checkpoint ({type(e).__name__}: {e})") from None
        if isinstance(state, dict) and "model" in state:
            state = state["model"]
        predictor = CoTrackerPredictor(checkpoint=None, offline=True, v2=False, window_len=self.WINDOW_LEN)
        try:
            predictor.model.load_state_dict(state)
        except RuntimeError as e:
            raise InputError(p, f"does not fit CoTracker3 offline ({str(e).splitlines()[0]})") from None
        self._model = predictor.eval().to(self.device)
        return self._model

    def track(self, video: Video, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import torch

        q = _check_queries(video, queries)
        model = self._build()
        frames = torch.from_numpy(np.ascontiguousarray(video.frames)).to(self.device)
        vid = frames.permute(0, 3, 1, 2)[None].float()  # B T C H W, 0..255 as the package expects
        qt = torch.zeros((1, q.shape[0], 3), dtype=torch.float32, device=self.device)
        qt[0, :, 1:] = torch.from_numpy(q).float()
        with torch.inference_mode():
            tracks, vis = model(vid, queries=qt)
        tracks = tracks[0].double().cpu().numpy()
        vis = vis[0].cpu().numpy().astype(bool)
        if vis.ndim == 3:
            vis = vis[..., 0]
        return tracks, vis


#: tracker name -> class (the MF metric's ``tracker`` option picks one)
TRACKERS: dict[str, type] = {"lk": LucasKanadeTracker, "cotracker3": CoTracker3Tracker}


def get_tracker(name: str, device: str = "cpu", **options) -> PointTracker:
    """Build a tracker by name (a clear error lists the known names)."""
    from ..registry import build_backend

    return build_backend("point tracker", TRACKERS, name, device=device, **options)
