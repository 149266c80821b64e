"""The exact allow-list unpickler (pam_bench.safe_pickle) against a corpus of gadget pickles.

Every gadget, if it ran, would create a marker file. For every reader of untrusted pickles (numpy weight
pickles, D-Grasp, GraspXL, MANO_RIGHT.pkl for GraspXL, OAKINK2 annotations and MANO models, Lightning
checkpoints of the learned baselines) each gadget must be refused with one InputError naming the file, and
the marker must not exist afterwards.
"""
from __future__ import annotations

import io
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from pam_bench import safe_pickle as SP
from pam_bench.errors import InputError


# ---------------------------------------------------------------------- raw pickle opcodes
def _str(s: str) -> bytes:
    b = s.encode()
    return b"\x8c" + bytes([len(b)]) + b if len(b) < 256 else b"X" + struct.pack("<I", len(b)) + b


def _stack_global(proto: int, module: str, name: str, *calls: str) -> bytes:
    """PROTO n; STACK_GLOBAL module name; then each call: push the string, TUPLE1, REDUCE."""
    out = b"\x80" + bytes([proto]) + _str(module) + _str(name) + b"\x93"
    for c in calls:
        out += _str(c) + b"\x85R"
    return out + b"."


def _global(proto: int | None, module: str, name: str, *calls: str) -> bytes:
    """(PROTO n;) GLOBAL 'module\\nname'; then each call as a text-mode string argument."""
    out = (b"\x80" + bytes([proto])) if proto is not None else b""
    out += b"c" + module.encode() + b"\n" + name.encode() + b"\n"
    for c in calls:
        out += b"(V" + c.encode("raw_unicode_escape") + b"\ntR"
    return out + b"."


def _touch_code(marker: Path) -> str:
    return f"open({str(marker)!r}, 'w').write('ran')"


class _Reduce:
    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return (self.fn, self.args)


def _admitted_modules() -> set[str]:
    from pam_bench.datasets import oakink2
    from pam_bench.geometry import mano

    mods = {m for m, _ in {**SP.NUMPY_DATA, **oakink2.ANNO_ALLOW, **mano.MANO_ALLOW}}
    return mods | {m for m, _ in SP.torch_tensors()} | {"numpy.dtypes", "numpy", "builtins", "os"}


def gadget_corpus(marker: Path) -> dict[str, bytes]:
    import builtins
    import os
    import subprocess

    code = _touch_code(marker)
    shell = f"touch {marker}"
    c: dict[str, bytes] = {}
    for p in range(6):  # classic __reduce__ in every protocol
        c[f"reduce-os.system-p{p}"] = pickle.dumps({"a": np.zeros(2), "x": _Reduce(os.system, (shell,))}, protocol=p)
        c[f"reduce-eval-p{p}"] = pickle.dumps([_Reduce(builtins.eval, (code,))], protocol=p)
        c[f"reduce-exec-p{p}"] = pickle.dumps(_Reduce(builtins.exec, (code,)), protocol=p)
        c[f"reduce-popen-p{p}"] = pickle.dumps(_Reduce(subprocess.Popen, (["touch", str(marker)],)), protocol=p)
        # GLOBAL opcode for a real function, under every PROTO header (and none)
        c[f"global-builtins.eval-p{p}"] = _global(p if p >= 2 else None, "builtins", "eval", code)
        c[f"global-py2-__builtin__.eval-p{p}"] = _global(p if p >= 2 else None, "__builtin__", "eval", code)
        c[f"global-posix.system-p{p}"] = _global(p if p >= 2 else None, "posix", "system", shell)
    for m in sorted(_admitted_modules()):  # dotted-name traversal, protocols 4 and 5
        for p in (4, 5):
            c[f"dotted-{m}.__builtins__-p{p}"] = _stack_global(p, m, "__builtins__.get", "eval", code)
            c[f"dotted-global-{m}-p{p}"] = _global(p, m, "__builtins__.get", "eval", code)
    for (m, n) in sorted(SP.NUMPY_DATA):  # through every admitted name: .__init__/__call__.__globals__
        for attr in ("__globals__.get", "__init__.__globals__.get", "__call__.__globals__.get",
                     "__class__.__init__.__globals__.get"):
            c[f"dotted-{m}.{n}.{attr}"] = _stack_global(4, m, f"{n}.{attr}", "__builtins__")
    c["numpy.dtypes.__builtins__"] = _stack_global(4, "numpy.dtypes", "__builtins__.get", "eval", code)
    c["numpy.dtypes.class"] = _stack_global(4, "numpy.dtypes", "Float64DType")
    c["codecs-encode-not-latin1"] = _global(2, "_codecs", "encode", "x")
    return c


