"""The metrics: pixel (SSIM, PSNR, LPIPS), set (FVD, FVMD), motion (MF) and hand (MPJPE) metrics.

The classes are exported lazily (``pam_bench.metrics.SSIM()`` loads only the pixel metrics), so a Metric
instance can be passed straight to :func:`pam_bench.evaluate`. The registry names them for the CLI.
"""
from __future__ import annotations

import importlib as _importlib

#: Lazily exported class -> the module that defines it.
_LAZY = {
    "Metric": ".base", "MeanMetric": ".base", "MetricResult": ".base",
    "SSIM": ".pixel", "PSNR": ".pixel", "LPIPS": ".pixel", "FVD": ".fvd", "FVMD": ".fvmd",
    "MotionFidelity": ".motion", "HandMPJPE": ".hand",
}

__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(_importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'pam_bench.metrics' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
