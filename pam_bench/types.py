"""Core types. One pixel convention everywhere: uint8 T x H x W x 3 RGB plus fps.

Conversion to model tensors happens only at the edges (inside a generator or a metric).
"""
from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np

from .errors import ArgumentError

#: PAM's evaluation protocol (paper section 4.1, official evaluation script).
PROTOCOL_FRAMES = 49
PROTOCOL_HEIGHT = 480
PROTOCOL_WIDTH = 720
PROTOCOL_FPS = 15.0

#: The condition names, in PAM's order.
CONDITIONS = ("depth", "seg", "hand")


@dataclass(frozen=True)
class Video:
    """A video: ``frames`` uint8 [T, H, W, 3] RGB, and its frame rate."""

    frames: np.ndarray
    fps: float = PROTOCOL_FPS

    def __post_init__(self):
        f = self.frames
        if not isinstance(f, np.ndarray) or f.dtype != np.uint8 or f.ndim != 4 or f.shape[-1] != 3:
            shape = getattr(f, "shape", None)
            dtype = getattr(f, "dtype", type(f).__name__)
            raise TypeError(f"Video frames must be uint8 [T,H,W,3] RGB, got {dtype} {shape}")
        if f.shape[0] < 1:
            raise ArgumentError("Video has no frames")
        if not self.fps > 0:
            raise ArgumentError(f"Video fps must be positive, got {self.fps}")

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def height(self) -> int:
        return int(self.frames.shape[1])

    @property
    def width(self) -> int:
        return int(self.frames.shape[2])

    @property
    def size(self) -> tuple[int, int]:
        """(height, width)."""
        return self.height, self.width

    def __len__(self) -> int:
        return self.num_frames


@dataclass
class Sample:
    """One evaluation clip with everything known about it.

    - ``video``: the ground-truth clip (the reference for paired metrics).
    - ``conditions``: condition videos by name (``depth``, ``seg``, ``hand``), same T/H/W as ``video``.
    - ``joints_2d``: float32 [T, K, 21, 2] pixels in the clip's resolution; NaN where a hand is missing.
    - ``joints_3d``: float32 [T, K, 21, 3] camera frame, metres; NaN where missing.
      K is the number of hands; joint order: wrist, then thumb/index/middle/ring/little (mcp, pip, dip, tip).
    - ``hand_sides``: K strings, ``"right"`` or ``"left"``.
    - ``intrinsics``: float64 [3, 3] for the clip's resolution.
    - ``seg``: optional uint8/int [T, H, W] instance labels (0 background, 255 hand, k object id).
    - ``meta``: provenance, e.g. ``{"depth_source": "sensor-masked"}``.
    """

    id: str
    video: Video | None
    conditions: dict[str, Video] = field(default_factory=dict)
    joints_2d: np.ndarray | None = None
    joints_3d: np.ndarray | None = None
    hand_sides: tuple[str, ...] = ()
    intrinsics: np.ndarray | None = None
    seg: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def first_frame(self) -> np.ndarray:
        """The GT clip's first frame; without a GT clip, ``meta['first_frame']`` (e.g. PAM's shipped sample)."""
        if self.video is None:
            if "first_frame" in self.meta:
                return self.meta["first_frame"]
            from .errors import InputError

            raise InputError(self.id, "the clip has no reference video, so no first frame")
        return self.video.frames[0]


def stable_hash(obj: Any) -> str:
    """sha256 of a canonical JSON rendering (sorted keys)."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()


@dataclass(frozen=True)
class Split:
    """An ordered list of sample ids plus what defines it; ``manifest_hash`` pins it."""

    dataset: str
    name: str
    ids: tuple[str, ...]
    protocol: Mapping[str, Any] = field(default_factory=dict)

    @property
    def manifest_hash(self) -> str:
        return stable_hash({"dataset": self.dataset, "split": self.name, "ids": list(self.ids),
                            "protocol": dict(self.protocol)})

    def __len__(self) -> int:
        return len(self.ids)


class Dataset(ABC):
    """A dataset: a cheap manifest (no decoding) and per-sample loading."""

    name: ClassVar[str] = "dataset"

    @abstractmethod
    def split(self) -> Split:
        """The ordered ids of the selected split; must not decode any image."""

    @abstractmethod
    def load(self, sample_id: str) -> Sample:
        """Decode one sample."""

    def clip_meta(self, sample_id: str) -> dict[str, Any]:
        """What a clip is, to group results by (``pam-bench breakdown --by KEY``): e.g. subject, object,
        camera. Cheap (no decoding); values are str/int/None. The base class knows nothing: {}."""
        return {}

    def source_files(self, sample_id: str) -> list:
        """The files a sample's GT is read from, when the dataset knows them cheaply (their sha256 guards
        reused per-video payloads); empty when the manifest alone decides."""
        return []

    def identity(self, split: "Split | None" = None) -> dict[str, Any]:
        """Name, split, size, manifest hash and protocol; pass the split already listed to avoid a re-listing."""
        s = split if split is not None else self.split()
        return {"name": self.name, "split": s.name, "n": len(s), "manifest_hash": s.manifest_hash,
                "protocol": dict(s.protocol)}


class Generator(ABC):
    """A video generator behind one interface.

    ``generate(sample, seed)`` returns a Video with the sample's frame count and size.
    ``identity()`` returns everything that changes its output (config, checkpoint hashes, seed policy);
    a run store refuses to mix results of different identities.
    """

    name: ClassVar[str] = "generator"
    #: What the method needs from a sample: subset of {"first_frame", "conditions", "video"}.
    needs: ClassVar[Sequence[str]] = ()

    def check_ready(self) -> None:
        """Raise MissingResource if weights or packages are missing. Must be cheap."""

    @abstractmethod
    def identity(self) -> dict[str, Any]:
        ...

    def seed_ignored(self) -> str | None:
        """Why ``--seed`` does not change this method's videos, or None when it does (the default).
        ``evaluate --seeds`` warns when a method gives a reason: its runs per seed would be identical."""
        return None

    @abstractmethod
    def generate(self, sample: Sample, seed: int) -> Video:
        ...

    @property
    def writes_videos(self) -> bool:
        """False for methods whose output already lies on disk (the ``folder`` method)."""
        return True

    def source_files(self, sample_id: str, index: int | None = None) -> list:
        """For methods that read their videos from disk: the file of a clip (its sha256 guards reused
        per-video payloads). Empty for methods that generate."""
        return []


def derive_seed(base_seed: int, sample_id: str) -> int:
    """Per-sample seed from the base seed and the video id (stable across runs, shards and orderings)."""
    h = hashlib.sha256(f"{int(base_seed)}:{sample_id}".encode()).digest()
    return int.from_bytes(h[:4], "little") & 0x7FFFFFFF