# ---------------------------------------------------------------------- every reader
def _readers(tmp_path: Path):
    """name -> (function(path), how to wrap the gadget bytes into that reader's file)."""
    from baselines._diffusers_util import load_torch_state_dict
    from pam.stage1_dgrasp import read_dgrasp
    from pam.stage1_pose import GraspXLSequence, graspxl_joints, read_graspxl
    from pam_bench.datasets.oakink2 import load_anno
    from pam_bench.geometry.mano import load_model
    from pam_bench.weights import load_numpy_pickle

    def npy(body: bytes) -> bytes:  # np.save of an object: .npy header (dtype object) + pickle body
        buf = io.BytesIO()
        np.lib.format.write_array_header_1_0(buf, {"descr": "|O", "fortran_order": False, "shape": ()})
        return buf.getvalue() + body

    def mano_dir(body: bytes) -> Path:
        d = tmp_path / "mano"
        d.mkdir(exist_ok=True)
        (d / "MANO_RIGHT.pkl").write_bytes(body)
        return d

    one_frame = GraspXLSequence(np.zeros((1, 3)), np.zeros((1, 3)), np.zeros((1, 45)), {})

    return {
        "weights.load_numpy_pickle": (load_numpy_pickle, ".ckpt", lambda b: b),
        "dgrasp.pkl": (read_dgrasp, ".pkl", lambda b: b),
        "dgrasp.npy": (read_dgrasp, ".npy", npy),
        "graspxl.npy": (read_graspxl, ".npy", npy),
        "graspxl.raw": (read_graspxl, ".npy", lambda b: b),
        "stage1.MANO_RIGHT.pkl": (lambda p: graspxl_joints(one_frame, p.parent), ".pkl", mano_dir),
        "oakink2.anno": (load_anno, ".pkl", lambda b: b),
        "mano.load_model": (load_model, ".pkl", lambda b: b),
        "baselines.lightning-ckpt": (load_torch_state_dict, ".ckpt", _torch_zip),
    }


def _torch_zip(body: bytes) -> bytes:
    """A torch.save zip checkpoint whose data.pkl is ``body`` (weights_only refuses, the fallback reads)."""
    import torch

    buf = io.BytesIO()
    torch.save({"state_dict": {"w": torch.zeros(2)}}, buf)
    src = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as z:
        for info in src.infolist():
            data = body if info.filename.endswith("/data.pkl") else src.read(info.filename)
            z.writestr(info, data)
    return out.getvalue()


def test_every_gadget_is_refused_by_every_reader(tmp_path):
    marker = tmp_path / "MARKER"
    corpus = gadget_corpus(marker)
    assert len(corpus) > 100
    ran, accepted = [], []
    for rname, (read, ext, wrap) in _readers(tmp_path).items():
        for gname, body in corpus.items():
            f = tmp_path / f"{rname}-{gname}{ext}".replace("/", "_")
            wrapped = wrap(body)
            if isinstance(wrapped, Path):  # the reader takes a folder holding the file
                f = wrapped / "MANO_RIGHT.pkl"
            else:
                f.write_bytes(wrapped)
            try:
                read(f)
                accepted.append(f"{rname}:{gname}")
            except InputError as e:
                assert str(f) in str(e) or str(f.parent) in str(e), (rname, gname, str(e))
                assert "\n" not in str(e), (rname, gname, str(e))
            if marker.exists():
                ran.append(f"{rname}:{gname}")
                marker.unlink()
    assert not ran, f"gadgets ran code: {ran}"
    assert not accepted, f"gadgets were accepted: {accepted}"


def test_gadgets_never_run_through_the_unpickler_itself(tmp_path):
    """Directly through SafeUnpickler with each reader's allow-list (no reader-side checks involved)."""
    from pam_bench.datasets import oakink2
    from pam_bench.geometry import mano

    marker = tmp_path / "MARKER"
    lists = {"numpy": SP.NUMPY_DATA, "anno": oakink2.ANNO_ALLOW, "mano": mano.MANO_ALLOW,
             "torch": SP.torch_tensors()}
    for lname, allow in lists.items():
        for gname, body in gadget_corpus(marker).items():
            for fallback in (None, SP.Inert):
                try:
                    SP.SafeUnpickler(io.BytesIO(body), allow, fallback=fallback).load()
                except Exception:  # noqa: BLE001 - refusal, or a stand-in that cannot be called as asked
                    pass
                assert not marker.exists(), (lname, gname, fallback)


