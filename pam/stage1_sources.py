"""Stage-I sources for PAM's ``full`` mode (``-o stage1=graspxl|dgrasp|builtin``; supplementary Table 3).

With a Stage-I source, PAMGenerator ignores the sample's condition videos: it builds a hand-object pose
sequence from the source, renders PAM's depth/seg/hand conditions at the model's internal size (pinhole
``default_intrinsics``, 45 deg vertical field of view), lets Stage II make the first frame and Stage III the
video, which is then resized to the sample's size. The reference clip stays the dataset's, so paired
metrics (PSNR, MPJPE against the dataset's joints) compare with a clip that was NOT the Stage-I motion;
FVD and MF do not depend on that pairing.

- ``builtin``: ``stage1_pose.builtin_sequence`` (camera frame already), the same for every clip.
- ``graspxl`` (``stage1_file`` = a ``mano_N.npy``, or a folder of ``<clip id>.npy``; needs ``mano_dir``)
  and ``dgrasp`` (``stage1_file`` = a motion file, or a folder of ``<clip id>.npz|.pkl|.npy``): world frame
  (z up) -> camera by a fixed framing: world x -> camera x, world z -> camera up (-y), world y -> camera
  forward (z), translated so the object's first position lands at (0, 0.04, 0.45) m in front of the camera.
- The sequence is resampled to the clip's frame count by nearest index over its whole length.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from pam_bench.errors import InputError, OptionError

#: world (z up) -> camera (x right, y down, z forward)
WORLD_TO_CAMERA = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
OBJECT_TARGET = np.array([0.0, 0.04, 0.45])
FILE_SUFFIXES = (".npz", ".npy", ".pkl")


def _framing(object_position_world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return WORLD_TO_CAMERA, OBJECT_TARGET - WORLD_TO_CAMERA @ np.asarray(object_position_world, np.float64)


def _builtin(file, num_frames: int, obj, mano_dir=None):
    from .stage1_pose import builtin_sequence

    return builtin_sequence(num_frames=num_frames, obj=obj)


def _graspxl(file, num_frames: int, obj, mano_dir=None):
    from .stage1_pose import graspxl_sequence, read_graspxl

    first = next(iter(read_graspxl(file).objects.values()))["trans"][0]
    R, t = _framing(first)
    return graspxl_sequence(file, obj, R, t, mano_dir=mano_dir)


def _dgrasp(file, num_frames: int, obj, mano_dir=None):
    from .stage1_dgrasp import dgrasp_sequence, read_dgrasp

    R, t = _framing(read_dgrasp(file).object_position[0])
    return dgrasp_sequence(file, obj, R, t)


#: name -> (loader(file, num_frames, obj, mano_dir) -> PoseSequence, needs a file)
SOURCES: dict[str, tuple[Callable, bool]] = {"builtin": (_builtin, False), "graspxl": (_graspxl, True),
                                             "dgrasp": (_dgrasp, True)}


def check_options(stage1: str | None, stage1_file, mode: str) -> None:
    """Option errors at construction (OptionError, like PAMGenerator's other options)."""
    if stage1 is None:
        if stage1_file is not None:
            raise OptionError("pam", "stage1_file", "stage1_file needs stage1=graspxl|dgrasp")
        return
    if stage1 not in SOURCES:
        raise OptionError("pam", "stage1", f"stage1 must be one of {', '.join(SOURCES)}, got {stage1!r}")
    if mode != "full":
        raise OptionError("pam", "stage1", "stage1 needs mode=full (Stage II makes the first frame from the "
                                           "Stage-I render)")
    if SOURCES[stage1][1] and stage1_file is None:
        raise OptionError("pam", "stage1_file", f"stage1={stage1} needs stage1_file=FILE (or a folder of "
                                                "per-clip files)")


def file_for(stage1_file, sample_id: str) -> Path | None:
    """The Stage-I file of a clip: the file itself, or ``<folder>/<clip id>`` with a known suffix."""
    if stage1_file is None:
        return None
    p = Path(stage1_file).expanduser()
    if p.is_file():
        return p
    if not p.is_dir():
        raise InputError(p, "no such file or folder (stage1_file)")
    stem = sample_id.replace("/", "__")
    for suf in FILE_SUFFIXES:
        if (p / f"{stem}{suf}").is_file():
            return p / f"{stem}{suf}"
    raise InputError(p, f"no Stage-I file for clip {sample_id} ({stem}{{{','.join(FILE_SUFFIXES)}}})")


def identity(stage1: str, stage1_file, mano_dir=None) -> dict[str, Any]:
    """Source, files' sha256 (user-supplied, so recorded rather than pinned) and the framing."""
    from pam_bench.weights import sha256_file

    out: dict[str, Any] = {"source": stage1, "framing": "world z-up -> camera; object start at "
                           f"{OBJECT_TARGET.tolist()} m; default_intrinsics (45 deg fov_y)",
                           "frames": "nearest-index resampling of the whole sequence to the clip length",
                           "object": "render primitive: pam.stage1_pose.ObjectSpec() (box)"}
    if stage1_file is not None:
        p = Path(stage1_file).expanduser()
        files = [p] if p.is_file() else sorted(f for f in p.iterdir() if f.suffix in FILE_SUFFIXES) \
            if p.is_dir() else []
        if not files:
            raise InputError(p, "no Stage-I file(s) here (stage1_file)")
        out["files_sha256"] = {f.name: sha256_file(f) for f in files}
    if stage1 == "graspxl" and mano_dir is not None:
        mano = Path(mano_dir).expanduser() / "MANO_RIGHT.pkl"
        out["mano_sha256"] = sha256_file(mano) if mano.is_file() else None
    return out


def render_for_clip(stage1: str, stage1_file, sample_id: str, num_frames: int, size: tuple[int, int],
                    mano_dir=None) -> dict[str, np.ndarray]:
    """Stage I for one clip: {'depth','seg','hand'} uint8 [num_frames, h, w, 3] at ``size``."""
    from .pipeline import frame_indices
    from .stage1_pose import ObjectSpec, PoseSequence, conditions_as_arrays, default_intrinsics, render_conditions

    loader, _ = SOURCES[stage1]
    seq = loader(file_for(stage1_file, sample_id), num_frames, ObjectSpec(), mano_dir)
    idx = frame_indices(len(seq), num_frames)
    seq = PoseSequence(seq.joints_3d[idx], seq.object_rotation[idx], seq.object_translation[idx], seq.obj,
                       seq.source, seq.fps)
    h, w = size
    conds, _, _ = render_conditions(seq, default_intrinsics(h, w), h, w)
    return conditions_as_arrays(conds)
