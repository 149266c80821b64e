"""The results schema (results.json) and the rules for comparing results.

results.json:
  {"schema_version": 1,
   "method": {"name", ...identity},
   "dataset": {"name", "split", "n", "manifest_hash", "protocol"},
   "seed": int, "n_expected": int, "n_evaluated": int,
   "metrics": {"<name>": {"value", "direction", "backend", "version", "n", "ci95", "unit", "extras",
                          "unavailable"}},
   "env": {"pam_bench", "torch", "python", "device"}, "created": iso time}
A metric's column identity is (name, backend, version); results whose columns differ in backend or
version are never put in one column silently (``column_key``), and comparisons refuse them.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import IncompatibleResults, InputError
from .store import read_json

SCHEMA_VERSION = 1


def load_results(path) -> dict:
    """Load results.json from a file or a run folder; validates the schema with a clear error."""
    p = Path(path)
    if p.is_dir():
        p = p / "results.json"
    r = read_json(p)
    if not isinstance(r, dict) or r.get("schema_version") != SCHEMA_VERSION:
        raise InputError(p, f"not a pam-bench results file (schema_version {r.get('schema_version') if isinstance(r, dict) else None!r}, expected {SCHEMA_VERSION})")
    for key in ("method", "dataset", "metrics"):
        if key not in r:
            raise InputError(p, f"results file lacks '{key}'")
    for name, m in r["metrics"].items():
        for k in ("value", "direction", "backend", "version", "n"):
            if k not in m:
                raise InputError(p, f"metric '{name}' lacks '{k}'")
    r["_path"] = str(p)
    return r


def column_key(name: str, metric: dict) -> tuple[str, str, str]:
    return (name, str(metric["backend"]), str(metric["version"]))


def check_comparable(a: dict, b: dict, what: str = "compare") -> None:
    """Refuse to compare results on different manifests or with different metric backends/versions."""
    ha, hb = a["dataset"].get("manifest_hash"), b["dataset"].get("manifest_hash")
    if ha != hb:
        raise IncompatibleResults(
            f"cannot {what}: dataset manifests differ ({a['dataset'].get('name')}:{str(ha)[:12]} vs "
            f"{b['dataset'].get('name')}:{str(hb)[:12]})")
    for name in sorted(set(a["metrics"]) & set(b["metrics"])):
        ka, kb = column_key(name, a["metrics"][name]), column_key(name, b["metrics"][name])
        if ka != kb:
            raise IncompatibleResults(
                f"cannot {what}: metric '{name}' uses backend/version {ka[1]}@{ka[2]} in one result and "
                f"{kb[1]}@{kb[2]} in the other")


def env_info(device: str) -> dict[str, Any]:
    import platform

    from ._version import __version__

    info = {"pam_bench": __version__, "python": platform.python_version(), "device": device}
    try:
        import torch

        info["torch"] = torch.__version__
    except ImportError:  # pragma: no cover
        info["torch"] = None
    return info
