"""Bad input and faults through the CLI, one case per kind (pam-bench issue #12).

Every case asserts: a non-zero exit; exactly one ``pam-bench: error:`` line on stderr naming the file or
option; no traceback; and that finished results survive (a finished run folder is byte-identical
afterwards). The regression-gate cases exit 1 with one FAILED line naming the metric instead.
"""
from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from pam_bench.cli import main
from pam_bench.types import Video
from pam_bench.video import write_video


def run_cli(argv, capsys):
    code = 0
    try:
        main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code or 0
    cap = capsys.readouterr()
    return code, cap.out, cap.err


@pytest.fixture(scope="module")
def world(tmp_path_factory, dexycb_clip):
    """An evaluation folder, a finished run of it and two finished shards of it."""
    import cv2

    from pam_bench.cli import main as m

    base = tmp_path_factory.mktemp("world")
    frames = np.stack([cv2.resize(f, (96, 72)) for f in dexycb_clip[:6]])
    ev = base / "eval"
    for i in range(3):
        write_video(ev / "gt" / f"gt_{i:04d}.mp4", Video(frames, 15))
        write_video(ev / "generated" / f"generated_{i:04d}.mp4", Video(np.ascontiguousarray(frames[::-1]), 15))
    common = ["evaluate", "--method", "folder", "--videos", str(ev), "--metrics", "ssim,psnr", "--no-progress"]
    for out, extra in (("done", []), ("s0", ["--shard", "0/2"]), ("s1", ["--shard", "1/2"])):
        try:
            m([*common, "--out", str(base / out), *extra])
        except SystemExit as e:
            assert not e.code
    return {"base": base, "eval": ev, "done": base / "done", "frames": frames, "s0": base / "s0",
            "s1": base / "s1"}


def _snapshot(d: Path) -> dict:
    return {p: p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file() and p.name != ".lock"}


def _eval_copy(w, tmp: Path) -> Path:
    d = tmp / "eval"
    shutil.copytree(w["eval"], d, symlinks=True)
    return d


def _results(w, tmp: Path, edit) -> Path:
    """A copy of the finished run whose results.json is changed by ``edit(dict)``."""
    d = tmp / "run"
    shutil.copytree(w["done"], d)
    r = json.loads((d / "results.json").read_text())
    edit(r)
    (d / "results.json").write_text(json.dumps(r))
    return d


def _ev(w, *extra, out=None, videos=None):
    return ["evaluate", "--method", "folder", "--videos", videos or w["eval"], "--metrics", "ssim,psnr",
            "--no-progress", "--out", out or w["done"], *extra]


def _set(path: Path, keys: tuple, value):
    def edit(r):
        node = r
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value
    return edit


# ----------------------------------------------------------------------------------------- the cases
# name -> function(world, tmp_path, monkeypatch) -> (argv, [needles])
def c_limit_zero(w, t, mp): return _ev(w, "--limit", "0"), ["--limit"]
def c_limit_negative(w, t, mp): return _ev(w, "--limit", "-1"), ["--limit"]
def c_limit_text(w, t, mp): return _ev(w, "--limit", "two"), ["--limit"]
def c_device_unknown(w, t, mp): return _ev(w, "--device", "tpu"), ["--device", "tpu"]
def c_device_cpu_index(w, t, mp): return _ev(w, "--device", "cpu:1"), ["--device"]
def c_metric_option_unknown(w, t, mp): return _ev(w, "-m", "ssim.window=abc"), ["ssim.window"]
def c_metric_option_other_metric(w, t, mp): return _ev(w, "-m", "lpips.net=vgg"), ["lpips", "--metrics"]
def c_metric_option_no_dot(w, t, mp): return _ev(w, "-m", "window=3"), ["window"]
def c_metrics_empty_name(w, t, mp): return _ev(w, "--metrics", "ssim,,psnr"), ["--metrics"]
def c_metrics_twice(w, t, mp): return _ev(w, "--metrics", "ssim,ssim"), ["--metrics"]
def c_metrics_unknown(w, t, mp): return _ev(w, "--metrics", "nosuch"), ["nosuch"]
def c_shard_out_of_range(w, t, mp): return _ev(w, "--shard", "5/2"), ["--shard"]
def c_shard_text(w, t, mp): return _ev(w, "--shard", "abc"), ["--shard"]
def c_method_option_no_value(w, t, mp): return _ev(w, "-o", "novalue"), ["novalue"]
def c_codec_unknown(w, t, mp): return _ev(w, "--codec", "mjpeg"), ["--codec"]
def c_method_unknown(w, t, mp): return ["evaluate", "--method", "nosuch", "--out", w["done"]], ["nosuch"]
def c_videos_missing(w, t, mp): return _ev(w, videos=t / "nowhere"), [str(t / "nowhere")]
def c_changed_run_in_out(w, t, mp): return _ev(w, "--seed", "7"), ["run.json", "--force"]


