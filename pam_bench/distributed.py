"""Scale-out by SLURM-array shard folders: ``pam-bench evaluate --shard i/N`` per task, then :func:`merge`.

:func:`merge` (``pam-bench merge``) checks that the shard folders hold one run (identical identity except
the shard, every shard present and complete), copies their payloads and videos into one folder and
finalizes it. (torchrun ranks within one run are :mod:`pam_bench.run.torchrun`.)
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Sequence

from .errors import IncompatibleResults, InputError, PamBenchError
from .run.components import build_dataset, build_metrics
from .run.finalize import finalize
from .run.gt_cache import GTCache
from .run.state import Run
from .store import RunStore, atomic_write_json, read_json


def _shard_runs(run_dirs: Sequence[str | Path]) -> list[tuple[Path, dict, dict]]:
    runs = []
    for d in run_dirs:
        d = Path(d)
        if not (d / "run.json").is_file():
            raise InputError(d, "not a run folder (no run.json)")
        if not (d / "results.json").is_file():
            raise InputError(d, "the shard has no results.json (unfinished): rerun its evaluate command to resume")
        runs.append((d, read_json(d / "run.json"), read_json(d / "results.json")))
    return runs


def _check_shards(runs: list[tuple[Path, dict, dict]]) -> int:
    d0, id0, _ = runs[0]
    for d, ident, _ in runs[1:]:
        diff = sorted(k for k in set(id0) | set(ident) if k != "shard" and id0.get(k) != ident.get(k))
        if diff:
            raise IncompatibleResults(f"cannot merge {d} with {d0}: their runs differ in {', '.join(diff)} "
                                      "(only the shard may differ)")
    shards = [tuple(ident.get("shard") or (0, 1)) for _, ident, _ in runs]
    ns = {n for _, n in shards}
    if len(ns) != 1:
        raise IncompatibleResults(f"cannot merge shards of different splits N: {sorted(ns)}")
    n = ns.pop()
    seen = [i for i, _ in shards]
    dup = sorted({i for i in seen if seen.count(i) > 1})
    if dup:
        raise IncompatibleResults(f"shard(s) {', '.join(f'{i}/{n}' for i in dup)} given more than once")
    missing = sorted(set(range(n)) - set(seen))
    if missing:
        raise IncompatibleResults(f"cannot merge: shard(s) {', '.join(f'{i}/{n}' for i in missing)} missing")
    for d, _, res in runs:
        if res.get("n_evaluated") != res.get("n_expected"):
            raise InputError(d, f"the shard is incomplete ({res.get('n_evaluated')}/{res.get('n_expected')} clips "
                                "scored): rerun its evaluate command to resume")
    return n


def _shard_ids(d: Path) -> list[str]:
    import json

    p = d / "per_video.jsonl"
    if not p.is_file():
        raise InputError(p, "no such file (the shard's per-video list)")
    return [json.loads(x)["video_id"] for x in p.read_text().splitlines() if x.strip()]


def _copy_tree(src: Path, dst: Path) -> None:
    """Copy files that are absent in dst; a file present with other bytes is a conflict."""
    if not src.is_dir():
        return
    for f in sorted(src.rglob("*")):
        if not f.is_file() or f.name.startswith("."):
            continue
        t = dst / f.relative_to(src)
        if t.exists():
            if t.stat().st_size != f.stat().st_size or t.read_bytes() != f.read_bytes():
                raise IncompatibleResults(f"{t} already exists with other content than {f}")
            continue
        t.parent.mkdir(parents=True, exist_ok=True)
        tmp = t.with_name(f".{t.name}.part")
        shutil.copyfile(f, tmp)
        os.replace(tmp, t)


def _dataset_loader(out: Path, sp_ids: dict[str, int]):
    """A lazy sample loader from dataset_args.json (used only when a GT reference payload is missing)."""
    state: dict[str, Any] = {}

    def load(vid: str):
        if "ds" not in state:
            p = out / "dataset_args.json"
            if not p.is_file():
                raise InputError(p, "a GT reference payload is missing from the GT cache and the run does not "
                                    "record how to rebuild its dataset; pass --gt-cache with the shards' cache")
            a = read_json(p)
            state["ds"] = build_dataset(a["name"], a.get("root"), a.get("split"), **(a.get("options") or {}))
        s = state["ds"].load(vid)
        s.meta.setdefault("index", sp_ids.get(vid))
        return s

    return load


def _missing_payloads(runs, mets) -> list[str]:
    """'SHARD/payloads/KEY/ID' for every clip of a shard's list without its payload for a metric."""
    from .store import safe_id

    missing = []
    for d, _, _ in runs:
        st = RunStore(d)
        for vid in _shard_ids(d):
            missing += [str(st.payload_dir(m.key) / safe_id(vid)) for m in mets if not st.has_payload(m.key, vid)]
    return missing


