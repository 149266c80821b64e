"""The parallel evaluate pass (pam_bench.prefetch) gives today's numbers on every decoder path.

"Today" is written out here, independently of the code under test: decord's decode (the previous default
path) and the previous SSIM/PSNR arithmetic (whole-frame float64 map, int64 squared-error sums). Every
per-video payload of the pass (per-frame lists and values) must equal it to 1e-12 with each decoder path
and with 1 or 2 workers, and the 2-worker payloads must equal the 1-worker ones exactly.
"""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from pam_bench.errors import InputError
from pam_bench.prefetch import check_workers, run_pipeline
from pam_bench.types import Video
from pam_bench.video import DECODERS, write_video
from .conftest import require_weights
from .test_decoders import _encode, _frames


def _ssim_today(a, b):
    import cv2

    from pam_bench.metrics.pixel import _gaussian_1d

    k = _gaussian_1d().astype(np.float32)
    c1, c2, centre = (0.01 * 255) ** 2, (0.03 * 255) ** 2, np.float32(127.5)
    out = []
    for i in range(a.shape[0]):
        x = a[i].astype(np.float32) - centre
        y = b[i].astype(np.float32) - centre
        f = [cv2.sepFilter2D(z, cv2.CV_32F, k, k, borderType=cv2.BORDER_REFLECT)[5:-5, 5:-5].astype(np.float64)
             for z in (x, y, x * x, y * y, x * y)]
        ux, uy, uxx, uyy, uxy = f
        vx, vy, vxy = uxx - ux * ux, uyy - uy * uy, uxy - ux * uy
        ux, uy = ux + centre, uy + centre
        s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
        out.append(s.mean(axis=(0, 1)).mean())
    return np.array(out)


def _psnr_today(a, b):
    d = a.astype(np.int64) - b.astype(np.int64)
    mse = (d.reshape(d.shape[0], -1) ** 2).sum(1) / d[0].size
    with np.errstate(divide="ignore"):
        return np.minimum(10 * np.log10(255.0 ** 2 / mse), 100.0)


def _decord(path):
    import decord

    vr = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
    return vr.get_batch(list(range(len(vr)))).asnumpy()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Four pairs: GT lossless RGB; generated lossless, yuv420p h264, mpeg4, and an identical copy."""
    d = tmp_path_factory.mktemp("evaldir")
    for i in range(4):
        gt = _frames(t=6, h=64, w=96, seed=i)
        gen = np.clip(gt.astype(int) + (i + 1) * 3, 0, 255).astype(np.uint8) if i < 3 else gt
        write_video(d / "gt" / f"gt_{i:04d}.mp4", Video(gt, 15.0))
        g = d / "generated" / f"generated_{i:04d}.mp4"
        if i == 1:
            write_video(g, Video(gen, 15.0), codec="h264")
        elif i == 2:
            _encode(g, gen, "mpeg4")
        else:
            write_video(g, Video(gen, 15.0))
    return d


def _payloads(out: Path) -> dict:
    files = sorted((out / "payloads").rglob("*.json"))
    return {p.relative_to(out).as_posix(): json.loads(p.read_text()) for p in files}


@pytest.mark.parametrize("decoder", DECODERS)
def test_parallel_pass_equals_today_and_sequential(folder, tmp_path, monkeypatch, decoder):
    from pam_bench.run.loop import evaluate

    monkeypatch.setenv("PAM_BENCH_DECODER", decoder)
    runs = {}
    for w in (1, 2):
        r = evaluate("folder", "pam-eval-dir", ["ssim", "psnr"], tmp_path / f"w{w}", root=folder,
                     method_options={"videos": folder}, progress=False, workers=w)
        assert r["n_evaluated"] == 4 and r["env"]["video_decode"]["decoder"] == decoder
        runs[w] = _payloads(tmp_path / f"w{w}")
    assert runs[1] == runs[2] and len(runs[1]) == 8
    for i in range(4):
        gt, gen = _decord(folder / "gt" / f"gt_{i:04d}.mp4"), _decord(folder / "generated" / f"generated_{i:04d}.mp4")
        for name, ref in (("ssim", _ssim_today(gt, gen)), ("psnr", _psnr_today(gt, gen))):
            p = next(v for k, v in runs[2].items() if k.startswith(f"payloads/{name}@") and k.endswith(f"{i:04d}.json"))
            np.testing.assert_allclose(p["per_frame"], ref, rtol=0, atol=1e-12)
            assert abs(p["value"] - ref.mean()) <= 1e-12
    assert runs[1][next(k for k in runs[1] if k.startswith("payloads/psnr@") and "0003" in k)]["value"] == 100.0


def test_lpips_parallel_equals_sequential(folder, tmp_path, monkeypatch):
    """SSIM and PSNR measure in the loader threads while LPIPS runs in the calling thread: the payloads equal
    one worker's, and each metric's own run's."""
    from pam_bench.metrics.pixel import SSIM
    from pam_bench.run.loop import evaluate

    require_weights("lpips-alexnet")
    threads = set()
    real = SSIM.measure
    monkeypatch.setattr(SSIM, "measure", lambda self, *a: (threads.add(threading.current_thread().name),
                                                            real(self, *a))[1])
    res = [evaluate("folder", "pam-eval-dir", ["ssim", "psnr", "lpips"], tmp_path / f"w{w}", root=folder,
                    method_options={"videos": folder}, progress=False, workers=w) for w in (1, 2)]
    assert _payloads(tmp_path / "w1") == _payloads(tmp_path / "w2")
    assert res[0]["metrics"] == res[1]["metrics"]
    assert threads and all(t.startswith("pam-load") for t in threads), threads  # off the calling thread
    for m in ("lpips", "ssim", "psnr"):  # each alone: the same payloads
        evaluate("folder", "pam-eval-dir", [m], tmp_path / m, root=folder, method_options={"videos": folder},
                 progress=False, workers=1)
        alone = _payloads(tmp_path / m)
        assert alone and all(_payloads(tmp_path / "w2")[k] == v for k, v in alone.items()), m