def c_device_cuda_without_gpu(w, t, mp):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    return _ev(w, "--device", "cuda"), ["--device cuda"]


def c_bench_cuda_without_gpu(w, t, mp):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    return ["bench", "--pairs", "1", "--frames", "2", "--height", "16", "--width", "16", "--device", "cuda"], \
        ["--device cuda"]


def c_bench_device_unknown(w, t, mp):
    return ["bench", "--pairs", "1", "--frames", "2", "--device", "gpu"], ["--device", "gpu"]


def c_out_is_a_file(w, t, mp):
    f = t / "afile"
    f.write_text("x")
    return _ev(w, out=f), [str(f), "not a folder"]


def c_out_under_a_file(w, t, mp):
    f = t / "afile"
    f.write_text("x")
    return _ev(w, out=f / "sub"), [str(f)]


def c_disk_full(w, t, mp):
    import pam_bench.store as S

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    mp.setattr(S.os, "fsync", full)
    return _ev(w, out=t / "o"), ["disk is full"]


def c_out_read_only(w, t, mp):
    real_mkdir = Path.mkdir

    def mkdir(self, *a, **k):
        if str(self).startswith(str(t / "ro")):
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        return real_mkdir(self, *a, **k)

    mp.setattr(Path, "mkdir", mkdir)
    return _ev(w, out=t / "ro" / "o"), [str(t / "ro"), "read-only"]


def c_tracker_option_unknown(w, t, mp): return _ev(w, "--metrics", "mf", "-m", "mf.nosuch=1"), ["nosuch"]
def c_hand_backend_option_unknown(w, t, mp): return _ev(w, "--metrics", "mpjpe", "-m", "mpjpe.nosuch=1"), ["nosuch"]
def c_fvd_option_unknown(w, t, mp): return _ev(w, "--metrics", "fvd", "-m", "fvd.window=3"), ["fvd.window"]
def c_fvd_option_typed(w, t, mp): return _ev(w, "--metrics", "fvd", "-m", "fvd.clip_frames=abc"), ["clip_frames"]


def c_duplicate_ids(w, t, mp):
    d = _eval_copy(w, t)
    shutil.copy(d / "gt" / "gt_0000.mp4", d / "gt" / "gt_00000.mp4")
    return _ev(w, videos=d, out=t / "o"), ["gt_0000.mp4", "gt_00000.mp4"]


def c_dangling_symlink(w, t, mp):
    d = _eval_copy(w, t)
    (d / "gt" / "gt_0003.mp4").symlink_to(t / "gone.mp4")
    shutil.copy(d / "generated" / "generated_0000.mp4", d / "generated" / "generated_0003.mp4")
    return _ev(w, videos=d, out=t / "o"), ["gt_0003.mp4", "dangling"]


def c_symlink_loop(w, t, mp):
    d = _eval_copy(w, t)
    (d / "generated" / "generated_0003.mp4").symlink_to(d / "generated" / "generated_0003.mp4")
    shutil.copy(d / "gt" / "gt_0000.mp4", d / "gt" / "gt_0003.mp4")
    return _ev(w, videos=d, out=t / "o"), ["generated_0003.mp4", "loop"]


def c_generated_too_long(w, t, mp):
    d = _eval_copy(w, t)
    write_video(d / "generated" / "generated_0002.mp4", Video(np.concatenate([w["frames"]] * 2), 15))
    return _ev(w, videos=d, out=t / "o"), ["generated_0002.mp4", "12 frames, expected 6"]


def c_generated_too_short(w, t, mp):
    d = _eval_copy(w, t)
    write_video(d / "generated" / "generated_0002.mp4", Video(w["frames"][:3], 15))
    return _ev(w, videos=d, out=t / "o"), ["generated_0002.mp4", "3 frames"]


