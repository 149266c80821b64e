"""Hand MPJPE on generated videos (paper Tables 1-3): are the generated hands posed like the GT hands?

Per video, the hand-pose backend (``mediapipe`` offline default, ``hamer`` the paper's) runs on the
GENERATED clip only; GT joints come from the dataset (``sample.joints_3d`` metres, ``joints_2d`` px,
[T, K, 21, *], NaN where a hand is missing). Each GT hand is matched per frame to one detection
(``pam_bench.metrics.hands.match_to_gt``: handedness from ``sample.hand_sides``, then nearest 2D wrist within
the GT hand's 2D box diagonal).

- **Hand-frames.** A (frame, GT hand) pair is *with GT* when that hand's 21 GT 3D joints are finite
  (or, for the 2D extras, its 2D joints). Pairs without GT are counted (``n_frames_gt_missing``); pairs
  with GT but no matched detection are counted (``n_frames_undetected``); neither is dropped silently or
  filled with zeros.
- **value = root-aligned 3D MPJPE in mm**: subtract joint 0 (wrist) from both the estimate and the GT,
  the mean over the 21 joints of the Euclidean distance, averaged over the matched hand-frames, x1000
  (dex-ycb-toolkit's root-relative mode). The backend's 3D origin therefore does not matter.
- **Extras**: ``err_2d_px`` (mean 2D joint error in pixels, matched hand-frames with GT 2D),
  ``pck_2d`` (share of joints within ``pck_px`` = 10 px), ``detection_rate`` (matched / hand-frames
  with GT), ``n_hand_frames_gt``, ``n_frames_gt_missing``, ``n_frames_undetected``, ``n_matched_by_side``,
  ``n_matched_by_wrist``.
- A sample without GT joints gives ``value=None`` with reason "no GT joints" (e.g. OAKINK2 without MANO);
  no detection on any GT hand-frame gives ``value=None`` with its reason (the counts are still reported).

Aggregation over videos (option ``aggregate``, part of the backend name so tables never mix them):

- ``frames`` (default, backend ``<estimator>/pooled-frames``): every matched hand-frame of every video
  weighs the same, ``sum of errors / number of matched hand-frames`` over the whole set, as
  dex-ycb-toolkit's ``hpe_eval.py`` pools its frames. The 95% interval resamples videos (cluster bootstrap).
- ``videos`` (backend ``<estimator>/per-video``): the mean of the per-video means (each video weighs the
  same), with the usual bootstrap interval.

Either way the missed detections are reported beside the value: ``extras.missed`` holds the total hand-frames
with GT, the undetected ones, the pooled detection rate and the videos with no detection at all (a
missed hand-frame has no error to average, so it is never in the value).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError, OptionError
from ..types import Sample, Video
from .base import MeanMetric, Payload

MM_PER_M = 1000.0


def root_aligned_mpjpe(pred: np.ndarray, gt: np.ndarray, root: int = 0) -> np.ndarray:
    """Per-hand mean joint distance after subtracting the root joint from both: [..., 21, 3] -> [...]
    (in the input unit)."""
    p = np.asarray(pred, dtype=np.float64)
    g = np.asarray(gt, dtype=np.float64)
    p = p - p[..., root:root + 1, :]
    g = g - g[..., root:root + 1, :]
    return np.linalg.norm(p - g, axis=-1).mean(axis=-1)


def joint_errors_2d(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Per-joint 2D distance in pixels: [..., 21, 2] -> [..., 21]."""
    return np.linalg.norm(np.asarray(pred, np.float64) - np.asarray(gt, np.float64), axis=-1)


