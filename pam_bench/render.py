"""PAM's condition conventions (seg / keypoints / depth) and a small numpy scene rasteriser.

Everything here works on numpy arrays in the house pixel convention (uint8 RGB, H x W x 3).
Facts follow PAM's ``training/hoi_utils.py`` and ``training/dataset.py`` (see
/work/shared/docs/datasets.md, "PAM's clip protocol"):

- **seg**: instance labels -> ADE20K palette: background 0 -> black, hand 255 -> palette[149]
  = (92, 0, 255), object id k -> palette[k] (1 -> (180, 120, 120)). PAM feeds these arrays to the
  model as RGB tensors without any channel swap, so the triples are RGB. Known disagreement:
  the released sample ``val_seg_mask.mp4`` shows the hand near (184, 0, 255) (= palette[107]),
  not palette[149] = (92, 0, 255); we follow the code (tests/test_render.py records this).
- **hand**: PAM's ``showHandJoints`` drawing rules on a black canvas (see :func:`keypoint_condition`).
  The colour triples are used as RGB (no BGR swap in PAM's training loader). The sample
  ``val_hand_keypoints.mp4`` is smeared by chroma subsampling of its thin lines (median RGB
  distance to the code's colours about 57; 86 if the channels were swapped, so RGB fits better).
- **depth**: PAM uses DepthCrafter videos (relative inverse depth, normalised per video and coloured
  with the *inferno* colour map; the sample ``val_depth.mp4`` matches inferno to a median 7/255) and
  sets the background (seg == 0) to black. Offline we colour the depth we have the same way
  (see :func:`depth_condition`).

The rasteriser (:func:`render_scene`) ray-casts spheres, capsules, boxes and cylinders against a
pinhole camera with a z-buffer, vectorised per primitive over its projected bounding rectangle.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np

from .types import PROTOCOL_FPS, Video

#: Label conventions (DexYCB): 0 background, 1..21 YCB object ids, 255 hand.
BACKGROUND_LABEL = 0
HAND_LABEL = 255
#: Palette row used for the hand label (PAM maps 255 -> 149).
HAND_PALETTE_INDEX = 149

# fmt: off
#: The 150-colour ADE20K palette (RGB), in PAM's ``CLASS_PROTOCAL`` order (PAM appends black as
#: entry 150 for the background).
ADE20K_PALETTE: np.ndarray = np.array([
    (120, 120, 120), (180, 120, 120), (6, 230, 230), (80, 50, 50), (4, 200, 3), (120, 120, 80),
    (140, 140, 140), (204, 5, 255), (230, 230, 230), (4, 250, 7), (224, 5, 255), (235, 255, 7),
    (150, 5, 61), (120, 120, 70), (8, 255, 51), (255, 6, 82), (143, 255, 140), (204, 255, 4),
    (255, 51, 7), (204, 70, 3), (0, 102, 200), (61, 230, 250), (255, 6, 51), (11, 102, 255),
    (255, 7, 71), (255, 9, 224), (9, 7, 230), (220, 220, 220), (255, 9, 92), (112, 9, 255),
    (8, 255, 214), (7, 255, 224), (255, 184, 6), (10, 255, 71), (255, 41, 10), (7, 255, 255),
    (224, 255, 8), (102, 8, 255), (255, 61, 6), (255, 194, 7), (255, 122, 8), (0, 255, 20),
    (255, 8, 41), (255, 5, 153), (6, 51, 255), (235, 12, 255), (160, 150, 20), (0, 163, 255),
    (140, 140, 140), (250, 10, 15), (20, 255, 0), (31, 255, 0), (255, 31, 0), (255, 224, 0),
    (153, 255, 0), (0, 0, 255), (255, 71, 0), (0, 235, 255), (0, 173, 255), (31, 0, 255),
    (11, 200, 200), (255, 82, 0), (0, 255, 245), (0, 61, 255), (0, 255, 112), (0, 255, 133),
    (255, 0, 0), (255, 163, 0), (255, 102, 0), (194, 255, 0), (0, 143, 255), (51, 255, 0),
    (0, 82, 255), (0, 255, 41), (0, 255, 173), (10, 0, 255), (173, 255, 0), (0, 255, 153),
    (255, 92, 0), (255, 0, 255), (255, 0, 245), (255, 0, 102), (255, 173, 0), (255, 0, 20),
    (255, 184, 184), (0, 31, 255), (0, 255, 61), (0, 71, 255), (255, 0, 204), (0, 255, 194),
    (0, 255, 82), (0, 10, 255), (0, 112, 255), (51, 0, 255), (0, 194, 255), (0, 122, 255),
    (0, 255, 163), (255, 153, 0), (0, 255, 10), (255, 112, 0), (143, 255, 0), (82, 0, 255),
    (163, 255, 0), (255, 235, 0), (8, 184, 170), (133, 0, 255), (0, 255, 92), (184, 0, 255),
    (255, 0, 31), (0, 184, 255), (0, 214, 255), (255, 0, 112), (92, 255, 0), (0, 224, 255),
    (112, 224, 255), (70, 184, 160), (163, 0, 255), (153, 0, 255), (71, 255, 0), (255, 0, 163),
    (255, 204, 0), (255, 0, 143), (0, 255, 235), (133, 255, 0), (255, 0, 235), (245, 0, 255),
    (255, 0, 122), (255, 245, 0), (10, 190, 212), (214, 255, 0), (0, 204, 255), (20, 0, 255),
    (255, 255, 0), (0, 153, 255), (0, 41, 255), (0, 255, 204), (41, 0, 255), (41, 255, 0),
    (173, 0, 255), (0, 245, 255), (71, 0, 255), (122, 0, 255), (0, 255, 184), (0, 92, 255),
    (184, 255, 0), (0, 133, 255), (255, 214, 0), (25, 194, 194), (102, 255, 0), (92, 0, 255),
], dtype=np.uint8)
# fmt: on
ADE20K_PALETTE.setflags(write=False)

# --------------------------------------------------------------------------------------------
# seg condition
# --------------------------------------------------------------------------------------------


def _seg_lut() -> np.ndarray:
    """256-entry label -> RGB table: 0 black, 1..149 palette[k], 255 palette[149]; others unmapped."""
    lut = np.zeros((256, 3), np.uint8)
    lut[1:150] = ADE20K_PALETTE[1:150]
    lut[HAND_LABEL] = ADE20K_PALETTE[HAND_PALETTE_INDEX]
    return lut


_SEG_LUT = _seg_lut()


def seg_condition(labels: np.ndarray) -> np.ndarray:
    """Instance labels [..., H, W] -> PAM's seg colours uint8 [..., H, W, 3].

    0 (background) -> black, 255 (hand) -> palette[149] = (92, 0, 255), object id k in 1..149 ->
    palette[k]. Works on one frame or a whole clip. Labels 150..254 have no colour in PAM's table
    (its lookup would fail) and raise ValueError.
    """
    import cv2

    lab = np.asarray(labels)
    if lab.dtype.kind not in "iub":
        raise ValueError(f"seg labels must be integers, got {lab.dtype}")
    if lab.dtype != np.uint8:
        if lab.size and (lab.min() < 0 or lab.max() > 255):
            raise ValueError("seg labels must be 0, 1..149 or 255; found values outside 0..255")
        lab = lab.astype(np.uint8)
    frames = lab.reshape((-1,) + lab.shape[-2:]) if lab.ndim >= 2 else lab.reshape(1, 1, -1)
    lut = _SEG_LUT.reshape(256, 1, 3)
    out = np.empty(frames.shape + (3,), np.uint8)
    for i, f in enumerate(frames):
        f = np.ascontiguousarray(f)
        if cv2.countNonZero(cv2.inRange(f, 150, 254)):
            raise ValueError("seg labels must be 0, 1..149 or 255; found labels in 150..254")
        out[i] = cv2.LUT(cv2.merge([f, f, f]), lut)
    return out.reshape(lab.shape + (3,))


# --------------------------------------------------------------------------------------------
# keypoint (hand skeleton) condition
# --------------------------------------------------------------------------------------------

#: PAM's per-finger base colours (RGB as fed to the model); colour of item ``n`` (joint or limb
#: index) is ``FINGER_BASE_COLORS[n // 4] + 35 * (n % 4)``, saturated at 255 like OpenCV does.
FINGER_BASE_COLORS = np.array([(139, 53, 255), (0, 56, 255), (43, 140, 237), (37, 168, 36),
                               (147, 147, 0), (70, 17, 145)], dtype=np.int64)
#: Bones in PAM's drawing order: thumb 0-1-2-3-4, index 0-5-6-7-8, middle, ring, little.
LIMBS: tuple[tuple[int, int], ...] = tuple(
    pair for f in range(5) for pair in zip((0, 1 + 4 * f, 2 + 4 * f, 3 + 4 * f), range(1 + 4 * f, 5 + 4 * f)))
JOINT_RADIUS = 3
THUMB_HALF_WIDTH = 6
LIMB_HALF_WIDTH = 3
LIMB_MIN_LENGTH = 5.0  # exclusive
LIMB_MAX_LENGTH = 150.0  # exclusive


def code_color(n: int) -> tuple[int, int, int]:
    """PAM's colour for joint or limb number ``n``: base[n // 4] + 35 * (n % 4), clipped to 255."""
    c = np.clip(FINGER_BASE_COLORS[n // 4] + 35 * (n % 4), 0, 255)
    return int(c[0]), int(c[1]), int(c[2])


def _draw_hand(img: np.ndarray, joints: np.ndarray, reverse: bool) -> None:
    """Draw one 21-joint hand like PAM's ``showHandJoints`` (joints first, limbs on top)."""
    import cv2

    g = np.round(joints).astype(np.int64)
    for n in range(21):
        cv2.circle(img, (int(g[n, 0]), int(g[n, 1])), JOINT_RADIUS, code_color(n), thickness=-1)
    order = range(len(LIMBS) - 1, -1, -1) if reverse else range(len(LIMBS))
    for n in order:
        a, b = LIMBS[n]
        (xa, ya), (xb, yb) = (int(v) for v in g[a]), (int(v) for v in g[b])
        length = float(np.hypot(xa - xb, ya - yb))
        if not LIMB_MIN_LENGTH < length < LIMB_MAX_LENGTH:
            continue
        angle = int(np.degrees(np.arctan2(ya - yb, xa - xb)))  # int() truncates, as PAM does
        half_width = THUMB_HALF_WIDTH if n < 4 else LIMB_HALF_WIDTH
        poly = cv2.ellipse2Poly((int((xa + xb) / 2), int((ya + yb) / 2)), (int(length / 2), half_width),
                                angle, 0, 360, 1)
        cv2.fillConvexPoly(img, poly, code_color(n))


def nearest_resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize with source index floor(dst * src / dst_size) (torch 'nearest')."""
    h0, w0 = image.shape[:2]
    if (h0, w0) == (height, width):
        return image
    rows = (np.arange(height) * h0) // height
    cols = (np.arange(width) * w0) // width
    return np.take(np.take(image, rows, axis=0), cols, axis=1)


def _per_hand(value, k: int) -> list[float | None]:
    if value is None:
        return [None] * k
    arr = np.atleast_1d(np.asarray(value, dtype=np.float64))
    if arr.size != k:
        raise ValueError(f"expected {k} z value(s), one per hand, got {arr.size}")
    return [None if not np.isfinite(v) else float(v) for v in arr]


def keypoint_condition(joints_2d: np.ndarray, height: int, width: int, wrist_z=None, last_z=None,
                       canvas_size: tuple[int, int] | None = None) -> np.ndarray:
    """PAM's hand-skeleton condition: uint8 [height, width, 3], black background.

    ``joints_2d``: [K, 21, 2] (or [21, 2]) pixel coordinates (x, y) in the output resolution.
    Rules (PAM ``showHandJoints``): joints rounded to integers; every joint a filled circle of
    radius 3 in ``code_color(n)``; then each limb ``n`` (order :data:`LIMBS`) a filled ellipse
    (``cv2.ellipse2Poly`` centre = mean of its end points, half-axes (int(length/2), 6 for the
    thumb's four limbs, 3 otherwise), angle int(atan2 deg), 1 degree steps) in ``code_color(n)``,
    only when 5 < length < 150 px. The limb order is reversed when ``wrist_z < last_z``
    (joint 0 vs joint 20 camera z; one value per hand, or None for no reversal).

    A hand with any NaN joint draws nothing (PAM draws DexYCB's -1 placeholders as a speck in
    the corner; we treat missing as missing). ``canvas_size=(h, w)``: draw on an h x w canvas
    (joints scaled from the output size) and nearest-resize to the output, as PAM does when
    it draws on DexYCB's 480 x 640 frames and stretches to 480 x 720.
    """
    j = np.asarray(joints_2d, dtype=np.float64)
    if j.ndim == 2:
        j = j[None]
    if j.ndim != 3 or j.shape[1:] != (21, 2):
        raise ValueError(f"joints_2d must be [K,21,2], got {j.shape}")
    ch, cw = canvas_size if canvas_size is not None else (height, width)
    j = j * np.array([cw / width, ch / height])
    img = np.zeros((ch, cw, 3), np.uint8)
    wz, lz = _per_hand(wrist_z, len(j)), _per_hand(last_z, len(j))
    for k in range(len(j)):
        if not np.isfinite(j[k]).all():
            continue
        reverse = wz[k] is not None and lz[k] is not None and wz[k] < lz[k]
        _draw_hand(img, j[k], reverse)
    return nearest_resize(img, height, width)


# --------------------------------------------------------------------------------------------
# depth condition
# --------------------------------------------------------------------------------------------

#: Lowest inferno position used for the farthest foreground pixel, so foreground never looks
#: like the black background (DepthCrafter's per-video normalisation puts hand and object in
#: about 0.18..0.93 of the map in PAM's sample).
DEPTH_FLOOR = 0.2


def inferno_lut() -> np.ndarray:
    """The inferno colour map as uint8 [256, 3] RGB (OpenCV's table)."""
    global _INFERNO
    if _INFERNO is None:
        import cv2

        ramp = np.arange(256, dtype=np.uint8)[:, None]
        _INFERNO = np.ascontiguousarray(cv2.applyColorMap(ramp, cv2.COLORMAP_INFERNO)[:, 0, ::-1])
        _INFERNO.setflags(write=False)
    return _INFERNO


_INFERNO: np.ndarray | None = None


def depth_range(depth: np.ndarray, mask: np.ndarray) -> tuple[float, float] | None:
    """(near, far): min and max of the valid (finite, > 0) depth inside ``mask``; None if empty."""
    d = np.asarray(depth, dtype=np.float64)
    valid = np.asarray(mask, bool) & np.isfinite(d) & (d > 0)
    if not valid.any():
        return None
    z = d[valid]
    return float(z.min()), float(z.max())


def depth_condition(depth: np.ndarray, mask: np.ndarray, near: float | None = None,
                    far: float | None = None) -> np.ndarray:
    """Depth -> PAM-style coloured depth uint8 [H, W, 3]; black outside ``mask``.

    Normalisation (documented choice; DepthCrafter's output is relative inverse depth):
    ``v = (1/z - 1/far) / (1/near - 1/far)`` clipped to [0, 1], so the nearest foreground pixel
    is 1 and the farthest 0; the colour is ``inferno[round(255 * (DEPTH_FLOOR + (1 - DEPTH_FLOOR) * v))]``
    (near bright). ``near``/``far`` default to the min/max of the valid depth inside the mask of
    this frame; pass clip-wide values for temporally consistent colours. Units cancel (metres or
    millimetres both work, as long as near/far use the same unit). Pixels outside the mask, or
    with depth <= 0 / non-finite, are black (PAM sets the background to -1 = black).
    """
    d = np.asarray(depth, dtype=np.float64)
    m = np.asarray(mask, bool)
    if d.shape != m.shape or d.ndim != 2:
        raise ValueError(f"depth {d.shape} and mask {m.shape} must be the same [H,W]")
    out = np.zeros(d.shape + (3,), np.uint8)
    with np.errstate(invalid="ignore"):
        valid = m & np.isfinite(d) & (d > 0)
    if not valid.any():
        return out
    if near is None or far is None:
        lo, hi = depth_range(d, valid)
        near = lo if near is None else near
        far = hi if far is None else far
    near, far = float(near), float(far)
    inv = 1.0 / d[valid]
    span = 1.0 / near - 1.0 / far
    v = np.ones_like(inv) if span <= 0 else np.clip((inv - 1.0 / far) / span, 0.0, 1.0)
    idx = np.rint(255.0 * (DEPTH_FLOOR + (1.0 - DEPTH_FLOOR) * v)).astype(np.intp)
    out[valid] = inferno_lut()[idx]
    return out


def _inferno_inverse() -> np.ndarray:
    """32x32x32 quantised RGB -> nearest inferno position in [0, 1] (for reading depth colours)."""
    global _INFERNO_INV
    if _INFERNO_INV is None:
        q = (np.arange(32) * 8 + 4).astype(np.float32)
        grid = np.stack(np.meshgrid(q, q, q, indexing="ij"), -1).reshape(-1, 1, 3)
        lut = inferno_lut().astype(np.float32)[None]
        best = np.empty(grid.shape[0], np.float32)
        for s in range(0, grid.shape[0], 4096):  # chunks keep memory small
            best[s:s + 4096] = ((grid[s:s + 4096] - lut) ** 2).sum(-1).argmin(1) / 255.0
        _INFERNO_INV = best.reshape(32, 32, 32)
    return _INFERNO_INV


_INFERNO_INV: np.ndarray | None = None


def depth_position(depth_rgb: np.ndarray) -> np.ndarray:
    """Read a coloured depth condition back: float32 [..., H, W] normalised inverse depth ``v`` of
    :func:`depth_condition` (1 = nearest, 0 = farthest foreground), NaN on the black background.
    Uses a 32^3 quantised inverse of the inferno map, so compressed videos read back to ~1/50."""
    d = np.asarray(depth_rgb, np.uint8)
    q = d >> 3
    pos = _inferno_inverse()[q[..., 0], q[..., 1], q[..., 2]]
    v = np.clip((pos - DEPTH_FLOOR) / (1.0 - DEPTH_FLOOR), 0.0, 1.0).astype(np.float32)
    v[d.max(-1) <= 16] = np.nan
    return v

#: Darkest shade factor :func:`composite` applies (farthest foreground).
COMPOSITE_MIN_SHADE = 0.35


def composite(conditions: Mapping[str, np.ndarray]) -> np.ndarray:
    """What the ``sim-render`` method shows: one uint8 [H, W, 3] frame from the conditions.

    The seg colours, multiplied by a depth shade, with the hand skeleton drawn on top:
    ``shade = COMPOSITE_MIN_SHADE + (1 - COMPOSITE_MIN_SHADE) * v`` where ``v`` in [0, 1] is the
    normalised inverse depth of :func:`depth_condition` (1 = nearest), read back from the
    inferno colour through a 32^3 quantised inverse table (so it tolerates video compression);
    pixels without depth colour keep shade 1. Non-black skeleton pixels replace what is under
    them. Background stays black.
    Needs ``seg``; ``depth`` and ``hand`` are optional.
    """
    if "seg" not in conditions:
        raise ValueError(f"composite needs a 'seg' condition, got {sorted(conditions)}")
    seg = np.asarray(conditions["seg"], np.uint8)
    shade = np.ones(seg.shape[:2], np.float32)
    depth = conditions.get("depth")
    if depth is not None:
        depth = np.asarray(depth, np.uint8)
        if depth.shape != seg.shape:
            raise ValueError(f"depth {depth.shape} and seg {seg.shape} differ in size")
        v = depth_position(depth)
        has = np.isfinite(v)
        shade[has] = COMPOSITE_MIN_SHADE + (1.0 - COMPOSITE_MIN_SHADE) * v[has]
    out = np.clip(np.rint(seg * shade[..., None]), 0, 255).astype(np.uint8)
    hand = conditions.get("hand")
    if hand is not None:
        hand = np.asarray(hand, np.uint8)
        if hand.shape != seg.shape:
            raise ValueError(f"hand {hand.shape} and seg {seg.shape} differ in size")
        drawn = hand.max(-1) > 16
        out[drawn] = hand[drawn]
    return out


def render_pam_conditions(labels: np.ndarray, depth: np.ndarray | None, joints_2d: np.ndarray,
                          joints_3d: np.ndarray | None = None, fps: float = PROTOCOL_FPS,
                          keypoint_canvas: tuple[int, int] | None = None,
                          near: float | None = None, far: float | None = None) -> dict[str, Video]:
    """Whole-clip conditions in PAM's conventions: ``{'depth', 'seg', 'hand'} -> Video``.

    ``labels`` [T, H, W] ints (0 bg, 255 hand, k object); ``depth`` [T, H, W] (None: no 'depth'
    entry); ``joints_2d`` [T, K, 21, 2] px; ``joints_3d`` [T, K, 21, 3] (for the limb draw order;
    None: never reversed). Depth is masked with ``labels > 0`` and normalised with one near/far
    for the whole clip (DepthCrafter normalises per video), unless given.
    ``keypoint_canvas``: see :func:`keypoint_condition` ``canvas_size``.
    """
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise ValueError(f"labels must be [T,H,W], got {labels.shape}")
    t, h, w = labels.shape
    j2 = np.asarray(joints_2d, dtype=np.float64)
    if j2.ndim != 4 or j2.shape[0] != t or j2.shape[2:] != (21, 2):
        raise ValueError(f"joints_2d must be [T={t},K,21,2], got {j2.shape}")
    out = {"seg": Video(seg_condition(labels), fps)}
    if depth is not None:
        depth = np.asarray(depth)
        if depth.shape != labels.shape:
            raise ValueError(f"depth {depth.shape} and labels {labels.shape} differ")
        mask = labels > 0
        rng = depth_range(depth, mask) or (1.0, 1.0)
        near = rng[0] if near is None else near
        far = rng[1] if far is None else far
        out["depth"] = Video(np.stack([depth_condition(depth[i], mask[i], near, far) for i in range(t)]), fps)
    hands = []
    for i in range(t):
        wz = lz = None
        if joints_3d is not None:
            wz, lz = joints_3d[i, :, 0, 2], joints_3d[i, :, -1, 2]
        hands.append(keypoint_condition(j2[i], h, w, wz, lz, canvas_size=keypoint_canvas))
    out["hand"] = Video(np.stack(hands), fps)
    return {k: out[k] for k in ("depth", "seg", "hand") if k in out}


# --------------------------------------------------------------------------------------------
# scene rasteriser (numpy ray casting, z-buffer, Lambert shading)
# --------------------------------------------------------------------------------------------

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


def camera_rays(K: np.ndarray, height: int, width: int) -> np.ndarray:
    """Ray directions [H, W, 3] = K^-1 [u, v, 1] (pixel centres at integer coordinates)."""
    u, v = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    pix = np.stack([u, v, np.ones_like(u)], -1)
    return pix @ np.linalg.inv(np.asarray(K, np.float64)).T


def project(points: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Pinhole projection of camera-frame points [..., 3] -> pixels [..., 2]."""
    p = np.asarray(points, np.float64) @ np.asarray(K, np.float64).T
    return p[..., :2] / p[..., 2:3]


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
        raise ValueError(f"joints_3d must be [21,3], got {j.shape}")
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
