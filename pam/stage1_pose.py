"""Stage I (pose): a hand-object pose sequence, and its rendering to PAM's condition videos.

Two sources:

- **GraspXL** (PAM's choice, zdchan/GraspXL): ``mano_N.npy`` is a pickled dict ``{'right_hand': {'trans' (T,3),
  'rot' (T,3) global axis-angle, 'pose' (T,45)}, <object_id>: {'trans' (T,3), 'rot' (T,3)}}``
  (:func:`read_graspxl`, numpy-only unpickler). Turning MANO parameters into 21 joints needs a MANO forward
  pass, so :func:`graspxl_joints` requires the user's MANO model (``MANO_RIGHT.pkl``, the official file or a
  numpy-only conversion, read and posed by :mod:`pam_bench.geometry.mano`); without it there is a clear
  MissingResource pointing to the built-in generator. We read the object's ``rot`` as axis-angle like the
  hand's (GraspXL stores both the same way; an assumption we state).
- **built-in** (:func:`builtin_sequence`): a joint-space generator with a smooth approach -> grasp -> move
  (minimum-jerk interpolation of the wrist, finger flexion closing around the object, then hand and
  object moving rigidly together). No MANO needed.

Rendering (:func:`render_conditions`) uses the shared rasteriser ``pam_bench.raster``: the hand is the
joint-based proxy (capsules and spheres, ``hand_primitives``) and the object a primitive (box, sphere or
cylinder, standing in for the object mesh); the result is PAM's ``{'depth','seg','hand'}`` condition
videos plus a shaded RGB "simulator" video.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np

from pam_bench.errors import ArgumentError, InputError, MissingResource
from pam_bench.geometry import mano as M
from pam_bench.geometry.camera import pinhole_intrinsics, project
from pam_bench.geometry.hand import finger_chain
from pam_bench.geometry.rotations import axis_angle_to_matrix
from pam_bench.types import PROTOCOL_FPS, Video

#: Stage I's MANO fingertip vertices (thumb, index, middle, ring, little): smplx's table
#: (smplx/vertex_ids.py, ``VERTEX_IDS['mano']``), smplx being the MANO layer GraspXL's parameters go through.
MANO_TIP_VERTICES = (744, 320, 443, 554, 671)


@dataclass(frozen=True)
class ObjectSpec:
    """The object as a render primitive (stands in for the mesh). ``size``: box half extents (3),
    sphere radius (1) or cylinder (radius, half_height)."""

    kind: str = "box"
    size: tuple[float, ...] = (0.03, 0.03, 0.045)
    label: int = 1
    color: tuple[float, float, float] = (180.0, 60.0, 50.0)

    def primitive(self, R: np.ndarray, t: np.ndarray):
        from pam_bench import raster

        common = dict(label=self.label, color=self.color, center=np.asarray(t, np.float64),
                      rotation=np.asarray(R, np.float64))
        if self.kind == "box":
            return raster.Box(half_extents=np.asarray(self.size, np.float64), **common)
        if self.kind == "sphere":
            return raster.Sphere(radius=float(self.size[0]), **common)
        if self.kind == "cylinder":
            return raster.Cylinder(radius=float(self.size[0]), half_height=float(self.size[1]), **common)
        raise ArgumentError(f"object kind must be box, sphere or cylinder, got {self.kind!r}")

    @property
    def half_height(self) -> float:
        """Half extent along the camera's y axis at identity rotation (the palm rests on top)."""
        if self.kind == "box":
            return float(self.size[1])
        return float(self.size[0])  # sphere radius; cylinder (axis along z) radius


@dataclass
class PoseSequence:
    """Per frame: 21 hand joints (camera frame, metres, house order) and the object's 6-DoF pose."""

    joints_3d: np.ndarray  # [T, 21, 3]
    object_rotation: np.ndarray  # [T, 3, 3]
    object_translation: np.ndarray  # [T, 3]
    obj: ObjectSpec = field(default_factory=ObjectSpec)
    source: str = "builtin"
    fps: float = PROTOCOL_FPS

    def __post_init__(self):
        T = len(self.joints_3d)
        if self.joints_3d.shape != (T, 21, 3) or self.object_rotation.shape != (T, 3, 3) \
                or self.object_translation.shape != (T, 3):
            raise ArgumentError("PoseSequence needs joints [T,21,3], rotations [T,3,3], translations [T,3]")

    def __len__(self) -> int:
        return len(self.joints_3d)


