"""Stage I from D-Grasp (Christen et al., CVPR 2022; github.com/christsa/dgrasp, eth-ait): its motion output.

What D-Grasp exposes (facts from its raisimGymTorch environment, ``envs/dgrasp/Environment.hpp`` and
``runner_motion.py``): per control step the MANO hand's generalized coordinates ``qpos`` (51: root
translation 3, global rotation as raisim Euler angles 3, 45 local joint angles), the 21 hand frame positions
in the world frame (its ``body_parts_`` / 63-D "ee" vector, order: wrist ``WRJ0rz``; index ``FF`` J2, J1, J0,
Tip; middle ``MF``; ring ``RF``; little ``LF``; thumb ``TH``) and the object pose (7: position 3 + quaternion
w, x, y, z as raisim's ``setOrientation``). The world is raisim's (z up, metres). Its released scripts
collect these per step (``joint_pos_list``, ``obj_pose_list``, ``qpos_list``) but write only a video, so
there is no official file: pam-bench reads the dict those lists make once stacked:

- ``joint_pos`` [T, 63] or [T, 21, 3] (required; alias ``joint_pos_list``): world-frame joint positions,
  D-Grasp order;
- ``obj_pose`` [T, 7] (required; aliases ``obj_pose_list``, ``obj_pose_pos_list``): position + quaternion
  (w, x, y, z);
- ``qpos`` [T, 51] (optional; aliases ``qpos_list``, ``hand_pose_list``): kept, not needed for rendering.

As ``.npz`` (``np.savez``; read without pickle) or a pickled dict of numpy arrays (``.pkl`` / ``.npy`` via
``np.save``; read with the numpy-only unpickler; a joblib dump must be re-saved with ``np.savez``).
Joint positions are used directly (no MANO model needed), unlike GraspXL's MANO parameters.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pam_bench.errors import InputError
from pam_bench.types import PROTOCOL_FPS

#: D-Grasp's 21 frames (wrist, index, middle, ring, little, thumb; each J2, J1, J0, Tip) -> the house order
#: (wrist, thumb, index, middle, ring, little; each mcp, pip, dip, tip): house[i] = dgrasp[DGRASP_TO_HOUSE[i]].
DGRASP_TO_HOUSE = (0, 17, 18, 19, 20, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16)

_ALIASES = {"joint_pos": ("joint_pos", "joint_pos_list"),
            "obj_pose": ("obj_pose", "obj_pose_list", "obj_pose_pos_list"),
            "qpos": ("qpos", "qpos_list", "hand_pose_list")}


@dataclass
class DGraspSequence:
    joints_world: np.ndarray  # [T, 21, 3] world frame, house order
    object_position: np.ndarray  # [T, 3]
    object_quat_wxyz: np.ndarray  # [T, 4], normalised
    qpos: np.ndarray | None  # [T, 51]


def quat_wxyz_to_matrix(q: np.ndarray) -> np.ndarray:
    """[..., 4] unit quaternions (w, x, y, z) -> [..., 3, 3] rotation matrices."""
    w, x, y, z = (q[..., i] for i in range(4))
    m = np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
                  2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
                  2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1)
    return m.reshape(*q.shape[:-1], 3, 3)


def _load_dict(path: Path) -> dict:
    from pam_bench.safe_pickle import NUMPY_DATA, loads, npy_pickle_body

    raw = path.read_bytes()
    if raw.startswith(b"PK"):  # .npz (zip)
        try:
            with np.load(io.BytesIO(raw), allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except ValueError as e:
            raise InputError(path, f"npz with object arrays or unreadable ({e}); save plain arrays") from None
    raw = npy_pickle_body(raw, path, "a dict of D-Grasp motion arrays")
    data = loads(raw, NUMPY_DATA, where=path, what="a numpy-only pickle")
    if isinstance(data, np.ndarray) and data.dtype == object and data.shape == ():
        data = data.item()
    if not isinstance(data, dict):
        raise InputError(path, f"a {type(data).__name__}, not a dict of D-Grasp motion arrays")
    return data


def _pick(data: dict, key: str, path: Path, required: bool = True):
    for k in _ALIASES[key]:
        if k in data:
            try:
                return np.asarray(data[k], np.float64)
            except (TypeError, ValueError):
                raise InputError(path, f"'{k}' is not a numeric array") from None
    if required:
        raise InputError(path, f"no '{key}' (or {', '.join(_ALIASES[key][1:])}); has {sorted(map(str, data))}")
    return None


def read_dgrasp(path) -> DGraspSequence:
    """Read a D-Grasp motion file (layout: module docstring); every problem names the file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such file")
    data = _load_dict(path)
    joints = _pick(data, "joint_pos", path)
    obj = _pick(data, "obj_pose", path)
    qpos = _pick(data, "qpos", path, required=False)
    T = len(joints)
    if T < 1:
        raise InputError(path, "joint_pos has no frames")
    if joints.shape == (T, 63):
        joints = joints.reshape(T, 21, 3)
    if joints.shape != (T, 21, 3):
        raise InputError(path, f"joint_pos shape {joints.shape}; expected (T, 63) or (T, 21, 3)")
    if obj.shape != (T, 7):
        raise InputError(path, f"obj_pose shape {obj.shape}; expected ({T}, 7): position + quaternion w,x,y,z")
    if qpos is not None and qpos.shape != (T, 51):
        raise InputError(path, f"qpos shape {qpos.shape}; expected ({T}, 51)")
    if not (np.isfinite(joints).all() and np.isfinite(obj).all()):
        raise InputError(path, "non-finite values in joint_pos or obj_pose")
    norm = np.linalg.norm(obj[:, 3:], axis=1)
    if (np.abs(norm - 1.0) > 1e-3).any():
        raise InputError(path, f"obj_pose quaternions are not unit length (norms {norm.min():.3g}..{norm.max():.3g})")
    return DGraspSequence(joints[:, list(DGRASP_TO_HOUSE)], obj[:, :3], obj[:, 3:] / norm[:, None], qpos)


def dgrasp_sequence(path, obj, camera_R: np.ndarray, camera_t: np.ndarray, fps: float = PROTOCOL_FPS):
    """A D-Grasp file as a ``PoseSequence`` in the camera frame: ``x_cam = camera_R @ x_world + camera_t``."""
    from .stage1_pose import PoseSequence

    seq = read_dgrasp(path)
    Rc, tc = np.asarray(camera_R, np.float64), np.asarray(camera_t, np.float64)
    joints = seq.joints_world @ Rc.T + tc
    rots = Rc @ quat_wxyz_to_matrix(seq.object_quat_wxyz)
    trans = seq.object_position @ Rc.T + tc
    return PoseSequence(joints, rots, trans, obj, "dgrasp", fps)
