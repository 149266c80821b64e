"""Reliability: errors reach stderr in multi-clip runs, the run folder is locked, changed inputs are
recomputed, the regression gate fails NaN, decoding is bounded by the expected frame count.

The CLI runs in a child process where the point is the real stderr descriptor, a second process or the
child's peak memory.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from pam_bench.types import Video
from pam_bench.video import write_video

REPO = Path(__file__).resolve().parents[1]


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _cli(*argv, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pam_bench", *map(str, argv)], capture_output=True, text=True,
                          env=_env(), timeout=timeout, cwd=REPO)


def _pairs(d: Path, n: int, frames: np.ndarray) -> Path:
    for i in range(n):
        write_video(d / "gt" / f"gt_{i:04d}.mp4", Video(frames, 15))
        write_video(d / "generated" / f"generated_{i:04d}.mp4", Video(np.ascontiguousarray(frames[::-1]), 15))
    return d


@pytest.fixture
def small_frames(dexycb_clip):
    import cv2

    return np.stack([cv2.resize(f, (96, 72)) for f in dexycb_clip[:6]])


def _errors(stderr: str) -> list[str]:
    return [x for x in stderr.splitlines() if x.startswith("pam-bench: error:")]


# ---------------------------------------------------------------------- 1. errors reach stderr
def test_multi_clip_run_reports_the_last_pairs_error_on_stderr(tmp_path, small_frames):
    """The prefetch thread and the main thread both open files while native logging is silenced; the
    one-line error about the last pair must still reach the real stderr (it was 0 bytes before)."""
    n = 12
    d = _pairs(tmp_path / "eval", n, small_frames)
    big = np.stack([np.pad(f, ((0, 8), (0, 8), (0, 0))) for f in small_frames])  # wrong size
    write_video(d / "generated" / f"generated_{n - 1:04d}.mp4", Video(big, 15))
    for attempt in range(3):  # the old failure depended on thread timing; every attempt must be right
        r = _cli("evaluate", "--method", "folder", "--videos", d, "--metrics", "ssim",
                 "--out", tmp_path / f"o{attempt}", "--no-progress")
        assert r.returncode == 2, r.stderr
        errs = _errors(r.stderr)
        assert len(errs) == 1 and f"generated_{n - 1:04d}.mp4" in errs[0], r.stderr
        assert "Traceback" not in r.stderr
        assert len(list((tmp_path / f"o{attempt}" / "payloads").rglob("*.json"))) == n - 1  # finished clips kept


INTERLEAVE = textwrap.dedent("""
    import os, threading
    from pam_bench.video import quiet_native_stderr
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    def a():
        with quiet_native_stderr():
            a_in.set(); b_in.wait()
        a_out.set()
    def b():
        a_in.wait()
        with quiet_native_stderr():
            b_in.set(); a_out.wait()
    ts = [threading.Thread(target=a), threading.Thread(target=b)]
    [t.start() for t in ts]; [t.join() for t in ts]
    os.write(2, b"still visible\\n")
""")


def test_silencing_survives_threads_leaving_out_of_order():
    """Thread A enters, B enters, A leaves, B leaves (the order that left fd 2 on /dev/null)."""
    r = subprocess.run([sys.executable, "-c", INTERLEAVE], capture_output=True, text=True, env=_env(), timeout=60)
    assert r.returncode == 0, r.stderr
    assert "still visible" in r.stderr


# ---------------------------------------------------------------------- 2. the run folder lock
HOLDER = textwrap.dedent("""
    import sys, time
    from pam_bench.store import RunStore
    s = RunStore(sys.argv[1]); s.lock()
    print("locked", flush=True)
    time.sleep(120)
