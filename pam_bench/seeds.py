"""Seed-aware results: runs that differ only in ``--seed``, aggregated to mean ± std over the seeds.

- ``pam-bench evaluate --seeds 42,43,44 --out OUT`` runs each seed into ``OUT/seed-<s>/`` (an ordinary,
  resumable run folder) and writes the aggregate to ``OUT/results.json`` and ``OUT/per_video.jsonl``.
- ``pam-bench aggregate RUN... --out OUT`` aggregates run folders made elsewhere. They must be the same
  run in everything but the seed (method identity, dataset manifest, limit, shard, conforming, metric
  backends and versions, number of evaluated clips); anything else is refused.

An aggregate results.json is an ordinary one (``schema_version`` 1) whose ``seed`` is None, with
``seeds`` (the list) and ``aggregate_of`` (the run folders). Each metric's ``value`` is the mean over
seeds, and ``over_seeds`` holds ``{"n", "std", "values", "seeds"}`` (``std`` with ddof 1, None for one
seed). A metric that has no value in some seed has no value in the aggregate (with the reason): a mean
over fewer seeds is never shown as if it were over all. ``ci95`` is None: the per-run intervals are
over clips, not seeds. per_video.jsonl holds each clip's per-video metrics averaged over the seeds (a
clip-metric missing in any seed is null), so the regression gate's paired test still applies.

Tables print ``mean ± std`` (:func:`format_cell`) and the number of seeds; the gate
(:mod:`pam_bench.report.regression`) counts a change as a regression or an improvement only when it exceeds
the seed spread (:func:`seed_spread`) as well as the tolerance.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .errors import IncompatibleResults, InputError, PamBenchError
from .store import atomic_write_bytes, atomic_write_json, read_json

SUBDIR = "seed-{}"
#: run.json keys that may differ between the runs of one aggregate (metrics are compared by column)
VARYING = ("seed", "metrics")


def parse_seeds(text: str) -> list[int]:
    """'42,43,44' -> [42, 43, 44]; at least two distinct integers."""
    try:
        seeds = [int(x) for x in str(text).split(",") if x.strip()]
    except ValueError:
        raise PamBenchError(f"--seeds must be comma-separated integers (e.g. 42,43,44), got {text!r}") from None
    if len(seeds) < 2 or len(set(seeds)) != len(seeds):
        raise PamBenchError(f"--seeds needs at least two distinct seeds, got {text!r}")
    return seeds


def evaluate_seeds(seeds: Sequence[int], evaluate, out: str | Path, **kwargs) -> dict:
    """Run ``evaluate(seed=s, out=OUT/seed-s, **kwargs)`` for every seed, then aggregate into OUT.

    A method that says the seed does not change its videos (``Generator.seed_ignored``) is run all the same,
    after a warning: its spread over the seeds is zero by construction, not by measurement."""
    out = Path(out)
    _warn_if_seed_ignored(kwargs, len(seeds))
    runs = []
    for s in seeds:
        run = out / SUBDIR.format(s)
        evaluate(seed=int(s), out=run, **kwargs)
        runs.append(run)
    return aggregate(runs, out)


def _warn_if_seed_ignored(kwargs: dict, n: int) -> None:
    from .console import echo
    from .run.components import build_method
    from .types import Generator

    method = kwargs.get("method")
    gen = method if isinstance(method, Generator) else build_method(
        method, kwargs.get("device", "cpu"), **(kwargs.get("method_options") or {}))
    reason = gen.seed_ignored()
    if reason:
        echo(f"pam-bench: warning: method {gen.name} ignores --seed ({reason}): the {n} runs will be identical "
             "and their spread is 0", err=True)


def _load_run(d: Path) -> tuple[Path, dict, dict]:
    from .results import load_results

    d = Path(d)
    if d.is_file():
        d = d.parent
    if not (d / "run.json").is_file():
        raise InputError(d, "not a run folder (no run.json): aggregate takes the run folders of one run per seed")
    return d, read_json(d / "run.json"), load_results(d)


def _check_same_run(runs: list[tuple[Path, dict, dict]]) -> None:
    from .results import column_key

    d0, id0, r0 = runs[0]
    seeds = [ident.get("seed") for _, ident, _ in runs]
    dup = sorted({s for s in seeds if seeds.count(s) > 1})
    if dup:
        raise IncompatibleResults(f"seed(s) {dup} given more than once: aggregate needs one run per seed")
    for d, ident, res in runs[1:]:
        diff = sorted(k for k in set(id0) | set(ident) if k not in VARYING and id0.get(k) != ident.get(k))
        if diff:
            raise IncompatibleResults(f"cannot aggregate {d} with {d0}: the runs differ in {', '.join(diff)}, "
                                      "not only in the seed")
        cols0 = {column_key(n, m) for n, m in r0["metrics"].items()}
        cols = {column_key(n, m) for n, m in res["metrics"].items()}
        if cols != cols0:
            raise IncompatibleResults(f"cannot aggregate {d} with {d0}: their metrics differ "
                                      f"({sorted(cols ^ cols0)})")
        if (res.get("n_evaluated"), res.get("n_expected")) != (r0.get("n_evaluated"), r0.get("n_expected")):
            raise IncompatibleResults(f"cannot aggregate {d} ({res.get('n_evaluated')}/{res.get('n_expected')} clips)"
                                      f" with {d0} ({r0.get('n_evaluated')}/{r0.get('n_expected')}): finish the "
                                      "incomplete run first (rerun its command to resume)")


def _metric_over_seeds(name: str, per_seed: list[dict], seeds: list[int]) -> dict:
    first = per_seed[0]
    out = {k: first.get(k) for k in ("direction", "backend", "version", "unit")}
    out.update({"n": first.get("n"), "ci95": None, "extras": {}, "unavailable": None})
    missing = [f"seed {s}: {m.get('unavailable') or 'no value'}" for s, m in zip(seeds, per_seed)
               if m.get("value") is None]
    values = [None if m.get("value") is None else float(m["value"]) for m in per_seed]
    if missing:
        out.update({"value": None, "unavailable": "; ".join(missing)})
    else:
        out["value"] = float(np.mean(values))
    std = float(np.std(values, ddof=1)) if not missing and len(values) > 1 else None
    out["over_seeds"] = {"n": len(seeds), "std": std, "values": values, "seeds": list(seeds)}
    warnings = sorted({str(m["extras"]["warning"]) for m in per_seed if (m.get("extras") or {}).get("warning")})
    if warnings:
        out["extras"]["warning"] = warnings[0]
    return out


def _per_video_mean(run_dirs: list[Path]) -> list[dict]:
    tables = []
    for d in run_dirs:
        p = d / "per_video.jsonl"
        if not p.is_file():
            return []
        tables.append({r["video_id"]: r for r in map(json.loads, filter(str.strip, p.read_text().splitlines()))})
    rows = []
    for vid, r0 in tables[0].items():
        row: dict[str, Any] = {"video_id": vid}
        for k in r0:
            if k == "video_id":
                continue
            vals = [t.get(vid, {}).get(k) for t in tables]
            ok = all(isinstance(v, (int, float)) and math.isfinite(v) for v in vals)
            row[k] = float(np.mean(vals)) if ok else None
        rows.append(row)
    return rows


def aggregate(run_dirs: Sequence[str | Path], out: str | Path | None = None) -> dict:
    """Aggregate runs that differ only in seed; writes OUT/results.json and OUT/per_video.jsonl when given."""
    if len(run_dirs) < 2:
        raise PamBenchError("aggregate needs at least two run folders (one per seed)")
    runs = [_load_run(Path(d)) for d in run_dirs]
    _check_same_run(runs)
    seeds = [int(ident["seed"]) for _, ident, _ in runs]
    r0 = runs[0][2]
    metrics = {name: _metric_over_seeds(name, [r["metrics"][name] for _, _, r in runs], seeds)
               for name in r0["metrics"]}
    res = {"schema_version": r0["schema_version"], "method": r0["method"], "dataset": r0["dataset"],
           "seed": None, "seeds": seeds, "shard": r0.get("shard"), "n_expected": r0.get("n_expected"),
           "n_evaluated": r0.get("n_evaluated"), "metrics": metrics, "env": r0.get("env"),
           "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
           "aggregate_of": [str(d) for d, _, _ in runs]}
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        if (out / "run.json").is_file():
            raise PamBenchError(f"{out} is a run folder; write the aggregate to a folder of its own")
        rows = _per_video_mean([d for d, _, _ in runs])
        text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows)
        atomic_write_bytes(out / "per_video.jsonl", text.encode())
        atomic_write_json(out / "results.json", res)
        res["_path"] = str(out / "results.json")
    return res


# --- reading aggregates: tables and the gate ------------------------------------------------------------

def over_seeds(metric: dict) -> dict | None:
    s = metric.get("over_seeds")
    return s if isinstance(s, dict) and s.get("n") else None


def format_cell(metric: dict, decimals: int | None = None) -> str | None:
    """'mean ± std' for a metric aggregated over seeds (None for an ordinary metric or a missing value)."""
    s = over_seeds(metric)
    if s is None or metric.get("value") is None:
        return None
    v, sd = float(metric["value"]), s.get("std")
    fmt = (lambda x: f"{x:.{decimals}f}") if decimals is not None else (lambda x: f"{x:.4g}")
    return f"{fmt(v)} ± {fmt(sd)}" if sd is not None else fmt(v)


def seed_spread(base: dict, new: dict | None) -> float | None:
    """The larger seed std of the two metrics (None when neither was aggregated over >= 2 seeds)."""
    stds = [s["std"] for s in (over_seeds(base), over_seeds(new or {})) if s and s.get("std") is not None]
    return max(stds) if stds else None
