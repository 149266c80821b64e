"""pam-bench: benchmark and evaluation suite for sim-to-real hand-object-interaction video generation.

Public API (imports are lazy: ``import pam_bench`` is cheap)::

    from pam_bench import evaluate, list_entries
    results = evaluate(method="oracle", dataset="synthetic", metrics=["ssim", "psnr"], out="runs/x")
"""
from __future__ import annotations

import os as _os

# pam-bench never downloads weights at run time: every model loads from a local, user-given path. Tell the
# Hugging Face libraries so, so that a mistyped path fails locally instead of becoming a hub request.
_os.environ.setdefault("HF_HUB_OFFLINE", "1")
_os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

__version__ = "0.1.0"
__all__ = ["evaluate", "list_entries", "__version__"]


def evaluate(*args, **kwargs):
    """See :func:`pam_bench.harness.evaluate`."""
    from .harness import evaluate as _evaluate

    return _evaluate(*args, **kwargs)


def list_entries(kind: str | None = None):
    """Registry entries (datasets, methods, metrics) with what each is missing here."""
    from .registry import REGISTRY

    return [{"kind": e.kind, "name": e.name, "summary": e.summary, "missing": e.missing(),
             "user_files": e.user_files} for e in REGISTRY.entries(kind)]