""")


def test_second_writer_and_force_are_refused_while_a_run_holds_the_folder(tmp_path, small_frames):
    d = _pairs(tmp_path / "eval", 2, small_frames)
    out = tmp_path / "o"
    r = _cli("evaluate", "--method", "folder", "--videos", d, "--metrics", "ssim", "--out", out, "--no-progress")
    assert r.returncode == 0, r.stderr
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != ".lock"}
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], stdout=subprocess.PIPE, text=True,
                              env=_env())
    try:
        assert holder.stdout.readline().strip() == "locked"
        for extra in ([], ["--force"]):  # another method into the same folder, with and without --force
            r = _cli("evaluate", "--method", "static", "--dataset", "synthetic", "--limit", "1", "--metrics", "psnr",
                     "--out", out, "--no-progress", *extra)
            assert r.returncode != 0
            errs = _errors(r.stderr)
            assert len(errs) == 1 and f"process {holder.pid}" in errs[0] and str(out) in errs[0], r.stderr
            assert "Traceback" not in r.stderr
            now = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != ".lock"}
            assert now == before  # nothing wiped, nothing written
    finally:
        holder.kill()
        holder.wait()
    r = _cli("evaluate", "--method", "folder", "--videos", d, "--metrics", "ssim", "--out", out, "--no-progress")
    assert r.returncode == 0, r.stderr  # the kernel dropped the dead holder's lock


def test_leftover_part_files_are_removed_and_files_follow_the_umask(tmp_path, small_frames):
    d = _pairs(tmp_path / "eval", 1, small_frames)
    out = tmp_path / "o"
    (out / "videos").mkdir(parents=True)
    (out / "videos" / ".x.mp4.123.part.mp4").write_bytes(b"half")
    (out / ".results.json.abc.part").write_bytes(b"half")
    r = subprocess.run([sys.executable, "-c", "import os, sys; os.umask(0o022); from pam_bench.cli import main; "
                        "main(sys.argv[1:])", "evaluate", "--method", "folder", "--videos", str(d), "--metrics",
                        "ssim", "--out", str(out), "--no-progress"], capture_output=True, text=True, env=_env())
    assert r.returncode == 0, r.stderr
    assert not list(out.rglob("*.part*"))
    for f in ("results.json", "per_video.jsonl", "run.json"):
        assert (out / f).stat().st_mode & 0o777 == 0o644, f


# ---------------------------------------------------------------------- 3. changed inputs are recomputed
def test_a_changed_gt_file_is_recomputed_not_reused(tmp_path, small_frames):
    d = _pairs(tmp_path / "eval", 3, small_frames)
    args = ["evaluate", "--method", "folder", "--videos", d, "--metrics", "ssim,psnr", "--no-progress"]
    r = _cli(*args, "--out", tmp_path / "o")
    assert r.returncode == 0, r.stderr
    old = json.loads((tmp_path / "o" / "results.json").read_text())
    rng = np.random.default_rng(0)
    noisy = np.clip(small_frames.astype(int) + rng.integers(-60, 60, small_frames.shape), 0, 255).astype(np.uint8)
    write_video(d / "gt" / "gt_0001.mp4", Video(noisy, 15))  # the GT of one clip is replaced
    r = _cli(*args, "--out", tmp_path / "o")
    assert r.returncode == 0, r.stderr
    assert "1 clip(s) whose input files changed" in r.stderr
    new = json.loads((tmp_path / "o" / "results.json").read_text())
    assert new["recomputed_changed_inputs"] == 1
    r = _cli(*args, "--out", tmp_path / "fresh")  # the reference: a fresh run on the changed folder
    assert r.returncode == 0, r.stderr
    fresh = json.loads((tmp_path / "fresh" / "results.json").read_text())
    for m in ("ssim", "psnr"):
        assert new["metrics"][m]["value"] == fresh["metrics"][m]["value"], m
        assert not math.isclose(new["metrics"][m]["value"], old["metrics"][m]["value"], rel_tol=1e-3), m
    pv = [json.loads(x) for x in (tmp_path / "o" / "per_video.jsonl").read_text().splitlines()]
    pv_fresh = [json.loads(x) for x in (tmp_path / "fresh" / "per_video.jsonl").read_text().splitlines()]
    assert pv == pv_fresh


def test_a_resumed_run_hashes_only_the_files_that_changed(tmp_path, small_frames, monkeypatch):
    """Input fingerprints go through the (path, size, mtime) hash cache, shared by the worker threads and
    written back once: resuming hashes no video again, and a replaced file is hashed, and recomputed."""
    from pam_bench import weights as W
    from pam_bench.run.loop import evaluate

    monkeypatch.setenv("PAM_BENCH_HOME", str(tmp_path / "home"))
    d = _pairs(tmp_path / "eval", 3, small_frames)
    hashed = []
    real = W.sha256_file
    monkeypatch.setattr(W, "sha256_file", lambda p, *a: (hashed.append(Path(p).name), real(p, *a))[1])

    def run():
        hashed.clear()
        return evaluate("folder", "pam-eval-dir", ["psnr"], tmp_path / "o", root=d, method_options={"videos": d},
                        progress=False, workers=2)

    first = run()
    assert sorted(hashed) == sorted(p.name for p in d.rglob("*.mp4"))  # each video once (GT manifest, inputs)
    assert run()["metrics"]["psnr"] == first["metrics"]["psnr"] and hashed == []  # resumed: nothing hashed
    write_video(d / "generated" / "generated_0002.mp4", Video(small_frames[:, ::-1].copy(), 15))
    again = run()
    assert hashed == ["generated_0002.mp4"] and again["recomputed_changed_inputs"] == 1
    assert again["metrics"]["psnr"]["value"] != first["metrics"]["psnr"]["value"]


def test_fewer_metrics_keep_the_others_and_unknown_metric_options_are_refused(tmp_path, small_frames):
    d = _pairs(tmp_path / "eval", 2, small_frames)
    args = ["evaluate", "--method", "folder", "--videos", d, "--out", tmp_path / "o", "--no-progress"]
    assert _cli(*args, "--metrics", "ssim,psnr,mf").returncode == 0
    first = json.loads((tmp_path / "o" / "results.json").read_text())
    r = _cli(*args, "--metrics", "ssim")
    assert r.returncode == 0, r.stderr
    again = json.loads((tmp_path / "o" / "results.json").read_text())
    # mf's payload key carries its options (not just name@version-backend): kept through the recorded key
    assert set(again["metrics"]) == {"ssim", "psnr", "mf"} and "dropped" not in r.stderr
    assert again["metrics"]["psnr"] == first["metrics"]["psnr"] and again["metrics"]["mf"] == first["metrics"]["mf"]
    rows = [json.loads(x) for x in (tmp_path / "o" / "per_video.jsonl").read_text().splitlines()]
    assert all("psnr" in x and "mf" in x for x in rows)
    # a results.json whose recorded key is no folder name (hand-edited, hostile) is not followed
    for bad in ("../../payloads/mf", ["mf"]):
        res = json.loads((tmp_path / "o" / "results.json").read_text())
        res["metrics"]["mf"]["payload_key"] = bad
        (tmp_path / "o" / "results.json").write_text(json.dumps(res))
        r = _cli(*args, "--metrics", "ssim")
        assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
        assert "mf is dropped from results.json" in r.stderr
        assert "mf" not in json.loads((tmp_path / "o" / "results.json").read_text())["metrics"]
        assert _cli(*args, "--metrics", "ssim,psnr,mf").returncode == 0  # computed again for the next case
    r = _cli(*args, "--metrics", "ssim", "-m", "ssim.window=abc")
    assert r.returncode == 2 and _errors(r.stderr) and "ssim.window" in _errors(r.stderr)[0], r.stderr


# ---------------------------------------------------------------------- 4. the gate fails NaN
def test_regression_gate_fails_a_nan_value(tmp_path, small_frames):
    d = _pairs(tmp_path / "eval", 3, small_frames)
    base = tmp_path / "base"
    assert _cli("evaluate", "--method", "folder", "--videos", d, "--metrics", "ssim,psnr", "--out", base,
                "--no-progress").returncode == 0
    new = tmp_path / "new"
    new.mkdir()
    res = json.loads((base / "results.json").read_text())
    res["metrics"]["ssim"]["value"] = float("nan")
    (new / "results.json").write_text(json.dumps(res))  # json writes NaN
    (new / "per_video.jsonl").write_text((base / "per_video.jsonl").read_text())
    r = _cli("check", new, "--baseline", base)
    assert r.returncode == 1, r.stdout + r.stderr
    failed = [x for x in r.stdout.splitlines() if x.startswith("FAILED")]
    assert len(failed) == 1 and "ssim" in failed[0] and "nan" in failed[0].lower(), r.stdout
    res["metrics"]["ssim"]["value"] = float("inf")
    (new / "results.json").write_text(json.dumps(res))
    assert _cli("check", new, "--baseline", base).returncode == 1
    assert _cli("check", base, "--baseline", base).returncode == 0


# ---------------------------------------------------------------------- 5. bounded decoding
RSS_CHILD = textwrap.dedent("""
    import resource, subprocess, sys
    r = subprocess.run([sys.executable, "-m", "pam_bench", *sys.argv[1:]], capture_output=True, text=True)
    sys.stderr.write(r.stderr)
    print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
