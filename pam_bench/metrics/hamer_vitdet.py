"""HaMeR's own hand boxes (demo.py): ViTDet person boxes, then ViTPose whole-body hand keypoints.

Facts (geopavlakos/hamer demo.py ~46-121): detectron2 LazyConfig ``hamer/configs/cascade_mask_rcnn_vitdet_h_75ep.py``
with the model-zoo weights ``model_final_f05665.pkl`` (ViTDet cascade Mask R-CNN ViT-H, COCO), the three box
predictors' ``test_score_thresh = 0.25``, run on the BGR image through ``hamer.utils.utils_detectron2
.DefaultPredictor_Lazy``; persons = class 0 with score > 0.5. ``vitpose_model.ViTPoseModel`` (HaMeR's repo root;
mmpose; config ``third-party/ViTPose/.../ViTPose_huge_wholebody_256x192.py``, weights
``_DATA/vitpose_ckpts/vitpose+_huge/wholebody.pth``) gives 133 whole-body keypoints per person; the last 42 are
the left then the right hand; a hand counts when more than 3 of its 21 keypoints have confidence > 0.5, and
its box is the min/max of those keypoints.

Differences kept small and named: the detectron2 weights are read by pam-bench through the exact numpy
allow-list unpickler (detectron2 would ``pickle.load`` the .pkl) and handed to the model; nothing is
downloaded (the files must be in ``vitdet_dir``: ``model_final_f05665.pkl`` and, for ViTPose, HaMeR's repo
folder with ``vitpose_model.py``, ``third-party/ViTPose`` and ``_DATA/vitpose_ckpts``). Needs detectron2,
mmpose and the hamer package; not run in pam-bench's own tests (none of them is installed there).
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import InputError, MissingResource, require_packages
from ..types import Video

VITDET_WEIGHTS = "model_final_f05665.pkl"
VITPOSE_WEIGHTS = Path("_DATA") / "vitpose_ckpts" / "vitpose+_huge" / "wholebody.pth"
HOW = ("install detectron2 and mmpose as HaMeR's README says, and put HaMeR's repo folder (vitpose_model.py, "
       "third-party/ViTPose, _DATA/vitpose_ckpts) plus the detectron2 model-zoo file model_final_f05665.pkl in one "
       "folder: -m mpjpe.vitdet_dir=DIR")


@dataclass
class HandBox:
    """One hand found by the detector pair: its keypoints (the box is their min/max), side and score."""

    joints_2d: np.ndarray  # float64 [21, 2] px; invalid keypoints replaced by the mean of the valid ones
    side: str
    score: float


class ViTDetHandBoxes:
    """Per frame, the hands HaMeR's detector pair finds (what :class:`pam_bench.metrics.hands.HaMeRHands` crops)."""

    name = "vitdet"

    def __init__(self, device: str = "cpu", vitdet_dir=None):
        self.device = device
        self.dir = Path(vitdet_dir) if vitdet_dir else None
        self._detector = None
        self._pose = None

    def check_ready(self) -> None:
        require_packages("detectron2", "mmpose", "hamer", how=HOW, label="for detector=vitdet")
        if self.dir is None:
            raise MissingResource("the ViTDet/ViTPose folder (detector=vitdet)", HOW)
        for rel in (VITDET_WEIGHTS, "vitpose_model.py", str(VITPOSE_WEIGHTS)):
            if not (self.dir / rel).is_file():
                raise MissingResource(f"{self.dir / rel}", HOW)

    def identity(self) -> dict[str, Any]:
        from ..weights import cached_sha256

        self.check_ready()
        return {"detector": "vitdet cascade_mask_rcnn_vitdet_h_75ep + vitpose+ huge wholebody (HaMeR demo.py)",
                "vitdet_sha256": cached_sha256(self.dir / VITDET_WEIGHTS),
                "vitpose_sha256": cached_sha256(self.dir / VITPOSE_WEIGHTS),
                "person_score": 0.5, "box_score": 0.25, "hand_keypoint_conf": 0.5, "min_keypoints": 4}

    def _build(self):
        if self._detector is not None:
            return
        self.check_ready()
        import hamer
        import torch
        from detectron2.checkpoint import DetectionCheckpointer
        from detectron2.config import LazyConfig
        from hamer.utils.utils_detectron2 import DefaultPredictor_Lazy

        from .. import safe_pickle as SP

        cfg = LazyConfig.load(str(Path(hamer.__file__).parent / "configs" / "cascade_mask_rcnn_vitdet_h_75ep.py"))
        cfg.train.init_checkpoint = ""  # nothing loaded or downloaded by detectron2 itself
        for i in range(3):
            cfg.model.roi_heads.box_predictors[i].test_score_thresh = 0.25
        predictor = DefaultPredictor_Lazy(cfg)
        raw = SP.load(self.dir / VITDET_WEIGHTS, SP.NUMPY_DATA, what="a detectron2 model-zoo weight pickle")
        if not isinstance(raw, dict) or not isinstance(raw.get("model"), dict):
            raise InputError(self.dir / VITDET_WEIGHTS, "has no 'model' dict of arrays")
        weights = {k: torch.as_tensor(np.asarray(v)) for k, v in raw["model"].items()}
        ckpt = {"model": weights, "__author__": raw.get("__author__"),
                "matching_heuristics": bool(raw.get("matching_heuristics"))}
        DetectionCheckpointer(predictor.model)._load_model(ckpt)
        predictor.model.to(self.device).eval()
        cwd = os.getcwd()
        sys.path.insert(0, str(self.dir))
        try:
            os.chdir(self.dir)  # ViTPoseModel resolves third-party/ and _DATA/ relative to the working directory
            from vitpose_model import ViTPoseModel

            self._pose = ViTPoseModel(self.device)
        finally:
            os.chdir(cwd)
        self._detector = predictor

    def estimate(self, video: Video, hand_sides: Sequence[str] = (), intrinsics=None) -> list[list[HandBox]]:
        self._build()
        out = []
        for frame in video.frames:
            bgr = np.ascontiguousarray(frame[..., ::-1])
            inst = self._detector(bgr)["instances"]
            keep = (inst.pred_classes == 0) & (inst.scores > 0.5)
            boxes = inst.pred_boxes.tensor[keep].cpu().numpy()
            scores = inst.scores[keep].cpu().numpy()
            dets = []
            if len(boxes):
                poses = self._pose.predict_pose(np.ascontiguousarray(frame), [np.c_[boxes, scores[:, None]]])
                for person in poses:
                    for side, kp in (("left", person["keypoints"][-42:-21]), ("right", person["keypoints"][-21:])):
                        valid = kp[:, 2] > 0.5
                        if valid.sum() > 3:
                            pts = kp[:, :2].astype(np.float64).copy()
                            pts[~valid] = pts[valid].mean(axis=0)  # box = min/max of the valid keypoints
                            dets.append(HandBox(pts, side, float(kp[valid, 2].mean())))
            out.append(dets)
        return out
