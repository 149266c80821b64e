"""Embedded procedural hand-object-interaction clips (the offline default dataset).

Each clip: a right hand (21 joints, DexYCB order, plausible bone lengths in metres) approaches a
primitive object (box, sphere or cylinder; size, colour, texture and YCB-like id vary per clip),
curls its fingers around it and lifts/moves it, in front of a procedural textured background,
seen by a static pinhole camera. Everything is ray-cast by :mod:`pam_bench.raster` (z-buffer
depth, instance labels) and the conditions follow PAM's conventions.

Camera: a 4:3 sensor with focal ``600 * height / 480`` px stretched to the clip's width the way
PAM stretches DexYCB's 640 x 480 frames to 720 x 480: ``fx = f * width / (4/3 * height)``,
``fy = f``, principal point at the image centre ((W-1)/2, (H-1)/2; pixel centres at integers).
The keypoint condition is drawn on the 4:3 canvas and nearest-stretched, as PAM does.

Nothing is cached on disk; ``load`` renders (about 1-2 s per 49-frame 480 x 720 clip on one CPU
core) and memoises the last sample.
"""
from __future__ import annotations

import colorsys
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import raster as R
from .. import render
from ..geometry.camera import pinhole_intrinsics, project
from ..geometry.hand import chain, finger_chain
from ..geometry.rotations import rotation_about as _rot
from ..errors import PamBenchError
from ..options import integer
from ..types import PROTOCOL_FPS, PROTOCOL_FRAMES, PROTOCOL_HEIGHT, PROTOCOL_WIDTH, Dataset, Sample, Split, Video

VERSION = "pam_bench.synthetic v1"  # bump when the drawn clips change: tests/test_synthetic.py pins their content


# --- hand model (hand frame: x across the palm towards the thumb, y along the fingers,
#     z the palm normal, i.e. the side the palm faces; right-handed, so this is a right hand) ---

#: MCP positions of index, middle, ring, little in the hand frame (metres; wrist at the origin).
_MCP = np.array([[0.024, 0.085, 0.0], [0.004, 0.090, 0.0], [-0.015, 0.084, 0.0], [-0.032, 0.073, 0.0]])
#: Phalanx lengths (proximal, middle, distal) of index, middle, ring, little.
_PHALANX = np.array([[0.040, 0.025, 0.022], [0.045, 0.028, 0.024], [0.042, 0.026, 0.023],
                     [0.032, 0.020, 0.020]])
#: Abduction (spread) of the open hand, radians about the palm normal, index..little.
_SPREAD = np.array([0.12, 0.0, -0.10, -0.22])
#: Thumb: base joint (DexYCB joint 1) and the three following segment lengths.
_THUMB_BASE = np.array([0.022, 0.028, 0.010])
_THUMB_LEN = np.array([0.040, 0.032, 0.028])
#: Palm centre in the hand frame (what is placed next to the object when grasping).
_PALM_CENTRE = np.array([0.0, 0.050, 0.0])

_SKIN = [(224, 172, 140), (198, 140, 105), (241, 194, 160), (141, 85, 36), (170, 190, 215)]


def hand_joints_local(curl: float, spread: float = 1.0) -> np.ndarray:
    """21 joints [21, 3] in the hand frame for a curl amount in [0, 1] (0 open, 1 power grasp)."""
    j = np.zeros((21, 3))
    flex = np.array([0.12, 0.15, 0.10]) + curl * np.array([0.95, 1.15, 0.75])
    for f in range(4):
        base = 5 + 4 * f
        spin = _rot([0, 0, 1], _SPREAD[f] * spread * (1 - 0.6 * curl))
        # flexes in the plane of the spread finger direction and the palm normal
        j[base:base + 4] = finger_chain(_MCP[f], spin[:, 1], spin[:, 2], _PHALANX[f], flex)
    # thumb: starts pointing out and up, swings across the palm while curling
    d0 = np.array([0.80, 0.55, 0.25])
    d0 /= np.linalg.norm(d0)
    axis = np.cross(d0, np.array([-0.35, 0.45, 0.82]))
    dirs = [_rot(axis, (0.2 + 0.9 * curl) * (s + 1) * 0.5) @ d0 for s in range(3)]
    j[1:5] = chain(_THUMB_BASE, dirs, _THUMB_LEN)
    return j


def _smooth(x: float) -> float:
    x = min(max(x, 0.0), 1.0)
    return x * x * (3 - 2 * x)


@dataclass
class _ClipSpec:
    """Everything random about one clip (drawn from its own generator)."""

    object_kind: str
    object_label: int
    object_size: np.ndarray
    object_color: tuple[float, float, float]
    object_color2: tuple[float, float, float]
    checker: float
    object_center: np.ndarray
    object_yaw: float
    grasp_yaw: float
    grasp_pitch: float
    approach: np.ndarray
    approach_yaw: float
    lift: np.ndarray
    lift_rot_axis: np.ndarray
    lift_rot: float
    grasp_curl: float
    skin: tuple[int, int, int]
    bg_seed: int
    t_grasp: float
    t_lift: float


