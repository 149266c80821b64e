"""The results schema (results.json) and the rules for comparing results.

results.json:
  {"schema_version": 1,
   "method": {"name", ...identity},
   "dataset": {"name", "split", "n", "manifest_hash", "protocol"},
   "seed": int, "n_expected": int, "n_evaluated": int,
   "metrics": {"<name>": {"value", "direction", "backend", "version", "n", "ci95", "unit", "extras",
                          "unavailable"}},
   "env": {"pam_bench", "python", "device", versions of torch numpy scipy opencv lpips decord av
           diffusers, "gpu", "cuda", "cudnn", "git_commit", "git_dirty"}, "created": iso time,
   "timing": {"clips_computed", "wall_s", "workers", "stage_s": {stage: seconds}} (pam_bench.run.timing)}
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


#: Distributions whose versions can move scores (importlib.metadata names; the first one installed wins).
PROVENANCE_PACKAGES: dict[str, tuple[str, ...]] = {
    "torch": ("torch",), "numpy": ("numpy",), "scipy": ("scipy",),
    "opencv": ("opencv-python", "opencv-python-headless", "opencv-contrib-python",
               "opencv-contrib-python-headless"),
    "lpips": ("lpips",), "decord": ("decord", "eva-decord"), "av": ("av",), "diffusers": ("diffusers",),
}
#: The provenance fields ``pam-bench check`` compares (a difference is a warning, never a failure).
PROVENANCE_FIELDS = ("gpu", "cuda", "cudnn", *PROVENANCE_PACKAGES, "pam_bench", "git_commit", "python",
                     "video_decode")  # not env.pixel_kernels: C and numpy kernels give bit-equal values


def package_versions() -> dict[str, str | None]:
    """Installed versions from the package metadata (nothing is imported); None where not installed."""
    from importlib import metadata

    out: dict[str, str | None] = {}
    for key, dists in PROVENANCE_PACKAGES.items():
        out[key] = None
        for d in dists:
            try:
                out[key] = metadata.version(d)
                break
            except metadata.PackageNotFoundError:
                continue
    return out


def accelerator_info() -> dict[str, Any]:
    """GPU model, CUDA and cuDNN versions, read from torch only when torch is ALREADY imported (None
    otherwise, with ``accelerator_info`` saying why): provenance never loads a heavy module."""
    import sys

    torch = sys.modules.get("torch")
    if torch is None:
        return {"gpu": None, "cuda": None, "cudnn": None, "accelerator_info": "torch not loaded in this run"}
    info: dict[str, Any] = {"cuda": getattr(torch.version, "cuda", None), "gpu": None, "cudnn": None,
                            "accelerator_info": "torch"}
    try:
        info["cudnn"] = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(torch.cuda.current_device())
    except Exception as e:  # a broken driver must not lose a finished run
        info["accelerator_info"] = f"torch present, query failed: {type(e).__name__}"
    return info


def git_commit(where: Path | None = None) -> dict[str, Any]:
    """The project's git commit and whether its tracked files were modified (None outside a checkout)."""
    import subprocess

    root = Path(where) if where else Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10)
        if head.returncode != 0:
            return {"git_commit": None, "git_dirty": None}
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
        return {"git_commit": head.stdout.strip(),
                "git_dirty": bool(dirty.stdout.strip()) if dirty.returncode == 0 else None}
    except (OSError, subprocess.SubprocessError):
        return {"git_commit": None, "git_dirty": None}


def env_info(device: str) -> dict[str, Any]:
    """Run provenance for results.json: versions, accelerator and the project's commit (see PROVENANCE_FIELDS)."""
    import platform

    from ._version import __version__

    info: dict[str, Any] = {"pam_bench": __version__, "python": platform.python_version(), "device": device}
    info.update(package_versions())
    info.update(accelerator_info())
    info.update(git_commit())
    from .video import decode_info

    info["video_decode"] = decode_info()  # decoder path and its one YUV->RGB conversion (nothing imported)
    from .metrics.native import info as kernel_info

    info["pixel_kernels"] = kernel_info()  # SSIM/PSNR's C or numpy kernels (equal values), and why
    return info


def env_differences(a: dict, b: dict) -> list[str]:
    """Human-readable differences in the provenance fields of two results (their ``env``)."""
    ea, eb = a.get("env") or {}, b.get("env") or {}
    out = []
    for k in PROVENANCE_FIELDS:
        if k not in ea and k not in eb:
            continue
        va, vb = ea.get(k, "not recorded"), eb.get(k, "not recorded")
        if va != vb:
            out.append(f"{k}: {va} vs {vb}")
    return out


def whole_frame_mark(name: str, metric: dict) -> str:
    """A table cell's mark for an MF value whose points came (partly) from the whole frame ('' otherwise)."""
    src = (metric.get("extras") or {}).get("point_source") if name == "mf" else None
    if not isinstance(src, dict) or not src.get("whole_frame"):
        return ""
    k, n = int(src["whole_frame"]), int(src.get("n_videos") or 0)
    return " [whole-frame]" if k == n else f" [whole-frame {k}/{n}]"


def console_notes(result: dict) -> list[str]:
    """Lines the CLI prints under a result table: facts about how a number was made that change its meaning."""
    out = []
    mf = result.get("metrics", {}).get("mf")
    src = ((mf or {}).get("extras") or {}).get("point_source")
    if isinstance(src, dict) and src.get("whole_frame"):
        out.append(f"MF: whole-frame points in {src['whole_frame']} of {src.get('n_videos')} videos (no segmentation; "
                   "the paper samples foreground points): give -d seg_videos=DIR or score against the dataset "
                   "(--dataset dexycb --root ...)")
    return out
