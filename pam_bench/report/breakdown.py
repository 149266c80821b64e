"""Per-group breakdown of a run: where does a generator fail (an object, a camera, a subject)?

``pam-bench breakdown RUN --by KEY`` groups the run's clips by a key of the dataset's per-clip metadata
(:meth:`pam_bench.types.Dataset.clip_meta`: DexYCB subject / grasp / object / camera, OAKINK2 sequence /
scene / object / camera, synthetic object / size; the grouping rule is :mod:`pam_bench.report.clipgroups`,
shared with the HTML site's ``--group-by``). The dataset is rebuilt from the run's
``dataset_args.json`` (``--root`` / ``-d`` override it). A clip without the key falls in the group
``(unknown)``, so the groups' clip counts always add up to the run's.

Per group:

- per-video metrics (from per_video.jsonl): the mean over the group's clips with a 95% percentile
  bootstrap interval over clips (:func:`pam_bench.metrics.base.bootstrap_ci`; none below 2 clips);
- set metrics (FVD, FVMD): recomputed from the run's cached payloads over the group's clips only, and
  only for groups with at least ``min_set_clips`` clips (default 10); a smaller group gets no value and
  the reason says so. A seed aggregate (pam_bench.seeds) has no payloads: its set metrics are not broken
  down (say so), its per-video means are.

The report is printed and written as ``breakdown_<key>.json`` and ``.md`` (in the run folder or ``--out``).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, PamBenchError
from ..store import atomic_write_bytes, atomic_write_json, read_json
from .clipgroups import group_clips, largest_first

MIN_SET_CLIPS = 10


def _set_metrics(run_dir: Path, results: dict, names: list[str], dataset, device: str, gt_cache):
    """Metric objects rebuilt from run.json (checked against results.json), or (None, reason)."""
    from ..run.components import build_metrics

    if not names:
        return [], ""
    if not (run_dir / "run.json").is_file():
        return None, "no run.json (a seed aggregate has no payloads): set metrics are not broken down"
    cfg = read_json(run_dir / "run.json").get("metrics") or {}
    mets = build_metrics(names, device, {n: dict((cfg.get(n) or {}).get("options") or {}) for n in names})
    for m in mets:
        r = results["metrics"][m.name]
        if (m.backend, m.version) != (r["backend"], r["version"]):
            return None, f"metric {m.name} here is {m.backend}@{m.version}, the run used {r['backend']}@{r['version']}"
    return mets, ""


def _per_video(rows: list[dict], name: str, meta: dict) -> dict:
    from ..metrics.base import bootstrap_ci

    vals = np.array([r[name] for r in rows if isinstance(r.get(name), (int, float))], np.float64)
    vals = vals[np.isfinite(vals)]
    out = {"direction": meta["direction"], "backend": meta["backend"], "n": int(vals.size)}
    if not vals.size:
        return {**out, "value": None, "ci95": None, "unavailable": "no clip of the group has a value"}
    return {**out, "value": float(vals.mean()), "ci95": bootstrap_ci(vals)}


def breakdown(run: str | Path, by: str, root=None, dataset_options: dict | None = None, gt_cache=None,
              min_set_clips: int = MIN_SET_CLIPS, device: str = "cpu") -> dict:
    """The per-group report of a run folder (see the module docstring)."""
    from ..run.finalize import collect
    from ..run.gt_cache import GTCache
    from ..results import load_results
    from ..store import RunStore

    if min_set_clips < 2:
        raise PamBenchError(f"--min-set-clips must be >= 2, got {min_set_clips}")
    run_dir = Path(run)
    results = load_results(run_dir)
    run_dir = Path(results["_path"]).parent
    pv = run_dir / "per_video.jsonl"
    if not pv.is_file():
        raise InputError(pv, "absent: the run has no per-video results to group")
    rows = [json.loads(x) for x in pv.read_text().splitlines() if x.strip()]
    by_id = {r["video_id"]: r for r in rows}
    from ..run.components import rebuild_dataset

    ds = rebuild_dataset(run_dir, root, dataset_options)
    groups = group_clips(ds, list(by_id), by)
    per_video_names = [n for n in results["metrics"] if any(n in r for r in rows)]
    set_names = [n for n in results["metrics"] if n not in per_video_names]
    mets, why = _set_metrics(run_dir, results, set_names, ds, device, gt_cache)
    cache = GTCache(results["dataset"]["manifest_hash"], gt_cache)
    out_groups = []
    for key, ids in largest_first(groups):
        entry: dict[str, Any] = {"group": key, "n": len(ids), "metrics": {}}
        for n in per_video_names:
            entry["metrics"][n] = _per_video([by_id[i] for i in ids], n, results["metrics"][n])
        for n in set_names:
            meta = results["metrics"][n]
            base = {"direction": meta["direction"], "backend": meta["backend"], "n": len(ids), "ci95": None}
            if mets is None:
                entry["metrics"][n] = {**base, "value": None, "unavailable": why}
            elif len(ids) < min_set_clips:
                entry["metrics"][n] = {**base, "value": None,
                                       "unavailable": f"{len(ids)} clips < {min_set_clips}: too few for a set metric"}
            else:
                m = next(x for x in mets if x.name == n)
                collect(RunStore(run_dir), [m], ids, cache, ds.load)
                entry["metrics"][n] = m.compute().to_json()
        out_groups.append(entry)
    return {"run": str(run_dir), "by": by, "dataset": results["dataset"].get("name"),
            "method": results["method"].get("name"), "n_total": len(rows), "min_set_clips": min_set_clips,
            "set_metrics": set_names, "groups": out_groups}


def _cell(m: dict) -> str:
    if m.get("value") is None:
        return "n/a"
    s = f"{m['value']:.4g}"
    if m.get("ci95"):
        s += f" [{m['ci95'][0]:.4g}, {m['ci95'][1]:.4g}]"
    return s


def format_breakdown(rep: dict, tablefmt: str = "github") -> str:
    from tabulate import tabulate

    names = list(rep["groups"][0]["metrics"]) if rep["groups"] else []
    arrows = {n: ("↓" if rep["groups"][0]["metrics"][n]["direction"] == "lower" else "↑") for n in names}
    headers = [rep["by"], "clips"] + [f"{n} {arrows[n]} [{rep['groups'][0]['metrics'][n]['backend']}]" for n in names]
    rows = [[g["group"], g["n"]] + [_cell(g["metrics"][n]) for n in names] for g in rep["groups"]]
    notes = [f"{rep['method']} on {rep['dataset']}: {rep['n_total']} clips in {len(rep['groups'])} groups by "
             f"'{rep['by']}'. Per-video metrics: mean [95% bootstrap interval over the group's clips]."]
    why = sorted({f"{n}: {g['metrics'][n]['unavailable']}" for g in rep["groups"] for n in rep["set_metrics"]
                  if g["metrics"][n].get("value") is None})
    if rep["set_metrics"]:
        notes.append(f"Set metrics ({', '.join(rep['set_metrics'])}) recomputed per group with at least "
                     f"{rep['min_set_clips']} clips; n/a where: " + ("; ".join(why) if why else "none"))
    return tabulate(rows, headers=headers, tablefmt=tablefmt) + "\n\n" + "\n".join(f"- {x}" for x in notes) + "\n"


def write_breakdown(rep: dict, out: str | Path | None = None) -> tuple[Path, Path]:
    d = Path(out) if out else Path(rep["run"])
    d.mkdir(parents=True, exist_ok=True)
    stem = f"breakdown_{''.join(c if c.isalnum() or c in '-_' else '_' for c in rep['by'])}"
    atomic_write_json(d / f"{stem}.json", rep)
    atomic_write_bytes(d / f"{stem}.md", format_breakdown(rep).encode("utf-8"))
    return d / f"{stem}.json", d / f"{stem}.md"
