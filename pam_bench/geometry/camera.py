"""The pinhole camera: intrinsics, projection and per-pixel rays (pixel centres at integer coordinates).

One place for the intrinsics of the synthetic set and of Stage I (:func:`pinhole_intrinsics`), and for the
projection every renderer and dataset uses.
"""
from __future__ import annotations

import numpy as np


def pinhole_intrinsics(fx: float, fy: float, height: int, width: int) -> np.ndarray:
    """K [3, 3] with focal lengths ``fx``, ``fy`` (pixels) and the principal point at the image centre
    ((W-1)/2, (H-1)/2)."""
    return np.array([[fx, 0.0, (width - 1) / 2.0], [0.0, fy, (height - 1) / 2.0], [0.0, 0.0, 1.0]])


def camera_rays(K: np.ndarray, height: int, width: int) -> np.ndarray:
    """Ray directions [H, W, 3] = K^-1 [u, v, 1] (pixel centres at integer coordinates)."""
    u, v = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    pix = np.stack([u, v, np.ones_like(u)], -1)
    return pix @ np.linalg.inv(np.asarray(K, np.float64)).T


def project(points: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Pinhole projection of camera-frame points [..., 3] -> pixels [..., 2]."""
    p = np.asarray(points, np.float64) @ np.asarray(K, np.float64).T
    return p[..., :2] / p[..., 2:3]
