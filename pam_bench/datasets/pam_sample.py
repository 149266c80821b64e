"""PAM's shipped sample clips (``val_resources`` of the official repository), read as they are.

A sample folder holds one clip: ``val_image.png`` or ``.jpg`` (the first frame), the condition videos
``val_seg_mask.mp4``, ``val_hand.mp4`` or ``val_hand_keypoints.mp4``, ``val_depth.mp4``, and for DexYCB also
``val_video.mp4`` (the GT clip). OAKINK2's sample ships no GT video: its one clip (id ``val``) has the first
frame and the conditions only, so a method can generate from it, but no metric can be computed
(``Split.protocol['reference'] == 'none'``; ``evaluate`` then takes ``--metrics none``). Frames follow the
protocol: PAM's frame rule to 49 frames, bilinear to 480x720 (as PAM's OAKINK2 loader), depth black where the seg
video is black (PAM's mask_conditions). ``--dataset oakink2 --root`` such a folder reads it this way.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from ..types import PROTOCOL_FPS, Sample, Split, Video
from . import _common as C

FIRST_FRAME = ("val_image.png", "val_image.jpg")
CONDITIONS = (("seg", ("val_seg_mask.mp4",)), ("hand", ("val_hand.mp4", "val_hand_keypoints.mp4")),
              ("depth", ("val_depth.mp4",)))
GT_VIDEO = "val_video.mp4"
SEG_BLACK_MAX = 19  # PAM's mask_conditions: pixel <= 19 in every channel is black
SAMPLE_ID = "val"


def is_sample(root: Path) -> bool:
    """True when ``root`` is a PAM sample folder (a first frame and at least one condition video)."""
    root = Path(root)
    return any((root / f).is_file() for f in FIRST_FRAME) and any(
        (root / n).is_file() for _, names in CONDITIONS for n in names)


def _first(root: Path, names) -> Path | None:
    return next((root / n for n in names if (root / n).is_file()), None)


class PamSample:
    """The one clip of a PAM sample folder (used by the dataset whose sample it is)."""

    def __init__(self, root: Path, dataset: str):
        self.root, self.dataset = Path(root), dataset

    def split(self, name: str) -> Split:
        from ..weights import sha256_file

        files = sorted(p for p in self.root.iterdir() if p.name.startswith("val_") and p.is_file())
        has_gt = (self.root / GT_VIDEO).is_file()
        protocol = {"layout": "pam-sample", "files_sha256": {p.name: sha256_file(p) for p in files},
                    "reference": "gt video" if has_gt else "none"}
        return Split(self.dataset, name, (SAMPLE_ID,), protocol)

    def load(self, sample_id: str) -> Sample:
        from ..video import read_video

        if sample_id != SAMPLE_ID:
            raise InputError(sample_id, f"is not a clip of the PAM sample at {self.root} (its only clip is 'val')")
        first = C.read_rgb(_first(self.root, FIRST_FRAME))
        conditions: dict[str, Video] = {}
        for name, names in CONDITIONS:
            p = _first(self.root, names)
            if p is not None:
                f = read_video(p).frames
                f = C.take_frames(f, C.pam_frame_indices(f.shape[0], where=p), p)
                conditions[name] = Video(C.resize_rgb(f), PROTOCOL_FPS)
        if "depth" in conditions and "seg" in conditions:
            d = conditions["depth"].frames.copy()
            d[(conditions["seg"].frames <= SEG_BLACK_MAX).all(axis=-1)] = 0
            conditions["depth"] = Video(d, PROTOCOL_FPS)
        video = None
        meta = {"dataset": self.dataset, "layout": "pam-sample", "root": str(self.root),
                "first_frame": C.resize_rgb(first[None])[0]}
        if (self.root / GT_VIDEO).is_file():
            v = read_video(self.root / GT_VIDEO).frames
            video = Video(C.resize_rgb(C.take_frames(v, C.pam_frame_indices(v.shape[0], where=self.root / GT_VIDEO),
                                                     self.root / GT_VIDEO)), PROTOCOL_FPS)
            meta["first_frame"] = video.frames[0]
        else:
            meta["reference"] = "none: PAM's sample ships no GT video, so no metric can be computed"
        return Sample(id=SAMPLE_ID, video=video, conditions=conditions, meta=meta)