# --- motion profile -------------------------------------------------------------------------------------

def min_jerk(s: np.ndarray) -> np.ndarray:
    """Minimum-jerk profile 10s^3 - 15s^4 + 6s^5 on [0, 1] (zero velocity and acceleration at the ends)."""
    s = np.clip(s, 0.0, 1.0)
    return s ** 3 * (10 - 15 * s + 6 * s * s)


# --- the built-in joint-space hand ----------------------------------------------------------------------

#: Canonical right hand (metres), frame: f = finger direction, n = palm normal (the side fingers curl to),
#: l = f x n. Per finger: MCP offset (f, l) from the wrist and three segment lengths.
_FINGERS = {  # name: (mcp_f, mcp_l, (proximal, middle, distal))
    "thumb": (0.025, -0.030, (0.035, 0.030, 0.025)),
    "index": (0.085, -0.022, (0.040, 0.024, 0.020)),
    "middle": (0.088, -0.004, (0.044, 0.028, 0.021)),
    "ring": (0.083, 0.014, (0.040, 0.026, 0.020)),
    "little": (0.075, 0.030, (0.032, 0.020, 0.018)),
}
#: Thumb base direction in the (f, n, l) frame: in the palm plane (perpendicular to n, so flexion keeps
#: bone lengths), forward and inwards (towards +l, where the other fingers are).
_THUMB_DIR = np.array([0.8, 0.0, 0.6])


def hand_joints(flexion: np.ndarray, wrist: np.ndarray, frame: np.ndarray) -> np.ndarray:
    """Forward kinematics of the canonical hand. ``flexion`` [5, 3] radians (per finger, per joint),
    ``wrist`` [3], ``frame`` [3, 3] columns (f, n, l) in the camera frame -> joints [21, 3] (house order)."""
    out = [np.zeros(3)]
    for i, (mf, ml, segs) in enumerate(_FINGERS.values()):
        direction = _THUMB_DIR.copy() if i == 0 else np.array([1.0, 0.0, 0.0])
        # each finger bends from its direction towards +n (palm side) by the accumulated flexion
        out.extend(finger_chain(np.array([mf, 0.0, ml]), direction, np.array([0.0, 1.0, 0.0]), segs, flexion[i]))
    local = np.stack(out)  # [21, 3] in (f, n, l) coordinates
    return wrist + local @ np.asarray(frame, np.float64).T


OPEN_FLEXION = np.array([[0.1, 0.1, 0.05]] + [[0.05, 0.05, 0.05]] * 4)
GRASP_FLEXION = np.array([[0.45, 0.5, 0.35]] + [[0.9, 1.0, 0.6]] * 4)


