"""MANO in one place: the model loader and the forward pass shared by Stage I (GraspXL), OAKINK2, DexYCB and
the HaMeR backend's MANO check.

Facts:

- The model is the user's licence-restricted ``MANO_RIGHT.pkl`` / ``MANO_LEFT.pkl`` (mano.is.tue.mpg.de): a
  Python 2 pickle of a dict whose arrays are numpy arrays, chumpy ``Ch`` objects (the array in their state
  ``x``) and a scipy sparse ``J_regressor``. :func:`load_model` reads it through the project's exact
  allow-list unpickler (:data:`MANO_ALLOW`: numpy data plus inert stand-ins for ``Ch`` and the sparse
  matrices; nothing from the file is executed), and reads numpy-only conversions (a .pkl of plain arrays,
  or an .npz) the same way. It keeps :data:`MANO_FIELDS`; any problem is one InputError naming the file.
- The forward pass (:func:`layer`, :func:`forward`) is smplx's ``MANO`` layer built from those arrays
  (``data_struct``; smplx's own ``pickle.load`` never runs) in float32: 16 joints in MANO's order (wrist;
  index, middle, little, ring, thumb, three each) and 778 vertices, returned as float64.
- The hand-pose convention is manopth's ``ManoLayer(use_pca, ncomps, flat_hand_mean)``, applied here in
  float64 before smplx (:class:`Layer`): full hand pose = coefficients @ hands_components[:ncomps] +
  hands_mean (axis-angle + hands_mean without PCA; zero mean with flat_hand_mean). smplx only skins
  (``use_pca=False, flat_hand_mean=True``): its own PCA is off whenever ``num_pca_comps == 45``
  (smplx/body_models.py), which would read DexYCB's 45 coefficients as axis-angle.
- 21 joints (:func:`joints21`): the 16 plus five fingertip vertices (thumb, index, middle, ring, little),
  reordered by :data:`MANO_TO_HOUSE` to the project's order (wrist; thumb, index, middle, ring, little;
  each mcp, pip, dip, tip). Which vertices are the fingertips is a convention of the data, so each caller
  passes its own table: Stage I smplx's, OAKINK2 manopth's (see those modules).
"""
from __future__ import annotations

import contextlib
import io
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .. import safe_pickle as SP
from ..errors import ArgumentError, InputError, MissingResource

#: MANO's 16 joints + 5 appended fingertips -> the project's 21-joint order (SNAP / OpenPose hand order).
MANO_TO_HOUSE = (0, 13, 14, 15, 16, 1, 2, 3, 17, 4, 5, 6, 18, 10, 11, 12, 19, 7, 8, 9, 20)
#: The arrays smplx's MANO layer reads.
MANO_FIELDS = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f",
               "hands_components", "hands_mean")
SMPLX_HOW = "pip install 'pam-bench[mano]'"


# ---------------------------------------------------------------------- the loader
class _ChStub(SP.StateHolder):
    """Stands in for chumpy.ch.Ch while unpickling a MANO .pkl: keeps the state, exposes the array."""

    def array(self, where) -> np.ndarray:
        st = self.state
        if isinstance(st, dict) and "x" in st:
            return np.asarray(st["x"])
        raise InputError(where, "has a chumpy object without plain data; convert the MANO model to .npz")


class _SparseStub(SP.StateHolder):
    """Stands in for a scipy.sparse csc/csr matrix (MANO's J_regressor): its arrays, made dense here."""

    kind = "csc"

    def toarray(self) -> np.ndarray:
        import scipy.sparse

        st = self.state if isinstance(self.state, dict) else {}
        make = scipy.sparse.csc_matrix if self.kind == "csc" else scipy.sparse.csr_matrix
        try:
            arrays = tuple(np.asarray(st[k]) for k in ("data", "indices", "indptr"))
            shape = tuple(int(x) for x in st.get("_shape", st.get("shape")))
            return make(arrays, shape=shape).toarray()
        except (KeyError, TypeError, ValueError) as e:
            raise pickle.UnpicklingError(f"sparse matrix state unreadable ({e})") from None


class _CsrStub(_SparseStub):
    kind = "csr"


def _reconstructor(cls, base, state):
    """copyreg._reconstructor, for protocol 0/1 files, limited to the stand-ins above."""
    if cls not in (_ChStub, _SparseStub, _CsrStub) or base is not object:
        raise pickle.UnpicklingError("copyreg._reconstructor is admitted only for the MANO stand-ins")
    return cls()


#: Numpy data plus chumpy ``Ch`` (kept as its array) and scipy sparse matrices (J_regressor), as inert
#: stand-ins; ``copyreg._reconstructor`` only for those stand-ins.
MANO_ALLOW = {**SP.NUMPY_DATA,
              ("chumpy.ch", "Ch"): _ChStub,
              ("copyreg", "_reconstructor"): _reconstructor,
              ("builtins", "object"): object,
              **{(m, f"{k}_matrix"): stub for k, stub in (("csc", _SparseStub), ("csr", _CsrStub))
                 for m in ("scipy.sparse", f"scipy.sparse.{k}", f"scipy.sparse._{k}")}}


