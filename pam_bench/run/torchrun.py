"""The torchrun context: rank r of W takes clips ``ids[r::W]`` and rank 0 finalizes over all of them.

``torchrun --nproc-per-node K -m pam_bench evaluate ...`` sets RANK/WORLD_SIZE/LOCAL_RANK; :func:`context`
sees them, joins the process group (gloo on CPU, nccl when the device is CUDA; each rank then uses
``cuda:LOCAL_RANK``). Every rank writes its videos and payloads into the same run folder (one node or a
shared file system). At the end every rank's per-video payloads, and the GT-side reference payloads, are
exchanged with ``all_gather_object`` on a gloo group (so payloads never go through GPU memory); rank 0
writes any it lacks (ranks on other nodes without a shared file system; reference payloads through the
GT cache, with their fingerprints) and computes the results from all of them in split order with
:func:`~.finalize.finalize`, exactly as a one-process run does, so the numbers are identical (set metrics
such as FVD merge their sufficient statistics from the same payloads). Rank 0 writes results.json; the
results are broadcast so every rank returns them. Outside torchrun :func:`context` returns the
single-process context (:class:`~.context.LocalContext`).
"""
from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass
from typing import Any, Sequence

from ..errors import PamBenchError
from ..store import RunStore, atomic_write_json
from .context import LocalContext
from .finalize import finalize
from .state import Run

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
    """Rank ``rank`` of ``world`` torchrun processes (the same hooks as :class:`~.context.LocalContext`)."""

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

    # -- the evaluate loop's hooks -------------------------------------------------------------------------
    def open_store(self, store: RunStore, identity: dict, force: bool) -> None:
        """Rank 0 creates (or, with force, resets) the run folder first; the others then join it."""
        if self.rank == 0:
            store.open(identity, force=force)
        self.barrier()
        if self.rank != 0:
            store.open(identity, force=False, lock=False)  # rank 0 holds OUT/.lock for the run

    def _local_payloads(self, run: Run) -> dict[str, dict[str, Any]]:
        """This rank's per-video payloads and cached reference payloads (with their fingerprints)."""
        mine = self.share(run.ids)
        local: dict[str, dict[str, Any]] = {"gen": {}, "ref": {}}
        for m in run.metrics:
            local["gen"][m.key] = {v: run.store.read_payload(m.key, v, raw=True) for v in mine
                                   if run.store.has_payload(m.key, v)}
            if m.has_reference:
                refs = {v: run.cache.get(m, v, raw=True) for v in mine}
                local["ref"][m.key] = {v: p for v, p in refs.items() if p is not None}
        return local

    def _absorb(self, run: Run, gathered: list[dict]) -> None:
        """Rank 0 writes the payloads it lacks (per-video into the store, reference into the GT cache)."""
        for part in gathered:
            for key, by_vid in part["gen"].items():
                for v, p in by_vid.items():
                    if not run.store.has_payload(key, v):
                        run.store.write_payload(key, v, p)
            for m in run.metrics:
                for v, p in part["ref"].get(m.key, {}).items():
                    if not run.cache.has(m, v):
                        run.cache.put(m, v, p)

    def finish(self, run: Run) -> dict:
        """Exchange payloads, let rank 0 finalize over all the run's clips, return the results on every rank."""
        gathered = self.all_gather(self._local_payloads(run))
        results = None
        try:
            if self.rank == 0:
                self._absorb(run, gathered)
                results = finalize(run)
                results["env"]["world_size"] = self.world
                atomic_write_json(run.store.out / "results.json", results)
        finally:
            results = self.broadcast(results)
            self.close()
        if results is None:
            raise PamBenchError(f"rank {self.rank}: rank 0 could not compute the results (see its error)")
        return results


def context(device: str = "cpu") -> DistContext | LocalContext:
    """The torchrun context (joining the process group if needed), or the single-process one."""
    rank, world, local = world_from_env()
    if world == 1:
        return LocalContext(device)
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
