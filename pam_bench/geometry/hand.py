"""Forward kinematics of a joint-space hand: each finger is a chain of segments from its base joint.

:func:`chain` places the joints of a chain from the segment directions; :func:`planar_directions` gives the
directions of a finger that bends in one plane: segment ``s`` points along ``u cos(a_s) + v sin(a_s)``, where
``u`` is the finger's straight direction, ``v`` the direction it bends towards (perpendicular to ``u``) and
``a_s = flexion[0] + ... + flexion[s]`` the accumulated flexion (radians). Both joint-space hands of
pam-bench use them: the synthetic set's (:mod:`pam_bench.datasets.synthetic`) and Stage I's built-in hand
(:mod:`pam.stage1_pose`); each keeps its own shape (base joints, directions, segment lengths).
"""
from __future__ import annotations

import numpy as np


def chain(base: np.ndarray, directions, lengths) -> np.ndarray:
    """Joints [len(lengths) + 1, 3]: the base, then each joint one segment of ``lengths[s]`` along the unit
    ``directions[s]`` from the previous one."""
    pos = np.asarray(base, np.float64)
    pts = [pos]
    for seg, d in zip(lengths, directions):
        pos = pos + seg * d
        pts.append(pos)
    return np.stack(pts)


def planar_directions(u: np.ndarray, v: np.ndarray, flexion) -> list[np.ndarray]:
    """Segment directions of a finger bending from ``u`` towards ``v`` (see the module docstring)."""
    out = []
    angle = 0.0
    for flex in flexion:
        angle += flex
        out.append(u * np.cos(angle) + v * np.sin(angle))
    return out


def finger_chain(base: np.ndarray, u: np.ndarray, v: np.ndarray, lengths, flexion) -> np.ndarray:
    """Joints [len(lengths) + 1, 3] of a finger bending in the plane of ``u`` and ``v``, the base first."""
    return chain(base, planar_directions(u, v, flexion), lengths)
