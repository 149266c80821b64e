"""The regression gate: passes on an unchanged rerun, fails naming the metric on an injected regression,
refuses mismatched backends; the paired-bootstrap rule and tolerances."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from pam_bench.cli import main
from pam_bench.errors import IncompatibleResults, InputError
from pam_bench.run.loop import evaluate
from pam_bench.report.regression import DEFAULT_TOLERANCES, check, check_metric, load_tolerances, paired_bootstrap
from pam_bench.types import Video
from pam_bench.video import read_video, write_video

DS = {"n_clips": 4, "frames": 4, "height": 48, "width": 64}
METRICS = ["ssim", "psnr"]


def _eval(method, out, **kw):
    return evaluate(method=method, dataset="synthetic", metrics=METRICS, out=out, dataset_options=DS,
                    progress=False, **kw)


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    out = tmp_path_factory.mktemp("reg") / "baseline"
    _eval("static", out)
    return out


def _exit_code(argv) -> int:
    with pytest.raises(SystemExit) as e:
        main(argv)
    return int(e.value.code or 0)


def test_unchanged_rerun_passes(baseline, tmp_path):
    _eval("static", tmp_path / "rerun")
    rep = check(tmp_path / "rerun", baseline)
    assert not rep.failed and {c.status for c in rep.checks} == {"ok"}
    assert all(c.worse == 0 and c.paired_ci95 == (0.0, 0.0) and c.n_paired == DS["n_clips"] for c in rep.checks)
    main(["check", str(tmp_path / "rerun"), "--baseline", str(baseline)])  # returns: exit 0


def _degraded_copy(baseline, dest, sigma=12.0):
    """The baseline's generated videos plus seeded noise: an injected regression for --method folder."""
    dest.mkdir()
    rng = np.random.default_rng(0)
    for p in sorted((baseline / "videos").glob("*.mp4")):
        v = read_video(p)
        noisy = np.clip(v.frames + rng.normal(0, sigma, v.frames.shape), 0, 255).astype(np.uint8)
        write_video(dest / p.name, Video(noisy, v.fps))
    return dest


def test_injected_regression_fails_naming_the_metric(baseline, tmp_path, capsys):
    vids = _degraded_copy(baseline, tmp_path / "degraded")
    _eval("folder", tmp_path / "new", method_options={"videos": str(vids)})
    rep = check(tmp_path / "new", baseline)
    assert rep.failed and sorted(rep.regressed()) == ["psnr", "ssim"]
    for c in rep.checks:
        assert c.worse > c.allowed and c.paired_ci95[0] > 0
        # the worst videos are the ones whose per-video value dropped most (recomputed from the jsonl files)
        base = {json.loads(x)["video_id"]: json.loads(x)[c.name] for x in (baseline / "per_video.jsonl").read_text().splitlines()}
        new = {json.loads(x)["video_id"]: json.loads(x)[c.name] for x in (tmp_path / "new" / "per_video.jsonl").read_text().splitlines()}
        drops = sorted(base, key=lambda v: new[v] - base[v])
        assert [w[0] for w in c.worst_videos] == drops[: len(c.worst_videos)]
    code = _exit_code(["check", str(tmp_path / "new"), "--baseline", str(baseline)])
    out = capsys.readouterr().out
    assert code == 1 and "FAILED: psnr, ssim" in out and "videos that got worst" in out
    # a tolerance that forgives PSNR leaves only SSIM failing
    tol = tmp_path / "tol.json"
    tol.write_text(json.dumps({"psnr": {"abs": 1000}}))
    rep = check(tmp_path / "new", baseline, tol)
    assert rep.regressed() == ["ssim"]
    # and the reverse comparison is an improvement, which passes
    rev = check(baseline, tmp_path / "new")
    assert not rev.failed and {c.status for c in rev.checks} == {"improved"}


