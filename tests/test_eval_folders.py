"""Official evaluation folders, one per checkpoint: identified by the content of their GT, checked for
completeness before any decoding, gated with `check`, shown in one leaderboard, GT features cached once."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from pam_bench.cli import main
from pam_bench.types import Video
from pam_bench.video import write_video

from .conftest import require_weights

N, T = 3, 16


def run_cli(args, capsys):
    try:
        main(args)
        code = 0
    except SystemExit as e:
        code = e.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def clips(dexycb_clip):
    import cv2

    return [np.stack([cv2.resize(f, (160, 120)) for f in dexycb_clip[i * 4: i * 4 + T]]) for i in range(N)]


def _folder(d, clips, amp=0, n_gen=N):
    rng = np.random.default_rng(1)
    for i, c in enumerate(clips):
        write_video(d / "gt" / f"gt_{i:04d}.mp4", Video(c, 15))
        if i < n_gen:
            g = np.clip(c.astype(np.int16) + rng.integers(-amp, amp + 1, c.shape), 0, 255).astype(np.uint8)
            write_video(d / "generated" / f"generated_{i:04d}.mp4", Video(g, 15))
    return d


def _eval(d, out, capsys, *extra, metrics="ssim,psnr"):
    return run_cli(["evaluate", "--method", "folder", "--videos", str(d), "--metrics", metrics, "--out", str(out),
                    "--no-progress", *extra], capsys)


def test_identical_gt_folders_gate_and_share_a_leaderboard(tmp_path, clips, capsys):
    a = _folder(tmp_path / "ckpt_0040", clips, amp=3)
    b = tmp_path / "ckpt_0042"
    shutil.copytree(a, b)  # checkpoint N: byte-identical GT and identical generated videos
    worse = _folder(tmp_path / "ckpt_0043", clips, amp=60)
    for d in (a, b, worse):
        code, _, err = _eval(d, tmp_path / "runs" / d.name, capsys)
        assert code == 0, err
    runs = {d.name: tmp_path / "runs" / d.name for d in (a, b, worse)}
    manifests = {json.loads((r / "results.json").read_text())["dataset"]["manifest_hash"] for r in runs.values()}
    assert len(manifests) == 1  # content, not path

    code, out, err = run_cli(["check", str(runs["ckpt_0042"]), "--baseline", str(runs["ckpt_0040"])], capsys)
    assert code == 0, out + err
    assert "passed" in out
    code, out, err = run_cli(["check", str(runs["ckpt_0043"]), "--baseline", str(runs["ckpt_0040"])], capsys)
    assert code == 1, out + err
    failed = [x for x in out.splitlines() if x.startswith("FAILED")]
    assert failed and "ssim" in failed[0] and "psnr" in failed[0]

    code, out, err = run_cli(["leaderboard", *map(str, runs.values()), "--no-reported", "--label",
                              f"{runs['ckpt_0040']}=ckpt 40", "--label", f"{runs['ckpt_0042']}=ckpt 42",
                              "--label", f"{runs['ckpt_0043']}=ckpt 43"], capsys)
    assert code == 0, err
    rows = [x for x in out.splitlines() if x.startswith("| ckpt")]
    assert [r.split("|")[1].strip() for r in rows] == ["ckpt 40", "ckpt 42", "ckpt 43"]


def test_changed_gt_is_another_dataset(tmp_path, clips, capsys):
    a = _folder(tmp_path / "a", clips)
    b = _folder(tmp_path / "b", [clips[1], clips[0], clips[2]])
    for d in (a, b):
        assert _eval(d, tmp_path / "runs" / d.name, capsys)[0] == 0
    code, out, err = run_cli(["check", str(tmp_path / "runs" / "b"), "--baseline", str(tmp_path / "runs" / "a")],
                             capsys)
    assert code == 2 and "manifests differ" in err


def test_gt_features_are_computed_once_for_identical_gt(tmp_path, clips, capsys, monkeypatch):
    require_weights("i3d-k400")
    from pam_bench.datasets.folder import PamEvalDir
    from pam_bench.metrics.fvd import FVD

    a = _folder(tmp_path / "ckpt_a", clips, amp=3)
    b = _folder(tmp_path / "ckpt_b", clips, amp=9)
    cache = tmp_path / "gt_cache"
    calls = {"reference": 0, "decode_gt": 0}
    ref, load = FVD.measure_reference, PamEvalDir.load

    def counting_ref(self, sample):
        calls["reference"] += 1
        return ref(self, sample)

    def counting_load(self, sid):
        calls["decode_gt"] += 1
        return load(self, sid)

    monkeypatch.setattr(FVD, "measure_reference", counting_ref)
    monkeypatch.setattr(PamEvalDir, "load", counting_load)
    code, _, err = _eval(a, tmp_path / "ra", capsys, "--gt-cache", str(cache), metrics="fvd")
    assert code == 0, err
    assert calls == {"reference": N, "decode_gt": N}
    code, _, err = _eval(b, tmp_path / "rb", capsys, "--gt-cache", str(cache), metrics="fvd")
    assert code == 0, err
    assert calls == {"reference": N, "decode_gt": N}  # the second folder decoded only its generated side
    assert len(list(cache.iterdir())) == 1  # one manifest entry for both folders
    assert "FVD from N=3 clips" in err  # the small-N warning reaches the console


def test_partial_folder_is_refused_before_decoding(tmp_path, clips, capsys, monkeypatch):
    from pam_bench import video

    d = _folder(tmp_path / "part", clips, n_gen=2)
    decoded = []
    read = video.read_video
    monkeypatch.setattr(video, "read_video", lambda p, *a, **k: decoded.append(p) or read(p, *a, **k))
    code, _, err = _eval(d, tmp_path / "o", capsys)
    assert code != 0 and decoded == []
    msg = [x for x in err.splitlines() if x.startswith("pam-bench: error:")]
    assert len(msg) == 1 and "2 of the 3" in msg[0] and "generated_0002.mp4" in msg[0], err
    assert "--allow-missing" in msg[0] and "--limit" in msg[0]
    assert not (tmp_path / "o" / "run.json").exists()

    code, _, err = _eval(d, tmp_path / "o", capsys, "--limit", "1")
    assert code == 0, err
    assert json.loads((tmp_path / "o" / "results.json").read_text())["n_evaluated"] == 1
    code, _, err = _eval(d, tmp_path / "o", capsys, "--limit", "2")  # a longer prefix resumes the same run
    assert code == 0, err
    r = json.loads((tmp_path / "o" / "results.json").read_text())
    assert r["n_evaluated"] == 2 and r["n_expected"] == 2
    code, _, err = _eval(d, tmp_path / "o2", capsys, "--allow-missing")
    assert code == 0, err
    assert "2 of the 3" in err and "leaving out 1" in err
    code, _, err = _eval(d, tmp_path / "o3", capsys, "--ids", "0000,0002")
    assert code != 0 and "1 of the 2" in err


def test_split_order_names_directly_in_the_videos_folder(tmp_path, clips, capsys):
    d = _folder(tmp_path / "eval", clips)
    flat = tmp_path / "flat"
    flat.mkdir()
    for p in (d / "generated").iterdir():
        shutil.copy(p, flat / p.name)
    code, _, err = run_cli(["evaluate", "--method", "folder", "--videos", str(flat), "--dataset", "pam-eval-dir",
                            "--root", str(d), "--metrics", "psnr", "--out", str(tmp_path / "o"), "--no-progress"],
                           capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "o" / "results.json").read_text())["n_evaluated"] == N