def c_generated_wrong_size(w, t, mp):
    d = _eval_copy(w, t)
    big = np.stack([np.pad(f, ((0, 8), (0, 8), (0, 0))) for f in w["frames"]])
    write_video(d / "generated" / "generated_0002.mp4", Video(big, 15))
    return _ev(w, videos=d, out=t / "o"), ["generated_0002.mp4", "80x104"]


def c_generated_corrupt(w, t, mp):
    d = _eval_copy(w, t)
    (d / "generated" / "generated_0002.mp4").write_bytes(np.random.default_rng(0).bytes(3000))
    return _ev(w, videos=d, out=t / "o"), ["generated_0002.mp4"]


def c_generated_empty(w, t, mp):
    d = _eval_copy(w, t)
    (d / "generated" / "generated_0002.mp4").write_bytes(b"")
    return _ev(w, videos=d, out=t / "o"), ["generated_0002.mp4", "empty"]


def c_missing_partner(w, t, mp):
    d = _eval_copy(w, t)
    (d / "gt" / "gt_0001.mp4").unlink()
    return _ev(w, videos=d, out=t / "o"), ["generated_0001.mp4", "gt_0001.mp4"]


def c_oakink2_clip_list_escapes_root(w, t, mp):
    root = t / "oak"
    (root / "data").mkdir(parents=True)
    lst = t / "clips.txt"
    lst.write_text("../../etc/0\n")
    return ["evaluate", "--method", "static", "--dataset", "oakink2", "--root", root, "-d", f"clip_list={lst}",
            "--metrics", "psnr", "--out", w["done"], "--no-progress"], [str(lst), ".."]


# --- table / check / leaderboard on damaged results.json
def c_table_value_text(w, t, mp):
    return ["table", _results(w, t, _set(t, ("metrics", "ssim", "value"), "high"))], ["metrics.ssim.value"]


def c_table_n_text(w, t, mp):
    return ["table", _results(w, t, _set(t, ("n_evaluated",), "3"))], ["n_evaluated"]


def c_table_metrics_list(w, t, mp):
    return ["table", _results(w, t, _set(t, ("metrics",), ["ssim"]))], ["metrics"]


def c_table_missing_file(w, t, mp): return ["table", t / "none.json"], [str(t / "none.json")]


def c_table_bad_json(w, t, mp):
    f = t / "results.json"
    f.write_text("{oops")
    return ["table", f], [str(f), "JSON"]


def c_check_direction_typed(w, t, mp):
    return ["check", _results(w, t, _set(t, ("metrics", "psnr", "direction"), 1)), "--baseline", w["done"]], \
        ["metrics.psnr.direction"]


def c_check_ci95_typed(w, t, mp):
    return ["check", w["done"], "--baseline", _results(w, t, _set(t, ("metrics", "ssim", "ci95"), "wide"))], \
        ["metrics.ssim.ci95"]


def c_check_baseline_missing(w, t, mp): return ["check", w["done"], "--baseline", t / "nope"], [str(t / "nope")]


def c_check_tolerances_bad_json(w, t, mp):
    f = t / "tol.json"
    f.write_text("[1,")
    return ["check", w["done"], "--baseline", w["done"], "--tolerances", f], [str(f)]


def c_check_tolerance_negative(w, t, mp):
    f = t / "tol.json"
    f.write_text(json.dumps({"ssim": {"abs": -1}}))
    return ["check", w["done"], "--baseline", w["done"], "--tolerances", f], [str(f), "ssim.abs"]


def c_leaderboard_name_typed(w, t, mp):
    return ["leaderboard", _results(w, t, _set(t, ("method", "name"), 5))], ["method.name"]


def c_leaderboard_html_without_out(w, t, mp):
    return ["leaderboard", w["done"], "--format", "html"], ["--out"]


def c_leaderboard_html_zero_clips(w, t, mp):
    return ["leaderboard", w["done"], "--format", "html", "--out", t / "h", "--clips", "0"], ["--clips"]


# --- merge
def c_merge_shard_lacks_payloads(w, t, mp):
    s0, s1 = t / "s0", t / "s1"
    shutil.copytree(w["s0"], s0)
    shutil.copytree(w["s1"], s1)
    gone = next((s1 / "payloads").rglob("*.json"))
    gone.unlink()
    return ["merge", s0, s1, "--out", t / "m"], [str(gone.with_suffix("")), "--allow-partial"]


def c_merge_not_a_run(w, t, mp):
    (t / "x").mkdir()
    return ["merge", w["s0"], t / "x", "--out", t / "m"], [str(t / "x"), "run.json"]


