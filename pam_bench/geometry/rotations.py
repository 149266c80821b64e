"""Rotation matrices by Rodrigues' formula: R = I + sin(theta) K + (1 - cos(theta)) K^2, K = [k]_x.

One formula (:func:`rodrigues`), reached from an axis-angle vector (:func:`axis_angle_to_matrix`, as MANO
and GraspXL store rotations) or from an axis and an angle (:func:`rotation_about`).
"""
from __future__ import annotations

import numpy as np


def rodrigues(unit_axis: np.ndarray, angle) -> np.ndarray:
    """Unit axes [..., 3] and angles [...] (radians) -> rotation matrices [..., 3, 3]."""
    k = np.asarray(unit_axis, np.float64)
    kx, ky, kz = k[..., 0], k[..., 1], k[..., 2]
    zero = np.zeros_like(kx)
    K = np.stack([zero, -kz, ky, kz, zero, -kx, -ky, kx, zero], -1).reshape(*k.shape[:-1], 3, 3)
    th = np.asarray(angle, np.float64)[..., None, None]
    return np.eye(3) + np.sin(th) * K + (1 - np.cos(th)) * (K @ K)


def axis_angle_to_matrix(rv: np.ndarray) -> np.ndarray:
    """Axis-angle vectors [..., 3] (direction = axis, norm = angle) -> [..., 3, 3]; a zero vector -> I."""
    rv = np.asarray(rv, np.float64)
    theta = np.linalg.norm(rv, axis=-1, keepdims=True)
    k = np.where(theta > 1e-12, rv / np.maximum(theta, 1e-12), 0.0)
    return rodrigues(k, theta[..., 0])


def rotation_about(axis, angle: float) -> np.ndarray:
    """Rotation matrix [3, 3] by ``angle`` radians about ``axis`` (any length, not zero)."""
    a = np.asarray(axis, np.float64)
    return rodrigues(a / np.linalg.norm(a), angle)
