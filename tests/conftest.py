"""Shared fixtures: real data from ../shared/data (never copied into the repo)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
DATA = SHARED / "data"
SAMPLES = DATA / "pam_samples"


def require_weights(name: str):
    """Skip when a pinned weight file is absent, unless PAM_BENCH_REQUIRE_WEIGHTS is set (CI): then fail."""
    from pam_bench import weights as W

    if W.locate(name) is None:
        if os.environ.get("PAM_BENCH_REQUIRE_WEIGHTS"):
            pytest.fail(f"weights '{name}' missing but PAM_BENCH_REQUIRE_WEIGHTS is set")
        pytest.skip(f"weights '{name}' not fetched (pam-bench weights fetch {name})")
    return W.path(name)


def require_shared(*paths: Path) -> None:
    """Skip (with the reason) when ../shared/data is not beside the repo; CI always has it."""
    for p in paths:
        if not Path(p).exists():
            pytest.skip(f"{p} not present (../shared/data is expected beside the repo)")


@pytest.fixture(scope="session")
def dexycb_clip() -> np.ndarray:
    """The real DexYCB sample clip: 72 frames, 480x640 RGB uint8."""
    from pam_bench.video import read_video

    p = SAMPLES / "dexycb" / "val_video.mp4"
    if not p.exists():
        pytest.skip(f"{p} not present (../shared/data is expected beside the repo)")
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
