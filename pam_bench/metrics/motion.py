"""Motion Fidelity (MF): do the hands and objects in the generated clip move like those in the GT clip?

Protocol (paper section 4.1, made exact here):

1. **Query points.** ``n_points`` (100) pixels are drawn without replacement, with a seeded RNG
   (``derive_seed(seed, sample.id)``, so every method sees the same points for a sample), from the GT
   first-frame foreground, taken from the first source that exists and is non-empty:
   ``sample.seg[0] > 0`` ("seg": the dataset's segmentation), else the seg condition's frame 0 where any
   channel exceeds ``SEG_BLACK_LEVEL`` ("conditions.seg": the dataset's condition video, or
   "seg-videos" when it came from a user's folder of segmentation videos), else the whole frame
   ("whole-frame": NOT the paper's protocol). The source is in the payload, and results.json counts the
   videos per source (``extras.point_source``).
2. **Tracking.** The same query points (x, y at frame 0) are tracked in the GT and the generated clip by
   the chosen tracker (``lk`` default, ``cotracker3`` the paper's; see ``pam_bench.metrics.trackers``).
3. **Steps.** Per track, per frame step k = 1..T-1, the displacement ``v_k = p_k - p_{k-1}``. A step
   is *valid* when both end points are finite and (``visibility='exclude'``, default) visible; with
   ``visibility='ignore'`` visibility flags are not used (the origin's behaviour; positions must
   still be finite). A step that is not valid is *lost*. A lost ``lk`` track is NaN after the loss.
4. **Step cosine** (steps valid in both tracks). A step is *zero* when ``|v| < min_step_px`` (0.01 px).
   ``zero_rule='agree'`` (default, this project's convention): cos(v, v~) is the cosine when both are
   non-zero, **1 when both are zero** (both agree: no motion), **0 when exactly one is zero**.
   ``zero_rule='exclude'`` (the paper's formula taken literally): the cosine of a step with a zero
   displacement is 0/0, so the step is left out of that pair's sum and its count.
5. **Track correlation** (one symmetric matrix, used in both directions)::

       corr(tau, tau~) = sum_{k valid in both} c_k / |{k valid in tau or in tau~}|

   A step where either track is lost counts as **not matching** (adds 0 but counts in the
   denominator); a step lost in both is no evidence either way. With every step valid this is the
   printed ``(1/F) sum_k``. A track lost after j steps can therefore score at most j / |K_tau| against
   any track valid throughout; it can no longer "match" over its own few valid steps. A pair with no
   step to count (``exclude`` only) has no correlation and is skipped in the max.
6. **MF.** ``A = mean_tau max_tau~ corr`` (GT -> generated), ``B = mean_tau~ max_tau corr``
   (generated -> GT). A GT track with no valid step is dropped (``n_tracks_dropped_gt``: the GT
   tracker's failure is not the generator's), and so is the generated track of the same query point
   (``n_tracks_dropped_gen``); any other generated track with no valid step is KEPT and scores 0
   (``n_tracks_lost_gen``), so a generator cannot shed bad tracks. If no GT track has a valid step,
   the value is None with a reason (never 0). Convention ``mf_convention='mean'`` (default):
   MF = (A + B) / 2, range [-1, 1], consistent with the paper's reported 0.59-0.78; ``'sum'``:
   MF = A + B, the formula as printed. MF(x, x) = 1 ('mean') for any deterministic tracker.

What losing a generated step can still change: a lost step scores 0 (as motion against no motion), so
it raises a pair's correlation only where that step's cosine was negative; and a step the GT track has
also lost leaves the count, where before it counted as not matching. It never makes a track score as if
its lost steps had matched (tested on the real DexYCB clip: tracks cut after 2-25 steps never score above
the same tracks complete).

Bump ``MotionFidelity.version`` whenever one of these rules changes.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ArgumentError, InputError, OptionError
from ..options import numeric
from ..types import Sample, Video, derive_seed
from .base import MeanMetric, Payload, check_pair

#: a seg-condition pixel is foreground when any channel exceeds this (codec noise stays below it)
SEG_BLACK_LEVEL = 16
CONVENTIONS = ("mean", "sum")
VISIBILITY_RULES = ("exclude", "ignore")


#: Point sources, as results.json names them (extras.point_source.counts) and what each means.
POINT_SOURCES = {
    "seg": "dataset segmentation (frame 0 labels > 0)",
    "conditions.seg": "the dataset's seg condition video (frame 0)",
    "seg-videos": "a user-supplied folder of segmentation videos (frame 0)",
    "whole-frame": "the whole frame: no foreground was available (NOT the paper's protocol)",
}


def foreground_mask(sample: Sample) -> tuple[np.ndarray | None, str]:
    """The GT first-frame hand+object mask [H, W] bool and its source name (None: use the whole frame)."""
    size = sample.video.size if sample.video is not None else None
    candidates = []
    if sample.seg is not None:
        candidates.append(("seg", np.asarray(sample.seg[0]) > 0))
    cond = sample.conditions.get("seg")
    if cond is not None:
        name = "seg-videos" if sample.meta.get("seg_source") == "seg-videos" else "conditions.seg"
        candidates.append((name, cond.frames[0].max(axis=-1) > SEG_BLACK_LEVEL))
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


ZERO_RULES = ("agree", "exclude")
#: The rules as results.json states them (extras.rules).
RULE_TEXT = {
    "agree": "zero displacement (|v| < min_step_px): both zero -> cosine 1, one zero -> 0 (pam-bench convention)",
    "exclude": "zero displacement: cosine 0/0, the step is left out of the pair (the paper's formula literally)",
    "lost": "a step lost (not valid) in either track counts as not matching: 0 in the sum, 1 in the count",
}


def _unit_steps(v: np.ndarray, valid: np.ndarray, min_step: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit step vectors (0 for zero or invalid steps), zero-step flags and moving-step flags."""
    norm = np.linalg.norm(v, axis=-1)
    zero = (norm < min_step) & valid
    moving = (norm >= min_step) & valid
    u = np.where(moving[..., None], v / np.where(moving, norm, 1.0)[..., None], 0.0)
    return u, zero, moving


