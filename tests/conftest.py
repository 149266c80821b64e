"""Shared fixtures. Real data comes from one folder, the test-data cache (``tests/testdata.py``: pinned
upstream files, sha256-checked, never copied into the repo); a test names the files it needs with
``@pytest.mark.data(path, ...)`` or :func:`require_data`, and skips with the reason when one is missing."""
from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import pytest

from . import testdata

REPO = Path(__file__).resolve().parents[1]
DATA = testdata.cache_dir()  # fixed at import: tests that point PAM_BENCH_HOME elsewhere do not move it
SAMPLES = DATA / "pam_samples"
# fixtures that read test data: a test using one (directly or through another fixture) needs these files
FIXTURE_DATA = {"dexycb_clip": (SAMPLES / "dexycb" / "val_video.mp4",)}


@functools.cache
def _data_status() -> dict[str, testdata.Outcome]:
    """Each pinned file from the cache, or else from the local copy (``../shared/data``); no network here:
    ``python -m tests.testdata`` (run by ``make test``) is what downloads."""
    return testdata.ensure(None, cache=DATA)


def data_missing(*paths: Path) -> str | None:
    """Why one of ``paths`` (files under DATA, pinned in tests/testdata.toml) is not there; None when all are."""
    status = _data_status()
    for p in paths:
        local = Path(p).relative_to(DATA).as_posix()
        if local not in status:
            raise KeyError(f"{local} is not pinned in tests/testdata.toml")
        if status[local].path is None:
            return status[local].source
    return None


def require_data(*paths: Path) -> None:
    """Skip (with the reason) when a test-data file is missing, or fail under PAM_BENCH_REQUIRE_TESTDATA."""
    why = data_missing(*paths)
    if why is not None:
        if os.environ.get("PAM_BENCH_REQUIRE_TESTDATA"):
            pytest.fail(f"{why} (PAM_BENCH_REQUIRE_TESTDATA is set)")
        pytest.skip(why)


def _needed(item) -> list[Path]:
    """The test-data files a test names (``@pytest.mark.data``) or reads through a FIXTURE_DATA fixture."""
    paths = [p for mark in item.iter_markers("data") for p in mark.args]
    used = getattr(item, "fixturenames", ())
    return paths + [p for name, files in FIXTURE_DATA.items() if name in used for p in files]


def pytest_collection_modifyitems(config, items):
    """A skip mark carrying the reason, so the summary (``-ra``) names the test's own line."""
    if os.environ.get("PAM_BENCH_REQUIRE_TESTDATA"):
        return  # pytest_runtest_setup fails them instead
    for item in items:
        paths = _needed(item)
        why = data_missing(*paths) if paths else None
        if why is not None:
            item.add_marker(pytest.mark.skipif(True, reason=why))  # skipif: -ra keeps the line (skip folds it)


def pytest_runtest_setup(item):
    paths = _needed(item)
    if paths:
        require_data(*paths)


def require_weights(name: str):
    """Skip when a pinned weight file is absent, unless PAM_BENCH_REQUIRE_WEIGHTS is set (CI): then fail."""
    from pam_bench import weights as W

    if W.locate(name) is None:
        if os.environ.get("PAM_BENCH_REQUIRE_WEIGHTS"):
            pytest.fail(f"weights '{name}' missing but PAM_BENCH_REQUIRE_WEIGHTS is set")
        pytest.skip(f"weights '{name}' not fetched (pam-bench weights fetch {name})")
    return W.path(name)


@pytest.fixture(scope="session")
def dexycb_clip() -> np.ndarray:
    """The real DexYCB sample clip: 72 frames, 480x640 RGB uint8."""
    from pam_bench.video import read_video

    p = SAMPLES / "dexycb" / "val_video.mp4"
    require_data(p)
    return read_video(p).frames


@pytest.fixture
def perturbations(dexycb_clip):
    """A few real frames and perturbed versions of them (noise, blur, shift, brightness)."""
    import cv2

    f = dexycb_clip[::18][:4]
    rng = np.random.default_rng(0)
    noise = np.clip(f.astype(np.int16) + rng.integers(-25, 26, f.shape), 0, 255).astype(np.uint8)
    blur = np.stack([cv2.GaussianBlur(x, (7, 7), 2.0) for x in f])
    shift = np.roll(f, (3, -5), axis=(1, 2))
    bright = np.clip(f.astype(np.int16) + 30, 0, 255).astype(np.uint8)
    return f, {"noise": noise, "blur": blur, "shift": shift, "bright": bright}
