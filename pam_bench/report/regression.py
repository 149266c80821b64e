"""The checkpoint regression gate: ``pam-bench check RESULT --baseline BASELINE [--tolerances FILE]``.

For every metric of the baseline, ``worse`` is the change in the metric's own bad direction
(new - base for lower-is-better, base - new for higher-is-better). The allowed change is
``max(abs, rel * |baseline value|)`` from the metric's tolerance (its class's ``tolerance``, overridable
per metric by a JSON file ``{"ssim": {"abs": 0.01}, "fvd": {"rel": 0.1}, "default": {"abs": 0, "rel": 0.02}}``).

Decision rule (documented, deterministic):
  * per-video metrics with per_video.jsonl in both runs and at least 2 paired videos: a **paired bootstrap**
    over the videos both runs scored (seeded, 2,000 resamples) gives a 95% interval of the mean worsening.
    The metric regresses only when the mean worsening exceeds the tolerance AND the interval's lower end is
    above 0 (the worsening is not explained by which videos were sampled);
  * set metrics (FVD) and per-video metrics without paired data: the worsening must exceed the tolerance
    (and, when the baseline has a ci95, the new value must also lie outside it on the bad side);
  * a metric present in the baseline but missing or without a value in the new result, a value that is
    NaN, infinite or not a number on either side, and fewer evaluated clips than the baseline, are
    failures too (never compared: ``NaN > allowed`` is False, so a NaN would otherwise pass).
  * results aggregated over seeds (:mod:`pam_bench.seeds`): a change counts as a regression or an
    improvement only when it also exceeds the seed spread (the larger std over seeds of the two results).
Improvements beyond the tolerance are reported, never failed. Runs whose provenance (GPU, CUDA, cuDNN, package
versions, git commit: ``results.PROVENANCE_FIELDS``) differs get a warning line, not a failure. Results on
different dataset manifests or with different metric backends/versions are refused
(:func:`pam_bench.results.check_comparable`).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import InputError
from ..results import check_comparable, env_differences, load_results

#: The tolerance of a metric whose class declares none (allowed worsening = max(abs, rel * |baseline|)).
DEFAULT_TOLERANCE: dict[str, float] = {"abs": 0.0, "rel": 0.02}


def default_tolerances() -> dict[str, dict[str, float]]:
    """Each registered metric's own tolerance (``Metric.tolerance``), plus ``"default"`` for the others."""
    from ..metrics import facts
    from ..registry import REGISTRY

    out = {}
    for name in REGISTRY.names("metric"):
        t = facts.tolerance(name)
        if t is not None:
            out[name] = t
    return {**out, "default": dict(DEFAULT_TOLERANCE)}


def __getattr__(name: str):
    if name == "DEFAULT_TOLERANCES":  # the defaults as one mapping (read from the metric classes)
        return default_tolerances()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

N_BOOT = 2000
BOOT_SEED = 0


@dataclass
class MetricCheck:
    name: str
    direction: str
    base: float | None
    new: float | None
    allowed: float
    worse: float | None  # > 0: worse in the metric's direction
    status: str  # "ok" | "regressed" | "improved" | "missing"
    rule: str
    paired_ci95: tuple[float, float] | None = None
    n_paired: int = 0
    worst_videos: list[tuple[str, float, float]] = field(default_factory=list)  # (id, base, new)


@dataclass
class CheckReport:
    result: str
    baseline: str
    checks: list[MetricCheck]
    coverage: tuple[int, int]  # (new n_evaluated, baseline n_evaluated)
    require_better: tuple[str, ...] = ()  # metrics that must improve (beyond tolerance and seed spread)
    env_warnings: list[str] = field(default_factory=list)  # provenance differences (warned, never failed)

    @property
    def failed(self) -> bool:
        return (any(c.status in ("regressed", "missing") for c in self.checks) or self.coverage[0] < self.coverage[1]
                or bool(self.not_better()))

    def not_better(self) -> list[str]:
        improved = {c.name for c in self.checks if c.status == "improved"}
        return [n for n in self.require_better if n not in improved]

    def regressed(self) -> list[str]:
        return ([c.name for c in self.checks if c.status in ("regressed", "missing")]
                + [f"{n} (required better, beyond tolerance and seed spread)" for n in self.not_better()])


