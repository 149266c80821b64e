"""The :class:`Run`: everything the steps after clip selection share (store, metrics, clips, identity,
GT cache, sample loader, device), passed as one object instead of a clump of values."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ..store import RunStore
from ..types import Sample
from .gt_cache import GTCache
from .timing import StageClock


@dataclass
class Run:
    """One evaluation run.

    ``split`` is the dataset split (None when finalizing shard folders, which know only its manifest
    hash, held by ``cache``); ``ids`` are all the run's clips in split order (every rank's); ``loader``
    loads a clip's sample when a reference payload must be computed while finalizing (None: a missing
    one is an error); ``recomputed`` counts the clips recomputed because their input files changed.
    """

    store: RunStore
    metrics: list
    split: object
    ids: list[str]
    identity: dict
    cache: GTCache
    loader: Callable[[str], Sample] | None = None
    device: str = "cpu"
    recomputed: int = field(default=0)
    clock: StageClock | None = None  # set by the evaluate loop: seconds per stage of the clips it computes
