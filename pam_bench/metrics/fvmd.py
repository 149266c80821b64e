"""Fréchet Video Motion Distance (FVMD; Liu et al., 2024, arXiv 2407.16124): a Fréchet distance between
histograms of keypoint velocities and accelerations.

Construction (the constants are the paper's and its public code's, DSL-Lab/FVMD-frechet-video-motion-distance):

1. **Segments.** Every window of ``SEGMENT`` (16) consecutive frames, starting every ``stride`` frames
   (1, as the public code's video datasets), is one sample; a 49-frame clip gives 34 segments. Each
   segment's frames are resized to ``RESOLUTION``² (256×256, bilinear through PIL as the code's image
   folders are).
2. **Tracks.** ``GRID``² (20×20 = 400) query points on a uniform grid in the segment's first frame,
   ``MARGIN`` (8) px from the border: ``x_j = 8 + j/19 * (256 - 16)``, point ``k = i * 20 + j`` (row i
   is y). They are tracked through the segment by a pam-bench tracker (``lk`` offline default,
   ``cotracker3`` when supplied; the paper uses PIPs++): ``Y`` [F=16, N=400, 2].
3. **Fields** (the paper's equations): velocity ``V = concat(0, Y[1:] - Y[:-1])``, acceleration
   ``A = concat(0, V[1:] - V[:-1])``, both [F, N, 2]. A point a tracker has lost (``lk``: NaN) gives
   zero vectors from then on, so it adds nothing to any bin; the lost fraction is reported.
4. **Histograms.** Each field is cut into cubes of ``CUBE_FRAMES`` (4) frames × ``CELL``×``CELL``
   (5×5) grid points: 4 × 4 × 4 = 64 cubes. In a cube every vector (x, y) votes into one of
   ``ANGLE_BINS`` (8) bins, ``floor((atan2(x, y) + pi) / (pi / 4))`` clipped to 0..7, with the weight
   ``ceil(log2(min(|v|, 255) + 1)) / 8`` (a log-scale magnitude quantised to 9 levels, 0..1).
   Velocity and acceleration histograms (512 each) are concatenated: one 1024-d feature per segment.
5. **Distance.** The generated and the reference segment features are summarised by their mean and
   UNBIASED covariance (``np.cov``, as the code), both offset by eps I with eps = 1e-5 (the code's
   offset, always added), and FVMD is the Fréchet distance of these Gaussians:
   ``|mu_g - mu_r|^2 + Tr(S_g + eps I) + Tr(S_r + eps I) - 2 Tr sqrtm((S_g + eps I)(S_r + eps I))``.

Deviations from the public code, named here and in the run's config: the tracker (LK / CoTracker3,
not PIPs++); the code computes its "acceleration" by differencing *positions* a second time (so it
equals the velocity shifted by one frame) with two leading zeros, where pam-bench follows the paper's
equation (difference of velocities, one leading zero); the code takes the traces of the covariances
*without* the offset, so identical sets score -2 D eps = -0.02048 there and 0 here (the two always
differ by exactly 2 D eps = 0.02048).

Streaming: ``measure_reference`` (GT segments; cached across runs by the GT cache) and ``measure``
(generated segments) return per-clip feature matrices; ``update`` adds them to float64 sums
(:class:`FrechetStats`), so any batching or merge order gives the same value. ``bootstrap=K`` adds an
interval from K resamplings of whole clips (paired: a clip brings its segments on both sides), formed
by :func:`pam_bench.metrics.set_interval.resampled_interval` (a basic bootstrap, valid for a biased
statistic; one function, so FVD and FVMD can share whichever rule the project settles on).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..options import integer, numeric
from ..types import Sample, Video
from .base import Metric, MetricResult, Payload
from .frechet import FrechetStats

SEGMENT = 16
RESOLUTION = 256
GRID = 20
MARGIN = 8
CELL = 5
CUBE_FRAMES = 4
ANGLE_BINS = 8
MAGNITUDE_BINS = 256
EPS = 1e-5
FIELD_DIM = (SEGMENT // CUBE_FRAMES) * (GRID // CELL) ** 2 * ANGLE_BINS  # 512
FEATURE_DIM = 2 * FIELD_DIM  # 1024


def query_grid(size: int = RESOLUTION, grid: int = GRID, margin: int = MARGIN) -> np.ndarray:
    """The [grid², 2] (x, y) query points: row-major, row i at y = margin + i/(grid-1) * (size - 2 margin)."""
    g = margin + np.arange(grid, dtype=np.float64) / (grid - 1) * (size - 2 * margin)
    ys, xs = np.meshgrid(g, g, indexing="ij")
    return np.stack([xs.reshape(-1), ys.reshape(-1)], axis=1)


def velocity_field(tracks: np.ndarray) -> np.ndarray:
    """V = concat(0, Y[1:] - Y[:-1]) for tracks [F, N, 2]; steps touching a lost (NaN) point are 0."""
    y = np.asarray(tracks, dtype=np.float64)
    v = np.zeros_like(y)
    v[1:] = y[1:] - y[:-1]
    return np.where(np.isfinite(v), v, 0.0)


def acceleration_field(velocity: np.ndarray) -> np.ndarray:
    """A = concat(0, V[1:] - V[:-1]) (the paper's equation)."""
    v = np.asarray(velocity, dtype=np.float64)
    a = np.zeros_like(v)
    a[1:] = v[1:] - v[:-1]
    return a


def field_histogram(field: np.ndarray) -> np.ndarray:
    """Cube histograms of a field [F, N=GRID², 2] -> [F//4, GRID//5, GRID//5, 8] (float64)."""
    f = np.asarray(field, dtype=np.float64)
    n_t, n_c = f.shape[0] // CUBE_FRAMES, GRID // CELL
    f = f[:n_t * CUBE_FRAMES].reshape(n_t * CUBE_FRAMES, GRID, GRID, 2)
    angle = np.arctan2(f[..., 0], f[..., 1])
    abin = np.clip(np.floor((angle + np.pi) / (2 * np.pi / ANGLE_BINS)), 0, ANGLE_BINS - 1).astype(np.int64)
    mag = np.clip(np.linalg.norm(f, axis=-1), 0, MAGNITUDE_BINS - 1)
    levels = np.log2(MAGNITUDE_BINS)
    weight = np.ceil(np.clip(np.log2(mag + 1.0), 0, levels)) / levels
    # cube index of every vector: (time cube, row cell, column cell)
    t_idx = np.arange(n_t * CUBE_FRAMES) // CUBE_FRAMES
    r_idx = np.arange(GRID) // CELL
    cube = (t_idx[:, None, None] * n_c + r_idx[None, :, None]) * n_c + r_idx[None, None, :]
    flat = (cube * ANGLE_BINS + abin).reshape(-1)
    hist = np.bincount(flat, weights=weight.reshape(-1), minlength=n_t * n_c * n_c * ANGLE_BINS)
    return hist.reshape(n_t, n_c, n_c, ANGLE_BINS)


def segment_feature(tracks: np.ndarray) -> np.ndarray:
    """The 1024-d feature of one segment's tracks [16, 400, 2]: velocity then acceleration histograms."""
    v = velocity_field(tracks)
    return np.concatenate([field_histogram(v).reshape(-1), field_histogram(acceleration_field(v)).reshape(-1)])


def segment_starts(num_frames: int, stride: int = 1) -> list[int]:
    return list(range(0, num_frames - SEGMENT + 1, stride))


def resize_frames(frames: np.ndarray, size: int = RESOLUTION) -> np.ndarray:
    """uint8 [T, H, W, 3] -> [T, size, size, 3], PIL bilinear (as the public code's image loader)."""
    from PIL import Image

    if frames.shape[1:3] == (size, size):
        return frames
    return np.stack([np.asarray(Image.fromarray(f).resize((size, size), Image.BILINEAR)) for f in frames])


def _trace_sqrt_product(a: np.ndarray, b: np.ndarray) -> float:
    """Tr sqrtm(A B) for symmetric PSD A, B: sum sqrt(eig(R B R)), R = A^(1/2) (``eigh``; round-off clipped)."""
    w, v = np.linalg.eigh((a + a.T) / 2)
    r = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    return float(np.sqrt(np.clip(np.linalg.eigvalsh(r @ b @ r), 0, None)).sum())


def fvmd_distance(mu1, sigma1, mu2, sigma2, eps: float = EPS) -> float:
    """|mu1-mu2|² + Tr(S1+eps I) + Tr(S2+eps I) - 2 Tr sqrtm((S1+eps I)(S2+eps I)).

    The trace of the matrix square root is taken through symmetric eigendecompositions (equal to
    scipy's sqrtm in exact arithmetic; the offset matrices are positive definite, where this is stable).
    """
    s1, s2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    off = eps * np.eye(s1.shape[0])
    m = float(np.square(np.asarray(mu1, np.float64) - np.asarray(mu2, np.float64)).sum())
    tr = float(np.trace(s1) + np.trace(s2)) + 2.0 * s1.shape[0] * eps
    return m + tr - 2.0 * _trace_sqrt_product(s1 + off, s2 + off)


def fvmd_from_rows(real: np.ndarray, gen: np.ndarray, eps: float = EPS) -> float:
    """FVMD of two feature matrices [n, D] (unbiased covariances), exact and fast when n_r + n_g < D.

    Both covariances live in the span of the centred rows; with an orthonormal basis Q of that span
    (k columns), (S + eps I) is block diagonal in [Q, Q-perp], so Tr sqrtm = Tr sqrtm over the k-d block
    plus (D - k) * eps from the complement (sqrt(eps * eps) per direction).
    """
    r, g = np.asarray(real, np.float64), np.asarray(gen, np.float64)
    d = r.shape[1]
    rc, gc = r - r.mean(0), g - g.mean(0)
    m = float(np.square(r.mean(0) - g.mean(0)).sum())
    if r.shape[0] + g.shape[0] >= d:
        return fvmd_distance(g.mean(0), np.cov(g, rowvar=False), r.mean(0), np.cov(r, rowvar=False), eps)
    q, _ = np.linalg.qr(np.concatenate([rc, gc]).T)  # [D, k], orthonormal, spans both row spaces
    pr, pg = rc @ q, gc @ q
    cr, cg = pr.T @ pr / (r.shape[0] - 1), pg.T @ pg / (g.shape[0] - 1)
    k = q.shape[1]
    off = eps * np.eye(k)
    root = _trace_sqrt_product(cr + off, cg + off) + (d - k) * eps
    return m + float(np.trace(cr) + np.trace(cg)) + 2.0 * d * eps - 2.0 * root


class FVMD(Metric):
    """FVMD over the whole set (kind 'set'); the GT segments' features come from ``measure_reference``.

    Options: ``tracker`` ('lk' default | 'cotracker3'), ``stride`` (1), ``bootstrap`` (0: no interval),
    ``bootstrap_seed`` (0), ``checkpoint`` (CoTracker3 file) and tracker options such as ``fb_threshold``.
    """

    name = "fvmd"
    direction = "lower"
    version = "1"
    kind = "set"
    unit = ""
    uses_reference_video = False  # measure() reads only the generated clip; the GT side is cached
    has_reference = True  # measure_reference: the GT side, kept in the GT cache
    #: n_dependent stays False: FVMD, a Fréchet distance, is biased at small N too, but the paper reports no
    #: FVMD, so there is no paper N for a value to fall short of (the small-N mark is about comparability).

    def __init__(self, device: str = "cpu", **options):
        opts = dict(options)
        self.tracker_name = str(opts.pop("tracker", "lk"))
        self.stride = integer("fvmd", "stride", opts.pop("stride", 1), 1)
        self.bootstrap = integer("fvmd", "bootstrap", opts.pop("bootstrap", 0), 0)
        self.bootstrap_seed = integer("fvmd", "bootstrap_seed", opts.pop("bootstrap_seed", 0), 0)
        from .trackers import get_tracker

        self.tracker_options = numeric(opts)
        self.tracker = get_tracker(self.tracker_name, device=device, **self.tracker_options)
        self.backend = self.tracker_name
        super().__init__(device=device, **options)

    @property
    def key(self) -> str:
        """Changes with the tracker's identity (its options, OpenCV version or checkpoint hash) and the
        stride, so cached GT features are never reused across trackers."""
        from ..errors import MissingResource
        from ..types import stable_hash

        try:
            ident = stable_hash(self.tracker.identity())[:8]
        except MissingResource:
            ident = "missing"
        return f"{self.name}@{self.version}-{self.backend}-s{self.stride}-t{ident}"

    def config(self) -> dict:
        cfg = super().config()
        cfg.update({
            "tracker": self.tracker.identity(), "segment_frames": SEGMENT, "stride": self.stride,
            "resolution": RESOLUTION, "grid": f"{GRID}x{GRID}, margin {MARGIN}px",
            "histogram": f"cubes {CUBE_FRAMES} frames x {CELL}x{CELL} points, {ANGLE_BINS} angle bins, "
                         f"log2 magnitude /{int(np.log2(MAGNITUDE_BINS))}",
            "feature": f"velocity + acceleration histograms ({FEATURE_DIM}-d)",
            "acceleration": "paper: concat(0, V[1:]-V[:-1]) (public code differences positions)",
            "covariance": "unbiased (np.cov)", "sqrtm": f"scipy, eps {EPS} on both covariances",
            "bootstrap": self.bootstrap,
        })
        return cfg

    def check_ready(self) -> None:
        self.tracker.check_ready()

    # -- features -------------------------------------------------------------------------------
    def features(self, video: Video | None) -> Payload:
        """{'feat': float32 [S, 1024], 'lost': fraction of lost point-frames} or feat None with a reason."""
        if video is None:
            return {"feat": None, "reason": "no video"}
        starts = segment_starts(video.num_frames, self.stride)
        if not starts:
            return {"feat": None, "reason": f"video has {video.num_frames} frames, fewer than the "
                                            f"{SEGMENT}-frame segment"}
        frames = resize_frames(video.frames)
        queries = query_grid()
        feats, lost = [], []
        for s in starts:
            tracks, _ = self.tracker.track(Video(frames[s:s + SEGMENT], video.fps), queries)
            lost.append(float((~np.isfinite(tracks).all(axis=-1)).mean()))
            feats.append(segment_feature(tracks))
        return {"feat": np.stack(feats).astype(np.float32), "lost": float(np.mean(lost))}

    def _side(self, video: Video | None, side: str) -> Payload:
        return {f"{side}_{k}": v for k, v in self.features(video).items()}

    def measure_reference(self, sample: Sample) -> Payload:
        """GT side: {'real_feat': float32 [S, 1024], 'real_lost': float} (or None with 'real_reason')."""
        return self._side(sample.video, "real")

    def measure(self, sample: Sample, generated: Video) -> Payload:
        """Generated side: {'gen_feat': float32 [S, 1024], 'gen_lost': float}."""
        return self._side(generated, "gen")

    # -- accumulation ---------------------------------------------------------------------------
    def reset(self) -> None:
        self._stats = {"real": FrechetStats(FEATURE_DIM), "gen": FrechetStats(FEATURE_DIM)}
        # per-clip rows, kept for the interval and for the exact small-set path (dropped past FEATURE_DIM
        # segments without an interval: the float64 sums alone then give the value, memory stays bounded)
        self._rows: list[tuple[np.ndarray | None, np.ndarray | None]] | None = []
        self._n_clips = 0
        self._dropped: dict[str, dict[str, int]] = {"real": {}, "gen": {}}
        self._lost: dict[str, list[float]] = {"real": [], "gen": []}

    def _take(self, payload: Payload, side: str) -> np.ndarray | None:
        feat = payload.get(f"{side}_feat")
        reason = None
        if feat is None:
            reason = payload.get(f"{side}_reason") or f"no {side} features in the payload"
        else:
            feat = np.asarray(feat, dtype=np.float64)
            if feat.ndim != 2 or feat.shape[1] != FEATURE_DIM or not np.all(np.isfinite(feat)):
                reason, feat = f"{side} features are not [S, {FEATURE_DIM}] finite numbers", None
        if reason is not None:
            self._dropped[side][reason] = self._dropped[side].get(reason, 0) + 1
            return None
        self._stats[side].update(feat)
        if payload.get(f"{side}_lost") is not None:
            self._lost[side].append(float(payload[f"{side}_lost"]))
        return feat

    def update(self, payload: Payload) -> None:
        real, gen = self._take(payload, "real"), self._take(payload, "gen")
        self._n_clips += int(real is not None and gen is not None)
        if self._rows is not None:
            self._rows.append((None if real is None else real.astype(np.float32),
                               None if gen is None else gen.astype(np.float32)))
            if not self.bootstrap and self._stats["real"].n + self._stats["gen"].n >= FEATURE_DIM:
                self._rows = None

    def compute(self) -> MetricResult:
        real, gen = self._stats["real"], self._stats["gen"]
        n_clips = self._n_clips
        extras: dict[str, Any] = {"n_segments_real": real.n, "n_segments_gen": gen.n, "segment_frames": SEGMENT,
                                  "stride": self.stride}
        for side in ("real", "gen"):
            if self._lost[side]:
                extras[f"lost_fraction_{side}"] = float(np.mean(self._lost[side]))
            if self._dropped[side]:
                extras[f"n_dropped_{side}"] = int(sum(self._dropped[side].values()))
                extras[f"dropped_{side}_reasons"] = dict(self._dropped[side])
        if min(real.n, gen.n) < 2:
            return self._result(None, n_clips, extras=extras,
                                unavailable=f"FVMD needs at least 2 segments on each side; have {real.n} real "
                                            f"and {gen.n} generated")
        if min(real.n, gen.n) < FEATURE_DIM + 1:
            extras["warning"] = (f"only {min(real.n, gen.n)} segments: the {FEATURE_DIM}-d covariance is "
                                 f"rank-deficient (eps {EPS} regularises it); compare only at equal N")
        if self._rows is not None and real.n + gen.n < FEATURE_DIM:  # exact low-rank path (small sets)
            value = fvmd_from_rows(*(np.concatenate([r[j] for r in self._rows if r[j] is not None]) for j in (0, 1)))
        else:
            value = fvmd_distance(gen.mean(), gen.cov(biased=False), real.mean(), real.cov(biased=False))
        ci = None
        if self.bootstrap:
            from .set_interval import resampled_interval

            ci, how = resampled_interval(self._rows, fvmd_from_rows, value, self.bootstrap,
                                         self.bootstrap_seed)
            extras["interval"] = {"replicates": self.bootstrap, "seed": self.bootstrap_seed, "method": how}
        return self._result(value, n_clips, ci95=ci, extras=extras)
