"""``pam-bench bench``: measure the project's own speed and memory, as ratios measured in one run.

Each mode runs in a fresh subprocess (``python -m pam_bench.bench MODE ...``) so that its peak resident
memory (ru_maxrss) is its own. Modes:
- ``decode``: decode every video of an evaluation folder one after the other on one thread and discard it
  (the floor);
- ``pass METRICS [WORKERS [DEVICE]]``: pam-bench's evaluate pass through the harness (pam_bench.prefetch:
  WORKERS clips at once, default the core count; the model metrics on DEVICE, default cpu);
- ``naive``: a straightforward loop: load all videos into memory, then per frame skimage SSIM, skimage
  PSNR and one lpips call per frame (the package's own forward);
- ``stages DEVICE LPIPS``: where a clip's time goes on one thread: decode, host->device transfer (pinned
  memory on CUDA), each metric kernel;
- ``decoders``: every decoder path (PyAV, PyAV frame threads, decord, OpenCV) on lossless RGB, yuv420p h264
  and mpeg4 files: seconds, and whether the frames are identical;
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


def make_pairs(folder: Path, n: int, frames: int, height: int, width: int, seed: int = 0,
               clip: Path | None = None) -> Path:
    """An official-layout evaluation folder of n lossless pairs (what pam-bench writes).

    The GT frames are the first ``frames`` frames of ``clip`` (a real video, e.g. the DexYCB sample,
    stretched to height x width) or of a synthetic clip, shifted sideways by 7 px per pair; each generated
    video is its GT shifted by 2 rows and blurred (Gaussian sigma 1), so it compresses like real footage.
    """
    import cv2

    from .types import Video
    from .video import read_video, resize_frames, write_video

    if clip is not None:
        base = read_video(clip).frames[:frames]
    else:
        from .datasets.synthetic import SyntheticHOI

        ds = SyntheticHOI(n_clips=1, frames=frames, seed=seed)
        base = ds.load(ds.split().ids[0]).video.frames
    if base.shape[1:3] != (height, width):
        base = resize_frames(base, (height, width))
    for i in range(n):
        gt = np.roll(base, shift=i * 7, axis=2)
        gen = np.stack([cv2.GaussianBlur(f, (0, 0), 1.0) for f in np.roll(gt, 2, axis=1)])
        write_video(folder / "gt" / f"gt_{i:04d}.mp4", Video(gt, 15.0))
        write_video(folder / "generated" / f"generated_{i:04d}.mp4", Video(gen, 15.0))
    return folder


def _videos(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.mp4"))


def _decode(folder: Path, decoder: str | None = None, threads: int = 1) -> dict:
    """The floor: every video decoded one after the other, on one thread, and dropped."""
    from .video import read_video

    n = sum(read_video(p, decoder=decoder, threads=threads).num_frames for p in _videos(folder))
    return {"frames": n}


#: What a timed pass evaluates: the official evaluation folder layout, read by the folder method.
PASS_METHOD, PASS_DATASET = "folder", "pam-eval-dir"


def _pipeline(folder: Path, metrics: str, gt_cache: str | None = None, workers: int | None = None,
              device: str = "cpu") -> dict:
    from .run.loop import evaluate

    with tempfile.TemporaryDirectory() as out:
        r = evaluate(PASS_METHOD, PASS_DATASET, metrics.split(","), out, device=device, root=folder,
                     method_options={"videos": folder}, progress=False, gt_cache=gt_cache, workers=workers)
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


def _timed(stage: dict, name: str, fn, *args):
    """Run fn(*args), adding its wall seconds to stage[name]."""
    t = time.perf_counter()
    out = fn(*args)
    stage[name] = stage.get(name, 0.0) + time.perf_counter() - t
    return out


def _to_device(frames: np.ndarray, device: str):
    """Host -> device copy as a GPU pass would do it: pinned host memory, non-blocking, synchronised."""
    import torch

    t = torch.from_numpy(frames)
    if device.startswith("cuda"):
        t = t.pin_memory().to(device, non_blocking=True)
        torch.cuda.synchronize(device)
    return t


def _stages(folder: Path, device: str = "cpu", lpips: bool = True) -> dict:
    """Where one clip's time goes, stage by stage on one thread: decode (GT + generated), host->device
    transfer of both videos, each metric kernel. Seconds summed over the pairs."""
    from .metrics.pixel import build_lpips, lpips_frames, psnr_frames, ssim_frames
    from .video import read_video

    stage: dict[str, float] = {}
    pairs = sorted((folder / "gt").glob("*.mp4"))
    model = build_lpips(device) if lpips else None
    for g in pairs:
        gt = _timed(stage, "decode", read_video, g).frames
        gen = _timed(stage, "decode", read_video, folder / "generated" / g.name.replace("gt_", "generated_")).frames
        _timed(stage, "transfer", lambda: (_to_device(gt, device), _to_device(gen, device)))
        _timed(stage, "ssim", ssim_frames, gt, gen)
        _timed(stage, "psnr", psnr_frames, gt, gen)
        if model is not None:
            _timed(stage, "lpips", lpips_frames, model, gt, gen, device)
    return {"pairs": len(pairs), "seconds": stage}


def _decoders(folder: Path) -> dict:
    """Each decoder path on each kind of file (re-encodes of the GT videos): seconds, and whether the frames
    equal the default path's."""
    from .types import Video
    from .video import DECODERS, read_video, write_video

    def reencode(src: Path, dst: Path, kind: str) -> Path:
        return write_video(dst, Video(read_video(src).frames, 15.0), codec="h264" if "h264" in kind else kind)

    out: dict[str, dict] = {}
    gts = sorted((folder / "gt").glob("*.mp4"))
    with tempfile.TemporaryDirectory() as tmp:
        kinds = {"lossless-rgb-h264": gts, **{k: [reencode(p, Path(tmp) / f"{k}-{p.name}", k) for p in gts]
                                             for k in ("yuv420p-h264", "mpeg4")}}
        for kind, files in kinds.items():
            ref = [read_video(p).frames for p in files]
            paths = [(d, 1) for d in DECODERS] + [("pyav", 2)]
            for dec, th in paths:
                t = time.perf_counter()
                got = [read_video(p, decoder=dec, threads=th).frames for p in files]
                out.setdefault(kind, {})[f"{dec}x{th}"] = {
                    "seconds": time.perf_counter() - t,
                    "identical": all(np.array_equal(a, b) for a, b in zip(got, ref))}
    return out