def _other_key_hint(key_dir: Path) -> str:
    """When the shard holds this metric's payloads under another key, say so: the merging machine built the
    metric in another configuration (a package version, weights) than the shard computed it with."""
    name = key_dir.name.split("@")[0]
    others = sorted(p.name for p in key_dir.parent.glob(f"{name}@*") if p.is_dir() and p.name != key_dir.name)
    if not others:
        return ""
    return (f"; the shard holds {name} payloads under another key ({others[0]}): this machine builds {name} "
            f"in another configuration (weights, package versions) than the shard computed it with")


def merge(run_dirs: Sequence[str | Path], out: str | Path, device: str = "cpu", gt_cache=None,
          force: bool = False, allow_partial: bool = False) -> dict:
    """Merge SLURM-array shard folders (``--shard i/N``) into one run folder and compute its results.

    A shard whose per-video payloads are not all there is an error naming the first missing one, unless
    ``allow_partial`` (the results then count fewer evaluated clips)."""
    if not run_dirs:
        raise PamBenchError("merge needs at least one shard folder")
    runs = _shard_runs(run_dirs)
    n = _check_shards(runs)
    by_shard = {int((ident.get("shard") or (0, 1))[0]): d for d, ident, _ in runs}
    parts = [_shard_ids(by_shard[i]) for i in range(n)]
    ids = [parts[k % n][k // n] for k in range(sum(len(p) for p in parts))]  # undo ids[i::n]
    identity = {**runs[0][1], "shard": [0, 1]}
    mcfg = identity.get("metrics") or {}
    mets = build_metrics(list(mcfg), device, {k: dict(v.get("options") or {}) for k, v in mcfg.items()})
    for m in mets:
        cfg = mcfg[m.name]
        if (m.backend, m.version) != (cfg.get("backend"), cfg.get("version")):
            raise IncompatibleResults(f"metric '{m.name}' here is {m.backend}@{m.version} but the shards used "
                                      f"{cfg.get('backend')}@{cfg.get('version')}")
    missing = _missing_payloads(runs, mets)
    if missing and not allow_partial:
        raise InputError(missing[0], f"payload missing ({len(missing)} in all across the shards): rerun that "
                                     f"shard's evaluate command to resume, or pass --allow-partial"
                                     f"{_other_key_hint(Path(missing[0]).parent)}")
    out = Path(out)
    if out.resolve() in {Path(d).resolve() for d in run_dirs}:
        raise PamBenchError("--out must be a new folder, not one of the shard folders")
    store = RunStore(out)
    store.open(identity, force=force)
    try:
        return _merge_into(store, runs, mets, ids, identity, device, gt_cache)
    finally:
        store.unlock()


def _merge_into(store: RunStore, runs, mets, ids, identity, device, gt_cache) -> dict:
    out = store.out
    for d, _, _ in runs:
        for m in mets:
            _copy_tree(d / "payloads" / m.key, store.payload_dir(m.key))
        _copy_tree(d / "videos", out / "videos")
        if (d / "dataset_args.json").is_file() and not (out / "dataset_args.json").exists():
            shutil.copyfile(d / "dataset_args.json", out / "dataset_args.json")
    cache = GTCache(identity["dataset"]["manifest_hash"], gt_cache)
    res = finalize(Run(store, mets, None, ids, identity, cache, _dataset_loader(out, {v: i for i, v in enumerate(ids)}),
                       device))
    res["merged_from"] = [str(Path(d)) for d, _, _ in runs]
    atomic_write_json(out / "results.json", res)
    return res
