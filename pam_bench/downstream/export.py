"""Export crops to SimpleHand's FreiHAND-style dataset layout.

SimpleHand (patienceFromZhou/simpleHand) reads a JSON list of image paths (``DATA.JSON_DIR`` for training,
``VAL.BMK.json_dir`` for evaluation in its cfg.py) and, for every ``X.jpg``, ``X.json`` next to it
(``path.replace('.jpg', '.json')``). Fields each loader reads (facts, upstream files):

- training, ``dataset.py`` ``HandDataset.__getitem__``: ``xyz`` (21x3 m, camera frame), ``K`` (3x3) and
  ``vertices`` (778x3 m, read unconditionally); the 2D joints are recomputed as ``K @ xyz``; the image path
  comes from the list;
- evaluation, ``eval_datataset.py`` ``HandMeshEvalDataset.__getitem__``: ``K``, and because ``uv`` is present
  also ``uv`` (21x2 px), ``xyz`` and ``vertices`` (without ``uv`` it would read ``bbox`` and then fail on the
  undefined vertices).

Images are read with cv2.imread (BGR on disk, as written here). We export the hand crops of :mod:`.frames`
with their crop intrinsics and crop 2D joints (exact: the crop is an affine map of the image), named
``{index:08d}.jpg`` / ``.json`` with ``xyz``, ``uv``, ``K``, ``image_path`` and ``vertices`` when the dataset
gives MANO vertices (DexYCB: ``-d mano_dir=DIR``, see pam_bench.datasets.dexycb_mano).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import InputError, MissingResource
from ..store import atomic_write_bytes, atomic_write_json
from .frames import FrameSet

JPEG_QUALITY = 95


def export_freihand(frames: FrameSet, out_dir: Path, list_path: Path, require_vertices: bool = False) -> Path:
    """Write images + per-image JSON under ``out_dir`` and the list of image paths to ``list_path``.

    Skips the work when ``list_path`` already lists ``len(frames)`` existing images (resume).
    """
    import cv2

    out_dir, list_path = Path(out_dir).resolve(), Path(list_path).resolve()
    if require_vertices and frames.verts is None:
        raise MissingResource(
            "MANO vertices for the SimpleHand export",
            "SimpleHand's training loader reads 778 'vertices' per image; use a dataset that provides "
            "sample.meta['mano_vertices'] (DexYCB: -d mano_dir=DIR with MANO_RIGHT.pkl; see docs/downstream.md), "
            "or train with --trainer embedded")
    if frames.verts is not None and not np.isfinite(frames.verts).all():
        raise InputError(frames.clip_id, "has hand crops whose MANO vertices are not finite (no MANO pose labelled "
                                         "for a frame with joints)")
    if list_path.is_file():
        try:
            listed = json.loads(list_path.read_text())
        except json.JSONDecodeError:
            listed = None
        if isinstance(listed, list) and len(listed) == len(frames) and all(Path(p).is_file() for p in listed):
            return list_path
    paths = []
    for i in range(len(frames)):
        img = out_dir / f"{i:08d}.jpg"
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(frames.images[i], cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise InputError(img, "JPEG encoding failed")
        atomic_write_bytes(img, buf.tobytes())
        info = {"xyz": frames.xyz[i].astype(np.float64).tolist(), "uv": frames.uv[i].astype(np.float64).tolist(),
                "K": frames.K[i].astype(np.float64).tolist(), "image_path": str(img)}
        if frames.verts is not None:
            info["vertices"] = frames.verts[i].astype(np.float64).tolist()
        atomic_write_json(img.with_suffix(".json"), info)
        paths.append(str(img))
    atomic_write_json(list_path, paths)
    return list_path


def read_predictions(path: Path, image_paths: list[str]) -> dict[str, np.ndarray | None]:
    """Predictions written by a SimpleHand inference command, in the order of ``image_paths``.

    Format: a JSON list of objects with ``image_path`` and ``pred_xyz`` (21x3, metres) and optionally
    ``pred_vertices`` (778x3) — the entries SimpleHand's infer_to_json.py builds in ``dataset.all_info``.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "the SimpleHand inference command wrote no predictions file")
    try:
        entries = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise InputError(path, f"not valid JSON ({e})") from None
    if not isinstance(entries, list):
        raise InputError(path, "predictions must be a JSON list of {image_path, pred_xyz[, pred_vertices]}")
    by_path = {}
    for e in entries:
        if not isinstance(e, dict) or "image_path" not in e or "pred_xyz" not in e:
            raise InputError(path, "every prediction needs 'image_path' and 'pred_xyz'")
        by_path[str(Path(e["image_path"]).resolve())] = e
    missing = [p for p in image_paths if str(Path(p).resolve()) not in by_path]
    if missing:
        raise InputError(path, f"no prediction for {len(missing)} of {len(image_paths)} images (first: {missing[0]})")
    rows = [by_path[str(Path(p).resolve())] for p in image_paths]
    xyz = np.asarray([r["pred_xyz"] for r in rows], np.float64)
    if xyz.shape != (len(rows), 21, 3):
        raise InputError(path, f"pred_xyz must be 21x3 per image, got {xyz.shape[1:]}")
    verts = None
    if all("pred_vertices" in r for r in rows):
        verts = np.asarray([r["pred_vertices"] for r in rows], np.float64)
        if verts.shape != (len(rows), 778, 3):
            raise InputError(path, f"pred_vertices must be 778x3 per image, got {verts.shape[1:]}")
    return {"xyz": xyz, "verts": verts}
