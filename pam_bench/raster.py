"""A small numpy scene rasteriser: ray-cast spheres, capsules, boxes and cylinders, and a joint-based hand proxy.

:func:`render_scene` ray-casts the primitives against a pinhole camera (:mod:`pam_bench.geometry.camera`) with a
z-buffer, vectorised per primitive over its projected bounding rectangle, and shades them with Lambert
lighting. It returns RGB, camera-z depth and instance labels (the label conventions of
:mod:`pam_bench.render`, hand = 255). :func:`hand_primitives` turns 21 joints into capsules and spheres.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from .errors import ArgumentError

from .geometry.camera import camera_rays, project
from .render import HAND_LABEL, LIMBS

#: Direction towards the light (camera frame: x right, y down, z forward): upper left, camera side.
LIGHT_DIR = np.array([-0.35, -0.6, -0.72]) / np.linalg.norm([-0.35, -0.6, -0.72])
AMBIENT = 0.35
DIFFUSE = 0.65

#: A texture maps hit points in the primitive's local frame [N, 3] (metres) to albedo RGB [N, 3] (0..255).
Texture = Callable[[np.ndarray], np.ndarray]


def _v3(x) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64).reshape(3)
    return a


@dataclass
class Primitive:
    """Base of the scene primitives: a label (0..255) and an RGB colour or a texture."""

    label: int = 0
    color: tuple[float, float, float] = (200.0, 200.0, 200.0)
    texture: Texture | None = field(default=None, repr=False)

    def bound(self) -> tuple[np.ndarray, float]:  # pragma: no cover - abstract
        """(centre, radius) of a bounding sphere."""
        raise NotImplementedError

    def hull_points(self) -> np.ndarray:
        """Points whose convex hull contains the primitive (default: the bounding sphere's cube)."""
        c, r = self.bound()
        return c + r * _CUBE

    def min_z(self) -> float:
        c, r = self.bound()
        return float(c[2] - r)

    def hit(self, d: np.ndarray, dd: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        """Ray parameter t of the first hit (rays ``t * d`` from the camera centre, ``dd = |d|^2``);
        inf on a miss."""
        raise NotImplementedError

    def surface(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover
        """(unit normals [N,3], local coordinates [N,3]) at surface points ``p`` [N,3]."""
        raise NotImplementedError

    def albedo(self, local: np.ndarray) -> np.ndarray:
        if self.texture is not None:
            return np.asarray(self.texture(local), dtype=np.float64).reshape(-1, 3)
        return np.broadcast_to(np.asarray(self.color, np.float64), (len(local), 3))


_CUBE = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], np.float64)


def _first_root(a, b, c):
    """Smaller root of a t^2 + 2 b t + c = 0 if positive, else the larger one if positive, else inf."""
    disc = b * b - a * c
    ok = disc >= 0
    s = np.sqrt(np.where(ok, disc, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        t0 = (-b - s) / a
        t1 = (-b + s) / a
    t = np.where(t0 > 1e-9, t0, np.where(t1 > 1e-9, t1, np.inf))
    return np.where(ok & (a > 0), t, np.inf)


@dataclass
class Sphere(Primitive):
    center: np.ndarray = field(default_factory=lambda: np.zeros(3))
    radius: float = 0.01
    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))  # local frame (for textures)

    def bound(self):
        return _v3(self.center), float(self.radius)

    def hit(self, d, dd):
        c = _v3(self.center)
        return _first_root(dd, -(d @ c), c @ c - self.radius ** 2)

    def surface(self, p):
        q = p - _v3(self.center)
        return q / self.radius, q @ np.asarray(self.rotation, np.float64)


def _closest_on_segment(p, a, b):
    ab = b - a
    s = np.clip(((p - a) @ ab) / max(ab @ ab, 1e-18), 0.0, 1.0)
    return a + s[:, None] * ab, s


@dataclass
class Capsule(Primitive):
    """All points within ``radius`` of the segment a-b (a hand bone).

    Texture coordinates: (distance along a->b, arc length around the axis measured from ``ref``
    projected off the axis, 0), in metres; give ``ref`` a vector attached to the moving body
    (e.g. the palm normal) so the texture moves with it (default: a fixed camera axis).
    """

    a: np.ndarray = field(default_factory=lambda: np.zeros(3))
    b: np.ndarray = field(default_factory=lambda: np.zeros(3))
    radius: float = 0.008
    ref: np.ndarray | None = None

    def bound(self):
        a, b = _v3(self.a), _v3(self.b)
        return (a + b) / 2, float(np.linalg.norm(b - a) / 2 + self.radius)

    def hull_points(self):
        r = float(self.radius)
        return np.concatenate([_v3(self.a) + r * _CUBE, _v3(self.b) + r * _CUBE])

    def min_z(self):
        return float(min(self.a[2], self.b[2]) - self.radius)

    def hit(self, d, dd):
        a, b, r = _v3(self.a), _v3(self.b), float(self.radius)
        ba = b - a
        baba = ba @ ba
        # infinite cylinder around the axis, restricted to the segment
        bard = d @ ba
        oa = -a
        baoa = ba @ oa
        qa = baba * dd - bard * bard
        qb = baba * (d @ oa) - baoa * bard
        qc = baba * (oa @ oa) - baoa * baoa - r * r * baba
        if qc < 0:  # the camera lies inside the infinite cylinder: only the caps can be entered
            return np.minimum(_first_root(dd, -(d @ a), a @ a - r * r), _first_root(dd, -(d @ b), b @ b - r * r))
        t_cyl = _first_root(qa, qb, np.full_like(qa, qc))
        hit = np.isfinite(t_cyl)
        y = baoa + np.where(hit, t_cyl, 0.0) * bard
        body = hit & (y >= 0) & (y <= baba)
        t = np.where(body, t_cyl, np.inf)
        # A ray that enters the infinite cylinder outside the segment's slab can only hit the
        # cap sphere on that side (the spheres lie inside the cylinder); a miss misses both.
        cap = hit & ~body
        if cap.any():
            dc = d[cap]
            centre = np.where((y[cap] < 0)[:, None], a, b)
            t[cap] = _first_root(dd[cap], -(dc * centre).sum(1), (centre * centre).sum(1) - r * r)
        return t

    def surface(self, p):
        a, b = _v3(self.a), _v3(self.b)
        q, s = _closest_on_segment(p, a, b)
        n = p - q
        n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
        length = float(np.linalg.norm(b - a))
        u = (b - a) / max(length, 1e-12)
        ref = _v3(self.ref) if self.ref is not None else np.array([1.0, 0.0, 0.0])
        e1 = ref - (ref @ u) * u
        if np.linalg.norm(e1) < 1e-6:  # ref along the axis: any perpendicular will do
            e1 = np.cross(u, [0.0, 1.0, 0.0] if abs(u[1]) < 0.9 else [1.0, 0.0, 0.0])
        e1 /= np.linalg.norm(e1)
        e2 = np.cross(u, e1)
        arc = np.arctan2(n @ e2, n @ e1) * float(self.radius)
        return n, np.stack([s * length, arc, np.zeros_like(s)], 1)


@dataclass
class Box(Primitive):
    """Oriented box: local axes are the columns of ``rotation``; ``half_extents`` along them."""

    center: np.ndarray = field(default_factory=lambda: np.zeros(3))
    half_extents: np.ndarray = field(default_factory=lambda: np.full(3, 0.03))
    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))

    def bound(self):
        return _v3(self.center), float(np.linalg.norm(self.half_extents))

    def hit(self, d, dd):
        rot = np.asarray(self.rotation, np.float64)
        o = -_v3(self.center) @ rot  # camera centre in the box frame
        dl = d @ rot
        h = _v3(self.half_extents)
        with np.errstate(divide="ignore", invalid="ignore"):
            inv = 1.0 / dl
            t1 = (-h - o) * inv
            t2 = (h - o) * inv
        tn = np.nanmax(np.minimum(t1, t2), axis=1)
        tf = np.nanmin(np.maximum(t1, t2), axis=1)
        t = np.where(tn > 1e-9, tn, tf)
        return np.where((tn <= tf) & (tf > 1e-9), t, np.inf)

    def surface(self, p):
        rot = np.asarray(self.rotation, np.float64)
        local = (p - _v3(self.center)) @ rot
        rel = np.abs(local) / _v3(self.half_extents)
        ax = rel.argmax(1)
        nl = np.zeros_like(local)
        nl[np.arange(len(p)), ax] = np.sign(local[np.arange(len(p)), ax])
        return nl @ rot.T, local