def load_model(path) -> dict[str, np.ndarray]:
    """A MANO model as plain arrays (:data:`MANO_FIELDS`), from the official .pkl, a numpy-only .pkl or an
    .npz; never executes anything from the file."""
    path = Path(path)
    if path.suffix == ".npz":
        from ..datasets._common import read_npz

        return read_npz(path, MANO_FIELDS, what="MANO model")
    try:
        raw = SP.load(path, MANO_ALLOW, what="a readable MANO model", encoding="latin1")
        if isinstance(raw, dict):
            raw = {k: (v.toarray() if isinstance(v, _SparseStub) else v) for k, v in raw.items()}
    except pickle.UnpicklingError as e:
        raise InputError(path, f"not a readable MANO model ({e})") from None
    if not isinstance(raw, dict):
        raise InputError(path, f"MANO model pickle is a {type(raw).__name__}, not a dict")
    absent = [k for k in MANO_FIELDS if k not in raw]
    if absent:
        raise InputError(path, f"MANO model has no {', '.join(absent)}")
    out = {}
    for k in MANO_FIELDS:
        v = raw[k]
        if isinstance(v, _ChStub):
            v = v.array(path)
        elif hasattr(v, "toarray"):
            v = v.toarray()
        out[k] = np.asarray(v)
    return out


def model_file(mano_dir, side: str, how: str) -> Path:
    """``MANO_{SIDE}.pkl`` (or an .npz conversion, or SimpleHand's ``MANO_{SIDE}_C.pkl``) in ``mano_dir``;
    MissingResource naming the expected file, with ``how`` to get it, otherwise."""
    stem = f"MANO_{side.upper()}"
    for name in (f"{stem}.pkl", f"{stem}.npz", f"{stem}_C.pkl"):
        p = Path(mano_dir) / name
        if p.is_file():
            return p
    raise MissingResource(f"MANO model {Path(mano_dir) / (stem + '.pkl')}", how)


# ---------------------------------------------------------------------- the forward pass
@dataclass(frozen=True)
class Layer:
    """smplx's MANO layer, always built with ``use_pca=False, flat_hand_mean=True`` (it only skins), and the
    hand-pose convention around it: ``components`` [n, 45] (None: ``hand_pose`` is axis-angle) and ``mean``
    [45] (zeros: flat hand mean)."""

    smplx: Any
    components: np.ndarray | None
    mean: np.ndarray

    def full_hand_pose(self, hand_pose: np.ndarray) -> np.ndarray:
        """manopth's definition, float64: ``hand_pose @ components + mean`` (``hand_pose + mean`` without PCA)."""
        p = np.asarray(hand_pose, np.float64)
        if self.components is not None:
            if p.ndim != 2 or p.shape[1] != len(self.components):
                raise ArgumentError(f"hand_pose: expected [B, {len(self.components)}] PCA coefficients, got "
                                    f"{list(p.shape)}")
            p = p @ self.components
        return p + self.mean


def layer(path, side: str, *, flat_hand_mean: bool, use_pca: bool = False, num_pca_comps: int = 45) -> Layer:
    """The MANO model at ``path`` (read by :func:`load_model`) as a :class:`Layer` with manopth's pose
    convention (``ManoLayer(use_pca, ncomps=num_pca_comps, flat_hand_mean)``): full hand pose =
    coefficients @ hands_components[:num_pca_comps] + hands_mean (axis-angle + hands_mean without PCA; the
    mean is zero with ``flat_hand_mean``), computed here in float64. smplx's own PCA is never used: smplx
    switches it off when ``num_pca_comps == 45`` and would read 45 coefficients as axis-angle."""
    path = Path(path)
    arrays = load_model(path)
    comps, mean = np.asarray(arrays["hands_components"]), np.asarray(arrays["hands_mean"])
    if use_pca and (comps.ndim != 2 or comps.shape[1] != 45 or not 0 < num_pca_comps <= comps.shape[0]):
        raise InputError(path, f"MANO model has hands_components {list(comps.shape)}; {num_pca_comps} "
                               "PCA components of 45 values needed")
    if not flat_hand_mean and mean.shape != (45,):
        raise InputError(path, f"MANO model has hands_mean {list(mean.shape)}; [45] needed")
    try:
        import smplx
        from smplx.utils import Struct
    except ImportError:
        raise MissingResource("python package 'smplx'", SMPLX_HOW) from None
    with contextlib.redirect_stdout(io.StringIO()):  # smplx prints a note about 10 betas
        mano = smplx.MANO(str(path.parent), is_rhand=(side == "right"), data_struct=Struct(**arrays),
                          use_pca=False, flat_hand_mean=True)
    return Layer(mano, comps[:num_pca_comps].astype(np.float64) if use_pca else None,
                 np.zeros(45) if flat_hand_mean else mean.astype(np.float64))


def forward(mano: Layer, global_orient: np.ndarray, hand_pose: np.ndarray, betas: np.ndarray | None = None,
            transl: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Joints [B,16,3] (MANO order) and vertices [B,778,3], float64 of smplx's float32, for axis-angle
    ``global_orient`` [B,3], ``hand_pose`` in the layer's convention ([B,45] axis-angle, or [B,n] PCA
    coefficients; see :meth:`Layer.full_hand_pose`), ``betas`` [B,10] (None: zeros) and ``transl`` [B,3]
    (None: none, applied inside the layer otherwise)."""
    import torch

    t = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32)  # noqa: E731
    n = len(global_orient)
    with torch.no_grad():
        out = mano.smplx(betas=torch.zeros(n, mano.smplx.num_betas) if betas is None else t(betas),
                         global_orient=t(global_orient), hand_pose=t(mano.full_hand_pose(hand_pose)),
                         transl=None if transl is None else t(transl))
    return out.joints.numpy().astype(np.float64), out.vertices.numpy().astype(np.float64)


def joints21(joints: np.ndarray, vertices: np.ndarray, tips: Sequence[int]) -> np.ndarray:
    """[B,21,3] in the project's order: MANO's 16 ``joints`` plus the fingertip ``vertices[:, tips]``
    (thumb, index, middle, ring, little: the caller's convention)."""
    return np.concatenate([joints[:, :16], vertices[:, list(tips)]], axis=1)[:, list(MANO_TO_HOUSE)]
