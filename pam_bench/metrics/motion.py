"""Motion Fidelity (MF): do the hands and objects in the generated clip move like those in the GT clip?

Protocol (paper section 4.1, made exact here):

1. **Query points.** ``n_points`` (100) pixels are drawn without replacement, with a seeded RNG
   (``derive_seed(seed, sample.id)``, so every method sees the same points for a sample), from the GT
   first-frame foreground, taken from the first source that exists and is non-empty:
   ``sample.seg[0] > 0`` ("seg"), else the seg condition's frame 0 where any channel exceeds
   ``SEG_BLACK_LEVEL`` ("conditions.seg"), else the whole frame ("whole-frame"). The source used is
   recorded in the payload. A foreground with fewer than ``n_points`` pixels gives all its pixels.
2. **Tracking.** The same query points (x, y at frame 0) are tracked in the GT and the generated clip by
   the chosen tracker (``lk`` default, ``cotracker3`` the paper's; see ``pam_bench.trackers``).
3. **Steps.** Per track, per frame step k = 1..T-1, the displacement ``v_k = p_k - p_{k-1}``. A step
   is *valid* when both end points are finite and (``visibility='exclude'``, default) visible; with
   ``visibility='ignore'`` visibility flags are not used (the origin's behaviour; positions must
   still be finite). A lost ``lk`` track is NaN after the loss, so its later steps are never valid.
4. **Step cosine.** A step is *zero* when ``|v| < min_step_px`` (0.01 px). cos(v, v~) is the cosine
   of the two steps when both are non-zero, **1 when both are zero** (both sides agree: no motion),
   **0 when exactly one is zero** (motion against no motion). It is never NaN.
5. **Track correlation.** Each direction averages over the steps of the track it starts from (its
   own valid steps; steps after it is lost are excluded from its mean): in ``A`` (GT -> generated),
   ``corr(tau, tau~) = (1/|K_tau|) sum_{k in K_tau} c_k`` with ``K_tau`` the valid steps of the GT
   track and ``c_k`` the step cosine, or **0 where the generated track has no valid step k** (it lost
   or cannot see the point: no agreement); ``B`` (generated -> GT) is the same with the roles
   swapped. With every step valid both equal the printed ``(1/F) sum_k``. (Averaging only over the
   steps valid in *both* tracks would let a track that is lost after one step match anything.)
6. **MF.** ``A = mean_tau max_tau~ corr``, ``B = mean_tau~ max_tau corr``. A track with no valid step
   is dropped (counted in the payload: ``n_tracks_dropped_gt`` / ``_gen``). Convention
   ``mf_convention='mean'`` (default): MF = (A + B) / 2, range [-1, 1], consistent with the paper's
   reported 0.59-0.78; ``'sum'``: MF = A + B, the formula as printed (range up to 2). If no track
   remains on either side, the value is None with a reason (never 0). MF(x, x) = 1 ('mean') for any
   deterministic tracker, since every track's best partner is itself.

Bump ``MotionFidelity.version`` whenever one of these rules changes.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError
from ..types import Sample, Video, derive_seed
from .base import MeanMetric, Payload, check_pair

#: a seg-condition pixel is foreground when any channel exceeds this (codec noise stays below it)
SEG_BLACK_LEVEL = 16
CONVENTIONS = ("mean", "sum")
VISIBILITY_RULES = ("exclude", "ignore")


def foreground_mask(sample: Sample) -> tuple[np.ndarray | None, str]:
    """The GT first-frame hand+object mask [H, W] bool and its source name (None: use the whole frame)."""
    size = sample.video.size if sample.video is not None else None
    candidates = []
    if sample.seg is not None:
        candidates.append(("seg", np.asarray(sample.seg[0]) > 0))
    cond = sample.conditions.get("seg")
    if cond is not None:
        candidates.append(("conditions.seg", cond.frames[0].max(axis=-1) > SEG_BLACK_LEVEL))
    for source, mask in candidates:
        if size is not None and mask.shape != size:
            raise InputError(sample.id, f"mf: {source} frame 0 is {mask.shape[1]}x{mask.shape[0]} but the "
                                        f"video is {size[1]}x{size[0]} (W x H)")
        if mask.any():
            return mask, source
    return None, "whole-frame"


def sample_query_points(mask: np.ndarray | None, size: tuple[int, int], n: int, seed: int) -> np.ndarray:
    """``n`` distinct pixel positions (x, y) float64 [n', 2] from ``mask`` (or the whole frame)."""
    h, w = size
    if mask is None:
        flat = np.arange(h * w)
    else:
        flat = np.flatnonzero(mask.reshape(-1))
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(flat.size, size=min(n, flat.size), replace=False))
    ys, xs = np.divmod(flat[pick], w)
    return np.stack([xs, ys], axis=1).astype(np.float64)


