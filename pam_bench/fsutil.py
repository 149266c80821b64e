"""Filesystem helpers for everything pam-bench writes: the user's umask for file modes, and OSErrors
(disk full, read-only, a file where a folder should be) as one-line InputErrors naming the path."""
from __future__ import annotations

import errno
import os
import threading
from pathlib import Path

from .errors import InputError

_UMASK_LOCK = threading.Lock()
_MODE: list[int] = []


def file_mode() -> int:
    """0666 minus the process umask (what ``open()`` would give), read once."""
    with _UMASK_LOCK:
        if not _MODE:
            old = os.umask(0o022)
            os.umask(old)
            _MODE.append(0o666 & ~old)
    return _MODE[0]


def os_error(path, e: OSError, doing: str = "cannot write") -> InputError:
    """An OSError while writing as one line naming the file (disk full, read-only, not a folder...)."""
    why = {errno.ENOSPC: "the disk is full", errno.EROFS: "read-only file system",
           errno.EACCES: "permission denied", errno.ENOTDIR: "a path component is a file, not a folder",
           errno.EDQUOT: "disk quota exceeded", errno.EEXIST: "exists and is not a folder"}.get(e.errno)
    return InputError(getattr(e, "filename", None) or path, f"{doing} ({why or e.strerror or e})")


def ensure_dir(path: Path) -> Path:
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise InputError(path, "exists and is not a folder") from None
    except OSError as e:
        raise os_error(path, e, "cannot create the folder") from None
    return path