def _run(mode: str, folder: Path, argv: list[str]) -> dict:
    if mode == "decode":
        return _decode(folder)
    if mode == "pass":
        return _pipeline(folder, argv[0], workers=int(argv[1]) if len(argv) > 1 else None,
                         device=argv[2] if len(argv) > 2 else "cpu")
    if mode == "naive":
        return _naive(folder)
    if mode == "stages":
        return _stages(folder, argv[0], lpips=argv[1] == "1")
    if mode == "decoders":
        return _decoders(folder)
    if mode in ("fvd-cold", "fvd-warm"):
        return _pipeline(folder, "fvd", gt_cache=argv[0])
    raise SystemExit(f"unknown bench mode {mode}")


def worker(argv: list[str]) -> None:
    mode, folder = argv[0], Path(argv[1])
    # Imports and model construction happen before the clock starts: the modes are timed on their work.
    import skimage.metrics  # noqa: F401

    from .metrics.pixel import build_lpips
    from .run import loop  # noqa: F401
    from .video import read_video  # noqa: F401

    if mode == "naive":
        build_lpips()
    elif mode == "pass" and "lpips" in argv[2]:
        build_lpips(argv[4] if len(argv) > 4 else "cpu")  # the device the pass runs LPIPS on
    if mode == "pass" or mode.startswith("fvd"):  # the modules a pass loads lazily: a fixed cost, as above
        from .registry import REGISTRY

        names = argv[2].split(",") if mode == "pass" else ["fvd"]
        for kind, name in [("dataset", PASS_DATASET), ("method", PASS_METHOD)] + [("metric", m) for m in names]:
            REGISTRY.load(kind, name)
    if mode in ("pass", "stages"):
        from .metrics import native

        native.kernels()  # SSIM/PSNR's C kernels compile once per process (~0.3 s): a fixed cost, as above
    if mode.startswith("fvd"):
        from .metrics.i3d import build_i3d

        build_i3d()  # model loading is a fixed cost, reported by neither mode
    t0 = time.perf_counter()
    c0 = cpu_seconds()
    out = _run(mode, folder, argv[2:])
    print(json.dumps({"mode": mode, "seconds": time.perf_counter() - t0, "cpu_seconds": cpu_seconds() - c0,
                      "peak_rss_mb": maxrss_bytes() / 2**20, "values": out}))


def run_mode(mode: str, folder: Path, *extra: str) -> dict:
    r = subprocess.run([sys.executable, "-m", "pam_bench.bench", mode, str(folder), *extra],
                       capture_output=True, text=True)
    if r.returncode != 0:
        from .errors import PamBenchError

        last = (r.stderr.strip().splitlines() or [f"exit status {r.returncode}"])[-1]
        raise PamBenchError(f"bench mode {mode} failed: {last}")
    return json.loads(r.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    worker(sys.argv[1:])
