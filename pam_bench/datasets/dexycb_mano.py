"""MANO vertices for DexYCB labels, from a user-supplied MANO model (smplx; read via the allow-list unpickler).

DexYCB facts (dex-ycb-toolkit): ``labels_%06d.npz`` holds ``pose_m`` [1, 51] in
the camera frame of its serial: 0:3 global axis-angle, 3:48 the 45 PCA coefficients of manopth's
``ManoLayer(ncomps=45, flat_hand_mean=False)``, 48:51 the translation; all zeros when no hand is labelled.
The subject's shape is ``betas`` (10) in ``calibration/mano_<mano_calib>/mano.yml``.

smplx's ``MANO(use_pca=True, num_pca_comps=45, flat_hand_mean=False)`` is that layer: hand pose =
coefficients @ hands_components[:45] + hands_mean, blend skinning about the MANO joints, then + transl.
Its output is in metres (manopth returns millimetres and the toolkit divides by 1000). The model arrays
come from :func:`pam_bench.datasets.oakink2.load_mano_model` (the project's MANO unpickler: numpy,
scipy sparse and chumpy stubs only), never from smplx's own ``pickle.load``.
"""
from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np

from ..errors import InputError, MissingResource

N_VERTS = 778
HOW = ("MANO is licence-restricted: download MANO_RIGHT.pkl / MANO_LEFT.pkl from https://mano.is.tue.mpg.de "
       "(SimpleHand users already have models/MANO_*_C.pkl) and pass their folder with -o mano_dir=DIR")


def mano_file(mano_dir: Path, side: str) -> Path:
    """MANO_{SIDE}.pkl (or .npz, or SimpleHand's MANO_{SIDE}_C.pkl) in ``mano_dir``."""
    stem = f"MANO_{side.upper()}"
    for name in (f"{stem}.pkl", f"{stem}.npz", f"{stem}_C.pkl"):
        p = Path(mano_dir) / name
        if p.is_file():
            return p
    raise MissingResource(f"MANO model {Path(mano_dir) / (stem + '.pkl')}", HOW)


class DexYCBMano:
    """Vertices [T, 778, 3] (metres, camera frame) from DexYCB ``pose_m`` rows and a subject's betas."""

    def __init__(self, mano_dir):
        self.mano_dir = Path(mano_dir)
        if not self.mano_dir.is_dir():
            raise InputError(self.mano_dir, "no such folder (mano_dir: the folder holding MANO_RIGHT.pkl)")
        self._layers: dict[str, object] = {}

    def identity(self, sides=("right", "left")) -> dict:
        from ..weights import sha256_file

        out = {}
        for side in sides:
            try:
                out[side] = sha256_file(mano_file(self.mano_dir, side))
            except MissingResource:
                out[side] = None
        return {"convention": "manopth ncomps=45 flat_hand_mean=False via smplx", "sha256": out}

    def layer(self, side: str):
        if side not in self._layers:
            try:
                import smplx
                from smplx.utils import Struct
            except ImportError:
                raise MissingResource("python package 'smplx'", "pip install 'pam-bench[mano]'") from None
            from .oakink2 import load_mano_model

            arrays = load_mano_model(mano_file(self.mano_dir, side))
            if arrays["hands_components"].shape[0] < 45:
                raise InputError(mano_file(self.mano_dir, side), "MANO model has fewer than 45 PCA components")
            with contextlib.redirect_stdout(io.StringIO()):  # smplx prints notes
                self._layers[side] = smplx.MANO(str(self.mano_dir), is_rhand=(side == "right"),
                                                data_struct=Struct(**arrays), use_pca=True, num_pca_comps=45,
                                                flat_hand_mean=False)
        return self._layers[side]

    def vertices(self, side: str, pose_m: np.ndarray, betas: np.ndarray) -> np.ndarray:
        """``pose_m`` [T, 51], ``betas`` [10] -> float64 [T, 778, 3]; NaN rows where pose_m is all zero."""
        import torch

        pose = np.asarray(pose_m, np.float64).reshape(-1, 51)
        b = np.asarray(betas, np.float64).reshape(1, -1)
        if b.shape[1] != 10:
            raise InputError("betas", f"DexYCB MANO betas must have 10 values, got {b.shape[1]}")
        layer = self.layer(side)
        t = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
        with torch.no_grad():
            out = layer(betas=t(np.repeat(b, len(pose), 0)), global_orient=t(pose[:, :3]),
                        hand_pose=t(pose[:, 3:48]), transl=t(pose[:, 48:51]))
        verts = out.vertices.numpy().astype(np.float64)
        verts[~np.any(pose != 0, axis=1)] = np.nan
        return verts