@dataclass
class Cylinder(Primitive):
    """Closed cylinder: axis = third column of ``rotation``, through ``center``, length 2*half_height."""

    center: np.ndarray = field(default_factory=lambda: np.zeros(3))
    radius: float = 0.03
    half_height: float = 0.05
    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))

    def bound(self):
        return _v3(self.center), float(np.hypot(self.radius, self.half_height))

    def hit(self, d, dd):
        rot = np.asarray(self.rotation, np.float64)
        o = -_v3(self.center) @ rot
        dl = d @ rot
        r, hh = float(self.radius), float(self.half_height)
        qa = dl[:, 0] ** 2 + dl[:, 1] ** 2
        qb = o[0] * dl[:, 0] + o[1] * dl[:, 1]
        t_side = _first_root(qa, qb, np.full_like(qa, o[0] ** 2 + o[1] ** 2 - r * r))
        z = o[2] + t_side * dl[:, 2]
        t_side = np.where(np.abs(z) <= hh, t_side, np.inf)
        t_best = t_side
        with np.errstate(divide="ignore", invalid="ignore"):
            for zc in (-hh, hh):
                t = (zc - o[2]) / dl[:, 2]
                x = o[0] + t * dl[:, 0]
                y = o[1] + t * dl[:, 1]
                ok = (t > 1e-9) & (x * x + y * y <= r * r)
                t_best = np.minimum(t_best, np.where(ok, t, np.inf))
        return t_best

    def surface(self, p):
        rot = np.asarray(self.rotation, np.float64)
        local = (p - _v3(self.center)) @ rot
        radial = np.hypot(local[:, 0], local[:, 1])
        cap = (self.half_height - np.abs(local[:, 2])) < (self.radius - radial)
        nl = np.where(cap[:, None], np.stack([0 * radial, 0 * radial, np.sign(local[:, 2])], 1),
                      np.stack([local[:, 0], local[:, 1], 0 * radial], 1) / np.maximum(radial, 1e-12)[:, None])
        return nl @ rot.T, local


