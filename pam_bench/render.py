"""PAM's condition encodings (seg / keypoints / depth) and their composite.

Everything here works on numpy arrays in the house pixel convention (uint8 RGB, H x W x 3).
Facts follow PAM's ``training/hoi_utils.py`` and ``training/dataset.py`` (its clip protocol):

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

The scenes these encodings are drawn from (the synthetic set, Stage I) are ray-cast by
:mod:`pam_bench.raster`.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from .errors import ArgumentError
from .types import PROTOCOL_FPS, Video

#: Label conventions (DexYCB): 0 background, 1..21 YCB object ids, 255 hand.
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
    (its lookup would fail) and raise ArgumentError (a ValueError).
    """
    import cv2

    lab = np.asarray(labels)
    if lab.dtype.kind not in "iub":
        raise ArgumentError(f"seg labels must be integers, got {lab.dtype}")
    if lab.dtype != np.uint8:
        if lab.size and (lab.min() < 0 or lab.max() > 255):
            raise ArgumentError("seg labels must be 0, 1..149 or 255; found values outside 0..255")
        lab = lab.astype(np.uint8)
    frames = lab.reshape((-1,) + lab.shape[-2:]) if lab.ndim >= 2 else lab.reshape(1, 1, -1)
    lut = _SEG_LUT.reshape(256, 1, 3)
    out = np.empty(frames.shape + (3,), np.uint8)
    for i, f in enumerate(frames):
        f = np.ascontiguousarray(f)
        if cv2.countNonZero(cv2.inRange(f, 150, 254)):
            raise ArgumentError("seg labels must be 0, 1..149 or 255; found labels in 150..254")
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
        raise ArgumentError(f"expected {k} z value(s), one per hand, got {arr.size}")
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
        raise ArgumentError(f"joints_2d must be [K,21,2], got {j.shape}")
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
        raise ArgumentError(f"depth {d.shape} and mask {m.shape} must be the same [H,W]")
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
        raise ArgumentError(f"composite needs a 'seg' condition, got {sorted(conditions)}")
    seg = np.asarray(conditions["seg"], np.uint8)
    shade = np.ones(seg.shape[:2], np.float32)
    depth = conditions.get("depth")
    if depth is not None:
        depth = np.asarray(depth, np.uint8)
        if depth.shape != seg.shape:
            raise ArgumentError(f"depth {depth.shape} and seg {seg.shape} differ in size")
        v = depth_position(depth)
        has = np.isfinite(v)
        shade[has] = COMPOSITE_MIN_SHADE + (1.0 - COMPOSITE_MIN_SHADE) * v[has]
    out = np.clip(np.rint(seg * shade[..., None]), 0, 255).astype(np.uint8)
    hand = conditions.get("hand")
    if hand is not None:
        hand = np.asarray(hand, np.uint8)
        if hand.shape != seg.shape:
            raise ArgumentError(f"hand {hand.shape} and seg {seg.shape} differ in size")
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
        raise ArgumentError(f"labels must be [T,H,W], got {labels.shape}")
    t, h, w = labels.shape
    j2 = np.asarray(joints_2d, dtype=np.float64)
    if j2.ndim != 4 or j2.shape[0] != t or j2.shape[2:] != (21, 2):
        raise ArgumentError(f"joints_2d must be [T={t},K,21,2], got {j2.shape}")
    out = {"seg": Video(seg_condition(labels), fps)}
    if depth is not None:
        depth = np.asarray(depth)
        if depth.shape != labels.shape:
            raise ArgumentError(f"depth {depth.shape} and labels {labels.shape} differ")
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
