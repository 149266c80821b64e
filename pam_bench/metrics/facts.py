"""A metric's display and gate facts (label, decimals, direction, default tolerance, small-N dependence) by
the name a results file gives it, read from its registered class; a name the registry does not know has none."""
from __future__ import annotations

from ..errors import PamBenchError
from ..registry import REGISTRY


def metric_class(name: str):
    """The registered metric class called ``name``, or None (not registered, or it cannot be imported)."""
    if name not in REGISTRY.names("metric"):
        return None
    try:
        return REGISTRY.load("metric", name)
    except (ImportError, PamBenchError):
        return None


def label(name: str) -> str:
    """How tables name the metric: its class's ``label``, else ``name``."""
    cls = metric_class(name)
    return (cls.label if cls is not None else None) or name


def decimals(name: str, default: int = 4) -> int:
    """The decimals tables print the metric with."""
    cls = metric_class(name)
    return cls.decimals if cls is not None else default


def direction(name: str) -> str | None:
    """"lower" or "higher" is better (None: not a registered metric)."""
    cls = metric_class(name)
    return cls.direction if cls is not None else None


def n_dependent(name: str) -> bool:
    """Whether the metric's value depends on N, so that fewer clips than the paper's is marked (False: not
    a registered metric)."""
    cls = metric_class(name)
    return cls is not None and bool(cls.n_dependent)


def tolerance(name: str) -> dict[str, float] | None:
    """The regression gate's default tolerance of the metric (None: the gate's default applies)."""
    cls = metric_class(name)
    return None if cls is None or cls.tolerance is None else dict(cls.tolerance)
