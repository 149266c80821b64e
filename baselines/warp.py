"""``cond-warp``: the GT first frame warped along the motion of the condition videos (weight-free).

A classical image-to-video reference that every learned method should beat:

1. Motion source: a grey composite of condition videos (``sources``, default the seg condition only:
   on the DexYCB sample its region boundaries gave flow closer to the GT's than the seg+keypoint+depth
   mean did; the thin skeleton lines and depth colour bands add noise). Foreground = composite pixels
   brighter than ``fg_threshold``.
2. Flow: OpenCV DIS optical flow (preset ``medium`` by default) from composite frame t to t-1, i.e. for
   every pixel of frame t where it was in frame t-1 (backward flow, ready for ``cv2.remap``). Flow
   shorter than ``min_flow`` px (1.0) is set to 0 so that still parts stay exactly still.
3. Accumulation: a coordinate map into the FIRST frame is composed frame by frame,
   ``map_t(x) = map_{t-1}(x + flow_t(x))``, so every output frame samples the first frame once
   (no blur build-up from re-warping warped frames). Flow is zeroed where frame t is background.
4. Fill: background pixels of frame t (no condition there) show a background plate: the first frame,
   with its own foreground region (dilated by ``fill_dilate`` px) inpainted by ``cv2.inpaint``
   (Telea, radius ``inpaint_radius``), so areas a hand uncovers get a plausible fill instead of a hand ghost.
   Foreground pixels that newly appear sample wherever their flow leads (a documented limitation).
"""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from pam_bench.types import Generator, Sample, Video

from ._common import target_shape

#: OpenCV's DIS presets by name (values of cv2.DISOPTICAL_FLOW_PRESET_*).
DIS_PRESETS = {"ultrafast": 0, "fast": 1, "medium": 2}


def condition_composite(sample: Sample, size: tuple[int, int], frames: int,
                        sources: tuple[str, ...] = ("seg",)) -> np.ndarray:
    """uint8 [T, H, W]: mean of the grey condition frames named in ``sources`` (resized to ``size``)."""
    import cv2

    from ._common import resize_video

    greys = []
    for name in sources:
        v = sample.conditions.get(name)
        if v is None:
            continue
        fr = resize_video(v.frames[:frames], size)
        greys.append(np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in fr]).astype(np.float32))
    if not greys:
        from pam_bench.errors import InputError

        raise InputError(sample.id, f"cond-warp needs the condition video(s) {', '.join(sources)}")
    return np.clip(np.mean(greys, axis=0), 0, 255).astype(np.uint8)


def accumulate_maps(composite: np.ndarray, preset: str = "medium", fg_threshold: int = 8,
                    min_flow: float = 1.0) -> np.ndarray:
    """float32 [T, H, W, 2]: for every frame, where each pixel comes from in frame 0 (x, y)."""
    import cv2

    t, h, w = composite.shape
    dis = cv2.DISOpticalFlow_create(DIS_PRESETS[preset])
    grid = np.stack(np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32)), axis=-1)
    maps = np.empty((t, h, w, 2), dtype=np.float32)
    maps[0] = grid
    for i in range(1, t):
        flow = dis.calc(composite[i], composite[i - 1], None)  # frame i -> frame i-1
        fg = composite[i] > fg_threshold
        flow[~fg] = 0.0
        flow[np.linalg.norm(flow, axis=-1) < min_flow] = 0.0  # codec noise: keep still parts exactly still
        src = grid + flow
        prev = maps[i - 1]
        maps[i, ..., 0] = cv2.remap(prev[..., 0], src[..., 0], src[..., 1], cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_REPLICATE)
        maps[i, ..., 1] = cv2.remap(prev[..., 1], src[..., 0], src[..., 1], cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_REPLICATE)
    return maps


def background_plate(first: np.ndarray, fg0: np.ndarray, dilate: int, radius: float) -> np.ndarray:
    """The first frame with its (dilated) foreground inpainted (Telea)."""
    import cv2

    mask = fg0.astype(np.uint8) * 255
    if dilate > 0:
        mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * dilate + 1, 2 * dilate + 1)))
    if not mask.any():
        return first.copy()
    return cv2.inpaint(first, mask, radius, cv2.INPAINT_TELEA)


