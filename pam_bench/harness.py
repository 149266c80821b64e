"""Compatibility names for code written against the former ``pam_bench.harness``; the engine core is
:mod:`pam_bench.run` (import from there: patching a name here changes nothing the CLI calls)."""
from __future__ import annotations

from .run.components import DEFAULT_METRICS, build_dataset, build_method, build_metrics, metric_option_names
from .run.gt_cache import GT_FINGERPRINT, GTCache, gt_cache_dir
from .run.loop import evaluate
from .run.selection import check_limit, parse_shard, select_ids

__all__ = ["DEFAULT_METRICS", "GT_FINGERPRINT", "GTCache", "build_dataset", "build_method", "build_metrics",
           "check_limit", "evaluate", "gt_cache_dir", "metric_option_names", "parse_shard", "select_ids"]
