"""Clips grouped by one key of the dataset's per-clip metadata (:meth:`pam_bench.types.Dataset.clip_meta`).

The one grouping rule of every report that groups clips: ``pam-bench breakdown RUN --by KEY`` and the HTML
site's ``pam-bench leaderboard ... --format html --group-by KEY``. A clip without the key falls in the group
``(unknown)``, so the groups' clip counts always add up; a key that no clip has is an error naming the option.
"""
from __future__ import annotations

from ..errors import PamBenchError

UNKNOWN = "(unknown)"


def group_clips(dataset, ids: list[str], by: str, flag: str = "--by") -> dict[str, list[str]]:
    """Group ids by ``clip_meta(id)[by]`` (in first-seen order); a clip without it goes to '(unknown)'.

    ``flag`` is the command-line option that named ``by``, quoted in the error when no clip has the key.
    """
    groups: dict[str, list[str]] = {}
    known: set[str] = set()
    for vid in ids:
        meta = dataset.clip_meta(vid)
        known.update(meta)
        v = meta.get(by)
        groups.setdefault(UNKNOWN if v is None else str(v), []).append(vid)
    if by not in known:
        raise PamBenchError(f"{flag} {by}: dataset '{dataset.name}' has no such clip metadata; it has: "
                            f"{', '.join(sorted(known)) or 'none'}")
    return groups


def largest_first(groups: dict[str, list[str]]) -> list[tuple[str, list[str]]]:
    """The groups ordered by clip count (largest first), then by name: the order reports list them in."""
    return sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))