def test_mismatched_backends_and_manifests_are_refused(baseline, tmp_path, capsys):
    other = tmp_path / "other"
    shutil.copytree(baseline, other)
    res = json.loads((other / "results.json").read_text())
    res["metrics"]["ssim"]["backend"] = "some-other-ssim"
    (other / "results.json").write_text(json.dumps(res))
    with pytest.raises(IncompatibleResults, match="ssim"):
        check(other, baseline)
    code = _exit_code(["check", str(other), "--baseline", str(baseline)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "backend" in err[0]
    res["metrics"]["ssim"]["backend"] = json.loads((baseline / "results.json").read_text())["metrics"]["ssim"]["backend"]
    res["dataset"]["manifest_hash"] = "0" * 64
    (other / "results.json").write_text(json.dumps(res))
    with pytest.raises(IncompatibleResults, match="manifests differ"):
        check(other, baseline)


def test_paired_rule_ignores_sampling_noise_and_tolerances_apply():
    pv_base = {f"v{i}": {"m": 10.0} for i in range(6)}
    # mean worsening 0.1 > tolerance 0.05, but half the videos improved: not significant -> ok
    deltas = [1.0, -0.8, 0.9, -0.9, 0.8, -0.4]
    pv_new = {f"v{i}": {"m": 10.0 - d} for i, d in enumerate(deltas)}
    base_m = {"value": 10.0, "direction": "higher", "ci95": None}
    new_m = {"value": 10.0 - float(np.mean(deltas))}
    c = check_metric("m", base_m, new_m, {"abs": 0.05, "rel": 0.0}, pv_new, pv_base, "per_video")
    assert c.status == "ok" and c.paired_ci95[0] < 0 < c.paired_ci95[1]
    # a uniform worsening of 0.1 is significant and beyond the tolerance
    pv_new = {f"v{i}": {"m": 9.9} for i in range(6)}
    c = check_metric("m", base_m, {"value": 9.9}, {"abs": 0.05}, pv_new, pv_base, "per_video")
    assert c.status == "regressed" and c.worse == pytest.approx(0.1)
    # relative tolerance and set metrics (no pairs): FVD 5% of 100 allows 5
    fvd = {"value": 100.0, "direction": "lower", "ci95": None}
    assert check_metric("fvd", fvd, {"value": 104.0}, DEFAULT_TOLERANCES["fvd"], None, None, "set").status == "ok"
    assert check_metric("fvd", fvd, {"value": 106.0}, DEFAULT_TOLERANCES["fvd"], None, None, "set").status == "regressed"
    assert check_metric("fvd", fvd, None, DEFAULT_TOLERANCES["fvd"], None, None, "set").status == "missing"
    # the bootstrap interval of constant differences is that constant
    assert paired_bootstrap(np.full(5, 0.25)) == (0.25, 0.25)


def test_bad_tolerance_file_is_one_clear_error(tmp_path):
    p = tmp_path / "t.json"
    p.write_text('{"ssim": {"abs": -1}}')
    with pytest.raises(InputError, match="non-negative"):
        load_tolerances(p)
    p.write_text('{"ssim": {"absolute": 1}}')
    with pytest.raises(InputError, match="abs"):
        load_tolerances(p)
    assert load_tolerances(None)["ssim"] == DEFAULT_TOLERANCES["ssim"]


def test_results_carry_provenance_without_importing_heavy_modules(baseline):
    """Every results.json holds the environment fields; gathering them imports nothing heavy."""
    import subprocess
    import sys
    from importlib import metadata
    from pathlib import Path

    env = json.loads((baseline / "results.json").read_text())["env"]
    for k in ("gpu", "cuda", "cudnn", "torch", "numpy", "scipy", "opencv", "lpips", "decord", "av", "diffusers",
              "git_commit", "pam_bench", "python", "device"):
        assert k in env, k
    assert env["numpy"] == np.__version__ and env["scipy"] == metadata.version("scipy")
    repo = Path(__file__).resolve().parents[1]
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode == 0:
        assert env["git_commit"] == head.stdout.strip()
    code = ("import sys; from pam_bench.results import env_info; e = env_info('cpu'); "
            "print(sorted(m for m in ('torch', 'cv2', 'scipy', 'lpips', 'decord', 'av', 'diffusers') "
            "if m in sys.modules), e['gpu'], e['accelerator_info'], e['numpy'] is not None)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("]")[0] == "[" and "torch not loaded in this run" in r.stdout and "True" in r.stdout
    code = ("import torch, sys; from pam_bench.results import env_info; e = env_info('cpu'); "
            "print(e['cuda'] == torch.version.cuda, e['accelerator_info'])")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.startswith("True torch"), (r.stdout, r.stderr[-500:])


def test_check_warns_when_the_environments_differ(baseline, tmp_path, capsys):
    new = tmp_path / "new"
    shutil.copytree(baseline, new)
    res = json.loads((new / "results.json").read_text())
    res["env"]["numpy"] = "0.0-other"
    res["env"]["gpu"] = "Some Other GPU"
    (new / "results.json").write_text(json.dumps(res))
    main(["check", str(new), "--baseline", str(baseline)])  # returns (exit 0): a warning, not a failure
    out = capsys.readouterr().out
    assert "warning: the two runs differ in their environment" in out
    assert f"numpy: 0.0-other vs {np.__version__}" in out and "gpu: Some Other GPU vs" in out
    main(["check", str(baseline), "--baseline", str(baseline)])
    assert "differ in their environment" not in capsys.readouterr().out
