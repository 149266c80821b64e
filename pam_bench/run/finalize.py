"""Finalizing a run: every cached payload -> the metrics -> per_video.jsonl and results.json.

Payloads are fed in the order of the run's clips (split order), each set metric's GT side coming from the
GT cache (:class:`~.gt_cache.GTCache`), so a one-process run, a torchrun run and merged shards compute the
same numbers from the same payloads. A metric of the previous results.json that this run does not compute
is kept when all its payloads are still there.
"""
from __future__ import annotations

import datetime as _dt
import json
import sys
from typing import Any, Iterable

from ..errors import InputError
from ..results import SCHEMA_VERSION, env_info
from ..store import RunStore, atomic_write_bytes, atomic_write_json, read_json
from .gt_cache import GTCache
from .state import Run


def collect(store: RunStore, mets, ids: Iterable[str], cache: GTCache, load=None) -> list[dict]:
    """Feed every cached payload of ``ids`` to the metrics (reset first); returns per-video rows.

    A metric with a reference side gets its GT payload from ``cache`` (computed from ``load(vid)`` when
    missing; without ``load`` that is an error naming the cache folder)."""
    rows = []
    for m in mets:
        m.reset()
    for vid in ids:
        row: dict[str, Any] = {"video_id": vid}
        for m in mets:
            if not store.has_payload(m.key, vid):
                continue
            payload = store.read_payload(m.key, vid)  # without the input fingerprint
            if m.has_reference:
                payload = {**cache.reference_of(m, vid, load), **payload}
            m.update(payload)
            v = payload.get("value")
            if m.kind == "per_video":
                row[m.name] = v if v is None else float(v)
        rows.append(row)
    return rows


def kept_metrics(store: RunStore, mets, ids: list[str]) -> tuple[dict, dict[str, dict]]:
    """Metrics of the previous results.json in this folder that this run does not compute, kept when each
    of ``ids`` still has its payload (so their numbers still describe these clips): (entries, per-video
    values by video id). A metric whose payloads are gone is dropped, with a note."""
    p = store.out / "results.json"
    try:
        old = read_json(p) if p.is_file() else {}
    except InputError:
        old = {}
    now = {m.name for m in mets}
    entries = {}
    for name, e in (old.get("metrics") or {}).items() if isinstance(old, dict) else ():
        if name in now or not isinstance(e, dict):
            continue
        key = e.get("payload_key")
        if not (isinstance(key, str) and key and "/" not in key and "\\" not in key and key not in (".", "..")):
            key = f"{name}@{e.get('version')}-{e.get('backend')}"  # older results (or a key that is no folder name)
        if all(store.has_payload(key, v) for v in ids):
            entries[name] = e
        else:
            print(f"pam-bench: {name} is dropped from results.json: some of its payloads were recomputed away "
                  f"or are missing; add it to --metrics to compute it again", file=sys.stderr)
    rows: dict[str, dict] = {}
    pv = store.out / "per_video.jsonl"
    if entries and pv.is_file():
        for line in pv.read_text().splitlines():
            try:
                r = json.loads(line)
                rows[r["video_id"]] = {k: r[k] for k in entries if k in r}
            except (ValueError, KeyError, TypeError):
                continue
    return entries, rows


def finalize(run: Run) -> dict:
    """Compute the run's results from its payloads; writes per_video.jsonl and results.json."""
    store, mets, ids, identity = run.store, run.metrics, run.ids, run.identity
    kept, kept_rows = kept_metrics(store, mets, ids)
    rows = collect(store, mets, ids, run.cache, run.loader)
    for r in rows:
        r.update(kept_rows.get(r["video_id"], {}))
    atomic_write_bytes(store.out / "per_video.jsonl",
                       "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows).encode())
    n_eval = sum(1 for vid in ids if all(store.has_payload(m.key, vid) for m in mets))
    results = {
        "schema_version": SCHEMA_VERSION,
        "method": identity["method"],
        "dataset": identity["dataset"],
        "seed": identity["seed"],
        "shard": identity.get("shard"),
        "n_expected": len(ids),
        "n_evaluated": n_eval,
        "metrics": {**{m.name: {**m.compute().to_json(), "payload_key": m.key} for m in mets}, **kept},
        "env": env_info(run.device),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **({"timing": run.clock.to_json()} if run.clock is not None else {}),
    }
    atomic_write_json(store.out / "results.json", results)
    return results
