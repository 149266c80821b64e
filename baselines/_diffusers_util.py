"""Shared plumbing for the learned baselines: dtypes, safe checkpoint loading, seeded noise.

Imports torch lazily (callers import this module inside their own methods or at their top level,
never from the CLI's start-up path).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from pam_bench import safe_pickle as SP
from pam_bench.errors import InputError, OptionError


def pick_dtype(device: str, dtype: str = "auto", *, component: str):
    """fp32 on CPU; bf16 on CUDA unless ``dtype`` names one of fp32/fp16/bf16 (``component``: the method whose
    ``-o dtype`` it is, named by a bad value's error)."""
    import torch

    table = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
    if dtype == "auto":
        return torch.bfloat16 if str(device).startswith("cuda") else torch.float32
    if dtype not in table:
        raise OptionError(component, "dtype", f"unknown dtype {dtype!r}; use auto, fp32, fp16 or bf16")
    return table[dtype]


def load_torch_state_dict(path: Path) -> tuple[dict[str, Any], str]:
    """A checkpoint's tensors: ``torch.load(weights_only=True)``; if the file holds Lightning objects that
    weights_only refuses, :mod:`pam_bench.safe_pickle` with torch's exact tensor names, every other class
    replaced by the inert :class:`~pam_bench.safe_pickle.Inert`. Returns (state_dict, how it was loaded);
    ``state_dict`` is unwrapped from ``["state_dict"]``."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such checkpoint file")
    obj, weights_only = SP.torch_checkpoint(path, SP.torch_tensors(), fallback=SP.Inert,
                                            what="a checkpoint of tensors and Lightning objects")
    how = ("torch.load(weights_only=True)" if weights_only
           else "restricted unpickler (tensors only; Lightning objects stubbed)")
    sd = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(sd, dict):
        raise InputError(path, "has no state_dict (expected a dict of tensors)")
    tensors = {k: v for k, v in sd.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise InputError(path, "holds no tensors (expected a state_dict of tensors)")
    return tensors, how


def torch_generator(seed: int, device: str):
    import torch

    g = torch.Generator(device="cpu")
    g.manual_seed(int(seed))
    return g


def randn(shape, generator, device, dtype):
    """Seeded Gaussian noise drawn on the CPU (identical on every device), then moved."""
    import torch

    return torch.randn(shape, generator=generator, dtype=torch.float32).to(device=device, dtype=dtype)