def builtin_sequence(num_frames: int = 49, obj: ObjectSpec = ObjectSpec(),
                     object_rotation: np.ndarray | None = None,
                     object_translation=(0.0, 0.04, 0.45), start_offset=(-0.12, -0.10, 0.0),
                     move=(0.05, -0.08, 0.0), phases=(0.45, 0.25, 0.30), initial_flexion=OPEN_FLEXION,
                     target_flexion=GRASP_FLEXION, palm_tilt_deg: float = 35.0,
                     fps: float = PROTOCOL_FPS) -> PoseSequence:
    """Approach -> grasp -> move, in the camera frame (x right, y down, z forward).

    The hand's fingers point along +x and curl towards +y (down onto the object; the palm normal is tilted
    ``palm_tilt_deg`` towards the camera); the palm comes to rest ``palm_gap`` above the object's top.
    ``phases``: fractions of the clip for approach, grasp, move.
    ``initial_flexion`` / ``target_flexion`` [5, 3] radians are the initial and target hand poses.
    """
    if num_frames < 2:
        raise ArgumentError("num_frames must be >= 2")
    R0 = np.eye(3) if object_rotation is None else np.asarray(object_rotation, np.float64)
    t0 = np.asarray(object_translation, np.float64)
    a = np.radians(palm_tilt_deg)  # tilt the palm normal towards the camera so the fingers spread visibly
    f, n = np.array([1.0, 0.0, 0.0]), np.array([0.0, np.cos(a), -np.sin(a)])
    frame = np.stack([f, n, np.cross(f, n)], 1)  # columns (f, n, l)
    palm_centre = np.array([0.06, 0.0, 0.0])  # in (f, n, l) hand coordinates
    palm_gap = 0.018
    grasp_wrist = t0 - palm_centre @ frame.T - np.array([0.0, obj.half_height + palm_gap, 0.0])
    start_wrist = grasp_wrist + np.asarray(start_offset, np.float64)
    s = np.linspace(0.0, 1.0, num_frames)
    a, g = phases[0], phases[0] + phases[1]
    approach = min_jerk(s / a)
    grasp = min_jerk((s - a) / max(g - a, 1e-9))
    moving = min_jerk((s - g) / max(1.0 - g, 1e-9))
    delta = np.asarray(move, np.float64)
    joints, rots, trans = [], [], []
    for i in range(num_frames):
        wrist = start_wrist + approach[i] * (grasp_wrist - start_wrist) + moving[i] * delta
        flex = initial_flexion + grasp[i] * (target_flexion - initial_flexion)
        joints.append(hand_joints(flex, wrist, frame))
        rots.append(R0)
        trans.append(t0 + moving[i] * delta)
    return PoseSequence(np.stack(joints), np.stack(rots), np.stack(trans), obj, "builtin", fps)


# --- GraspXL -------------------------------------------------------------------------------------------

@dataclass
class GraspXLSequence:
    hand_trans: np.ndarray  # [T, 3]
    hand_rot: np.ndarray  # [T, 3] global axis-angle
    hand_pose: np.ndarray  # [T, 45]
    objects: dict[str, dict[str, np.ndarray]]  # id -> {'trans' [T,3], 'rot' [T,3]}


def _pickle_bytes(path: Path) -> bytes:
    """The pickle inside a file: the whole file, or, for ``np.save`` of an object (.npy with a header),
    what follows the header."""
    from pam_bench.safe_pickle import npy_pickle_body

    return npy_pickle_body(path.read_bytes(), path, "GraspXL's pickled dict")


def read_graspxl(path) -> GraspXLSequence:
    """Read a GraspXL ``mano_N.npy`` with the numpy-only unpickler; every shape problem names the file."""
    from pam_bench.safe_pickle import NUMPY_DATA, loads

    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such file")
    data = loads(_pickle_bytes(path), NUMPY_DATA, where=path, what="a numpy-only pickle")
    if isinstance(data, np.ndarray) and data.dtype == object and data.shape == ():
        data = data.item()  # np.save of a dict
    if not isinstance(data, dict) or "right_hand" not in data:
        raise InputError(path, "expected a dict with 'right_hand' and object entries (GraspXL mano_N.npy)")
    hand = data["right_hand"]
    try:
        trans, rot, pose = (np.asarray(hand[k], np.float64) for k in ("trans", "rot", "pose"))
    except (KeyError, TypeError):
        raise InputError(path, "right_hand needs 'trans', 'rot' and 'pose'") from None
    T = len(trans)
    if trans.shape != (T, 3) or rot.shape != (T, 3) or pose.shape != (T, 45):
        raise InputError(path, f"right_hand shapes trans {trans.shape}, rot {rot.shape}, pose {pose.shape}; "
                               "expected (T,3), (T,3), (T,45)")
    objects = {}
    for k, v in data.items():
        if k == "right_hand":
            continue
        try:
            ot, orr = np.asarray(v["trans"], np.float64), np.asarray(v["rot"], np.float64)
        except (KeyError, TypeError, IndexError):
            raise InputError(path, f"object entry {k!r} needs 'trans' and 'rot'") from None
        if ot.shape != (T, 3) or orr.shape != (T, 3):
            raise InputError(path, f"object {k!r} trans {ot.shape} / rot {orr.shape}; expected ({T},3)")
        objects[str(k)] = {"trans": ot, "rot": orr}
    if not objects:
        raise InputError(path, "no object entry besides right_hand")
    return GraspXLSequence(trans, rot, pose, objects)