def _color(rng: np.random.Generator, sat=(0.55, 0.95), val=(0.55, 0.95)) -> tuple[float, float, float]:
    r, g, b = colorsys.hsv_to_rgb(rng.random(), rng.uniform(*sat), rng.uniform(*val))
    return 255.0 * r, 255.0 * g, 255.0 * b


def _draw_spec(rng: np.random.Generator) -> _ClipSpec:
    kind = ("box", "sphere", "cylinder")[int(rng.integers(3))]
    r = rng.uniform(0.03, 0.045)
    if kind == "box":
        size = np.array([r, r * rng.uniform(1.0, 1.6), r * rng.uniform(0.7, 1.1)])
    elif kind == "cylinder":
        size = np.array([r, r * rng.uniform(1.3, 2.0), 0.0])
    else:
        size = np.array([r, 0.0, 0.0])
    c1 = _color(rng)
    c2 = tuple(0.45 * c for c in c1) if rng.random() < 0.5 else _color(rng, val=(0.85, 1.0))
    return _ClipSpec(
        object_kind=kind, object_label=int(rng.integers(1, 22)), object_size=size,
        object_color=c1, object_color2=c2, checker=float(rng.uniform(0.010, 0.018)),
        object_center=np.array([rng.uniform(-0.07, 0.01), rng.uniform(0.03, 0.06), rng.uniform(0.46, 0.56)]),
        object_yaw=float(rng.uniform(-0.6, 0.6)),
        grasp_yaw=float(rng.uniform(-0.35, 0.35)), grasp_pitch=float(rng.uniform(-0.2, 0.2)),
        approach=np.array([rng.uniform(0.12, 0.2), rng.uniform(-0.10, -0.03), rng.uniform(-0.05, 0.05)]),
        approach_yaw=float(rng.uniform(0.2, 0.5)),
        lift=np.array([rng.uniform(-0.07, 0.05), rng.uniform(-0.11, -0.06), rng.uniform(-0.04, 0.04)]),
        lift_rot_axis=rng.normal(size=3), lift_rot=float(rng.uniform(-0.45, 0.45)),
        grasp_curl=float(rng.uniform(0.55, 0.85)), skin=_SKIN[int(rng.integers(len(_SKIN)))],
        bg_seed=int(rng.integers(2**31)), t_grasp=float(rng.uniform(0.32, 0.42)),
        t_lift=float(rng.uniform(0.50, 0.58)))


def _checker(cell: float, c1, c2):
    """3-D checker texture in the primitive's local frame."""
    a, b = np.asarray(c1, np.float64), np.asarray(c2, np.float64)

    def tex(local: np.ndarray) -> np.ndarray:
        k = np.floor(local / cell).astype(np.int64).sum(1) & 1
        return np.where(k[:, None] == 1, a, b)

    return tex


