"""The native pixel kernels (``pixel_kernels.c``): compiled once per process, or numpy's when they cannot be.

The C source ships in the package. The first SSIM or PSNR call of a process compiles it with the system's C
compiler (``$CC``, else ``cc``, ``gcc`` or ``clang``) into a private temporary folder (the system's, or one
under ``$PAM_BENCH_HOME`` where the system's cannot hold a loadable library, e.g. a noexec /tmp), loads it with
ctypes and deletes the file: no compiled code is kept or read back from disk, so there is no cache to poison, and
``-march=native`` can never meet another machine's CPU. It costs ~0.3 s of one core per process.

The kernels perform the numpy reference's IEEE operations in the same order (``-ffp-contract=off``) and sum
as numpy does (pairwise), so their results are bit-equal to the numpy kernels' (the tests check it on real
frames). Without a compiler, or with ``PAM_BENCH_NATIVE=0``,
the numpy kernels run; :func:`info` (recorded in results.json) says which ran and why.
"""
from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

SOURCE = Path(__file__).with_name("pixel_kernels.c")
FLAGS = ("-O3", "-march=native", "-ffp-contract=off", "-fno-fast-math", "-shared", "-fPIC")
ENV_SWITCH = "PAM_BENCH_NATIVE"  # "0": always the numpy kernels

_LOCK = threading.Lock()
_STATE: dict = {}


def _compiler() -> str | None:
    cc = os.environ.get("CC")
    if cc:
        return shutil.which(cc)
    return next((p for p in map(shutil.which, ("cc", "gcc", "clang")) if p), None)


def _declare(lib: ctypes.CDLL) -> ctypes.CDLL:
    p, n, f64 = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_double
    lib.pb_ssim_moments.argtypes = [p, p, n, ctypes.c_float, p]
    lib.pb_ssim_moments.restype = None
    lib.pb_ssim_sum.argtypes = [p, n, n, n, n, f64, f64, f64, n, p]
    lib.pb_ssim_sum.restype = f64
    lib.pb_sse_u8.argtypes = [p, p, n]
    lib.pb_sse_u8.restype = ctypes.c_uint64
    return lib


def _build() -> tuple[ctypes.CDLL | None, str]:
    if os.environ.get(ENV_SWITCH, "1").strip() == "0":
        return None, f"{ENV_SWITCH}=0"
    if not SOURCE.is_file():
        return None, f"{SOURCE.name} is not installed beside {Path(__file__).name}"
    cc = _compiler()
    if cc is None:
        return None, "no C compiler found ($CC, cc, gcc, clang)"
    why = ""
    for where in _build_dirs():  # the system's temporary folder, else pam-bench's home (/tmp may be noexec)
        lib, why = _compile_and_load(cc, where)
        if lib is not None:
            return lib, why
    return None, why


def _build_dirs() -> list[str | None]:
    from ..weights import home

    return [None, str(home())]


def _compile_and_load(cc: str, parent: str | None) -> tuple[ctypes.CDLL | None, str]:
    """Compile into a fresh private folder under ``parent`` (None: the system's), load, delete the folder."""
    try:
        if parent is not None:
            Path(parent).mkdir(parents=True, exist_ok=True)
        tmp = tempfile.TemporaryDirectory(prefix="pam-bench-native-", dir=parent, ignore_cleanup_errors=True)
    except OSError as e:
        return None, f"no folder to compile in ({e})"
    with tmp as folder:
        lib_path = Path(folder) / "pixel_kernels.so"
        flags, why = None, ""
        for candidate in (FLAGS, tuple(f for f in FLAGS if f != "-march=native")):  # a compiler without it
            try:
                r = subprocess.run([cc, *candidate, "-o", str(lib_path), str(SOURCE)], capture_output=True,
                                   text=True, timeout=120)
            except (OSError, subprocess.SubprocessError) as e:
                return None, f"{cc} could not run: {e}"
            if r.returncode == 0:
                flags = candidate
                break
            why = f"{cc} failed to compile {SOURCE.name}: {(r.stderr.strip().splitlines() or ['no message'])[-1]}"
        if flags is None:
            return None, why
        try:
            lib = _declare(ctypes.CDLL(str(lib_path)))
        except (OSError, AttributeError) as e:
            return None, f"the compiled {SOURCE.name} could not be loaded from {folder}: {e}"
    return lib, f"{Path(cc).name} {' '.join(f for f in flags if f not in ('-shared', '-fPIC'))}"


def kernels() -> ctypes.CDLL | None:
    """The loaded C kernels, or None when the numpy kernels run (the reason is in :func:`info`)."""
    with _LOCK:
        if "lib" not in _STATE:
            _STATE["lib"], _STATE["how"] = _build()
            if _STATE["lib"] is None and os.environ.get(ENV_SWITCH, "1").strip() != "0":
                print(f"pam-bench: SSIM/PSNR run numpy's kernels (same values, slower): {_STATE['how']}",
                      file=sys.stderr)
        return _STATE["lib"]


def info() -> dict:
    """Which pixel kernels this process ran, for results.json (the same values either way). Nothing is built
    here: a process that measured no SSIM or PSNR (another metric, or every payload resumed) says so."""
    with _LOCK:
        if "lib" not in _STATE:
            return {"pixel_kernels": None, "how": "no SSIM or PSNR measured in this process"}
        return {"pixel_kernels": "c" if _STATE["lib"] is not None else "numpy", "how": _STATE["how"]}


def reset() -> None:
    """Forget the loaded kernels, so the next call decides again (tests switch ``PAM_BENCH_NATIVE``)."""
    with _LOCK:
        _STATE.clear()
