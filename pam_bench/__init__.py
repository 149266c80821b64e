"""pam-bench: benchmark and evaluation suite for sim-to-real hand-object-interaction video generation.

Public API (imports are lazy: ``import pam_bench`` loads neither numpy nor torch, and changes nothing in
the process)::

    import pam_bench
    results = pam_bench.evaluate(method="oracle", dataset="synthetic", metrics=["ssim", "psnr"], out="runs/x")
    ssim = pam_bench.create_metric("ssim")          # a registered metric by name, with its options
    per_frame = pam_bench.ssim_frames(a, b)         # the functional metrics on uint8 T x H x W x 3 arrays

Exported lazily: :func:`evaluate`, :func:`list_entries`, :func:`create_metric`, the metric classes
(``SSIM``, ``PSNR``, ``LPIPS``, ``FVD``, ``MotionFidelity``, ``HandMPJPE`` and their bases) and the
functional metrics (``ssim_frames``, ``psnr_frames``, ``lpips_frames``, ``frechet_distance``,
``motion_fidelity``, ``root_aligned_mpjpe``, ...), each loaded from its module on first access.
"""
from __future__ import annotations

import importlib as _importlib

from ._version import __version__

#: Lazily exported name -> the module that defines it.
_LAZY = {
    "Metric": "pam_bench.metrics.base", "MeanMetric": "pam_bench.metrics.base",
    "MetricResult": "pam_bench.metrics.base", "bootstrap_ci": "pam_bench.metrics.base",
    "SSIM": "pam_bench.metrics.pixel", "PSNR": "pam_bench.metrics.pixel", "LPIPS": "pam_bench.metrics.pixel",
    "ssim_frames": "pam_bench.metrics.pixel", "psnr_frames": "pam_bench.metrics.pixel",
    "lpips_frames": "pam_bench.metrics.pixel", "build_lpips": "pam_bench.metrics.pixel",
    "FVD": "pam_bench.metrics.fvd",
    "FrechetStats": "pam_bench.metrics.frechet", "frechet_distance": "pam_bench.metrics.frechet",
    "frechet_from_stats": "pam_bench.metrics.frechet",
    "MotionFidelity": "pam_bench.metrics.motion", "motion_fidelity": "pam_bench.metrics.motion",
    "HandMPJPE": "pam_bench.metrics.hand", "root_aligned_mpjpe": "pam_bench.metrics.hand",
    "joint_errors_2d": "pam_bench.metrics.hand",
}

__all__ = ["evaluate", "list_entries", "create_metric", "__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(_importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'pam_bench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def evaluate(*args, **kwargs):
    """Evaluate a method on a dataset split and return the results dict (the content of results.json).

    Arguments (all but ``method`` have defaults; the CLI flag of ``pam-bench evaluate`` in brackets):

    - ``method``: a registered method name (``pam-bench list methods``) or a :class:`~pam_bench.types.Generator`.
    - ``dataset``: a registered dataset name (default ``"synthetic"``) or a :class:`~pam_bench.types.Dataset`.
    - ``metrics``: metric names and/or Metric instances, e.g. ``["ssim", pam_bench.metrics.FVD(clip="random")]``
      (default ssim, psnr, lpips) [``--metrics``]. An instance brings its own options and device.
    - ``out``: the run folder (default ``"runs/eval"``) [``--out``]; ``None`` runs in a temporary folder that
      is removed afterwards, so only the returned dict remains (nothing resumes).
    - ``device``: ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` for the method and metrics built by name [``--device``].
    - ``seed``: the base seed; each clip's seed is derived from it and the clip id [``--seed``].
    - ``root``, ``split``: the dataset's folder and split, for a dataset given by name [``--root``, ``--split``].
    - ``limit``: evaluate only the first N clips of the split (or of ``ids``) [``--limit``].
    - ``ids``: evaluate these clip ids of the split, in split order [``--ids``].
    - ``allow_missing``: a method whose videos lie on disk scores the clips that are there instead of refusing
      an incomplete folder [``--allow-missing``].
    - ``workers``: clips decoded and measured at once (default: the core count; memory is bounded by it, not
      by the number of clips; see :mod:`pam_bench.prefetch`) [``--workers``].
    - ``shard``: ``"i/N"``, every N-th clip starting at i, for job arrays (merge with
      :func:`pam_bench.distributed.merge`) [``--shard``].
    - ``method_options``, ``dataset_options``: ``{key: value}`` for a component given by name [``-o``, ``-d``].
    - ``metric_options``: ``{metric name: {key: value}}`` for metrics given by name [``-m name.key=value``].
    - ``force``: discard a run folder that holds a different run [``--force``].
    - ``codec``: how generated videos are stored, ``"lossless"`` (default) or a lossy codec [``--codec``].
    - ``progress``: show a progress bar on stderr [``--no-progress`` turns it off].
    - ``gt_cache``: the GT-feature cache folder (default ``$PAM_BENCH_HOME/gt_cache``) [``--gt-cache``].
    - ``save_videos``: store the generated videos in the run folder (default True).
    - ``trim``, ``resize``: conform generated videos to the reference length / size [``--trim``, ``--resize``].
    - ``condition_noise``, ``condition_noise_seed``: Gaussian noise (uint8 units) on the condition videos and
      its seed (:mod:`pam_bench.noise`) [``--condition-noise``, ``--condition-noise-seed``].

    Resumable: videos and per-video payloads already in ``out`` are reused. Under torchrun every rank calls
    it and each takes its share of the clips. Bad input raises :class:`pam_bench.errors.PamBenchError`.
    Implemented by :func:`pam_bench.run.loop.evaluate`.
    """
    from .run.loop import evaluate as _evaluate

    return _evaluate(*args, **kwargs)


def list_entries(kind: str | None = None):
    """Registry entries (datasets, methods, metrics) with what each is missing here."""
    from .registry import REGISTRY

    return [{"kind": e.kind, "name": e.name, "summary": e.summary, "missing": e.missing(),
             "user_files": e.user_files} for e in REGISTRY.entries(kind)]


def create_metric(name: str, device: str = "cpu", **options):
    """The registered metric ``name`` (``pam-bench list`` shows them), built with ``options`` exactly as
    ``-m name.key=value`` would (an unknown option is a one-line error naming it)."""
    from .run.components import build_metrics

    return build_metrics([name], device=device, options={name: options} if options else None)[0]