def _screen_window(prim: Primitive, K: np.ndarray, height: int, width: int):
    """Pixel rectangle (v0, v1, u0, u1) that contains the primitive's projection, or None."""
    pts = prim.hull_points()
    if pts[:, 2].max() <= 1e-6:
        return None  # entirely behind the camera
    if prim.min_z() <= 1e-3 or pts[:, 2].min() <= 1e-3:
        return 0, height, 0, width
    uv = project(pts, K)
    u0, v0 = np.floor(uv.min(0)).astype(int)
    u1, v1 = np.ceil(uv.max(0)).astype(int) + 1
    u0, u1 = max(u0, 0), min(u1, width)
    v0, v1 = max(v0, 0), min(v1, height)
    if u0 >= u1 or v0 >= v1:
        return None
    return v0, v1, u0, u1


_RAY_CACHE: dict = {}


def _rays(K: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    key = (np.asarray(K, np.float64).tobytes(), height, width)
    if key not in _RAY_CACHE:
        if len(_RAY_CACHE) > 4:
            _RAY_CACHE.clear()
        rays = camera_rays(K, height, width)
        _RAY_CACHE[key] = rays, (rays * rays).sum(-1)
    return _RAY_CACHE[key]


def render_scene(primitives: Sequence[Primitive], K: np.ndarray, height: int, width: int,
                 background: np.ndarray | None = None, normals: bool = False):
    """Ray-cast ``primitives`` through the pinhole camera ``K`` (camera at the origin, +z forward).

    Returns ``(rgb uint8 [H,W,3], depth float32 [H,W] camera z in metres (inf = background),
    labels uint8 [H,W] (0 = background))``, plus ``normals`` float32 [H,W,3] (unit, camera frame,
    zeros on the background) as a fourth item when ``normals=True``. One ray per pixel centre,
    z-buffered; colour = albedo * (AMBIENT + DIFFUSE * max(0, n . LIGHT_DIR)) (Lambert);
    ``background`` (uint8 [H,W,3]) fills pixels that hit nothing (default black).
    """
    K = np.asarray(K, np.float64)
    rays, sq = _rays(K, height, width)
    tbuf = np.full((height, width), np.inf)
    owner = np.full((height, width), -1, np.int32)
    for i, prim in enumerate(primitives):
        win = _screen_window(prim, K, height, width)
        if win is None:
            continue
        v0, v1, u0, u1 = win
        d = rays[v0:v1, u0:u1].reshape(-1, 3)
        t = prim.hit(d, sq[v0:v1, u0:u1].ravel()).reshape(v1 - v0, u1 - u0)
        tb = tbuf[v0:v1, u0:u1]
        closer = t < tb
        tb[closer] = t[closer]
        owner[v0:v1, u0:u1][closer] = i
    rgb = np.zeros((height, width, 3), np.uint8) if background is None else np.array(background, np.uint8)
    labels = np.zeros((height, width), np.uint8)
    normal_map = np.zeros((height, width, 3), np.float32) if normals else None
    hit_pixels = owner >= 0
    if hit_pixels.any():
        idx = np.flatnonzero(hit_pixels)
        own = owner.ravel()[idx]
        order = np.argsort(own, kind="stable")
        idx, own = idx[order], own[order]
        starts = np.flatnonzero(np.r_[True, own[1:] != own[:-1]])
        ends = np.r_[starts[1:], len(own)]
        flat_rgb = rgb.reshape(-1, 3)
        flat_lab = labels.ravel()
        flat_rays = rays.reshape(-1, 3)
        flat_t = tbuf.ravel()
        for s, e in zip(starts, ends):
            prim = primitives[own[s]]
            pix = idx[s:e]
            p = flat_rays[pix] * flat_t[pix, None]
            n, local = prim.surface(p)
            lam = AMBIENT + DIFFUSE * np.clip(n @ LIGHT_DIR, 0.0, None)
            flat_rgb[pix] = np.clip(np.rint(prim.albedo(local) * lam[:, None]), 0, 255).astype(np.uint8)
            flat_lab[pix] = prim.label
            if normal_map is not None:
                normal_map.reshape(-1, 3)[pix] = n
    depth = (tbuf * rays[..., 2]).astype(np.float32)
    depth[~hit_pixels] = np.inf
    if normal_map is not None:
        return rgb, depth, labels, normal_map
    return rgb, depth, labels


#: Bone radii (metres) of the joint-based hand proxy, per finger (thumb, index, middle, ring, little).
FINGER_RADII = (0.0095, 0.0085, 0.0085, 0.008, 0.007)
PALM_RADIUS = 0.012


#: Skin texture of the hand proxy: relative contrast and period (metres) of an egg-crate pattern
#: in bone-attached coordinates, so point trackers find detail on the hand.
SKIN_CONTRAST = 0.12
SKIN_PERIOD = 0.006


def skin_texture(color, contrast: float = SKIN_CONTRAST, period: float = SKIN_PERIOD) -> Texture:
    """``color * (1 + contrast * sin(2 pi x / period) * sin(2 pi y / period))`` on capsule coordinates."""
    base = np.asarray(color, np.float64)
    k = 2.0 * np.pi / period

    def tex(local: np.ndarray) -> np.ndarray:
        f = 1.0 + contrast * np.sin(k * local[:, 0]) * np.sin(k * local[:, 1])
        return base[None] * f[:, None]

    return tex


def hand_primitives(joints_3d: np.ndarray, label: int = HAND_LABEL, color=(224, 172, 140),
                    scale: float = 1.0, textured: bool = True) -> list[Primitive]:
    """A joint-based hand proxy (no MANO): bone capsules, palm capsules and joint spheres.

    ``joints_3d``: [21, 3] camera frame, DexYCB order. 20 finger bones (:data:`LIMBS`; the four
    wrist-to-MCP bones and the thumb base use the palm radius), 3 capsules across the knuckles
    (5-9, 9-13, 13-17) and 21 joint spheres slightly darker than the skin: 44 primitives.
    ``textured``: bones carry :func:`skin_texture`, attached to the palm normal so it moves with
    the hand. Missing (non-finite) joints -> no primitives.
    """
    j = np.asarray(joints_3d, np.float64)
    if j.shape != (21, 3):
        raise ArgumentError(f"joints_3d must be [21,3], got {j.shape}")
    if not np.isfinite(j).all():
        return []
    col = tuple(float(c) for c in color)
    dark = tuple(0.85 * c for c in col)
    palm_normal = np.cross(j[5] - j[0], j[17] - j[0])
    ref = palm_normal if np.linalg.norm(palm_normal) > 1e-9 else None
    tex = skin_texture(col) if textured else None
    prims: list[Primitive] = []
    for n, (a, b) in enumerate(LIMBS):
        r = PALM_RADIUS if a == 0 else FINGER_RADII[n // 4]
        prims.append(Capsule(label=label, color=col, texture=tex, a=j[a], b=j[b], radius=r * scale, ref=ref))
    for a, b in ((5, 9), (9, 13), (13, 17)):
        prims.append(Capsule(label=label, color=col, texture=tex, a=j[a], b=j[b], radius=0.01 * scale, ref=ref))
    for n in range(21):
        r = PALM_RADIUS if n == 0 else FINGER_RADII[max(n - 1, 0) // 4] * 1.08
        prims.append(Sphere(label=label, color=dark, center=j[n], radius=r * scale))
    return prims