def track_steps(tracks: np.ndarray, visible: np.ndarray, use_visibility: bool = True):
    """Per-step displacements [N, T-1, 2] and their validity [N, T-1] (see the module rules)."""
    tr = np.asarray(tracks, dtype=np.float64)
    v = np.diff(tr, axis=0).transpose(1, 0, 2)
    finite = np.isfinite(tr).all(axis=-1)
    valid = finite[1:] & finite[:-1]
    if use_visibility:
        vis = np.asarray(visible, dtype=bool)
        valid &= vis[1:] & vis[:-1]
    v = np.where(valid.T[..., None], v, 0.0)
    return v, valid.T


def _unit_steps(v: np.ndarray, valid: np.ndarray, min_step: float) -> tuple[np.ndarray, np.ndarray]:
    """Unit step vectors (0 for zero or invalid steps) and the zero-step flags (False where invalid)."""
    norm = np.linalg.norm(v, axis=-1)
    zero = (norm < min_step) & valid
    moving = (norm >= min_step) & valid
    u = np.where(moving[..., None], v / np.where(moving, norm, 1.0)[..., None], 0.0)
    return u, zero


def step_cosine_sums(v: np.ndarray, valid: np.ndarray, vt: np.ndarray, valid_t: np.ndarray,
                     min_step: float = 0.01) -> np.ndarray:
    """S[n, m] = sum over steps valid in both tracks of the step cosine (zero-step rules applied)."""
    u, z = _unit_steps(v, valid, min_step)
    ut, zt = _unit_steps(vt, valid_t, min_step)
    # a zero or invalid step has unit vector 0, so it adds nothing to the dot product; both zero adds 1
    both_zero = np.einsum("nf,mf->nm", z.astype(np.float64), zt.astype(np.float64))
    return np.einsum("nfc,mfc->nm", u, ut) + both_zero


