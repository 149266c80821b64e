"""The native pixel kernels: compiled per process when a C compiler exists, numpy's otherwise, and the reason
recorded. (Their values against the reference arithmetic are tested in test_pixel_metrics.py; that the wheel
carries the C source, in test_packaging.py.)"""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from pam_bench.metrics import native
from pam_bench.metrics.pixel import psnr_frames, ssim_frames


@pytest.fixture
def fresh(monkeypatch):
    native.reset()
    yield monkeypatch
    native.reset()


def _frames(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (2, 40, 48, 3), dtype=np.uint8)


def test_the_kernels_compile_where_a_compiler_exists(fresh):
    fresh.delenv(native.ENV_SWITCH, raising=False)
    fresh.delenv("CC", raising=False)
    if not any(shutil.which(c) for c in ("cc", "gcc", "clang")):
        pytest.skip("no C compiler on this machine: only the numpy kernels can run")
    assert native.info()["pixel_kernels"] is None  # nothing built before a kernel is asked for
    native.kernels()
    got = native.info()
    assert got["pixel_kernels"] == "c", got
    assert native.kernels() is native.kernels()  # built once per process


@pytest.mark.parametrize("env, reason", [
    ({native.ENV_SWITCH: "0"}, "PAM_BENCH_NATIVE=0"),
    ({"CC": "/nonexistent/cc"}, "no C compiler found"),
    ({"CC": "false"}, "failed to compile pixel_kernels.c"),
])
def test_without_the_c_kernels_numpy_runs_and_says_why(fresh, capsys, env, reason):
    if env.get("CC") == "false" and shutil.which("false") is None:
        pytest.skip("no 'false' program to stand in for a broken compiler")
    fresh.delenv(native.ENV_SWITCH, raising=False)
    for k, v in env.items():
        fresh.setenv(k, v)
    native.kernels()
    got = native.info()
    assert got["pixel_kernels"] == "numpy" and reason in got["how"], got
    a, b = _frames(0), _frames(1)
    s, p = ssim_frames(a, b), psnr_frames(a, b)  # the numpy kernels, with the same values as the C ones
    native.reset()
    fresh.delenv("CC", raising=False)
    fresh.delenv(native.ENV_SWITCH, raising=False)
    np.testing.assert_allclose(ssim_frames(a, b), s, rtol=0, atol=1e-12)
    assert np.array_equal(psnr_frames(a, b), p)
    err = capsys.readouterr().err
    assert (reason in err) == (native.ENV_SWITCH not in env)  # said once on stderr, unless asked for


def test_c_and_numpy_kernels_are_bit_equal_on_real_frames(perturbations):
    """Same IEEE operations in the same order, and numpy's pairwise sums: not one bit differs, so a run's
    numbers do not depend on whether its machine had a C compiler."""
    if native.kernels() is None:
        pytest.skip(f"the C kernels are not built here: {native.info()['how']}")
    ref, perts = perturbations
    for name, p in perts.items():
        for rows in (16, 1, 7):
            assert np.array_equal(ssim_frames(ref, p, rows=rows), ssim_frames(ref, p, rows=rows, native=False)), name
        assert np.array_equal(psnr_frames(ref, p), psnr_frames(ref, p, native=False)), name


@pytest.mark.parametrize("native_path", [True, False], ids=["c-kernels", "numpy-kernels"])
def test_bad_arrays_are_refused_before_any_kernel_reads_them(native_path):
    from pam_bench.errors import ArgumentError

    a = _frames(0)
    with pytest.raises(ArgumentError, match="one shape"):
        ssim_frames(a, a[:, :-1], native=native_path)  # the C kernel would read past the smaller one
    with pytest.raises(ArgumentError, match="one shape"):
        psnr_frames(a, a[:1], native=native_path)
    with pytest.raises(ArgumentError, match="one shape"):
        psnr_frames(a[0], a[0], native=native_path)
    with pytest.raises(ArgumentError, match="one shape"):
        ssim_frames(a[..., :0], a[..., :0], native=native_path)
    with pytest.raises(ArgumentError, match="10x40 are smaller than the 11x11 window"):
        ssim_frames(a[:, :, :10], a[:, :, :10], native=native_path)
    for rows in (0, -3, 1.5, True):
        with pytest.raises(ArgumentError, match="rows must be"):
            ssim_frames(a, a, rows=rows, native=native_path)
    b = _frames(1)
    f32 = ssim_frames(a.astype(np.float32), b.astype(np.float32), native=native_path)  # not uint8: numpy's
    np.testing.assert_allclose(f32, ssim_frames(a, b), rtol=0, atol=1e-12)


def test_the_ssim_metric_names_the_clip_whose_frames_are_too_small():
    from pam_bench.errors import InputError
    from pam_bench.metrics.pixel import SSIM
    from pam_bench.types import Sample, Video

    tiny = Video(_frames(0)[:, :8, :8], 15.0)
    with pytest.raises(InputError, match="clip-7.*at least 11x11.*8x8"):
        SSIM().measure(Sample(id="clip-7", video=tiny), tiny)


def test_a_folder_that_cannot_load_a_library_is_passed_over_and_nothing_is_left(fresh, tmp_path):
    """A noexec /tmp cannot map the compiled library: the kernels are built under pam-bench's home instead,
    and where no folder can load them, numpy's run and the reason is recorded. No compiled file remains."""
    import ctypes

    if not any(shutil.which(c) for c in ("cc", "gcc", "clang")):
        pytest.skip("no C compiler on this machine")
    fresh.delenv(native.ENV_SWITCH, raising=False)
    fresh.delenv("CC", raising=False)
    noexec, home = tmp_path / "noexec", tmp_path / "home"
    noexec.mkdir()
    real = ctypes.CDLL

    def cdll(path, *a, **k):
        if str(path).startswith(str(noexec)):
            raise OSError("failed to map segment from shared object")
        return real(path, *a, **k)

    fresh.setattr(native.ctypes, "CDLL", cdll)
    fresh.setattr(native, "_build_dirs", lambda: [str(noexec), str(home)])
    assert native.kernels() is not None and native.info()["pixel_kernels"] == "c"
    native.reset()
    fresh.setattr(native, "_build_dirs", lambda: [str(noexec)])
    native.kernels()
    got = native.info()
    assert got["pixel_kernels"] == "numpy" and "could not be loaded" in got["how"], got
    assert not list(noexec.iterdir()) and not list(home.iterdir())


def test_a_compiler_without_march_native_still_builds_them(fresh, tmp_path):
    """Some compilers (older Apple clang on arm64) refuse -march=native: the kernels are built without it."""
    if not shutil.which("gcc") and not shutil.which("cc"):
        pytest.skip("no C compiler on this machine")
    real = shutil.which("gcc") or shutil.which("cc")
    wrapper = tmp_path / "cc-no-march"
    wrapper.write_text(f'#!/bin/sh\nfor a in "$@"; do [ "$a" = "-march=native" ] && exit 1; done\nexec {real} "$@"\n')
    wrapper.chmod(0o755)
    fresh.delenv(native.ENV_SWITCH, raising=False)
    fresh.setenv("CC", str(wrapper))
    assert native.kernels() is not None
    got = native.info()
    assert got["pixel_kernels"] == "c" and "-march=native" not in got["how"] and "-ffp-contract=off" in got["how"]
    a, b = _frames(0), _frames(1)
    assert np.array_equal(ssim_frames(a, b), ssim_frames(a, b, native=False))