def _value_noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    import cv2

    g = rng.random((max(2, h * cells // w + 2), cells + 2)).astype(np.float32)
    return cv2.resize(g, (w, h), interpolation=cv2.INTER_CUBIC)


def background_texture(seed: int, height: int, width: int) -> np.ndarray:
    """A procedural wall-and-table background uint8 [H, W, 3] with detail at several scales."""
    import cv2

    rng = np.random.default_rng(seed)
    noise = sum(_value_noise(rng, height, width, c) * a for c, a in ((6, 0.5), (24, 0.3), (96, 0.2)))
    horizon = int(height * rng.uniform(0.32, 0.45))
    wall = np.asarray(_color(rng, sat=(0.05, 0.3), val=(0.55, 0.85)), np.float32)
    hue = rng.uniform(0.04, 0.12) if rng.random() < 0.6 else rng.random()  # mostly wood tones
    table = np.asarray(colorsys.hsv_to_rgb(hue, rng.uniform(0.15, 0.6), rng.uniform(0.35, 0.7)), np.float32) * 255
    img = np.empty((height, width, 3), np.float32)
    img[:horizon] = wall
    img[horizon:] = table
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    grain = np.sin(yy * rng.uniform(0.15, 0.35) + 6.0 * noise) * 0.12
    shade = np.where(yy < horizon, 0.75 + 0.5 * noise, 0.8 + 0.4 * noise + grain)
    img *= shade[..., None]
    for _ in range(int(rng.integers(4, 8))):  # posters / objects on the wall and table: corners to track
        c = tuple(float(v) for v in _color(rng, sat=(0.3, 0.9), val=(0.3, 0.95)))
        x0, y0 = int(rng.integers(0, max(width - 40, 1))), int(rng.integers(0, max(height - 40, 1)))
        x1, y1 = x0 + int(rng.integers(20, 140)), y0 + int(rng.integers(15, 90))
        if rng.random() < 0.5:
            cv2.rectangle(img, (x0, y0), (x1, y1), c, -1)
        else:
            cv2.circle(img, ((x0 + x1) // 2, (y0 + y1) // 2), int(rng.integers(10, 45)), c, -1)
    img += (_value_noise(rng, height, width, width // 3) - 0.5)[..., None] * 30.0  # fine speckle
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _object(spec: _ClipSpec, center: np.ndarray, rotation: np.ndarray) -> R.Primitive:
    tex = _checker(spec.checker, spec.object_color, spec.object_color2)
    common = dict(label=spec.object_label, color=spec.object_color, texture=tex)
    s = spec.object_size
    if spec.object_kind == "box":
        return R.Box(center=center, half_extents=s.copy(), rotation=rotation, **common)
    if spec.object_kind == "cylinder":
        # the cylinder axis (local z) stands vertical: camera -y
        return R.Cylinder(center=center, radius=float(s[0]), half_height=float(s[1]),
                          rotation=rotation @ _UPRIGHT,
                          **common)
    return R.Sphere(center=center, radius=float(s[0]), rotation=rotation, **common)


#: Local frame of an upright cylinder: its axis (third column) along the camera's y axis.
_UPRIGHT = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])


def _hand_rotation(spec: _ClipSpec) -> np.ndarray:
    """Grasp orientation (columns x_h, y_h, z_h in camera coordinates).

    The hand comes from the camera's right: the palm faces -x (towards the object) and the
    fingers point mostly towards the camera and slightly down, so they wrap around the object's
    front when they curl.
    """
    z_h = np.array([-1.0, 0.0, 0.0])
    y_h = np.array([0.0, 0.25, -1.0])
    y_h /= np.linalg.norm(y_h)
    x_h = np.cross(y_h, z_h)
    base = np.stack([x_h, y_h, z_h], 1)
    return _rot([0, 1, 0], spec.grasp_yaw) @ _rot([1, 0, 0], spec.grasp_pitch) @ base


def simulate(spec: _ClipSpec, frames: int) -> list[dict[str, Any]]:
    """Per frame: hand joints (camera frame) and object pose, following approach -> grasp -> lift."""
    rot_grasp = _hand_rotation(spec)
    obj_rot0 = _rot([0, 1, 0], spec.object_yaw)
    palm_grasp = spec.object_center + np.array([float(spec.object_size[0]) + 0.012, 0.0, 0.0])
    wrist_grasp = palm_grasp - rot_grasp @ _PALM_CENTRE
    out = []
    for i in range(frames):
        s = i / max(frames - 1, 1)
        a = _smooth(s / spec.t_grasp)  # approach progress
        g = _smooth((s - spec.t_grasp) / max(spec.t_lift - spec.t_grasp, 1e-6))  # finger curl
        m = _smooth((s - spec.t_lift) / max(1.0 - spec.t_lift, 1e-6))  # lift/move
        rot_h = _rot([0, 1, 0], (1 - a) * spec.approach_yaw) @ rot_grasp
        wrist = wrist_grasp + (1 - a) * spec.approach
        # lift: rigid motion of hand + object about the palm centre
        lift_r = _rot(spec.lift_rot_axis, m * spec.lift_rot)
        pivot = palm_grasp
        shift = m * spec.lift
        tremor = 0.0015 * np.array([np.sin(7.1 * s + spec.bg_seed % 7), np.sin(5.3 * s + 1.0), np.sin(6.7 * s)])
        hand = hand_joints_local(spec.grasp_curl * g) @ rot_h.T + wrist
        joints = (hand - pivot) @ lift_r.T + pivot + shift + tremor
        obj_c = (spec.object_center - pivot) @ lift_r.T + pivot + shift + m * tremor  # held: moves with the hand
        out.append({"joints": joints, "obj_center": obj_c, "obj_rot": lift_r @ obj_rot0})
    return out


def intrinsics_for(height: int, width: int) -> np.ndarray:
    """The synthetic camera (see the module docstring)."""
    f = 600.0 * height / 480.0
    return pinhole_intrinsics(f * width / (height * 4.0 / 3.0), f, height, width)


class SyntheticHOI(Dataset):
    """Deterministic procedural HOI clips: ids ``synthetic_0000`` ... (see the module docstring)."""

    name = "synthetic"

    def __init__(self, root=None, split: str | None = None, n_clips: int = 8, frames: int = PROTOCOL_FRAMES,
                 height: int = PROTOCOL_HEIGHT, width: int = PROTOCOL_WIDTH, seed: int = 0,
                 fps: float = PROTOCOL_FPS, **options):
        if options:
            raise PamBenchError(f"dataset synthetic: unknown option(s) {sorted(options)}; known: "
                                "n_clips, frames, height, width, seed, fps")
        self.root = root  # unused: everything is generated
        self.split_name = split or "val"
        self.n_clips, self.frames = integer("synthetic", "n_clips", n_clips), integer("synthetic", "frames", frames)
        self.height, self.width = integer("synthetic", "height", height), integer("synthetic", "width", width)
        self.seed, self.fps = integer("synthetic", "seed", seed), float(fps)
        if self.n_clips < 1 or self.frames < 2 or self.height < 32 or self.width < 32:
            raise PamBenchError("dataset synthetic: need n_clips >= 1, frames >= 2, height and width >= 32")
        self._last: tuple[str, Sample] | None = None

    def split(self) -> Split:
        ids = tuple(f"synthetic_{i:04d}" for i in range(self.n_clips))
        protocol = {"frames": self.frames, "height": self.height, "width": self.width, "fps": self.fps,
                    "seed": self.seed, "n_clips": self.n_clips, "version": VERSION}
        return Split(dataset=self.name, name=self.split_name, ids=ids, protocol=protocol)

    def _index(self, sample_id: str) -> int:
        prefix = "synthetic_"
        if sample_id.startswith(prefix) and sample_id[len(prefix):].isdigit():
            i = int(sample_id[len(prefix):])
            if i < self.n_clips:
                return i
        raise PamBenchError(f"dataset synthetic: unknown sample id '{sample_id}' "
                            f"(ids are synthetic_0000..synthetic_{self.n_clips - 1:04d})")

    def spec(self, index: int) -> _ClipSpec:
        """The random choices of clip ``index`` (seeded by seed, split name and index)."""
        rng = np.random.default_rng([self.seed, zlib.crc32(self.split_name.encode()), index])
        return _draw_spec(rng)

    def clip_meta(self, sample_id: str) -> dict[str, Any]:
        """object (the primitive: box, sphere, cylinder), object_label, size (small/large: radius below or
        above 3.75 cm), hand ('right'); drawn from the clip's seeded spec, nothing rendered."""
        spec = self.spec(self._index(sample_id))
        return {"object": spec.object_kind, "object_label": spec.object_label,
                "size": "small" if float(spec.object_size[0]) < 0.0375 else "large", "hand": "right"}

    def render_clip(self, index: int) -> dict[str, np.ndarray]:
        """Raw arrays of one clip: rgb [T,H,W,3], depth [T,H,W] metres (inf bg), labels [T,H,W],
        joints_3d [T,21,3], joints_2d [T,21,2], intrinsics [3,3]."""
        spec = self.spec(index)
        h, w = self.height, self.width
        K = intrinsics_for(h, w)
        bg = background_texture(spec.bg_seed, h, w)
        states = simulate(spec, self.frames)
        rgb = np.empty((self.frames, h, w, 3), np.uint8)
        depth = np.empty((self.frames, h, w), np.float32)
        labels = np.empty((self.frames, h, w), np.uint8)
        for t, st in enumerate(states):
            prims = R.hand_primitives(st["joints"], color=spec.skin)
            prims.append(_object(spec, st["obj_center"], st["obj_rot"]))
            rgb[t], depth[t], labels[t] = R.render_scene(prims, K, h, w, background=bg)
        j3 = np.stack([st["joints"] for st in states])
        return {"rgb": rgb, "depth": depth, "labels": labels, "joints_3d": j3,
                "joints_2d": project(j3, K), "intrinsics": K, "spec": spec}

    def load(self, sample_id: str) -> Sample:
        if self._last is not None and self._last[0] == sample_id:
            return self._last[1]
        index = self._index(sample_id)
        clip = self.render_clip(index)
        j2 = clip["joints_2d"][:, None].astype(np.float32)
        j3 = clip["joints_3d"][:, None].astype(np.float32)
        canvas = (self.height, int(round(self.height * 4 / 3)))
        conditions = render.render_pam_conditions(clip["labels"], clip["depth"], j2, j3, fps=self.fps,
                                              keypoint_canvas=canvas)
        spec: _ClipSpec = clip["spec"]
        meta = {"depth_source": "synthetic-zbuffer", "generator": VERSION, "index": index,
                "seed": self.seed, "split": self.split_name, "object_kind": spec.object_kind,
                "object_label": spec.object_label, "object_size_m": [float(v) for v in spec.object_size],
                "keypoint_canvas": list(canvas)}
        sample = Sample(id=sample_id, video=Video(clip["rgb"], self.fps), conditions=conditions,
                        joints_2d=j2, joints_3d=j3, hand_sides=("right",), intrinsics=clip["intrinsics"],
                        seg=clip["labels"], meta=meta)
        self._last = (sample_id, sample)
        return sample
