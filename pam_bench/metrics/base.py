"""Metric base classes (torchmetrics-style streaming; pyiqa-style declarations on the class).

A metric turns one (sample, generated video) pair into a *payload* with ``measure`` (pure, cacheable:
the run store keeps it under ``payloads/<key>/``), then ``update(payload)`` accumulates it and
``compute()`` returns a MetricResult. ``reset()`` clears the accumulated state. Because payloads are
cached per video, a killed run resumes without recomputing them, and shards merge by their payloads.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import numpy as np

from ..types import Sample, Video

Payload = dict[str, Any]


@dataclass
class MetricResult:
    name: str
    value: float | None
    direction: str
    backend: str
    version: str
    n: int
    ci95: tuple[float, float] | None = None
    unit: str = ""
    extras: dict[str, Any] = field(default_factory=dict)
    unavailable: str | None = None  # why value is None

    def to_json(self) -> dict:
        d = asdict(self)
        d.pop("name")
        if d["ci95"] is not None:
            d["ci95"] = [float(d["ci95"][0]), float(d["ci95"][1])]
        return d


def bootstrap_ci(values: np.ndarray, n_boot: int = 1000, seed: int = 0, level: float = 0.95):
    """Percentile bootstrap CI of the mean over videos (seeded: reproducible)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size < 2:
        return None
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, v.size, size=(n_boot, v.size))
    means = v[idx].mean(axis=1)
    a = (1 - level) / 2
    return float(np.quantile(means, a)), float(np.quantile(means, 1 - a))


class Metric(ABC):
    name: ClassVar[str]
    direction: ClassVar[str]  # "lower" or "higher" is better
    version: ClassVar[str]
    kind: ClassVar[str] = "per_video"  # or "set" (a whole-set statistic such as FVD)
    unit: ClassVar[str] = ""
    backend: str = "numpy"
    #: False when measure() never reads the GT video (its GT side comes from measure_reference, which the
    #: GT cache keeps): then a warm GT cache lets the evaluate loop skip decoding the reference clip.
    uses_reference_video: ClassVar[bool] = True
    #: True when the metric has a reference side: ``measure_reference(sample)`` returns the GT-side payload,
    #: which the GT cache (pam_bench.run.gt_cache) keeps across runs and merges into each per-video payload
    #: before ``update``. A subclass that defines ``measure_reference`` and does not say declares True.
    has_reference: ClassVar[bool] = False
    #: How tables print the metric: its label (None: the name) and the decimals the paper prints (csv keeps
    #: full precision).
    label: ClassVar[str | None] = None
    decimals: ClassVar[int] = 4
    #: The regression gate's default tolerance, ``{"abs": a, "rel": r}``: allowed worsening =
    #: max(a, r * |baseline|); None: the gate's default (pam_bench.report.regression.DEFAULT_TOLERANCE).
    tolerance: ClassVar[dict[str, float] | None] = None
    #: True when the value itself, not just its precision, depends on the number of clips N (a set statistic
    #: biased at small N) and the paper reports it from PAPER_N clips: a value from fewer clips is marked and
    #: never bold (pam_bench.report.smalln).
    n_dependent: ClassVar[bool] = False

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        if "has_reference" not in cls.__dict__ and "measure_reference" in cls.__dict__:
            cls.has_reference = True
    #: True when ``measure`` may run for different clips in parallel threads (pure, no shared mutable
    #: state): the evaluate loop then measures several clips at once (pam_bench.prefetch).
    thread_safe: ClassVar[bool] = False

    def __init__(self, device: str = "cpu", **options):
        self.device = device
        self.options = options
        self.reset()

    @property
    def key(self) -> str:
        """Payload cache key: changes whenever the numbers could change."""
        return f"{self.name}@{self.version}-{self.backend}"

    def config(self) -> dict:
        return {"backend": self.backend, "version": self.version, "direction": self.direction,
                "kind": self.kind, "options": dict(self.options)}

    def check_ready(self) -> None:
        """Raise MissingResource if a backend's weights or packages are missing."""

    @abstractmethod
    def measure(self, sample: Sample, generated: Video) -> Payload:
        ...

    @abstractmethod
    def update(self, payload: Payload) -> None:
        ...

    @abstractmethod
    def compute(self) -> MetricResult:
        ...

    @abstractmethod
    def reset(self) -> None:
        ...

    def _result(self, value, n, **kw) -> MetricResult:
        return MetricResult(self.name, value, self.direction, self.backend, self.version, n,
                            unit=self.unit, **kw)


class MeanMetric(Metric):
    """A per-video metric: payload {"value": float, <extra>: float, ...}; result = mean over videos.

    Extras (other numeric keys) are averaged over the videos where they are finite, with their count.
    A payload may carry ``"value": None`` with a ``"reason"``: it is counted as unavailable, never as 0.
    """

    def reset(self) -> None:
        self._values: list[float] = []
        self._extras: dict[str, list[float]] = {}
        self._missing: dict[str, int] = {}

    def update(self, payload: Payload) -> None:
        v = payload.get("value")
        if v is None or not np.isfinite(v):
            reason = str(payload.get("reason", "no value"))
            self._missing[reason] = self._missing.get(reason, 0) + 1
        else:
            self._values.append(float(v))
        for k, x in payload.items():
            if k in ("value", "reason") or isinstance(x, (str, bool)) or x is None:
                continue
            if np.ndim(x) == 0:
                self._extras.setdefault(k, []).append(float(x))

    def compute(self) -> MetricResult:
        vals = np.asarray(self._values, dtype=np.float64)
        extras: dict[str, Any] = {}
        for k, xs in self._extras.items():
            a = np.asarray(xs, dtype=np.float64)
            a = a[np.isfinite(a)]
            extras[k] = float(a.mean()) if a.size else None
        if self._missing:
            extras["n_unavailable"] = int(sum(self._missing.values()))
            extras["unavailable_reasons"] = dict(self._missing)
        if vals.size == 0:
            return self._result(None, 0, extras=extras,
                                unavailable="; ".join(sorted(self._missing)) or "no videos")
        return self._result(float(vals.mean()), int(vals.size), ci95=bootstrap_ci(vals), extras=extras)


def check_pair(sample: Sample, generated: Video, name: str) -> np.ndarray:
    """The GT frames, after checking the pair has the same shape (a clear error otherwise)."""
    if sample.video is None:
        from ..errors import InputError

        raise InputError(sample.id, f"{name} needs the reference video, and this clip has none")
    gt = sample.video.frames
    if gt.shape != generated.frames.shape:
        from ..errors import InputError

        raise InputError(sample.id, f"{name}: generated video is {tuple(generated.frames.shape)} "
                                    f"but the reference is {tuple(gt.shape)} (T,H,W,3)")
    return gt