def warp_first_frame(first: np.ndarray, composite: np.ndarray, preset: str = "medium", fg_threshold: int = 8,
                     fill_dilate: int = 5, inpaint_radius: float = 5.0, min_flow: float = 1.0) -> np.ndarray:
    """uint8 [T, H, W, 3]: ``first`` carried along the composite's motion (see the module docstring)."""
    import cv2

    maps = accumulate_maps(composite, preset, fg_threshold, min_flow)
    fg = composite > fg_threshold
    plate = background_plate(first, fg[0], fill_dilate, inpaint_radius)
    out = np.empty((composite.shape[0],) + first.shape, dtype=np.uint8)
    out[0] = first
    for i in range(1, len(out)):
        warped = cv2.remap(first, maps[i, ..., 0], maps[i, ..., 1], cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE)
        out[i] = np.where(fg[i][..., None], warped, plate)
    return out


class CondWarp(Generator):
    """The GT first frame warped along DIS optical flow of the condition videos (no weights)."""

    name: ClassVar[str] = "cond-warp"
    needs: ClassVar[tuple[str, ...]] = ("first_frame", "conditions")
    VERSION: ClassVar[str] = "1"

    def __init__(self, device: str = "cpu", checkpoint=None, preset: str = "medium", fg_threshold: int = 8,
                 fill_dilate: int = 5, inpaint_radius: float = 5.0, min_flow: float = 1.0,
                 sources: str = "seg", **options: Any):
        from pam_bench.errors import InputError, OptionError
        from pam_bench.options import choice, integer, real

        if checkpoint is not None:
            raise InputError(checkpoint, "cond-warp is weight-free and takes no checkpoint")
        choice("cond-warp", "preset", preset, tuple(DIS_PRESETS))  # DIS presets
        if options:
            raise OptionError("cond-warp", ", ".join(sorted(options)), "unknown -o option(s) of method cond-warp")
        self.device = device  # unused: classical CPU method
        self.preset = preset
        self.fg_threshold = integer("cond-warp", "fg_threshold", fg_threshold)
        self.fill_dilate = integer("cond-warp", "fill_dilate", fill_dilate, 0)
        self.inpaint_radius = real("cond-warp", "inpaint_radius", inpaint_radius)
        self.min_flow = real("cond-warp", "min_flow", min_flow)
        self.sources = tuple(x for x in str(sources).replace("+", ",").split(",") if x)
        bad = [x for x in self.sources if x not in ("seg", "hand", "depth")]
        if bad or not self.sources:
            raise OptionError("cond-warp", "sources",
                              f"unknown condition(s) {bad}; use a comma list of seg, hand, depth")

    def check_ready(self) -> None:
        from pam_bench.errors import require_packages

        require_packages("cv2", how="pip install opencv-contrib-python")

    def identity(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.VERSION, "weights": None, "native_resolution": "protocol",
                "native_frames": "any", "steps": None, "guidance": None, "seed_policy": "deterministic (seed unused)",
                "flow": f"opencv DIS preset {self.preset}, backward (t -> t-1), composed into a map to frame 0",
                "motion_source": "mean grey of the condition frames: " + "+".join(self.sources),
                "fg_threshold": self.fg_threshold, "min_flow_px": self.min_flow,
                "fill": "background plate: first frame with its foreground "
                f"(dilated {self.fill_dilate}px) inpainted by cv2.inpaint Telea r={self.inpaint_radius}"}

    def seed_ignored(self) -> str:
        return "classical optical flow is deterministic"

    def generate(self, sample: Sample, seed: int) -> Video:
        t, h, w = target_shape(sample)
        comp = condition_composite(sample, (h, w), t, self.sources)
        frames = warp_first_frame(sample.first_frame, comp, self.preset, self.fg_threshold, self.fill_dilate,
                                  self.inpaint_radius, self.min_flow)
        fps = sample.video.fps if sample.video is not None else next(iter(sample.conditions.values())).fps
        return Video(frames, fps)

