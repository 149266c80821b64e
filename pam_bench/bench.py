"""``pam-bench bench``: measure the project's own speed and memory, as ratios measured in one run.

Each mode runs in a fresh subprocess (``python -m pam_bench.bench MODE ...``) so that its peak resident
memory (ru_maxrss) is its own. Modes:
- ``decode``: decode every video of an evaluation folder and discard it (the floor);
- ``pipeline``: pam-bench's pixel-metric pass (SSIM, PSNR, LPIPS) through the harness, streaming video by
  video with a prefetch thread;
- ``naive``: a straightforward loop: load all videos into memory, then per frame skimage SSIM, skimage
  PSNR and one lpips call per frame (the package's own forward).
- ``fvd-cold`` / ``fvd-warm``: FVD through the harness with an empty, then a filled GT-feature cache.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .procstats import cpu_seconds, maxrss_bytes


def make_pairs(folder: Path, n: int, frames: int, height: int, width: int, seed: int = 0) -> Path:
    """An official-layout evaluation folder: n GT clips from the synthetic set, each with a perturbed copy."""
    from .datasets.synthetic import SyntheticHOI
    from .types import Video
    from .video import resize_frames, write_video

    ds = SyntheticHOI(n_clips=1, frames=frames, seed=seed)
    base = ds.load(ds.split().ids[0]).video.frames
    if base.shape[1:3] != (height, width):
        base = resize_frames(base, (height, width))
    rng = np.random.default_rng(seed)
    for i in range(n):
        gt = np.roll(base, shift=i * 7, axis=2)
        noise = rng.integers(-12, 13, size=gt.shape, dtype=np.int16)
        gen = np.clip(gt.astype(np.int16) + noise, 0, 255).astype(np.uint8)
        write_video(folder / "gt" / f"gt_{i:04d}.mp4", Video(gt, 15.0))
        write_video(folder / "generated" / f"generated_{i:04d}.mp4", Video(gen, 15.0))
    return folder


def _decode(folder: Path) -> dict:
    from .video import read_video

    n = 0
    for p in sorted(folder.rglob("*.mp4")):
        n += read_video(p).num_frames
    return {"frames": n}


def _pipeline(folder: Path, metrics: str, gt_cache: str | None = None) -> dict:
    from .run.loop import evaluate

    with tempfile.TemporaryDirectory() as out:
        r = evaluate("folder", "pam-eval-dir", metrics.split(","), out, root=folder,
                     method_options={"videos": folder}, progress=False, gt_cache=gt_cache)
    return {k: v["value"] for k, v in r["metrics"].items()}


def _naive(folder: Path) -> dict:
    import torch
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    from .metrics.pixel import build_lpips
    from .video import read_video

    gts = [read_video(p).frames for p in sorted((folder / "gt").glob("*.mp4"))]
    gens = [read_video(p).frames for p in sorted((folder / "generated").glob("*.mp4"))]
    model = build_lpips()
    vals = {"ssim": [], "psnr": [], "lpips": []}
    for g, x in zip(gts, gens):
        s, p, lp = [], [], []
        for a, b in zip(g, x):
            s.append(structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                           data_range=255, channel_axis=-1))
            p.append(min(peak_signal_noise_ratio(a, b, data_range=255), 100.0))
            with torch.no_grad():
                ta = torch.from_numpy(np.array(a)).permute(2, 0, 1)[None].float() / 127.5 - 1
                tb = torch.from_numpy(np.array(b)).permute(2, 0, 1)[None].float() / 127.5 - 1
                lp.append(float(model(ta, tb)))
        for k, v in zip(("ssim", "psnr", "lpips"), (s, p, lp)):
            vals[k].append(np.mean(v))
    return {k: float(np.mean(v)) for k, v in vals.items()}


def worker(argv: list[str]) -> None:
    mode, folder = argv[0], Path(argv[1])
    # Imports and model construction happen before the clock starts: the modes are timed on their work.
    import skimage.metrics  # noqa: F401

    from .metrics.pixel import build_lpips
    from .run import loop  # noqa: F401
    from .video import read_video  # noqa: F401

    if mode in ("pipeline", "naive"):
        build_lpips()
    if mode.startswith("fvd"):
        from .metrics.i3d import build_i3d

        build_i3d()  # model loading is a fixed cost, reported by neither mode
    t0 = time.perf_counter()
    c0 = cpu_seconds()
    if mode == "decode":
        out = _decode(folder)
    elif mode == "pipeline":
        out = _pipeline(folder, "ssim,psnr,lpips")
    elif mode == "naive":
        out = _naive(folder)
    elif mode in ("fvd-cold", "fvd-warm"):
        out = _pipeline(folder, "fvd", gt_cache=argv[2])
    else:
        raise SystemExit(f"unknown bench mode {mode}")
    print(json.dumps({"mode": mode, "seconds": time.perf_counter() - t0, "cpu_seconds": cpu_seconds() - c0,
                      "peak_rss_mb": maxrss_bytes() / 2**20, "values": out}))


def run_mode(mode: str, folder: Path, *extra: str) -> dict:
    r = subprocess.run([sys.executable, "-m", "pam_bench.bench", mode, str(folder), *extra],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"bench mode {mode} failed: {r.stderr.strip().splitlines()[-1:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    worker(sys.argv[1:])
