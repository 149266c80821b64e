"""Test data: the real files the tests read, pinned in ``tests/testdata.toml`` (upstream repository, commit,
path, sha256) and gathered into one cache folder outside the repository. Nothing here is committed.

``python -m tests.testdata`` (``make test`` runs it before pytest) takes each file from the first source that
has it with the pinned sha256, and prints one line per file naming that source:

1. the cache, ``$PAM_BENCH_TESTDATA`` (default ``$PAM_BENCH_HOME/testdata``, i.e. ``~/.cache/pam-bench/testdata``);
2. ``https://raw.githubusercontent.com/<repo>/<commit>/<path>``. ``PAM_BENCH_OFFLINE=1`` skips it; the first
   failure to reach the host ends the network attempts, so an offline machine loses at most ``TIMEOUT_S``;
3. a local copy laid out like the cache, ``$PAM_BENCH_SHARED_DATA`` (default ``../shared/data`` beside the
   repository).

A file no source has (or has with another sha256) is reported with what is missing and how to get it; the
tests that need it skip with that reason (``tests/conftest.py``), or fail under ``PAM_BENCH_REQUIRE_TESTDATA=1``.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import sys
import tempfile
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from pam_bench.weights import home, sha256_file

try:
    import tomllib
except ImportError:  # Python 3.10: pytest's own dependency
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
MANIFEST = Path(__file__).with_suffix(".toml")
TIMEOUT_S = 5.0
RAW = "https://raw.githubusercontent.com"


@dataclass(frozen=True)
class Entry:
    """One pinned file: where it lives upstream, its sha256, and its path in the cache (``local``)."""

    local: str
    repo: str
    commit: str
    path: str
    sha256: str

    def url(self, base: str = RAW) -> str:
        return f"{base}/{self.repo}/{self.commit}/{self.path}"


@dataclass(frozen=True)
class Outcome:
    """Where a file came from (``path`` set) or why it is missing (``path`` None)."""

    path: Path | None
    source: str


def load_manifest(path: Path = MANIFEST) -> dict[str, Entry]:
    with open(path, "rb") as fh:
        files = tomllib.load(fh)["file"]
    return {f["local"]: Entry(**f) for f in files}


def cache_dir() -> Path:
    if os.environ.get("PAM_BENCH_TESTDATA"):
        return Path(os.environ["PAM_BENCH_TESTDATA"])
    return home() / "testdata"


def shared_dir() -> Path:
    return Path(os.environ.get("PAM_BENCH_SHARED_DATA") or REPO.parent / "shared" / "data")


def _install(data: bytes, dest: Path) -> None:
    """Write atomically (a concurrent reader sees the old file or the whole new one)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class Network:
    """Downloads pinned files from ``base`` (raw.githubusercontent.com); after the first failure to reach the
    host it stays off."""

    def __init__(self, enabled: bool = True, timeout: float = TIMEOUT_S, base: str = RAW):
        self.timeout, self.base = timeout, base
        self.down = None if enabled else "off (PAM_BENCH_OFFLINE)"

    def get(self, url: str) -> bytes:
        """The body, or OSError. The whole request (name lookup included) is bounded by ``timeout``
        until the answer starts; each later read by the socket timeout."""
        box: dict = {}

        def opener():
            try:
                box["resp"] = urllib.request.urlopen(url, timeout=self.timeout)
            except BaseException as e:  # handed to the caller's thread
                box["err"] = e

        t = threading.Thread(target=opener, daemon=True)
        t.start()
        t.join(self.timeout)
        try:
            if t.is_alive():
                raise TimeoutError(f"no answer within {self.timeout:g} s")
            if "err" in box:
                raise box["err"]
            with box["resp"] as resp:
                return resp.read()
        except urllib.error.HTTPError:
            raise  # the host answered: only this file is missing
        except (OSError, http.client.HTTPException) as e:
            self.down = f"unreachable ({getattr(e, 'reason', None) or e!r})"
            raise OSError(self.down) from e


def obtain(e: Entry, cache: Path, shared: Path, net: Network | None) -> Outcome:
    """The first source holding ``e`` with its sha256, copied into ``cache``; or why none does."""
    dest, notes = cache / e.local, []
    if dest.is_file():
        got = sha256_file(dest)
        if got == e.sha256:
            return Outcome(dest, "cache")
        dest.unlink()
        notes.append(f"cached copy had sha256 {got[:12]}... (removed)")
    if net is not None and net.down is None:
        url = e.url(net.base)
        try:
            data = net.get(url)
        except OSError as err:
            notes.append(f"{url}: {err}")
        else:
            got = hashlib.sha256(data).hexdigest()
            if got == e.sha256:
                _install(data, dest)
                return Outcome(dest, url)
            notes.append(f"{url} has sha256 {got[:12]}...")
    elif net is not None:
        notes.append(f"network {net.down}")
    src = shared / e.local
    if src.is_file():
        data = src.read_bytes()
        got = hashlib.sha256(data).hexdigest()
        if got == e.sha256:
            _install(data, dest)
            return Outcome(dest, str(src))
        notes.append(f"{src} has sha256 {got[:12]}...")
    else:
        notes.append(f"no {src}")
    return Outcome(None, f"test data {e.local} missing ({'; '.join(notes)}): run `python -m tests.testdata` "
                         f"with network access (it downloads {e.url()}), or set "
                         f"PAM_BENCH_SHARED_DATA to a folder holding {e.local}")


def ensure(net: Network | None, cache: Path | None = None, shared: Path | None = None,
           log=None, entries: dict[str, Entry] | None = None) -> dict[str, Outcome]:
    """Obtain every file of the manifest (``net`` None: from the cache and the local copy only);
    ``log`` (e.g. print) gets one line per file."""
    cache, shared = cache or cache_dir(), shared or shared_dir()
    out, told = {}, net is None
    for local, e in (entries or load_manifest()).items():
        out[local] = o = obtain(e, cache, shared, net)
        if log is None:
            continue
        if not told and net.down is not None:
            told = True
            log(f"testdata: network {net.down}; from here on: the cache, then {shared}")
        log(f"testdata: {local} <- {o.source}" if o.path else f"testdata: {o.source}")
    return out


def main() -> int:
    cache = cache_dir()
    print(f"testdata: into {cache} (pinned in {MANIFEST.relative_to(REPO)})")
    out = ensure(Network(enabled=not os.environ.get("PAM_BENCH_OFFLINE")), cache=cache, log=print)
    missing = sum(o.path is None for o in out.values())
    print(f"testdata: {len(out) - missing} of {len(out)} files present"
          + (f"; the tests needing the {missing} missing ones will skip and say why" if missing else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
