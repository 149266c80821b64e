"""The single-process context: rank 0 of 1, the same hooks as the torchrun context (:mod:`.torchrun`),
so the evaluate loop has one code path."""
from __future__ import annotations

from typing import Sequence

from ..store import RunStore, atomic_write_json
from .finalize import finalize
from .state import Run


class LocalContext:
    """One process: it takes every clip, opens the run folder itself and finalizes alone."""

    rank = 0
    world = 1

    def __init__(self, device: str = "cpu"):
        self.device = device

    def share(self, ids: Sequence[str]) -> list[str]:
        """This process's clips: all of them."""
        return list(ids)

    def open_store(self, store: RunStore, identity: dict, force: bool) -> None:
        """Create (or, with force, reset) the run folder and lock it."""
        store.open(identity, force=force)

    def finish(self, run: Run) -> dict:
        """Finalize; a run that recomputed clips with changed input files says how many."""
        res = finalize(run)
        if run.recomputed:
            res["recomputed_changed_inputs"] = run.recomputed
            atomic_write_json(run.store.out / "results.json", res)
        return res
