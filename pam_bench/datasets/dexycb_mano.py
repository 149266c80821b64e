"""MANO vertices for DexYCB labels, from a user-supplied MANO model (smplx; read via the allow-list unpickler).

DexYCB facts (dex-ycb-toolkit): ``labels_%06d.npz`` holds ``pose_m`` [1, 51] in
the camera frame of its serial: 0:3 global axis-angle, 3:48 the 45 PCA coefficients of manopth's
``ManoLayer(ncomps=45, flat_hand_mean=False)``, 48:51 the translation; all zeros when no hand is labelled.
The subject's shape is ``betas`` (10) in ``calibration/mano_<mano_calib>/mano.yml``.

That layer's hand pose (manopth) is coefficients @ hands_components[:45] + hands_mean (axis-angle), then
blend skinning about the MANO joints, then + transl. :mod:`pam_bench.geometry.mano` applies exactly that
(``layer(use_pca=True, num_pca_comps=45, flat_hand_mean=False)``: the PCA and the mean in float64, smplx
only skins). smplx's own ``MANO(use_pca=True, num_pca_comps=45)`` must not be used: it switches PCA off
at 45 components and reads the coefficients as axis-angle; runs made that way (before convention
version 2, see :data:`CONVENTION`) carry a different identity and do not mix with these. Output in metres
(manopth returns millimetres and the toolkit divides by 1000). The model is read by the project's MANO
unpickler (numpy, scipy sparse and chumpy stubs only; never smplx's own ``pickle.load``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ArgumentError, InputError, MissingResource
from ..geometry import mano as M

N_VERTS = 778
#: What the vertices are; part of the split's protocol (manifest hash). Version 2: the PCA coefficients go
#: through hands_components (version 1 read them as axis-angle through smplx's PCA switch-off at 45).
CONVENTION = {"convention": "manopth ManoLayer(use_pca=True, ncomps=45, flat_hand_mean=False): "
                            "hand pose = coeffs @ hands_components + hands_mean", "version": 2}
HOW = ("MANO is licence-restricted: download MANO_RIGHT.pkl / MANO_LEFT.pkl from https://mano.is.tue.mpg.de "
       "(SimpleHand users already have models/MANO_*_C.pkl) and pass their folder with -d mano_dir=DIR")


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
                out[side] = sha256_file(M.model_file(self.mano_dir, side, HOW))
            except MissingResource:
                out[side] = None
        return {**CONVENTION, "sha256": out}

    def layer(self, side: str):
        if side not in self._layers:
            self._layers[side] = M.layer(M.model_file(self.mano_dir, side, HOW), side, use_pca=True, num_pca_comps=45,
                                         flat_hand_mean=False)
        return self._layers[side]

    def vertices(self, side: str, pose_m: np.ndarray, betas: np.ndarray) -> np.ndarray:
        """``pose_m`` [T, 51], ``betas`` [10] -> float64 [T, 778, 3]; NaN rows where pose_m is all zero."""
        pose = np.asarray(pose_m, np.float64).reshape(-1, 51)
        b = np.asarray(betas, np.float64).reshape(1, -1)
        if b.shape[1] != 10:
            raise ArgumentError(f"betas: DexYCB MANO betas must have 10 values, got {b.shape[1]}")
        _, verts = M.forward(self.layer(side), pose[:, :3], pose[:, 3:48], betas=np.repeat(b, len(pose), 0),
                             transl=pose[:, 48:51])
        verts[~np.any(pose != 0, axis=1)] = np.nan
        return verts