def test_real_numpy_data_still_loads_in_every_protocol(tmp_path):
    data = {"f": np.arange(6.0).reshape(2, 3), "i": np.arange(4, dtype=np.int32), "b": np.array([True]),
            "c": np.array([1 + 2j]), "s": np.array(["ab", "c"]), "by": np.array([b"x"]),
            "o": np.array([1, "x"], object),
            "rec": np.zeros(2, dtype=[("a", "f4"), ("b", "i8", (2,))]), "t": np.array(["2020-01-01"], "datetime64[D]"),
            "scalar": np.float32(1.5), "fortran": np.asfortranarray(np.ones((2, 3))), "set": {1, 2},
            "fs": frozenset([3]), "bytes": b"raw", "ba": bytearray(b"q"), "cx": 3 + 1j, "be": np.zeros(2, ">f4"),
            "sd": np.array(["x"], dtype=np.dtypes.StringDType())}
    for p in range(6):
        blob = pickle.dumps(data, protocol=p)
        back, ref = SP.loads(blob), pickle.loads(blob)  # the stock unpickler is the reference
        assert set(back) == set(data)
        for k, v in ref.items():
            if isinstance(v, np.ndarray):
                assert back[k].dtype == v.dtype and np.array_equal(back[k], v), (p, k)
                assert np.array_equal(back[k].astype(data[k].dtype), data[k]), (p, k)
            else:
                assert back[k] == v == data[k], (p, k)


def test_allow_list_entries_are_single_names():
    with pytest.raises(ValueError):
        SP.real("os", "path.join")
    assert all("." not in n for _, n in SP.NUMPY_DATA)
    assert not any(m == "numpy.dtypes" for m, _ in SP.NUMPY_DATA)


def test_a_reader_declares_its_own_stand_ins(tmp_path):
    """The API another reader (e.g. a Lightning / yacs checkpoint) uses: exact pairs -> safe factories."""

    class CfgNode(dict):  # pickled under a foreign module name below
        pass

    class Callback:
        def __init__(self):
            self.best = "x"

    CfgNode.__module__, CfgNode.__qualname__ = "yacs.config", "CfgNode"
    Callback.__module__, Callback.__qualname__ = "pytorch_lightning.callbacks", "ModelCheckpoint"
    import sys
    import types

    fake_yacs = types.ModuleType("yacs.config")
    fake_yacs.CfgNode = CfgNode
    fake_pl = types.ModuleType("pytorch_lightning.callbacks")
    fake_pl.ModelCheckpoint = Callback
    names = ("yacs", "yacs.config", "pytorch_lightning", "pytorch_lightning.callbacks")
    saved = {k: sys.modules.get(k) for k in names}
    sys.modules.update({"yacs": types.ModuleType("yacs"), "yacs.config": fake_yacs,
                        "pytorch_lightning": types.ModuleType("pytorch_lightning"),
                        "pytorch_lightning.callbacks": fake_pl})
    try:
        cfg = CfgNode(MODEL=CfgNode(DEPTH=3))
        cfg.__dict__["__immutable__"] = True
        blob = pickle.dumps({"cfg": cfg, "cb": Callback(), "w": np.ones(2)}, protocol=4)
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    allow = {**SP.NUMPY_DATA, ("yacs.config", "CfgNode"): SP.StateDict,
             ("pytorch_lightning.callbacks", "ModelCheckpoint"): SP.Inert}
    out = SP.loads(blob, allow)
    assert isinstance(out["cfg"], SP.StateDict) and out["cfg"]["MODEL"]["DEPTH"] == 3
    assert out["cfg"].state == {"__immutable__": True}
    assert isinstance(out["cb"], SP.Inert) and not hasattr(out["cb"], "best")
    mod = SP.pickle_module(allow)
    assert mod.loads(blob)["cfg"]["MODEL"]["DEPTH"] == 3
    with pytest.raises(InputError, match="yacs.config.CfgNode"):
        SP.loads(blob, SP.NUMPY_DATA, where="cfg.pkl")