""")


def _long_video(path: Path, n: int, h: int, w: int) -> None:
    """``n`` frames of a few patterns, h264 ultrafast (quick to write, expensive to hold decoded)."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    pats = [np.full((h, w, 3), v, np.uint8) for v in (40, 120, 200)]
    with av.open(str(path), mode="w") as c:
        st = c.add_stream("libx264", rate=15)
        st.width, st.height, st.pix_fmt = w, h, "yuv420p"
        st.options = {"preset": "ultrafast"}
        for i in range(n):
            for pkt in st.encode(av.VideoFrame.from_ndarray(pats[(i // 50) % 3], format="rgb24")):
                c.mux(pkt)
        for pkt in st.encode():
            c.mux(pkt)


def test_a_10000_frame_generated_file_is_refused_before_decoding(tmp_path):
    """Decoded, 10,000 frames of 240x320 hold 2.3 GB; the frame count is probed first, so the child stays
    far below 1 GB and names the file."""
    d = tmp_path / "eval"
    gt = np.zeros((8, 240, 320, 3), np.uint8)
    write_video(d / "gt" / "gt_0000.mp4", Video(gt, 15))
    _long_video(d / "generated" / "generated_0000.mp4", 10_000, 240, 320)
    t0 = time.time()
    r = subprocess.run([sys.executable, "-c", RSS_CHILD, "evaluate", "--method", "folder", "--videos", str(d),
                        "--metrics", "psnr", "--out", str(tmp_path / "o"), "--no-progress"],
                       capture_output=True, text=True, env=_env(), timeout=600)
    code, maxrss_kb = (int(x) for x in r.stdout.split())
    assert code == 2, r.stderr
    errs = _errors(r.stderr)
    assert len(errs) == 1 and "generated_0000.mp4" in errs[0] and "10000 frames, expected 8" in errs[0], r.stderr
    assert maxrss_kb * 1024 < 1 << 30, f"peak RSS {maxrss_kb / 1024:.0f} MB"
    assert time.time() - t0 < 300


@pytest.mark.parametrize("body", [b"{not json", b"\xff\xfe\x00", b"[1, 2]", b'{"KEY": 5}', b'{"KEY": "0000"}'])
def test_a_damaged_or_hostile_hash_cache_is_rebuilt_not_trusted_blindly(tmp_path, monkeypatch, body):
    """hash_cache.json that is not JSON, not UTF-8, not an object, or holds a non-string digest is rebuilt; an
    entry for a file whose size or mtime changed is never used."""
    import hashlib

    from pam_bench import weights as W

    monkeypatch.setenv("PAM_BENCH_HOME", str(tmp_path / "home"))
    f = tmp_path / "a.bin"
    f.write_bytes(b"content")
    st = f.stat()
    W.hash_cache_path().parent.mkdir(parents=True, exist_ok=True)
    stale = f"{f.resolve()}|{st.st_size + 1}|{st.st_mtime_ns}"  # another size: never this file's entry
    W.hash_cache_path().write_bytes(body.replace(b"KEY", stale.encode()))
    assert W.cached_sha256(f) == hashlib.sha256(b"content").hexdigest()
    assert W.cached_sha256(f) == hashlib.sha256(b"content").hexdigest()  # now from the rebuilt cache


def test_hash_cache_forgets_files_that_are_gone(tmp_path, monkeypatch):
    """The (path, size, mtime) sha256 cache drops the entries of deleted files when it is next written."""
    import hashlib
    import json

    from pam_bench import weights as W

    monkeypatch.setenv("PAM_BENCH_HOME", str(tmp_path / "home"))
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(b"first")
    assert W.cached_sha256(a) == hashlib.sha256(b"first").hexdigest()
    assert any(k.startswith(str(a.resolve()) + "|") for k in json.loads(W.hash_cache_path().read_text()))
    a.unlink()
    b.write_bytes(b"second")
    assert W.cached_sha256(b) == hashlib.sha256(b"second").hexdigest()
    keys = json.loads(W.hash_cache_path().read_text())
    assert [k.rsplit("|", 2)[0] for k in keys] == [str(b.resolve())]


def test_hash_cache_names_a_file_it_cannot_read(tmp_path, monkeypatch):
    """A file that vanished or cannot be read while it is being fingerprinted is an InputError naming it."""
    from pam_bench import weights as W
    from pam_bench.errors import InputError

    monkeypatch.setenv("PAM_BENCH_HOME", str(tmp_path / "home"))
    gone = tmp_path / "gt" / "gt_0000.mp4"
    with pytest.raises(InputError, match="cannot read it to hash it") as e:
        W.cached_sha256s([gone])
    assert e.value.path == str(gone)
    folder = tmp_path / "a_folder.mp4"
    folder.mkdir()
    with pytest.raises(InputError, match="cannot read it to hash it") as e:
        W.cached_sha256(folder)
    assert e.value.path == str(folder)
