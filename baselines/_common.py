"""Helpers shared by the baselines (light: numpy + cv2 only, imported lazily).

- ``hand_masks``: the binary hand-mask video every hand-conditioned baseline needs.
- ``condition_frames``: how many frames and which size a generated video must have.
- ``resize_video``: the one resize used to go to / from a model's native resolution.
"""
from __future__ import annotations

import numpy as np

from pam_bench.errors import InputError
from pam_bench.types import Sample

#: Hand colours in the seg condition: PAM's code maps label 255 to ADE20K palette index 149
#: (92, 0, 255); the released DexYCB sample video shows about (185, 0, 255). Both are accepted.
HAND_COLOURS = ((92, 0, 255), (185, 0, 255))
#: Max per-channel distance to a hand colour (video compression noise). DexYCB objects 7 and 10 are
#: (204, 5, 255) and (224, 5, 255) in the same palette, 19+ away: a wider tolerance would take them.
HAND_COLOUR_TOL = 12


def hand_masks(sample: Sample) -> np.ndarray:
    """Bool [T, H, W]: ``sample.seg == 255`` when labels exist, else hand-coloured pixels of the seg condition."""
    if sample.seg is not None:
        return np.asarray(sample.seg) == 255
    seg = sample.conditions.get("seg")
    if seg is None:
        raise InputError(sample.id, "needs a 'seg' condition video or seg labels to derive the hand mask")
    fr = seg.frames.astype(np.int16)
    out = np.zeros(fr.shape[:3], dtype=bool)
    for c in HAND_COLOURS:
        out |= (np.abs(fr - np.asarray(c, dtype=np.int16)).max(axis=-1) <= HAND_COLOUR_TOL)
    return out


def target_shape(sample: Sample) -> tuple[int, int, int]:
    """(T, H, W) of the video to generate: the conditions' frame count, the first frame's size."""
    if not sample.conditions:
        raise InputError(sample.id, "has no condition videos to drive the generation")
    t = min(v.num_frames for v in sample.conditions.values())
    h, w = sample.first_frame.shape[:2]
    return t, h, w


def resize_video(frames: np.ndarray, size: tuple[int, int], nearest: bool = False) -> np.ndarray:
    """Resize [T, H, W(, C)] frames to (H, W): bilinear (INTER_AREA when shrinking) or nearest."""
    import cv2

    h, w = size
    if frames.shape[1:3] == (h, w):
        return frames
    shrink = h < frames.shape[1] and w < frames.shape[2]
    interp = cv2.INTER_NEAREST if nearest else (cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return np.stack([cv2.resize(f, (w, h), interpolation=interp) for f in frames])


def mask_to_rgb(masks: np.ndarray) -> np.ndarray:
    """Bool [T, H, W] -> uint8 [T, H, W, 3]: white hand on black (CosHand's and InterDyn's mask images)."""
    return np.repeat((masks.astype(np.uint8) * 255)[..., None], 3, axis=-1)
