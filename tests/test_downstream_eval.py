"""Downstream evaluation (FreiHAND-style) against independent computations."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.linalg import orthogonal_procrustes
from scipy.spatial.transform import Rotation

from pam_bench.downstream.evaluate import PoseEvaluator, align_w_scale, auc_pck, f_score, pa_distances


def _reference_align(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """FreiHAND's align_w_scale written with scipy's orthogonal_procrustes (one item)."""
    t1, t2 = gt.mean(0), pred.mean(0)
    a, b = gt - t1, pred - t2
    s1, s2 = np.linalg.norm(a) + 1e-8, np.linalg.norm(b) + 1e-8
    r, s = orthogonal_procrustes(a / s1, b / s2)
    return (b / s2) @ r.T * s * s1 + t1


def _hand_shaped(rng, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Plausible 21-joint hands (metres, camera frame) and 778-point clouds around them."""
    from pam_bench.datasets.synthetic import hand_joints_local

    joints, verts = [], []
    for _ in range(n):
        local = hand_joints_local(rng.uniform(0, 1))
        rot = Rotation.random(random_state=rng).as_matrix()
        j = local @ rot.T + np.array([0.0, 0.05, 0.5]) + rng.normal(0, 0.02, 3)
        joints.append(j)
        idx = rng.integers(0, 21, 778)
        verts.append(j[idx] + rng.normal(0, 0.008, (778, 3)))
    return np.asarray(joints), np.asarray(verts)


def test_align_matches_scipy_procrustes_random_and_hand_shaped():
    rng = np.random.default_rng(0)
    gt = rng.normal(size=(6, 21, 3))
    pred = rng.normal(size=(6, 21, 3))
    got = align_w_scale(gt, pred)
    ref = np.stack([_reference_align(g, p) for g, p in zip(gt, pred)])
    np.testing.assert_allclose(got, ref, atol=1e-10)
    hj, hv = _hand_shaped(rng, 4)
    noisy = hj + rng.normal(0, 0.01, hj.shape)
    np.testing.assert_allclose(align_w_scale(hj, noisy), np.stack([_reference_align(g, p) for g, p in zip(hj, noisy)]),
                               atol=1e-12)
    pv = hv + rng.normal(0, 0.005, hv.shape)
    np.testing.assert_allclose(align_w_scale(hv[0], pv[0]), _reference_align(hv[0], pv[0]), atol=1e-12)


def test_similarity_transform_is_undone_exactly():
    rng = np.random.default_rng(1)
    hj, _ = _hand_shaped(rng, 3)
    rot = Rotation.random(3, random_state=rng).as_matrix()
    pred = np.einsum("nij,npj->npi", rot, hj) * np.array([0.5, 2.0, 1.3])[:, None, None] + rng.normal(size=(3, 1, 3))
    d = pa_distances(hj, pred)
    assert d.shape == (3, 21)
    assert d.max() < 1e-6  # FreiHAND adds 1e-8 to the norms: exact up to that
    # an unaligned error is not hidden: noise of known size survives alignment (up to the fitted part)
    noise = rng.normal(0, 0.005, hj.shape)
    d2 = pa_distances(hj, hj + noise)
    assert 0.3 * np.linalg.norm(noise, axis=-1).mean() < d2.mean() <= np.linalg.norm(noise, axis=-1).mean() + 1e-12


def _brute_f(gt, pred, th):
    d = np.sqrt(((pred[:, None, :] - gt[None, :, :]) ** 2).sum(-1))  # [P_pred, P_gt]
    precision = np.mean([min(row) < th for row in d])
    recall = np.mean([min(col) < th for col in d.T])
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall), precision, recall


def test_f_score_matches_brute_force_nearest_neighbours():
    rng = np.random.default_rng(2)
    _, hv = _hand_shaped(rng, 2)
    for gt in hv:
        pred = gt + rng.normal(0, 0.006, gt.shape)
        for th in (0.005, 0.015):
            np.testing.assert_allclose(f_score(gt, pred, th), _brute_f(gt, pred, th), atol=1e-12)
    # strict '<': a point exactly at the threshold does not count
    gt = np.zeros((1, 3))
    pred = np.array([[0.005, 0.0, 0.0]])
    assert f_score(gt, pred, 0.005)[0] == 0.0
    assert f_score(gt, pred, 0.0050001)[0] == 1.0
    # unequal point counts (precision and recall differ)
    gt = np.array([[0, 0, 0], [1, 0, 0]], float)
    pred = np.array([[0, 0, 0.001]], float)
    f, p, r = f_score(gt, pred, 0.01)
    assert (p, r) == (1.0, 0.5) and f == pytest.approx(2 * 0.5 / 1.5)


def _brute_auc(dist, lo=0.0, hi=0.05, steps=100):
    th = np.linspace(lo, hi, steps)
    aucs = []
    for k in range(dist.shape[1]):
        pck = [np.mean([d <= t for d in dist[:, k]]) for t in th]
        area = sum((pck[i] + pck[i + 1]) / 2 * (th[i + 1] - th[i]) for i in range(steps - 1))
        aucs.append(area / (hi - lo))
    return float(np.mean(aucs))


def test_auc_matches_brute_force_and_closed_forms():
    rng = np.random.default_rng(3)
    dist = np.abs(rng.normal(0, 0.02, (30, 21)))
    assert auc_pck(dist) == pytest.approx(_brute_auc(dist), abs=1e-12)
    assert auc_pck(np.zeros((5, 21))) == pytest.approx(1.0)
    assert auc_pck(np.full((5, 21), 0.2)) == 0.0


def test_evaluator_summary_joints_and_vertices():
    rng = np.random.default_rng(4)
    hj, hv = _hand_shaped(rng, 5)
    pj = hj + rng.normal(0, 0.004, hj.shape)
    pv = hv + rng.normal(0, 0.004, hv.shape)
    ev = PoseEvaluator()
    ev.feed(hj[:2], pj[:2], hv[:2], pv[:2])
    ev.feed(hj[2:], pj[2:], hv[2:], pv[2:])
    r = ev.result()
    assert r["n_images"] == 5 and r["fscore_on"] == "vertices"
    dj = np.stack([np.linalg.norm(_reference_align(g, p) - g, axis=-1) for g, p in zip(hj, pj)])
    dv = np.stack([np.linalg.norm(_reference_align(g, p) - g, axis=-1) for g, p in zip(hv, pv)])
    assert r["pa_mpjpe_mm"] == pytest.approx(dj.mean() * 1000, rel=1e-9)
    assert r["pa_mpvpe_mm"] == pytest.approx(dv.mean() * 1000, rel=1e-9)
    f5 = np.mean([_brute_f(g, _reference_align(g, p), 0.005)[0] for g, p in zip(hv, pv)])
    assert r["f_at_5mm"] == pytest.approx(f5, abs=1e-12)
    assert r["auc_joints"] == pytest.approx(_brute_auc(dj), abs=1e-12)
    # joints only: vertex metrics are absent with a reason, F-scores say they are on joints
    ev2 = PoseEvaluator()
    ev2.feed(hj, pj)
    r2 = ev2.result()
    assert r2["pa_mpvpe_mm"] is None and "vertices" in r2["pa_mpvpe_reason"] and r2["fscore_on"] == "joints"
    with pytest.raises(ValueError):
        ev2.feed(hj[:1], np.full((1, 21, 3), np.nan))
