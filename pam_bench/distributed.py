"""Scale-out: torchrun ranks (torch.distributed) and SLURM-array shard folders (``pam-bench merge``).

torchrun: ``torchrun --nproc-per-node K -m pam_bench evaluate ...`` sets RANK/WORLD_SIZE/LOCAL_RANK;
:func:`context` sees them, joins the process group (gloo on CPU, nccl when the device is CUDA; each rank
then uses ``cuda:LOCAL_RANK``) and :func:`pam_bench.harness.evaluate` gives rank r of W the clips
``ids[r::W]``. Every rank writes its videos and payloads into the same run folder (one node or a shared
file system). At the end every rank's per-video payloads, and the GT-side reference payloads, are
exchanged with ``all_gather_object`` on a gloo group (so payloads never go through GPU memory); rank 0
writes any it lacks (ranks on other nodes without a shared file system) and computes the results from all
of them in split order with :func:`pam_bench.harness.finalize`, exactly as a one-process run does, so the
numbers are identical (set metrics such as FVD merge their sufficient statistics from the same payloads).
Rank 0 writes results.json; the results are broadcast so every rank returns them.

SLURM arrays: ``pam-bench evaluate --shard i/N`` per task, then :func:`merge` (``pam-bench merge``)
checks that the shard folders hold one run (identical identity except the shard, every shard present and
complete), copies their payloads and videos into one folder and finalizes it.
"""
from __future__ import annotations

import datetime as _dt
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Sequence

from .errors import IncompatibleResults, InputError, PamBenchError
from .store import RunStore, atomic_write_json, read_json, write_payload

#: How long a rank waits for the others at the final exchange (slow generators, unequal shares).
DEFAULT_TIMEOUT_S = 6 * 3600


def world_from_env(env: dict | None = None) -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment; (0, 1, 0) outside torchrun."""
    e = os.environ if env is None else env
    world = int(e.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        return 0, 1, 0
    try:
        rank = int(e["RANK"])
    except (KeyError, ValueError):
        raise PamBenchError("WORLD_SIZE > 1 but RANK is not set: start multi-process runs with torchrun") from None
    return rank, world, int(e.get("LOCAL_RANK", rank) or rank)


@dataclass
class DistContext:
    rank: int
    world: int
    local_rank: int
    device: str
    owns_group: bool
    _objects: Any = None  # the gloo process group used for Python objects

    # -- collectives -----------------------------------------------------------------------------------
    def share(self, ids: Sequence[str]) -> list[str]:
        """This rank's clips: every W-th from position r (disjoint, together they cover ``ids``)."""
        return list(ids)[self.rank::self.world]

    def barrier(self) -> None:
        import torch.distributed as dist

        dist.barrier(group=self._objects)

    def all_gather(self, obj: Any) -> list[Any]:
        import torch.distributed as dist

        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj, group=self._objects)
        return out

    def broadcast(self, obj: Any) -> Any:
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0, group=self._objects)
        return box[0]

    def close(self) -> None:
        import torch.distributed as dist

        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()

    # -- the harness hooks ---------------------------------------------------------------------------------
    def open_store(self, store: RunStore, identity: dict, force: bool) -> None:
        """Rank 0 creates (or, with force, resets) the run folder first; the others then join it."""
        if self.rank == 0:
            store.open(identity, force=force)
        self.barrier()
        if self.rank != 0:
            store.open(identity, force=False, lock=False)  # rank 0 holds OUT/.lock for the run

    def finish(self, store: RunStore, mets, sp, ids: list[str], identity: dict, gt_cache=None,
               datasets_load=None) -> dict:
        """Exchange payloads, let rank 0 finalize over all ``ids``, return the results on every rank."""
        from .harness import _cached_reference, finalize, gt_cache_dir
        from .store import safe_id

        mine = self.share(ids)
        local: dict[str, dict[str, Any]] = {"gen": {}, "ref": {}}
        for m in mets:
            local["gen"][m.key] = {v: store.read_payload(m.key, v, raw=True) for v in mine
                                   if store.has_payload(m.key, v)}
            if hasattr(m, "measure_reference"):
                refs = {v: _cached_reference(m, v, sp, gt_cache) for v in mine}
                local["ref"][m.key] = {v: p for v, p in refs.items() if p is not None}
        gathered = self.all_gather(local)
        results = None
        try:
            if self.rank == 0:
                for part in gathered:
                    for key, by_vid in part["gen"].items():
                        for v, p in by_vid.items():
                            if not store.has_payload(key, v):
                                store.write_payload(key, v, p)
                    for m in mets:
                        for v, p in part["ref"].get(m.key, {}).items():
                            if _cached_reference(m, v, sp, gt_cache) is None:
                                write_payload(gt_cache_dir(sp.manifest_hash, m.key, gt_cache) / safe_id(v), p)
                results = finalize(store, mets, sp, ids, identity, self.device, gt_cache, datasets_load)
                results["env"]["world_size"] = self.world
                atomic_write_json(store.out / "results.json", results)
        finally:
            results = self.broadcast(results)
            self.close()
        if results is None:
            raise PamBenchError(f"rank {self.rank}: rank 0 could not compute the results (see its error)")
        return results


def context(device: str = "cpu") -> DistContext | None:
    """The torchrun context (joining the process group if needed), or None in a single process."""
    rank, world, local = world_from_env()
    if world == 1:
        return None
    import torch
    import torch.distributed as dist

    cuda = str(device).startswith("cuda")
    if cuda:
        device = f"cuda:{local}" if str(device) == "cuda" else str(device)
        torch.cuda.set_device(torch.device(device))
    timeout = _dt.timedelta(seconds=int(os.environ.get("PAM_BENCH_DIST_TIMEOUT_S", DEFAULT_TIMEOUT_S)))
    owns = False
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo", timeout=timeout)
        owns = True
    group = dist.new_group(backend="gloo", timeout=timeout) if dist.get_backend() != "gloo" else None
    return DistContext(dist.get_rank(), dist.get_world_size(), local, str(device), owns, group)


# --- SLURM arrays: merge shard folders -------------------------------------------------------------------

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
            from .harness import build_dataset

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


def merge(run_dirs: Sequence[str | Path], out: str | Path, device: str = "cpu", gt_cache=None,
          force: bool = False, allow_partial: bool = False) -> dict:
    """Merge SLURM-array shard folders (``--shard i/N``) into one run folder and compute its results.

    A shard whose per-video payloads are not all there is an error naming the first missing one, unless
    ``allow_partial`` (the results then count fewer evaluated clips)."""
    from .harness import build_metrics

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
                                     "shard's evaluate command to resume, or pass --allow-partial")
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
    from .harness import finalize

    out = store.out
    for d, _, _ in runs:
        for m in mets:
            _copy_tree(d / "payloads" / m.key, store.payload_dir(m.key))
        _copy_tree(d / "videos", out / "videos")
        if (d / "dataset_args.json").is_file() and not (out / "dataset_args.json").exists():
            shutil.copyfile(d / "dataset_args.json", out / "dataset_args.json")
    sp = SimpleNamespace(manifest_hash=identity["dataset"]["manifest_hash"])
    res = finalize(store, mets, sp, ids, identity, device, gt_cache,
                   _dataset_loader(out, {v: i for i, v in enumerate(ids)}))
    res["merged_from"] = [str(Path(d)) for d, _, _ in runs]
    atomic_write_json(out / "results.json", res)
    return res