def load_tolerances(path: str | Path | None = None) -> dict[str, dict[str, float]]:
    """Defaults, updated per metric from a JSON file (keys: metric names or 'default'; values: abs/rel)."""
    tol = default_tolerances()
    if path is None:
        return tol
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise InputError(p, "no such file (tolerances JSON)") from None
    except json.JSONDecodeError as e:
        raise InputError(p, f"not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise InputError(p, 'tolerances must be an object like {"ssim": {"abs": 0.01}}')
    for name, t in data.items():
        if not isinstance(t, dict) or not set(t) <= {"abs", "rel"} or not t:
            raise InputError(p, f"tolerance of '{name}' must be an object with 'abs' and/or 'rel', got {t!r}")
        for k, v in t.items():
            if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0 or not math.isfinite(v):
                raise InputError(p, f"tolerance {name}.{k} must be a non-negative number, got {v!r}")
        tol[name] = {"abs": 0.0, "rel": 0.0, **{k: float(v) for k, v in t.items()}}
    return tol


def read_per_video(result: dict) -> dict[str, dict[str, Any]] | None:
    """per_video.jsonl beside a results.json, keyed by video id (None when absent)."""
    p = Path(result["_path"]).parent / "per_video.jsonl"
    if not p.is_file():
        return None
    out = {}
    for i, line in enumerate(p.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            out[row["video_id"]] = row
        except (json.JSONDecodeError, KeyError, TypeError):
            raise InputError(p, f"line {i} is not a per-video JSON object with a video_id") from None
    return out


def paired_bootstrap(worse: np.ndarray, n_boot: int = N_BOOT, seed: int = BOOT_SEED) -> tuple[float, float] | None:
    """Percentile 95% interval of the mean of paired per-video differences (None below 2 pairs)."""
    d = np.asarray(worse, np.float64)
    if d.size < 2:
        return None
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, d.size, size=(n_boot, d.size))].mean(axis=1)
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _num(v) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _sign(direction: str) -> float:
    return 1.0 if direction == "lower" else -1.0


def _paired(name: str, direction: str, pv_new, pv_base) -> tuple[np.ndarray, list[tuple[str, float, float]]]:
    if pv_new is None or pv_base is None:
        return np.zeros(0), []
    rows = []
    for vid, b in pv_base.items():
        n = pv_new.get(vid)
        if n is None:
            continue
        vb, vn = b.get(name), n.get(name)
        if vb is None or vn is None or not (math.isfinite(vb) and math.isfinite(vn)):
            continue
        rows.append((vid, float(vb), float(vn)))
    s = _sign(direction)
    d = np.array([s * (vn - vb) + 0.0 for _, vb, vn in rows], np.float64)
    order = np.argsort(-d, kind="stable") if d.size else []
    worst = [rows[i] for i in order[:5] if d[i] > 0]
    return d, worst


def check_metric(name: str, base_m: dict, new_m: dict | None, tol: dict[str, float], pv_new, pv_base,
                 kind: str) -> MetricCheck:
    direction = base_m["direction"]
    base = base_m.get("value")
    new = None if new_m is None else new_m.get("value")
    allowed = max(tol.get("abs", 0.0), tol.get("rel", 0.0) * abs(base or 0.0))
    if base is None:
        return MetricCheck(name, direction, None, new, allowed, None, "ok", "baseline has no value: nothing to hold")
    if new is None:
        why = "absent from the new result" if new_m is None else f"no value ({new_m.get('unavailable')})"
        return MetricCheck(name, direction, base, None, allowed, None, "missing", why)
    bad = [f"{side} value is {v!r}" for side, v in (("baseline", base), ("new", new)) if not _finite(v)]
    if bad:
        return MetricCheck(name, direction, _num(base), _num(new), 0.0, None, "missing", "; ".join(bad))
    worse = _sign(direction) * (float(new) - float(base)) + 0.0  # no "-0"
    d, worst = _paired(name, direction, pv_new, pv_base) if kind == "per_video" else (np.zeros(0), [])
    ci = paired_bootstrap(d)
    if ci is not None:
        significant = ci[0] > 0
        rule = f"paired bootstrap over {d.size} videos: worse by {worse:+.4g} (95% CI {ci[0]:+.4g}..{ci[1]:+.4g}), allowed {allowed:.4g}"
        regressed = worse > allowed and significant
        improved = -worse > allowed and ci[1] < 0
    else:
        outside = True
        if base_m.get("ci95"):
            lo, hi = base_m["ci95"]
            outside = (new > hi) if direction == "lower" else (new < lo)
        rule = f"tolerance{' and baseline ci95' if base_m.get('ci95') else ''}: worse by {worse:+.4g}, allowed {allowed:.4g}"
        regressed = worse > allowed and outside
        improved = -worse > allowed
    from ..seeds import seed_spread

    spread = seed_spread(base_m, new_m)
    if spread is not None:  # aggregated over seeds: a change must also exceed the seed spread
        rule += f"; seed spread {spread:.4g}"
        regressed, improved = regressed and worse > spread, improved and -worse > spread
    status = "regressed" if regressed else "improved" if improved else "ok"
    return MetricCheck(name, direction, float(base), float(new), allowed, worse, status, rule, ci, int(d.size), worst)


