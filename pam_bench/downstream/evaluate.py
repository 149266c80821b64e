"""FreiHAND-style 3D hand-pose evaluation (what SimpleHand reports and PAM's Table 4 uses).

- **Alignment** (FreiHAND ``align_w_scale``): centre GT and prediction, divide each by its Frobenius
  norm (+1e-8, as FreiHAND), find the orthogonal matrix R and scale s of the orthogonal Procrustes
  problem ``min ||gt_n R - pred_n||`` (R = U V^T from the SVD of gt_n^T pred_n, s = sum of the
  singular values; R may be a reflection, as in FreiHAND), then map the prediction onto the GT:
  ``pred_n R^T s * |gt_c| + mean(gt)``. Every image is aligned on its own points (joints for
  PA-MPJPE, vertices for PA-MPVPE).
- **PA-MPJPE / PA-MPVPE**: mean Euclidean distance after alignment, over points and images, in mm.
- **F-score@th** (FreiHAND): after alignment, precision = share of predicted points whose nearest GT
  point is closer than th (strict <), recall = share of GT points whose nearest predicted point is
  closer than th, F = 2PR/(P+R) (0 when P+R = 0), averaged over images; th = 5 mm and 15 mm. Computed
  on the 778 MANO vertices when both sides have them, otherwise on the 21 joints (``fscore_on`` says
  which; joint F-scores are not comparable with the paper's vertex F-scores).
- **AUC** (FreiHAND ``EvalUtil.get_measures(0, 0.05, 100)``): per point, the PCK curve (share of
  images with error <= t) over 100 thresholds from 0 to 50 mm, trapezoid area normalised by the range,
  then the mean over points; on aligned joints (and aligned vertices when present).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ArgumentError

MM = 1000.0
F_THRESHOLDS_M = (0.005, 0.015)
AUC_RANGE_M = (0.0, 0.05)
AUC_STEPS = 100


def _as_batch(x: np.ndarray) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3 or a.shape[-1] != 3:
        raise ArgumentError(f"expected points [N, P, 3] or [P, 3], got {a.shape}")
    return a


def align_w_scale(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """FreiHAND's similarity alignment of ``pred`` onto ``gt``, per item: [N, P, 3] (or [P, 3])."""
    single = np.asarray(gt).ndim == 2
    g, p = _as_batch(gt), _as_batch(pred)
    if g.shape != p.shape:
        raise ArgumentError(f"gt {g.shape} and pred {p.shape} differ")
    tg, tp = g.mean(axis=1, keepdims=True), p.mean(axis=1, keepdims=True)
    gc, pc = g - tg, p - tp
    sg = np.linalg.norm(gc, axis=(1, 2), keepdims=True) + 1e-8
    sp = np.linalg.norm(pc, axis=(1, 2), keepdims=True) + 1e-8
    gn, pn = gc / sg, pc / sp
    u, s, vt = np.linalg.svd(np.einsum("npi,npj->nij", gn, pn))
    rot = u @ vt  # argmin_R ||gn R - pn|| over orthogonal R
    scale = s.sum(axis=1)[:, None, None]
    out = np.einsum("npj,nij->npi", pn, rot) * scale * sg + tg
    return out[0] if single else out


