"""Shared plumbing for the learned baselines: dtypes, safe checkpoint loading, seeded noise.

Imports torch lazily (callers import this module inside their own methods or at their top level,
never from the CLI's start-up path).
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from pam_bench.errors import InputError, MissingResource


def pick_dtype(device: str, dtype: str = "auto"):
    """fp32 on CPU; bf16 on CUDA unless ``dtype`` names one of fp32/fp16/bf16."""
    import torch

    table = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
    if dtype == "auto":
        return torch.bfloat16 if str(device).startswith("cuda") else torch.float32
    if dtype not in table:
        raise InputError("dtype", f"unknown dtype {dtype!r}; use auto, fp32, fp16 or bf16")
    return table[dtype]


class _Opaque:
    """Stands in for any non-tensor class inside a Lightning checkpoint (callbacks, optimiser state).

    It records nothing and runs no code from the file: construction and state are ignored.
    """

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        pass

    def __call__(self, *args, **kwargs):  # a pickled function reference called by REDUCE
        return _Opaque()


_SAFE_PREFIXES = ("torch._utils", "torch.storage", "torch._tensor", "collections", "torch.serialization")
_SAFE_NAMES = {("torch", n) for n in ("Size", "float32", "float16", "bfloat16", "int64", "device")} | {
    ("torch", n) for n in ("FloatStorage", "HalfStorage", "BFloat16Storage", "LongStorage", "IntStorage",
                           "ByteStorage", "BoolStorage", "DoubleStorage")} | {
    ("builtins", n) for n in ("set", "frozenset", "dict", "list", "tuple", "int", "float", "str", "bytes",
                              "bool", "slice", "complex")}


class _RestrictedUnpickler(pickle.Unpickler):
    """Tensor rebuild functions and plain containers only; every other class becomes ``_Opaque``."""

    def find_class(self, module: str, name: str):
        if (module, name) in _SAFE_NAMES or module.startswith(_SAFE_PREFIXES) and (
                name.startswith("_rebuild") or name in ("OrderedDict", "defaultdict", "_load_from_bytes",
                                                        "UntypedStorage", "TypedStorage")):
            return super().find_class(module, name)
        return _Opaque


class _RestrictedPickleModule:
    """A ``pickle_module`` for ``torch.load`` that uses the restricted unpickler."""

    Unpickler = _RestrictedUnpickler
    load = staticmethod(lambda f, **kw: _RestrictedUnpickler(f, **kw).load())
    __name__ = "pam_bench_restricted_pickle"


def load_torch_state_dict(path: Path) -> tuple[dict[str, Any], str]:
    """A checkpoint's tensors: ``torch.load(weights_only=True)``; if the file holds Lightning objects that
    weights_only refuses, a restricted unpickler that keeps tensors and replaces every other class by an
    inert stub. Returns (state_dict, how it was loaded). ``state_dict`` is unwrapped from ``["state_dict"]``."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such checkpoint file")
    how = "torch.load(weights_only=True)"
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        how = "restricted unpickler (tensors only; Lightning objects stubbed)"
        try:
            obj = torch.load(path, map_location="cpu", weights_only=False, pickle_module=_RestrictedPickleModule)
        except Exception as e:  # noqa: BLE001 - any failure means the file is unusable
            raise InputError(path, f"cannot read the checkpoint ({type(e).__name__}: {e})") from None
    except Exception as e:  # noqa: BLE001
        raise InputError(path, f"cannot read the checkpoint ({type(e).__name__}: {e})") from None
    sd = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(sd, dict):
        raise InputError(path, "has no state_dict (expected a dict of tensors)")
    return {k: v for k, v in sd.items() if isinstance(v, torch.Tensor)}, how


def need_file(path: Path | None, what: str, how: str) -> Path:
    """``path`` if it exists, else MissingResource(what, how)."""
    if path is None or not Path(path).exists():
        where = f" (looked at {path})" if path is not None else ""
        raise MissingResource(what, how + where)
    return Path(path)


def torch_generator(seed: int, device: str):
    import torch

    g = torch.Generator(device="cpu")
    g.manual_seed(int(seed))
    return g


def randn(shape, generator, device, dtype):
    """Seeded Gaussian noise drawn on the CPU (identical on every device), then moved."""
    import torch

    return torch.randn(shape, generator=generator, dtype=torch.float32).to(device=device, dtype=dtype)
