"""The run folder (``--out OUT``): manifest, generated videos, per-video metric payloads, results.

Layout:
  OUT/run.json                      identity: method, dataset manifest hash, base seed, versions
  OUT/videos/<video_id>.mp4         generated videos (not for methods whose videos already lie on disk)
  OUT/payloads/<metric key>/<video_id>.json|.npz   per-video metric payloads (the metric's ``key``:
                                    name@version-backend, plus its configuration where that changes a payload)
  OUT/per_video.jsonl               one line per video: {"video_id": ..., "<metric>": value, ...}
  OUT/results.json                  the aggregated results (pam_bench.results schema)

Every file is written atomically (temporary file in the same folder, then rename), so a file that exists
is complete and a killed run resumes by skipping what exists. Files get the user's umask (not mkstemp's
0600). While a run writes the folder it holds ``OUT/.lock`` (an advisory ``flock`` that the kernel drops
when the process ends, holding the PID): a second writer, ``--force`` included, is refused and told which
process holds it. Leftover ``.part`` files of a killed run are removed when the next run takes the lock.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .errors import IncompatibleResults, InputError
from .fsutil import ensure_dir, file_mode, os_error
from .types import Video


#: Payload key holding the sha256 of the input files a payload was computed from (see pam_bench.run.inputs).
INPUTS_KEY = "_inputs_sha256"


def safe_id(video_id: str) -> str:
    """A file name for a video id (ids may contain '/')."""
    return video_id.replace("/", "__")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    ensure_dir(path.parent)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    except OSError as e:
        raise os_error(path, e) from None
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), file_mode())
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise os_error(path, e) from None
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
        self._lock_fd: int | None = None

    # --- identity -----------------------------------------------------------------------------
    @property
    def run_json(self) -> Path:
        return self.out / "run.json"

    def open(self, identity: dict, force: bool = False, lock: bool = True) -> None:
        """Create the run folder, or resume it when the identity matches.

        ``identity`` must hold the keys that make outputs comparable: method, dataset, seed (and the
        protocol). Metrics are not part of it: payloads are kept under each metric's ``key``.
        ``lock``: take ``OUT/.lock`` first (torchrun ranks other than 0 join the folder rank 0 holds).
        """
        if self.out.exists() and not self.out.is_dir():
            raise InputError(self.out, "--out exists and is not a folder")
        ensure_dir(self.out)
        if lock:
            self.lock()
        try:
            if lock:
                self.remove_partials()
            if self.run_json.exists():
                old = read_json(self.run_json)
                diff = [k for k in identity if k != "metrics" and old.get(k) != identity[k]
                        and not (k == "dataset" and same_files_new_content(old.get(k), identity[k]))]
                if diff and not force:
                    raise IncompatibleResults(
                        f"{self.run_json}: the run folder holds a different run ({', '.join(diff)} changed); "
                        "use another --out, or --force to discard its videos and payloads")
                if diff and force:
                    self._discard()
            atomic_write_json(self.run_json, identity)
        except BaseException:
            self.unlock()
            raise

    # --- the lock -----------------------------------------------------------------------------
    @property
    def lock_path(self) -> Path:
        return self.out / ".lock"

    def lock(self) -> None:
        """Hold ``OUT/.lock`` for the life of this process (flock; released by the kernel when it ends)."""
        import fcntl

        if self._lock_fd is not None:
            return
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, file_mode())
        except OSError as e:
            raise os_error(self.lock_path, e, "cannot create the run folder's lock") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise RunFolderBusy(f"{self.out}: in use by {holder}; wait for it to finish or use another --out "
                                "(--force never takes a folder another process holds)") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"process {os.getpid()} on {os.uname().nodename}\n".encode(), 0)
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def remove_partials(self) -> int:
        """Delete the temporary ``.part`` files a killed run left (only called while holding the lock)."""
        n = 0
        for sub in (self.out, self.out / "videos", *sorted((self.out / "payloads").glob("*"))):
            if not sub.is_dir():
                continue
            for f in sub.iterdir():
                if f.name.startswith(".") and (f.name.endswith(".part") or f.name.endswith(".part.mp4")) \
                        and f.is_file():
                    f.unlink(missing_ok=True)
                    n += 1
        return n

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

    def read_payload(self, metric_key: str, video_id: str, raw: bool = False) -> dict:
        """A video's payload; without ``raw`` the input fingerprint (:data:`INPUTS_KEY`) is left out."""
        p = self.payload_path(metric_key, video_id)
        if p is None:
            raise InputError(self.payload_dir(metric_key) / safe_id(video_id), "no payload")
        payload = read_payload(p)
        return payload if raw else {k: v for k, v in payload.items() if k != INPUTS_KEY}

    def payload_files(self, video_id: str) -> list[Path]:
        """Every payload file of a video, in every metric's folder (also metrics not run now)."""
        root = self.out / "payloads"
        if not root.is_dir():
            return []
        return [f for d in sorted(root.iterdir()) for ext in (".json", ".npz")
                if (f := d / f"{safe_id(video_id)}{ext}").is_file()]

    def forget(self, video_id: str) -> None:
        """Remove a video's payloads (every metric) and stored video: its inputs changed."""
        for f in self.payload_files(video_id) + [self.video_path(video_id)]:
            f.unlink(missing_ok=True)


class RunFolderBusy(IncompatibleResults):
    """Another process holds the run folder's lock."""

    exit_code = 5


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


def same_files_new_content(old: dict | None, new: dict) -> bool:
    """True when two dataset identities differ only in a content fingerprint that every per-clip payload
    also guards (the dataset names it in ``content_guarded``, e.g. the eval folder's ``gt_sha256``): such a
    rerun is a resume, and the evaluate loop recomputes exactly the clips whose input files changed."""
    key = new.get("content_guarded")
    if not key or not isinstance(old, dict) or old.get("content_guarded") != key:
        return False
    keys = [key] if isinstance(key, str) else list(key)  # one fingerprint, or several (GT and seg videos)

    def strip(d: dict) -> dict:
        return {**d, "manifest_hash": None, "protocol": {**(d.get("protocol") or {}), **dict.fromkeys(keys)}}

    return strip(old) == strip(new)