@pytest.mark.parametrize("concurrent", [True, False])
def test_memory_is_bounded_by_workers_not_n(concurrent):
    live, peak, lock, done = [0], [0], threading.Lock(), []

    def load(i):
        with lock:
            live[0] += 1
            peak[0] = max(peak[0], live[0])
        time.sleep(0.002)
        return i

    def work(i, loaded):
        assert loaded == i
        time.sleep(0.002)
        with lock:
            live[0] -= 1

    run_pipeline(range(40), load, work, workers=3, concurrent_work=concurrent, on_done=done.append)
    assert sorted(done) == list(range(40)) and live[0] == 0
    assert peak[0] <= (3 if concurrent else 3 + 1)  # + the clip being measured while 3 are loaded ahead
    if not concurrent:
        assert done == list(range(40))  # work runs in order in the calling thread


def test_earliest_failure_is_raised_and_finished_clips_are_kept():
    done = []

    def work(i, _):
        if i in (5, 7):
            time.sleep(0.01 * (7 - i))
            raise InputError(f"clip{i}", "bad")

    with pytest.raises(InputError, match="clip5"):
        run_pipeline(range(20), lambda i: i, work, workers=2, concurrent_work=True, on_done=done.append)
    assert set(range(5)) <= set(done) and max(done) < 9


def test_workers_option_checked():
    assert check_workers(None) >= 1 and check_workers(2) == 2
    for bad in (0, -1, 1.5, True):
        with pytest.raises(InputError, match="--workers"):
            check_workers(bad)


def test_cli_workers_zero_is_one_line(tmp_path):
    from click.testing import CliRunner

    from pam_bench.cli import cli

    r = CliRunner().invoke(cli, ["evaluate", "--method", "folder", "--videos", str(tmp_path), "--workers", "0"])
    assert r.exit_code != 0 and "--workers" in r.output and "Traceback" not in r.output


def test_results_say_where_the_time_went(folder, tmp_path):
    """results.json's timing: this process's clips, seconds per stage (load, read, each metric), summed over
    the worker threads; a resumed run that computes nothing says so and evaluate prints no time line."""
    from pam_bench.run.loop import evaluate
    from pam_bench.run.timing import summary

    def run():
        return evaluate("folder", "pam-eval-dir", ["ssim", "psnr"], tmp_path / "o", root=folder,
                        method_options={"videos": folder}, progress=False, workers=2)

    t = run()["timing"]
    assert t["clips_computed"] == 4 and t["workers"] == 2 and t["wall_s"] > 0
    assert set(t["stage_s"]) == {"load", "read videos", "ssim", "psnr"} and all(v > 0 for v in t["stage_s"].values())
    line = summary(t)
    assert line.startswith("time: ") and "4 clip(s) on 2 worker(s)" in line and "ssim " in line
    again = run()["timing"]
    assert again["clips_computed"] == 0 and again["stage_s"] == {} and summary(again) is None