def c_merge_missing_shard(w, t, mp): return ["merge", w["s0"], "--out", t / "m"], ["1/2", "missing"]
def c_merge_device_unknown(w, t, mp):
    return ["merge", w["s0"], w["s1"], "--out", t / "m", "--device", "gpu0"], ["--device"]
def c_merge_into_a_shard(w, t, mp): return ["merge", w["s0"], w["s1"], "--out", w["s0"]], ["--out"]


# --- downstream
def _ds(t, *extra): return ["downstream", "--out", t / "ds", *extra]
def c_downstream_steps_text(w, t, mp): return _ds(t, "-t", "steps=abc"), ["-t steps", "abc"]
def c_downstream_lr_negative(w, t, mp): return _ds(t, "-t", "lr=-1"), ["-t lr"]
def c_downstream_crop_zero(w, t, mp): return _ds(t, "--crop-size", "0"), ["--crop-size"]
def c_downstream_stride_zero(w, t, mp): return _ds(t, "--frame-stride", "0"), ["--frame-stride"]
def c_downstream_filter_fraction(w, t, mp): return _ds(t, "--filter-fraction", "2"), ["--filter-fraction"]
def c_downstream_device(w, t, mp): return _ds(t, "--device", "tpu"), ["--device"]
def c_downstream_fractions(w, t, mp): return _ds(t, "--fractions", "0,2"), ["fractions"]


# --- weights
def c_weights_torchscript_not_zip(w, t, mp):
    mp.setenv("PAM_BENCH_HOME", str(t / "home"))
    f = t / "i3d_torchscript.pt"
    f.write_bytes(b"definitely not a zip")
    return ["weights", "install", "stylegan-v-i3d", f], [str(f), "zip"]



# --- checks that used to be a bare ValueError deep inside (pam-bench issue #13): the file is named
def c_dexycb_seg_label_out_of_range(w, t, mp):
    from .fixtures_dexycb import make_dexycb_clip
    from pam_bench.datasets.dexycb import SERIALS, SUBJECTS

    subj, seq, ser = SUBJECTS[0], "20200709_141754", SERIALS[5]
    d = make_dexycb_clip(t / "dex", subj, seq, ser, n_frames=49, jpeg_quality=50)["dir"]
    f = d / "labels_000003.npz"
    lab = dict(np.load(f))
    lab["seg"][0:8, 0:8] = 200  # ADE20K's table has no colour for 150..254
    np.savez(f, **lab)
    return ["data", "show", "--dataset", "dexycb", "--root", t / "dex", "--id", f"{subj}/{seq}/{ser}",
            "--frame", "0", "--out", t / "show.png"], [str(f), "'seg'", "[200]", "255 (hand)"]


def _tiny_pam(t, mode, edit=None):
    from .tiny_pam import write_tiny_checkpoint

    ck = write_tiny_checkpoint(t / "PAM", mode=mode)
    if edit:
        cfg_path = ck / "transformer" / "config.json"
        cfg_path.write_text(json.dumps(edit(json.loads(cfg_path.read_text()))))
    return ["bench", "--method", "pam", "--checkpoint", ck, "-o", f"mode={mode}", "-o", "steps=1",
            "-o", "shared_prompt=true", "--frames", "9", "--height", "32", "--width", "48"], ck


def c_pam_config_fewer_layers_than_branch(w, t, mp):
    mp.setenv("PAM_BENCH_HOME", str(t / "home"))
    argv, ck = _tiny_pam(t, "i2v", lambda c: {**c, "num_layers": 0})
    return argv, [str(ck / "transformer" / "config.json"), "num_tracking_blocks must be in 1..num_layers=0"]


def c_pam_config_size_not_divisible_for_flux(w, t, mp):
    from . import tiny_pam

    mp.setenv("PAM_BENCH_HOME", str(t / "home"))
    mp.setitem(tiny_pam.TINY_COGVIDEOX_TRANSFORMER, "sample_height", 5)  # 40 px: FLUX's VAE needs multiples of 16
    argv, ck = _tiny_pam(t, "full")
    return argv + ["-o", "stage1=builtin"], [str(ck / "transformer" / "config.json"), "40x48", "divisible by 16"]