def track_correlation(v: np.ndarray, valid: np.ndarray, vt: np.ndarray, valid_t: np.ndarray,
                      min_step: float = 0.01, zero_rule: str = "agree") -> np.ndarray:
    """corr [N, M] (rule 5): the step-cosine sum over steps valid in both tracks, divided by the number
    of steps valid in either (minus the excluded 0/0 steps under ``zero_rule='exclude'``); NaN where
    that count is 0."""
    u, z, mv = _unit_steps(v, valid, min_step)
    ut, zt, mvt = _unit_steps(vt, valid_t, min_step)
    f = np.float64
    s = np.einsum("nfc,mfc->nm", u, ut)  # a zero or invalid step has unit vector 0: it adds nothing
    both_valid = valid.astype(f) @ valid_t.astype(f).T
    either = valid.sum(axis=1, dtype=f)[:, None] + valid_t.sum(axis=1, dtype=f)[None, :] - both_valid
    if zero_rule == "agree":
        s = s + z.astype(f) @ zt.astype(f).T
        count = either
    else:  # steps valid in both where either side is zero: 0/0, left out
        count = either - (both_valid - mv.astype(f) @ mvt.astype(f).T)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, s / np.where(count > 0, count, 1.0), np.nan)


def _best_mean(corr: np.ndarray, axis: int) -> tuple[float | None, int]:
    """Mean over tracks of the best partner's correlation, skipping tracks with no partner (all NaN)."""
    has = np.isfinite(corr).any(axis=axis)
    if not has.any():
        return None, int((~has).sum())
    best = np.nanmax(np.where(np.isfinite(corr), corr, -np.inf), axis=axis)[has]
    return float(best.mean()), int((~has).sum())


def motion_fidelity(tracks_gt: np.ndarray, vis_gt: np.ndarray, tracks_gen: np.ndarray, vis_gen: np.ndarray,
                    convention: str = "mean", min_step: float = 0.01, use_visibility: bool = True,
                    zero_rule: str = "agree") -> dict:
    """MF of two track sets [T, N, 2] / [T, M, 2]; a dict with ``value`` (None + ``reason`` if undefined)."""
    if convention not in CONVENTIONS:
        raise ArgumentError(f"mf_convention must be one of {CONVENTIONS}, got {convention!r}")
    if zero_rule not in ZERO_RULES:
        raise ArgumentError(f"zero_rule must be one of {ZERO_RULES}, got {zero_rule!r}")
    v, valid = track_steps(tracks_gt, vis_gt, use_visibility)
    vt, valid_t = track_steps(tracks_gen, vis_gen, use_visibility)
    keep = valid.any(axis=1)
    lost_t = ~valid_t.any(axis=1)
    keep_t = np.ones(valid_t.shape[0], bool)
    if valid_t.shape[0] == valid.shape[0]:  # the same query points: a point lost in both is no evidence
        keep_t = ~(lost_t & ~keep)
    out: dict[str, Any] = {"n_tracks_gt": int(keep.sum()), "n_tracks_gen": int(keep_t.sum()),
                           "n_tracks_dropped_gt": int((~keep).sum()),
                           "n_tracks_dropped_gen": int((~keep_t).sum()),
                           "n_tracks_lost_gen": int((lost_t & keep_t).sum()),
                           "share_steps_lost_gen": float(1.0 - valid_t.mean()) if valid_t.size else 1.0,
                           "zero_rule": zero_rule}
    if not keep.any() or not keep_t.any():
        side = "GT" if not keep.any() else "generated"
        return {"value": None, "reason": f"no {side} track has a valid step", **out, "n_tracks_used": 0}
    corr = track_correlation(v[keep], valid[keep], vt[keep_t], valid_t[keep_t], min_step, zero_rule)
    a, unpaired_a = _best_mean(corr, axis=1)  # GT -> generated
    b, unpaired_b = _best_mean(corr, axis=0)  # generated -> GT
    out.update({"term_gt_to_gen": a, "term_gen_to_gt": b, "n_tracks_unpaired": unpaired_a + unpaired_b,
                "n_tracks_used": corr.shape[0] + corr.shape[1] - unpaired_a - unpaired_b})
    if a is None or b is None:
        return {"value": None, "reason": "no track pair has a step to compare (every step is 0/0 under "
                                         "zero_rule=exclude)", **out}
    value = (a + b) / 2.0 if convention == "mean" else a + b
    return {"value": float(value), **out}


