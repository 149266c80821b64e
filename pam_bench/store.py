"""The run folder (``--out OUT``): manifest, generated videos, per-video metric payloads, results.

Layout:
  OUT/run.json                      identity: method, dataset manifest hash, base seed, versions
  OUT/videos/<video_id>.mp4         generated videos (not for methods whose videos already lie on disk)
  OUT/payloads/<metric key>/<video_id>.json|.npz   per-video metric payloads (key = name@version-backend)
  OUT/per_video.jsonl               one line per video: {"video_id": ..., "<metric>": value, ...}
  OUT/results.json                  the aggregated results (pam_bench.results schema)

Every file is written atomically (temporary file in the same folder, then rename), so a file that exists
is complete and a killed run resumes by skipping what exists.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .errors import IncompatibleResults, InputError
from .types import Video


def safe_id(video_id: str) -> str:
    """A file name for a video id (ids may contain '/')."""
    return video_id.replace("/", "__")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=1, sort_keys=True, default=_json_default) + "\n").encode())


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def read_json(path: Path) -> Any:
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise InputError(path, "no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(path, f"not valid JSON ({e})") from None


def _has_array(payload: dict) -> bool:
    return any(isinstance(v, np.ndarray) for v in payload.values())


class RunStore:
    def __init__(self, out: Path):
        self.out = Path(out)

    # --- identity -----------------------------------------------------------------------------
    @property
    def run_json(self) -> Path:
        return self.out / "run.json"

    def open(self, identity: dict, force: bool = False) -> None:
        """Create the run folder, or resume it when the identity matches.

        ``identity`` must hold the keys that make outputs comparable: method, dataset, seed (and the
        protocol). Metrics are not part of it: payloads are keyed by metric name, version and backend.
        """
        self.out.mkdir(parents=True, exist_ok=True)
        if self.run_json.exists():
            old = read_json(self.run_json)
            diff = [k for k in identity if k != "metrics" and old.get(k) != identity[k]]
            if diff and not force:
                raise IncompatibleResults(
                    f"{self.run_json}: the run folder holds a different run ({', '.join(diff)} changed); "
                    "use another --out, or --force to discard its videos and payloads")
            if diff and force:
                self._discard()
        atomic_write_json(self.run_json, identity)

    def _discard(self) -> None:
        import shutil

        for sub in ("videos", "payloads"):
            if (self.out / sub).exists():
                shutil.rmtree(self.out / sub)
        for f in ("per_video.jsonl", "results.json"):
            if (self.out / f).exists():
                (self.out / f).unlink()

    # --- videos -------------------------------------------------------------------------------
    def video_path(self, video_id: str) -> Path:
        return self.out / "videos" / f"{safe_id(video_id)}.mp4"

    def has_video(self, video_id: str) -> bool:
        return self.video_path(video_id).is_file()

    def write_video(self, video_id: str, video: Video, codec: str = "lossless") -> Path:
        from .video import write_video

        return write_video(self.video_path(video_id), video, codec=codec)

    def read_video(self, video_id: str) -> Video:
        from .video import read_video

        return read_video(self.video_path(video_id))

    # --- payloads -----------------------------------------------------------------------------
    def payload_dir(self, metric_key: str) -> Path:
        return self.out / "payloads" / metric_key

    def payload_path(self, metric_key: str, video_id: str) -> Path | None:
        d = self.payload_dir(metric_key)
        for ext in (".json", ".npz"):
            p = d / f"{safe_id(video_id)}{ext}"
            if p.is_file():
                return p
        return None

    def has_payload(self, metric_key: str, video_id: str) -> bool:
        return self.payload_path(metric_key, video_id) is not None

    def write_payload(self, metric_key: str, video_id: str, payload: dict) -> None:
        write_payload(self.payload_dir(metric_key) / safe_id(video_id), payload)

    def read_payload(self, metric_key: str, video_id: str) -> dict:
        p = self.payload_path(metric_key, video_id)
        if p is None:
            raise InputError(self.payload_dir(metric_key) / safe_id(video_id), "no payload")
        return read_payload(p)


def write_payload(stem: Path, payload: dict) -> Path:
    """JSON when every value is a scalar/str/list; npz (0-d arrays for scalars) when any is an array."""
    stem = Path(stem)
    if _has_array(payload):
        import io

        buf = io.BytesIO()
        arrays = {k: (v if isinstance(v, np.ndarray) else np.asarray(json.dumps(v))) for k, v in payload.items()}
        kinds = {k: ("array" if isinstance(v, np.ndarray) else "json") for k, v in payload.items()}
        np.savez(buf, __kinds__=np.asarray(json.dumps(kinds)), **arrays)
        path = stem.with_suffix(".npz")
        atomic_write_bytes(path, buf.getvalue())
    else:
        path = stem.with_suffix(".json")
        atomic_write_json(path, payload)
    return path


def read_payload(path: Path) -> dict:
    path = Path(path)
    if path.suffix == ".json":
        return read_json(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            kinds = json.loads(str(z["__kinds__"]))
            return {k: (z[k] if kind == "array" else json.loads(str(z[k]))) for k, kind in kinds.items()}
    except (OSError, ValueError, KeyError) as e:
        raise InputError(path, f"unreadable payload ({e})") from None