def graspxl_joints(seq: GraspXLSequence, mano_dir=None) -> np.ndarray:
    """MANO forward (:mod:`pam_bench.geometry.mano`, right hand, full 45-d pose, flat hand mean) -> joints
    [T, 21, 3] (GraspXL world frame, house order), the fingertips being :data:`MANO_TIP_VERTICES`."""
    if mano_dir is None:
        raise MissingResource(
            "MANO model (MANO_RIGHT.pkl)",
            "GraspXL gives MANO parameters; joints need a MANO forward pass. Register at mano.is.tue.mpg.de, "
            "download MANO_RIGHT.pkl and pass mano_dir=DIR; or use the built-in joint-space generator "
            "pam.stage1_pose.builtin_sequence (no MANO)")
    f = M.model_file(mano_dir, "right", "copy MANO_RIGHT.pkl (from mano.is.tue.mpg.de) into that folder")
    layer = M.layer(f, "right", use_pca=False, flat_hand_mean=True)
    joints, verts = M.forward(layer, seq.hand_rot, seq.hand_pose, transl=seq.hand_trans)
    return M.joints21(joints, verts, MANO_TIP_VERTICES)


def graspxl_sequence(path, obj: ObjectSpec, camera_R: np.ndarray, camera_t: np.ndarray, mano_dir=None,
                     object_id: str | None = None, fps: float = PROTOCOL_FPS) -> PoseSequence:
    """A GraspXL file in the camera frame: ``x_cam = camera_R @ x_world + camera_t``."""
    seq = read_graspxl(path)
    oid = object_id or next(iter(seq.objects))
    if oid not in seq.objects:
        raise InputError(path, f"no object {oid!r}; has {sorted(seq.objects)}")
    Rc, tc = np.asarray(camera_R, np.float64), np.asarray(camera_t, np.float64)
    joints = graspxl_joints(seq, mano_dir) @ Rc.T + tc
    o = seq.objects[oid]
    rots = Rc @ axis_angle_to_matrix(o["rot"])
    trans = o["trans"] @ Rc.T + tc
    return PoseSequence(joints, rots, trans, obj, "graspxl+mano", fps)


# --- rendering -------------------------------------------------------------------------------------------

def default_intrinsics(height: int, width: int, fov_y_deg: float = 45.0) -> np.ndarray:
    f = 0.5 * height / np.tan(np.radians(fov_y_deg) / 2)
    return pinhole_intrinsics(f, f, height, width)


def render_conditions(seq: PoseSequence, K: np.ndarray, height: int, width: int
                      ) -> tuple[dict[str, Video], Video, np.ndarray]:
    """Render PAM's condition videos; returns (conditions {'depth','seg','hand'}, sim RGB video,
    joints_2d [T, 1, 21, 2])."""
    from pam_bench import raster, render

    rgbs, depths, labels = [], [], []
    for i in range(len(seq)):
        prims = raster.hand_primitives(seq.joints_3d[i])
        prims.append(seq.obj.primitive(seq.object_rotation[i], seq.object_translation[i]))
        rgb, depth, lab = raster.render_scene(prims, K, height, width)
        rgbs.append(rgb)
        depths.append(depth)
        labels.append(lab)
    j2 = project(seq.joints_3d, K)[:, None]
    conds = render.render_pam_conditions(np.stack(labels), np.stack(depths), j2, seq.joints_3d[:, None],
                                         fps=seq.fps)
    return conds, Video(np.stack(rgbs), seq.fps), j2


def conditions_as_arrays(conditions: Mapping[str, Video]) -> dict[str, np.ndarray]:
    return {k: v.frames for k, v in conditions.items()}
