"""Completeness before work: compare what a videos folder holds with the selected clips, before decoding.

A method whose videos already lie on disk (the ``folder`` method) exposes ``locate(video_id, index)``.
``evaluate`` asks it for every selected clip first and reports the counts. A partial folder is refused
with those counts, unless the user said what to do: ``--limit N`` / ``--ids`` select clips the folder has,
``--allow-missing`` scores only the clips whose video is present (and says how many were left out).
"""
from __future__ import annotations

import sys
from typing import Sequence

from .errors import FlagError, InputError
from .types import Split

SHOW = 3  # expected paths named in the message


def select_present(gen, sp: Split, ids: Sequence[str], allow_missing: bool = False,
                   report: bool = True, sample_index=None) -> list[str]:
    """The selected ids whose video the method can find; refuses a partial selection unless allowed.

    ``sample_index``: the dataset's clip -> file number (official eval folders); else the split position.
    """
    locate = getattr(gen, "locate", None)
    if locate is None:
        return list(ids)
    index = {v: (sample_index(v) if sample_index else i) for i, v in enumerate(sp.ids)}
    missing = [v for v in ids if locate(v, index[v]) is None]
    n_sel, n_have = len(ids), len(ids) - len(missing)
    where = getattr(gen, "root", "--videos")
    counts = (f"{where} holds videos for {n_have} of the {n_sel} clips selected from "
              f"{sp.dataset}/{sp.name} ({len(sp)} clips in the split)")
    if not missing:
        if report:
            print(f"pam-bench: {counts}", file=sys.stderr)
        return list(ids)
    expected = getattr(gen, "expected", lambda v, i: v)
    first = ", ".join(str(expected(v, index[v])) for v in missing[:SHOW])
    if not allow_missing:
        raise InputError(where, f"holds videos for {n_have} of the {n_sel} selected clips "
                                f"({len(missing)} missing, e.g. {first}); nothing was decoded. Pass --limit N or "
                                "--ids to select the clips it has, or --allow-missing to score only those present")
    if report:
        print(f"pam-bench: {counts}; --allow-missing: scoring the {n_have} present, leaving out "
              f"{len(missing)} (e.g. {first})", file=sys.stderr)
    missing_set = set(missing)
    return [v for v in ids if v not in missing_set]


def check_reference(sp: Split, metrics: Sequence) -> None:
    """A split without GT video (PAM's OAKINK2 sample) can be generated from, but not scored."""
    if metrics and sp.protocol.get("reference") == "none":
        names = ", ".join(m.name for m in metrics)
        raise FlagError("--metrics", f"{sp.dataset}/{sp.name} has no GT video, so {names} cannot be computed; "
                                      "pass --metrics none to generate only")


def select_ids_arg(sp: Split, wanted: Sequence[str]) -> list[str]:
    """``--ids``: clip ids of the split, kept in split order; an unknown id is a one-line error."""
    known = set(sp.ids)
    bad = [v for v in wanted if v not in known]
    if bad:
        raise FlagError("--ids", f"{len(bad)} id(s) not in {sp.dataset}/{sp.name}, e.g. {bad[0]!r} "
                                  f"(its first ids: {', '.join(sp.ids[:3])})")
    w = set(wanted)
    return [v for v in sp.ids if v in w]
