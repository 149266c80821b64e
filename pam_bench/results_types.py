"""Type checks of a results.json for the commands that read one (``table``, ``check``, ``leaderboard``).

:func:`pam_bench.results.load_results` checks that the keys are there; this checks that each field the
commands use has the type they need, so a hand-edited or damaged file is one line naming the file and
the field, never a traceback.
"""
from __future__ import annotations

from typing import Any

from .errors import InputError


def _number(v: Any, nullable: bool = True) -> bool:
    if v is None:
        return nullable
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def check_types(r: dict, path: Any) -> dict:
    """``r`` (a loaded results dict) if every field used downstream is well typed; InputError otherwise."""
    def bad(field: str, want: str, got: Any):
        raise InputError(path, f"field {field} must be {want}, got {type(got).__name__} {got!r:.40}")

    for key in ("method", "dataset"):
        if not isinstance(r.get(key), dict):
            bad(key, "an object", r.get(key))
        if not isinstance(r[key].get("name"), str):
            bad(f"{key}.name", "a string", r[key].get("name"))
    for key in ("n_expected", "n_evaluated"):
        v = r.get(key, 0)
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            bad(key, "a whole number >= 0", v)
    if not isinstance(r.get("metrics"), dict):
        bad("metrics", "an object", r.get("metrics"))
    for name, m in r["metrics"].items():
        f = f"metrics.{name}"
        if not isinstance(m, dict):
            bad(f, "an object", m)
        if not _number(m.get("value")):  # NaN / inf pass here: the regression gate fails them
            bad(f"{f}.value", "a number or null", m.get("value"))
        if m.get("direction") not in ("lower", "higher"):
            bad(f"{f}.direction", "'lower' or 'higher'", m.get("direction"))
        for k in ("backend", "version"):
            if not isinstance(m.get(k), (str, int, float)) or isinstance(m.get(k), bool):
                bad(f"{f}.{k}", "a string", m.get(k))
        if not _number(m.get("n")):
            bad(f"{f}.n", "a number or null", m.get("n"))
        ci = m.get("ci95")
        pair = isinstance(ci, (list, tuple)) and len(ci) == 2 and all(_number(x, False) for x in ci)
        if ci is not None and not pair:
            bad(f"{f}.ci95", "null or [low, high]", ci)
    return r


def load_checked(path) -> dict:
    """:func:`pam_bench.results.load_results`, with :func:`check_types` first (on the raw file)."""
    from pathlib import Path

    from .results import SCHEMA_VERSION, load_results
    from .store import read_json

    p = Path(path) / "results.json" if Path(path).is_dir() else Path(path)
    raw = read_json(p)
    if isinstance(raw, dict) and raw.get("schema_version") == SCHEMA_VERSION:
        check_types(raw, p)
    return load_results(path)