def track_correlation(v: np.ndarray, valid: np.ndarray, vt: np.ndarray, valid_t: np.ndarray,
                      min_step: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """(corr_a, corr_b) [N, M]: the step-cosine sums over the steps of the GT track (a) or of the
    generated track (b); a step the other track cannot follow (lost/occluded) counts as cosine 0.
    Both equal the printed (1/F) sum_k when every step is valid. Tracks must have >= 1 valid step."""
    s = step_cosine_sums(v, valid, vt, valid_t, min_step)
    return s / valid.sum(axis=1)[:, None], s / valid_t.sum(axis=1)[None, :]


def motion_fidelity(tracks_gt: np.ndarray, vis_gt: np.ndarray, tracks_gen: np.ndarray, vis_gen: np.ndarray,
                    convention: str = "mean", min_step: float = 0.01, use_visibility: bool = True) -> dict:
    """MF of two track sets [T, N, 2] / [T, M, 2]; a dict with ``value`` (None + ``reason`` if undefined)."""
    if convention not in CONVENTIONS:
        raise ValueError(f"mf_convention must be one of {CONVENTIONS}, got {convention!r}")
    v, valid = track_steps(tracks_gt, vis_gt, use_visibility)
    vt, valid_t = track_steps(tracks_gen, vis_gen, use_visibility)
    keep, keep_t = valid.any(axis=1), valid_t.any(axis=1)
    out: dict[str, Any] = {"n_tracks_gt": int(keep.sum()), "n_tracks_gen": int(keep_t.sum()),
                           "n_tracks_dropped_gt": int((~keep).sum()),
                           "n_tracks_dropped_gen": int((~keep_t).sum())}
    if not keep.any() or not keep_t.any():
        side = "GT" if not keep.any() else "generated"
        return {"value": None, "reason": f"no {side} track has a valid step", **out,
                "n_tracks_used": 0}
    corr_a, corr_b = track_correlation(v[keep], valid[keep], vt[keep_t], valid_t[keep_t], min_step)
    a = float(corr_a.max(axis=1).mean())  # GT -> generated
    b = float(corr_b.max(axis=0).mean())  # generated -> GT
    out.update({"term_gt_to_gen": a, "term_gen_to_gt": b,
                "n_tracks_used": out["n_tracks_gt"] + out["n_tracks_gen"]})
    value = (a + b) / 2.0 if convention == "mean" else a + b
    return {"value": float(value), **out}


class MotionFidelity(MeanMetric):
    """Two-sided motion fidelity between point tracks in the GT and the generated clip (higher is better).

    Options: ``tracker`` ('lk' default | 'cotracker3'), ``mf_convention`` ('mean' default | 'sum'),
    ``n_points`` (100), ``seed`` (0: base of the per-sample point seed), ``min_step_px`` (0.01),
    ``visibility`` ('exclude' default | 'ignore'), ``checkpoint`` (CoTracker3 file), and tracker
    options such as ``fb_threshold`` for ``lk``.
    """

    name = "mf"
    direction = "higher"
    version = "1"
    unit = ""

    def __init__(self, device: str = "cpu", **options):
        super().__init__(device=device, **options)
        opts = dict(options)
        self.tracker_name = str(opts.pop("tracker", "lk"))
        self.convention = str(opts.pop("mf_convention", "mean"))
        self.n_points = int(opts.pop("n_points", 100))
        self.seed = int(opts.pop("seed", 0))
        self.min_step = float(opts.pop("min_step_px", 0.01))
        self.visibility = str(opts.pop("visibility", "exclude"))
        if self.convention not in CONVENTIONS:
            raise ValueError(f"mf_convention must be one of {CONVENTIONS}, got {self.convention!r}")
        if self.visibility not in VISIBILITY_RULES:
            raise ValueError(f"visibility must be one of {VISIBILITY_RULES}, got {self.visibility!r}")
        if self.n_points < 1:
            raise ValueError("n_points must be >= 1")
        from ..trackers import get_tracker

        self.tracker_options = _numeric(opts)
        self.tracker = get_tracker(self.tracker_name, device=device, **self.tracker_options)
        self.backend = self.tracker_name

    @property
    def key(self) -> str:
        from ..types import stable_hash

        other = {k: v for k, v in self.tracker_options.items() if k != "checkpoint"}
        suffix = f"-o{stable_hash(other)[:8]}" if other else ""
        return (f"{self.name}@{self.version}-{self.backend}-{self.convention}-n{self.n_points}-s{self.seed}"
                f"-z{self.min_step:g}-vis{self.visibility}{suffix}")

    def config(self) -> dict:
        cfg = super().config()
        cfg.update({"tracker": self.tracker.identity(), "mf_convention": self.convention,
                    "n_points": self.n_points, "seed": self.seed, "min_step_px": self.min_step,
                    "visibility": self.visibility})
        return cfg

    def check_ready(self) -> None:
        self.tracker.check_ready()

    def measure(self, sample: Sample, generated: Video) -> Payload:
        check_pair(sample, generated, self.name)
        mask, source = foreground_mask(sample)
        queries = sample_query_points(mask, sample.video.size, self.n_points, derive_seed(self.seed, sample.id))
        tr_gt, vis_gt = self.tracker.track(sample.video, queries)
        tr_gen, vis_gen = self.tracker.track(generated, queries)
        res = motion_fidelity(tr_gt, vis_gt, tr_gen, vis_gen, self.convention, self.min_step,
                              self.visibility == "exclude")
        return {**res, "n_points": int(queries.shape[0]), "convention": self.convention,
                "foreground": source, "tracker": self.tracker_name}


def _numeric(opts: dict) -> dict:
    """CLI options arrive as strings: turn numeric-looking ones into numbers."""
    out = {}
    for k, v in opts.items():
        if isinstance(v, str):
            for cast in (int, float):
                try:
                    v = cast(v)
                    break
                except ValueError:
                    continue
        out[k] = v
    return out
