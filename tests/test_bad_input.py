"""Bad input: each case is one line on stderr naming the file and the problem, a non-zero exit, and
nothing already computed is lost."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from pam_bench.cli import main
from pam_bench.types import Video
from pam_bench.video import write_video


def run_cli(argv, capsys):
    code = 0
    try:
        main(argv)
    except SystemExit as e:
        code = e.code or 0
    err = capsys.readouterr().err.strip().splitlines()
    return code, err


@pytest.fixture
def evaldir(tmp_path, dexycb_clip):
    """An official-layout evaluation folder with 3 small real clips."""
    import cv2

    d = tmp_path / "eval"
    frames = np.stack([cv2.resize(f, (160, 120)) for f in dexycb_clip[:8]])
    for i in range(3):
        write_video(d / "gt" / f"gt_{i:04d}.mp4", Video(frames, 15))
        write_video(d / "generated" / f"generated_{i:04d}.mp4", Video(frames[::-1].copy(), 15))
    return d


def _eval(d, out, capsys, *extra, metrics="ssim,psnr"):
    return run_cli(["evaluate", "--method", "folder", "--videos", str(d), "--metrics", metrics,
                    "--out", str(out), "--no-progress", *extra], capsys)


def _one_line(err, *needles):
    msgs = [x for x in err if x.startswith("pam-bench: error:")]
    assert len(msgs) == 1, err
    for n in needles:
        assert n in msgs[0], msgs[0]


def test_good_folder_runs(evaldir, tmp_path, capsys):
    code, err = _eval(evaldir, tmp_path / "o", capsys)
    assert code == 0, err
    r = json.loads((tmp_path / "o" / "results.json").read_text())
    assert r["n_evaluated"] == 3


def test_corrupt_mp4_keeps_finished_work(evaldir, tmp_path, capsys):
    bad = evaldir / "generated" / "generated_0002.mp4"
    bad.write_bytes(np.random.default_rng(0).bytes(4000))
    code, err = _eval(evaldir, tmp_path / "o", capsys)
    assert code != 0
    _one_line(err, "generated_0002.mp4")
    kept = list((tmp_path / "o" / "payloads").rglob("*.json"))
    assert len(kept) == 4  # 2 clips x 2 metrics finished before the bad one
    before = {p: p.read_bytes() for p in kept}
    shutil.copy(evaldir / "generated" / "generated_0001.mp4", bad)
    code, err = _eval(evaldir, tmp_path / "o", capsys)  # resumes: the two finished clips are reused as they are
    assert code == 0, err
    assert json.loads((tmp_path / "o" / "results.json").read_text())["n_evaluated"] == 3
    assert all(p.read_bytes() == b for p, b in before.items())


def test_truncated_mp4(evaldir, tmp_path, capsys):
    p = evaldir / "gt" / "gt_0001.mp4"
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 3])
    code, err = _eval(evaldir, tmp_path / "o", capsys)
    assert code != 0
    _one_line(err, "gt_0001.mp4")


def test_missing_partner(evaldir, tmp_path, capsys):
    (evaldir / "gt" / "gt_0001.mp4").unlink()
    code, err = _eval(evaldir, tmp_path / "o", capsys)
    assert code != 0
    _one_line(err, "generated_0001.mp4", "no partner")


def test_wrong_frame_count(evaldir, tmp_path, capsys, dexycb_clip):
    import cv2

    frames = np.stack([cv2.resize(f, (160, 120)) for f in dexycb_clip[:5]])
    write_video(evaldir / "generated" / "generated_0000.mp4", Video(frames, 15))
    code, err = _eval(evaldir, tmp_path / "o", capsys)
    assert code != 0
    _one_line(err, "generated_0000.mp4", "5 frames", "8 frames")


def test_wrong_size(evaldir, tmp_path, capsys, dexycb_clip):
    import cv2

    frames = np.stack([cv2.resize(f, (128, 96)) for f in dexycb_clip[:8]])
    write_video(evaldir / "generated" / "generated_0000.mp4", Video(frames, 15))
    code, err = _eval(evaldir, tmp_path / "o", capsys)
    assert code != 0
    _one_line(err, "96x128", "120x160")
    code, err = _eval(evaldir, tmp_path / "o2", capsys, "--resize")
    assert code == 0, err


def test_empty_folder(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code, err = _eval(tmp_path / "empty", tmp_path / "o", capsys)
    assert code != 0
    _one_line(err, "empty")


def test_missing_videos_folder(tmp_path, capsys):
    code, err = _eval(tmp_path / "nope", tmp_path / "o", capsys)
    assert code != 0
    _one_line(err, "nope", "no such folder")


def test_wrong_sha256_and_unreadable_weights(tmp_path, capsys, monkeypatch, evaldir):
    fake = tmp_path / "alexnet.ckpt"
    fake.write_bytes(b"not a pickle at all")
    monkeypatch.setenv("PAM_BENCH_WEIGHT_LPIPS_ALEXNET", str(fake))
    code, err = _eval(evaldir, tmp_path / "o", capsys, metrics="lpips")
    assert code != 0
    _one_line(err, "alexnet.ckpt", "sha256")
    from pam_bench.errors import InputError
    from pam_bench.weights import load_numpy_pickle

    with pytest.raises(InputError, match="alexnet.ckpt"):
        load_numpy_pickle(fake)


def test_pickle_with_code_is_refused(tmp_path):
    import pickle

    from pam_bench.errors import InputError
    from pam_bench.weights import load_numpy_pickle

    p = tmp_path / "evil.pkl"
    p.write_bytes(pickle.dumps({"a": np.zeros(3), "f": shutil.rmtree}))
    with pytest.raises(InputError, match="refusing"):
        load_numpy_pickle(p)
    ok = tmp_path / "ok.pkl"
    ok.write_bytes(pickle.dumps({"w": {"kernel": np.arange(6.0).reshape(2, 3)}}))
    assert load_numpy_pickle(ok)["w"]["kernel"].shape == (2, 3)


def test_missing_weights_say_how_to_get_them(tmp_path, monkeypatch, capsys, evaldir):
    monkeypatch.setenv("PAM_BENCH_HOME", str(tmp_path / "home"))
    code, err = _eval(evaldir, tmp_path / "o", capsys, metrics="lpips")
    assert code == 3
    _one_line(err, "lpips-alexnet", "pam-bench weights fetch")


def test_bad_shard_unknown_method_bad_option(evaldir, tmp_path, capsys):
    code, err = _eval(evaldir, tmp_path / "o", capsys, "--shard", "5/2")
    assert code != 0
    _one_line(err, "--shard")
    code, err = run_cli(["evaluate", "--method", "nosuch", "--out", str(tmp_path / "o")], capsys)
    assert code != 0
    _one_line(err, "unknown method 'nosuch'", "oracle")
    code, err = _eval(evaldir, tmp_path / "o", capsys, "-o", "novalue")
    assert code != 0
    _one_line(err, "key=value")


def test_malformed_results_file(tmp_path, capsys):
    p = tmp_path / "results.json"
    p.write_text("{not json")
    code, err = run_cli(["table", str(p)], capsys)
    assert code != 0
    _one_line(err, "results.json", "JSON")
    p.write_text(json.dumps({"schema_version": 99}))
    code, err = run_cli(["table", str(p)], capsys)
    assert code != 0
    _one_line(err, "schema_version")


def test_changed_run_in_out_folder(evaldir, tmp_path, capsys):
    code, err = _eval(evaldir, tmp_path / "o", capsys, metrics="ssim")
    assert code == 0, err
    code, err = _eval(evaldir, tmp_path / "o", capsys, "--seed", "1")
    assert code != 0
    _one_line(err, "run.json", "--force")


def test_bad_method_and_metric_options_name_the_component(evaldir, tmp_path, capsys):
    code, err = run_cli(["evaluate", "--method", "static", "-o", "foo=1", "--limit", "1", "--metrics", "psnr",
                         "--out", str(tmp_path / "o"), "--no-progress"], capsys)
    assert code != 0
    _one_line(err, "method 'static'", "foo")
    code, err = _eval(evaldir, tmp_path / "o2", capsys, "-m", "psnr.nosuch=1", metrics="ssim")
    assert code != 0
    _one_line(err, "psnr", "not among --metrics")