def pa_distances(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Per-point distances after alignment: [N, P] (input unit)."""
    g = _as_batch(gt)
    return np.linalg.norm(align_w_scale(g, _as_batch(pred)) - g, axis=-1)


def f_score(gt: np.ndarray, pred: np.ndarray, threshold: float) -> tuple[float, float, float]:
    """(F, precision, recall) of one point set pair [P, 3] (no alignment; see module doc)."""
    from scipy.spatial import cKDTree

    g, p = np.asarray(gt, np.float64), np.asarray(pred, np.float64)
    d_pred = cKDTree(g).query(p)[0]  # each predicted point -> nearest GT point
    d_gt = cKDTree(p).query(g)[0]  # each GT point -> nearest predicted point
    precision = float(np.mean(d_pred < threshold))
    recall = float(np.mean(d_gt < threshold))
    f = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return f, precision, recall


def auc_pck(dist: np.ndarray, lo: float = AUC_RANGE_M[0], hi: float = AUC_RANGE_M[1],
            steps: int = AUC_STEPS) -> float:
    """FreiHAND AUC of per-point errors ``dist`` [N, P]: per-point PCK (<= t) area, mean over points."""
    d = np.asarray(dist, np.float64)
    th = np.linspace(lo, hi, steps)
    pck = np.stack([(d <= t).mean(axis=0) for t in th], axis=1)  # [P, steps]
    norm = np.trapezoid(np.ones_like(th), th)
    return float(np.mean(np.trapezoid(pck, th, axis=1) / norm))


class PoseEvaluator:
    """Accumulates images (GT and predicted joints, optional vertices, metres) and summarises them."""

    def __init__(self):
        self._dj: list[np.ndarray] = []
        self._dv: list[np.ndarray] = []
        self._f: list[np.ndarray] = []
        self._f_on: set[str] = set()
        self._rr: list[np.ndarray] = []
        self._no_verts: set[str] = set()

    def feed(self, gt_xyz: np.ndarray, pred_xyz: np.ndarray, gt_verts: np.ndarray | None = None,
             pred_verts: np.ndarray | None = None) -> None:
        g, p = _as_batch(gt_xyz), _as_batch(pred_xyz)
        if not (np.isfinite(g).all() and np.isfinite(p).all()):
            raise ArgumentError("non-finite joints fed to the evaluator (drop hands without GT first)")
        self._dj.append(pa_distances(g, p))
        self._rr.append(np.linalg.norm((p - p[:, :1]) - (g - g[:, :1]), axis=-1).mean(axis=1))
        has_v = gt_verts is not None and pred_verts is not None
        if has_v:
            gv, pv = _as_batch(gt_verts), _as_batch(pred_verts)
            self._dv.append(pa_distances(gv, pv))
            f_gt, f_pred = gv, align_w_scale(gv, pv)
        else:
            f_gt, f_pred = g, align_w_scale(g, p)
        if not has_v:
            self._no_verts.add("the ground truth has no MANO vertices" if gt_verts is None
                               else "the predictions have no vertices")
        self._f_on.add("vertices" if has_v else "joints")
        self._f.append(np.array([[f_score(a, b, th)[0] for th in F_THRESHOLDS_M] for a, b in zip(f_gt, f_pred)]))

    @property
    def n(self) -> int:
        return int(sum(len(d) for d in self._dj))

    def result(self) -> dict[str, Any]:
        if not self._dj:
            return {"n_images": 0, "pa_mpjpe_mm": None, "reason": "no images evaluated"}
        dj = np.concatenate(self._dj)
        f = np.concatenate(self._f)
        out: dict[str, Any] = {
            "n_images": int(dj.shape[0]),
            "pa_mpjpe_mm": float(dj.mean() * MM),
            "auc_joints": auc_pck(dj),
            "rr_mpjpe_mm": float(np.concatenate(self._rr).mean() * MM),
            "f_at_5mm": float(f[:, 0].mean()),
            "f_at_15mm": float(f[:, 1].mean()),
            "fscore_on": "vertices" if self._f_on == {"vertices"} else (
                "joints" if self._f_on == {"joints"} else "mixed (vertices where present, else joints)"),
            "fscore_alignment": "procrustes (FreiHAND F_aligned)",
        }
        if self._dv and len(self._dv) == len(self._dj):
            dv = np.concatenate(self._dv)
            out.update(pa_mpvpe_mm=float(dv.mean() * MM), auc_vertices=auc_pck(dv))
        else:
            out.update(pa_mpvpe_mm=None, auc_vertices=None,
                       pa_mpvpe_reason="; ".join(sorted(self._no_verts)))
        return out
