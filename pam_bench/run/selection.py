"""Which clips a run takes: ``--limit`` (a prefix of the split) and ``--shard i/N`` (every N-th clip)."""
from __future__ import annotations

from ..errors import FlagError, PamBenchError
from ..types import Split


def parse_shard(shard: str | None) -> tuple[int, int]:
    """``"i/N"`` -> (i, N); None -> (0, 1)."""
    if not shard:
        return 0, 1
    try:
        i, n = (int(x) for x in shard.split("/"))
    except ValueError:
        raise PamBenchError(f"--shard must look like i/N (e.g. 0/4), got {shard!r}") from None
    if not (n >= 1 and 0 <= i < n):
        raise PamBenchError(f"--shard {shard}: need 0 <= i < N")
    return i, n


def check_limit(limit) -> None:
    """``--limit`` is None or a whole number >= 1."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise FlagError("--limit", f"must be a whole number >= 1, got {limit!r}")


def select_ids(split: Split, limit: int | None = None, shard: tuple[int, int] = (0, 1)) -> list[str]:
    """The clips of ``split`` a run (or one shard of it) evaluates, in split order."""
    check_limit(limit)
    ids = list(split.ids)[:limit]
    i, n = shard
    return ids[i::n]