class MotionFidelity(MeanMetric):
    """Two-sided motion fidelity between point tracks in the GT and the generated clip (higher is better).

    Options: ``tracker`` ('lk' default | 'cotracker3'), ``mf_convention`` ('mean' default | 'sum'),
    ``zero_rule`` ('agree' default | 'exclude': the paper's 0/0 literally), ``n_points`` (100),
    ``seed`` (0: base of the per-sample point seed), ``min_step_px`` (0.01),
    ``visibility`` ('exclude' default | 'ignore'), ``checkpoint`` (CoTracker3 file), and tracker
    options such as ``fb_threshold`` for ``lk``.
    """

    name = "mf"
    label, decimals, tolerance = "MF", 3, {"abs": 0.01, "rel": 0.0}
    direction = "higher"
    version = "2"
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
        self.zero_rule = str(opts.pop("zero_rule", "agree"))
        if self.zero_rule not in ZERO_RULES:
            raise OptionError("mf", "zero_rule", f"must be one of {ZERO_RULES}, got {self.zero_rule!r}")
        if self.convention not in CONVENTIONS:
            raise OptionError("mf", "mf_convention", f"must be one of {CONVENTIONS}, got {self.convention!r}")
        if self.visibility not in VISIBILITY_RULES:
            raise OptionError("mf", "visibility", f"must be one of {VISIBILITY_RULES}, got {self.visibility!r}")
        if self.n_points < 1:
            raise OptionError("mf", "n_points", f"must be >= 1, got {self.n_points}")
        from .trackers import get_tracker

        self.tracker_options = numeric(opts)
        self.tracker = get_tracker(self.tracker_name, device=device, **self.tracker_options)
        self.backend = self.tracker_name

    @property
    def key(self) -> str:
        from ..types import stable_hash

        other = {k: v for k, v in self.tracker_options.items() if k != "checkpoint"}
        suffix = f"-o{stable_hash(other)[:8]}" if other else ""
        return (f"{self.name}@{self.version}-{self.backend}-{self.convention}-n{self.n_points}-s{self.seed}"
                f"-z{self.min_step:g}-{self.zero_rule}-vis{self.visibility}{suffix}")

    def config(self) -> dict:
        cfg = super().config()
        cfg.update({"tracker": self.tracker.identity(), "mf_convention": self.convention,
                    "n_points": self.n_points, "seed": self.seed, "min_step_px": self.min_step,
                    "visibility": self.visibility, "zero_rule": self.zero_rule})
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
                              self.visibility == "exclude", self.zero_rule)
        return {**res, "n_points": int(queries.shape[0]), "convention": self.convention,
                "foreground": source, "tracker": self.tracker_name}

    # -- aggregation: the mean over videos plus where the points came from ------------------------
    def reset(self) -> None:
        super().reset()
        self._sources: dict[str, int] = {}

    def update(self, payload: Payload) -> None:
        super().update(payload)
        src = str(payload.get("foreground", "unrecorded"))
        self._sources[src] = self._sources.get(src, 0) + 1

    def compute(self):
        res = super().compute()
        res.extras.update(point_source_extras(self._sources))
        res.extras["rules"] = {"zero_step": RULE_TEXT[self.zero_rule], "lost_step": RULE_TEXT["lost"],
                               "zero_rule": self.zero_rule}
        return res


def point_source_extras(counts: dict[str, int]) -> dict:
    """extras.point_source: videos per source, and whether any video's points came from the whole frame."""
    n = int(sum(counts.values()))
    whole = int(counts.get("whole-frame", 0))
    return {"point_source": {"counts": dict(sorted(counts.items())), "n_videos": n, "whole_frame": whole,
                             "whole_frame_any": whole > 0,
                             "meaning": {k: POINT_SOURCES.get(k, "not recorded") for k in sorted(counts)}}}