def c_pam_stage2_picks_without_the_clip(w, t, mp):
    mp.setenv("PAM_BENCH_HOME", str(t / "home"))
    argv, ck = _tiny_pam(t, "full")
    picks = t / "picks.json"
    picks.write_text('{"some/other/clip": 1}')
    return argv + ["-o", "stage1=builtin", "-o", f"stage2_picks={picks}"], [str(picks), "has no pick for clip"]


def c_downstream_training_diverged(w, t, mp):
    from pam_bench.downstream.trainer import EmbeddedTrainer

    def diverged(self, train, evalset, seed, workdir):
        return {"xyz": np.full((len(evalset), 21, 3), np.nan), "verts": None}

    mp.setattr(EmbeddedTrainer, "run", diverged)
    scores = t / "scores.json"
    scores.write_text(json.dumps({"synthetic_0000": 1.0, "synthetic_0001": 2.0}))
    return _ds(t, "-d", "n_clips=2", "-d", "frames=3", "-d", "height=96", "-d", "width=128", "--real-limit", "2",
               "--eval-limit", "1", "--generated-method", "oracle", "--generated-limit", "2", "--filter-scores",
               scores, "--trainer", "embedded", "-t", "arch=tiny", "-t", "steps=1", "--crop-size", "32",
               "--fractions", "1", "--seeds", "0"), ["seed 0", "non-finite joints", "-t lr"]

CASES = {name[2:]: fn for name, fn in dict(globals()).items() if name.startswith("c_") and callable(fn)}


def test_at_least_forty_kinds():
    assert len(CASES) >= 40, len(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_is_one_line_and_loses_nothing(name, world, tmp_path, monkeypatch, capsys):
    capsys.readouterr()
    done_before = _snapshot(world["done"])
    shards_before = {k: _snapshot(world[k]) for k in ("s0", "s1")}
    argv, needles = CASES[name](world, tmp_path, monkeypatch)
    code, out, err = run_cli(argv, capsys)
    monkeypatch.undo()
    assert code != 0, (name, out, err)
    assert "Traceback" not in err and "Traceback" not in out, err
    lines = [x for x in err.splitlines() if x.startswith("pam-bench: error:")]
    assert len(lines) == 1, (name, err)
    for n in needles:
        assert n in lines[0], (name, n, lines[0])
    assert _snapshot(world["done"]) == done_before, name  # finished results survive
    assert {k: _snapshot(world[k]) for k in ("s0", "s1")} == shards_before, name
    partial = tmp_path / "o" / "payloads"
    if name.startswith("generated_") and partial.is_dir():  # clips before the bad one stay finished
        assert len(list(partial.rglob("*.json"))) == 4, name


@pytest.mark.parametrize("value", [float("nan"), float("inf"), None])
def test_gate_fails_nan_inf_and_missing_with_one_line(value, world, tmp_path, capsys):
    run = _results(world, tmp_path, _set(tmp_path, ("metrics", "ssim", "value"), value))
    code, out, err = run_cli(["check", run, "--baseline", world["done"]], capsys)
    assert code == 1, out + err
    failed = [x for x in out.splitlines() if x.startswith("FAILED")]
    assert len(failed) == 1 and "ssim" in failed[0], out
    assert "Traceback" not in err


def test_merge_allow_partial_merges_what_is_there(world, tmp_path, capsys):
    s0, s1 = tmp_path / "s0", tmp_path / "s1"
    shutil.copytree(world["s0"], s0)
    shutil.copytree(world["s1"], s1)
    for f in (s1 / "payloads").rglob("*.json"):
        f.unlink()
    code, out, err = run_cli(["merge", s0, s1, "--out", tmp_path / "m", "--allow-partial"], capsys)
    assert code == 0, err
    r = json.loads((tmp_path / "m" / "results.json").read_text())
    assert (r["n_evaluated"], r["n_expected"]) == (2, 3)


def test_folder_method_clip_ids_stay_inside_the_root(tmp_path):
    from baselines.folder import FolderMethod
    from pam_bench.errors import InputError
    from pam_bench.types import Sample

    (tmp_path / "v").mkdir()
    (tmp_path / "secret.mp4").write_bytes(b"x")
    m = FolderMethod(videos=tmp_path / "v")
    for bad in ("../secret", "a/../../secret", "/etc/passwd", "./x"):
        with pytest.raises(InputError, match="outside --videos"):
            m.generate(Sample(id=bad, video=None, meta={}), 0)
    assert not os.path.exists(tmp_path / "v" / "x.mp4")