def _gt_arrays(sample: Sample, t_len: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    out = []
    for name, dim in (("joints_3d", 3), ("joints_2d", 2)):
        a = getattr(sample, name)
        if a is None:
            out.append(None)
            continue
        a = np.asarray(a, dtype=np.float64)
        if a.ndim != 4 or a.shape[2:] != (21, dim):
            raise InputError(sample.id, f"mpjpe: {name} must be [T, K, 21, {dim}], got {a.shape}")
        if a.shape[0] != t_len:
            raise InputError(sample.id, f"mpjpe: {name} has {a.shape[0]} frames, the generated video {t_len}")
        out.append(a)
    return out[0], out[1]


def _box_diagonal(j2: np.ndarray) -> np.ndarray:
    """Diagonal of each hand's 2D joint box [K] (NaN where the hand is missing)."""
    with np.errstate(invalid="ignore"):
        return np.linalg.norm(j2.max(axis=-2) - j2.min(axis=-2), axis=-1)


def evaluate_hands(dets_per_frame, gt3: np.ndarray | None, gt2: np.ndarray | None,
                   hand_sides, pck_px: float = 10.0) -> dict[str, Any]:
    """Match detections to GT per frame and accumulate every count and error (see the module doc)."""
    from .hands import match_to_gt

    ref = gt3 if gt3 is not None else gt2
    t_len, k = ref.shape[:2]
    sides = list(hand_sides) + [""] * (k - len(hand_sides))
    has3 = np.isfinite(gt3).all(axis=(-1, -2)) if gt3 is not None else np.zeros((t_len, k), bool)
    has2 = np.isfinite(gt2).all(axis=(-1, -2)) if gt2 is not None else np.zeros((t_len, k), bool)
    has_gt = has3 | has2
    e3: list[float] = []
    e2: list[np.ndarray] = []
    n_matched = 0
    how_counts = {"side": 0, "wrist": 0}
    for t in range(t_len):
        if not has_gt[t].any():
            continue
        wrists = gt2[t, :, 0] if gt2 is not None else None
        gate = _box_diagonal(gt2[t]) if gt2 is not None else None
        match, how = match_to_gt(dets_per_frame[t], sides[:k], wrists, gate)
        for i in range(k):
            if not has_gt[t, i] or match[i] is None:
                continue
            n_matched += 1
            how_counts[how[i]] += 1
            if has3[t, i]:
                e3.append(float(root_aligned_mpjpe(match[i].joints_3d, gt3[t, i])))
            if has2[t, i]:
                e2.append(joint_errors_2d(match[i].joints_2d, gt2[t, i]))
    n_gt = int(has_gt.sum())
    res: dict[str, Any] = {
        "n_hand_frames_gt": n_gt,
        "n_frames_gt_missing": int((~has_gt).sum()),
        "n_frames_undetected": n_gt - n_matched,
        "n_matched_by_side": how_counts["side"],
        "n_matched_by_wrist": how_counts["wrist"],
        "detection_rate": (n_matched / n_gt) if n_gt else None,
        "n_frames_3d": len(e3),
        "err_2d_px": float(np.mean(e2)) if e2 else None,
        "pck_2d": float(np.mean(np.concatenate(e2) < pck_px)) if e2 else None,
    }
    if gt3 is None:
        return {"value": None, "reason": "no GT 3D joints", **res}
    if not has3.any():
        return {"value": None, "reason": "no GT hand in any frame", **res}
    if not e3:
        return {"value": None, "reason": "no hand detected in any frame with a GT hand", **res}
    return {"value": float(np.mean(e3) * MM_PER_M), "sum_err_mm": float(np.sum(e3) * MM_PER_M), **res}


AGGREGATIONS = {"frames": "pooled-frames", "videos": "per-video"}


class HandMPJPE(MeanMetric):
    """Root-aligned 3D hand MPJPE (mm) of a pose estimator on the generated video vs the GT joints.

    Options: ``backend`` ('mediapipe' default | 'hamer'), ``aggregate`` ('frames' default | 'videos'),
    ``pck_px`` (10), and backend options (``mode`` image|video for mediapipe; ``hamer_dir`` for hamer).
    """

    name = "mpjpe"
    label, decimals, tolerance = "MPJPE", 2, {"abs": 0.5, "rel": 0.0}  # mm
    direction = "lower"
    version = "2"
    unit = "mm"

    def __init__(self, device: str = "cpu", **options):
        super().__init__(device=device, **options)
        from .hands import get_backend
        from ..options import numeric

        opts = numeric(dict(options))
        self.estimator_name = str(opts.pop("backend", "mediapipe"))
        self.aggregate = str(opts.pop("aggregate", "frames"))
        if self.aggregate not in AGGREGATIONS:
            raise OptionError("mpjpe", "aggregate", f"must be one of {tuple(AGGREGATIONS)}, got {self.aggregate!r}")
        self.backend = f"{self.estimator_name}/{AGGREGATIONS[self.aggregate]}"
        self.pck_px = float(opts.pop("pck_px", 10.0))
        self.estimator = get_backend(self.estimator_name, device=device, **opts)
        self._key, self._key_of = "", None  # the payload key and the estimator it was computed for

    @property
    def key(self) -> str:
        """Payload key: changes with everything that changes a per-video payload, i.e. ``pck_px`` and the
        estimator's identity (package version, weights sha256, dtype, detector, mode, confidences; a
        ``hamer_dir`` only through the sha256 of its files, so a copied folder keeps its payloads). The
        aggregation is not in it: the per-video payloads do not depend on it. Computed once per estimator
        object (HaMeR's multi-GB checkpoint is hashed once anyway: ``weights.cached_sha256``); an absent
        weight file or package is the estimator's one-line MissingResource."""
        from ..types import stable_hash

        if self._key_of is not self.estimator:
            ident = stable_hash(self.estimator.identity())[:12]
            self._key = f"{self.name}@{self.version}-{self.estimator_name}-pck{self.pck_px:g}-e{ident}"
            self._key_of = self.estimator
        return self._key

    def config(self) -> dict:
        cfg = super().config()
        cfg.update({"estimator": self.estimator.identity(), "pck_px": self.pck_px, "aggregate": self.aggregate})
        return cfg

    def check_ready(self) -> None:
        self.estimator.check_ready()

    def measure(self, sample: Sample, generated: Video) -> Payload:
        if sample.joints_3d is None and sample.joints_2d is None:
            return {"value": None, "reason": "no GT joints"}
        if sample.video is not None and sample.video.size != generated.size:
            raise InputError(sample.id, f"mpjpe: generated video is {generated.width}x{generated.height} but the "
                                        f"GT joints are for {sample.video.width}x{sample.video.height}")
        gt3, gt2 = _gt_arrays(sample, generated.num_frames)
        dets = self.estimator.estimate(generated, sample.hand_sides, sample.intrinsics)
        return evaluate_hands(dets, gt3, gt2, sample.hand_sides, self.pck_px)

    # -- aggregation ------------------------------------------------------------------------------
    def reset(self) -> None:
        super().reset()
        self._pool: list[tuple[float, int]] = []  # (sum of errors mm, matched 3D hand-frames) per video
        self._missed = {"n_hand_frames_gt": 0, "n_frames_undetected": 0, "n_videos_no_detection": 0}

    def update(self, payload: Payload) -> None:
        super().update(payload)
        for k in ("n_hand_frames_gt", "n_frames_undetected"):
            self._missed[k] += int(payload.get(k) or 0)
        if payload.get("value") is None:
            self._missed["n_videos_no_detection"] += int(bool(payload.get("n_hand_frames_gt")))
            return
        n = int(payload.get("n_frames_3d") or 0)
        total = payload.get("sum_err_mm", float(payload["value"]) * n)
        if n > 0:
            self._pool.append((float(total), n))

    def compute(self):
        res = super().compute()
        gt, miss = self._missed["n_hand_frames_gt"], self._missed["n_frames_undetected"]
        res.extras["missed"] = {**self._missed, "detection_rate": (gt - miss) / gt if gt else None}
        res.extras["aggregate"] = self.aggregate
        res.extras.pop("sum_err_mm", None)
        if self.aggregate == "frames" and self._pool:
            sums, counts = (np.array(x, dtype=np.float64) for x in zip(*self._pool))
            res.value = float(sums.sum() / counts.sum())
            res.ci95 = _pooled_ci(sums, counts)
            res.extras["n_frames_pooled"] = int(counts.sum())
        return res


def _pooled_ci(sums: np.ndarray, counts: np.ndarray, n_boot: int = 1000, seed: int = 0):
    """Cluster bootstrap (videos resampled) 95% interval of the pooled mean sum / count."""
    if sums.size < 2:
        return None
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, sums.size, size=(n_boot, sums.size))
    ratios = sums[idx].sum(axis=1) / counts[idx].sum(axis=1)
    return float(np.quantile(ratios, 0.025)), float(np.quantile(ratios, 0.975))