def check(result: str | Path | dict, baseline: str | Path | dict, tolerances: str | Path | dict | None = None,
          require_better: Sequence[str] = ()) -> CheckReport:
    """Compare a result with a baseline; raises IncompatibleResults when they cannot be compared.
    ``require_better``: metrics that must have *improved* (beyond tolerance and seed spread) to pass."""
    new = result if isinstance(result, dict) else load_results(result)
    base = baseline if isinstance(baseline, dict) else load_results(baseline)
    check_comparable(new, base, "check against the baseline")
    tol = tolerances if isinstance(tolerances, dict) else load_tolerances(tolerances)
    pv_new, pv_base = read_per_video(new), read_per_video(base)
    checks = []
    for name, bm in base["metrics"].items():
        per_video = pv_base is not None and any(name in r for r in pv_base.values())
        kind = "per_video" if per_video else "set"  # per_video.jsonl holds only per-video metrics
        checks.append(check_metric(name, bm, new["metrics"].get(name), tol.get(name, tol["default"]),
                                   pv_new, pv_base, kind))
    unknown = sorted(set(require_better) - set(base["metrics"]))
    if unknown:
        raise InputError(base["_path"], f"--require-better names {unknown}, which the baseline does not have")
    return CheckReport(new["_path"], base["_path"], checks,
                       (int(new.get("n_evaluated", 0)), int(base.get("n_evaluated", 0))), tuple(require_better),
                       env_differences(new, base))


def format_report(rep: CheckReport) -> str:
    from tabulate import tabulate

    rows = []
    for c in rep.checks:
        rows.append([c.name, c.direction, "–" if c.base is None else f"{c.base:.5g}",
                     "–" if c.new is None else f"{c.new:.5g}", "–" if c.worse is None else f"{c.worse:+.4g}",
                     f"{c.allowed:.4g}", c.status.upper() if c.status != "ok" else "ok", c.rule])
    out = [f"check {rep.result}\n   vs {rep.baseline}", "",
           tabulate(rows, headers=["metric", "better", "baseline", "new", "worse by", "allowed", "status", "rule"],
                    tablefmt="simple")]
    if rep.env_warnings:
        out.append("\nwarning: the two runs differ in their environment, so scores may move with it: "
                   + "; ".join(rep.env_warnings))
    if rep.coverage[0] < rep.coverage[1]:
        out.append(f"\nFAILED coverage: {rep.coverage[0]} clips evaluated, the baseline has {rep.coverage[1]}")
    for c in rep.checks:
        if c.worst_videos and c.status == "regressed":
            out.append(f"\n{c.name}: videos that got worst (baseline -> new):")
            out += [f"  {vid}: {b:.5g} -> {n:.5g}" for vid, b, n in c.worst_videos]
    improved = [c.name for c in rep.checks if c.status == "improved"]
    if improved:
        out.append(f"\nimproved: {', '.join(improved)}")
    failed = [c.name if c.status == "regressed" else f"{c.name} ({c.rule})" for c in rep.checks
              if c.status in ("regressed", "missing")]  # a missing / NaN value says why
    failed += [f"{n} (required better, beyond tolerance and seed spread)" for n in rep.not_better()]
    out.append("\nFAILED: " + ", ".join(failed + (["coverage"] if rep.coverage[0] < rep.coverage[1] else []))
               if rep.failed else "\npassed: no metric got worse beyond its tolerance")
    return "\n".join(out)
