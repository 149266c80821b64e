"""Each learned baseline end to end through `pam-bench evaluate` (tiny random checkpoints in the original
layouts, a tiny synthetic clip): videos are written, metrics computed, identity recorded with hashes."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("diffusers")

from pam_bench.cli import main  # noqa: E402

DATA = ["-d", "n_clips=1", "-d", "frames=3", "-d", "height=48", "-d", "width=64"]


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    from tests import tiny_baselines as T

    d = tmp_path_factory.mktemp("baseline_ckpts")
    coshand = T.write_tiny_coshand(d / "coshand" / "coshandrelease.ckpt", seed=0, ema=False).parent
    svd = T.write_tiny_svd(d / "svd")
    hand = T.write_tiny_interdyn(d / "interdyn", svd)
    multi = T.write_tiny_interdyn(d / "multi", svd, conditions=("depth", "seg", "hand"))
    return {"coshand": (coshand, ["-o", "steps=2", "-o", "resolution=32"]),  # official sampler: 1 update
            "svd-hand": (hand, ["-o", f"svd={svd}", "-o", "steps=1", "-o", "height=16", "-o", "width=24",
                                "-o", "num_frames=2", "-o", "frames_policy=resample"]),
            "svd-multi": (multi, ["-o", f"svd={svd}", "-o", "steps=1", "-o", "height=16", "-o", "width=24",
                                  "-o", "num_frames=2", "-o", "frames_policy=resample"])}


@pytest.mark.parametrize("method", ["coshand", "svd-hand", "svd-multi"])
def test_learned_baseline_through_the_harness(method, ckpts, tmp_path):
    ckpt, opts = ckpts[method]
    out = tmp_path / method
    try:
        main(["evaluate", "--method", method, "--checkpoint", str(ckpt), *opts, "--dataset", "synthetic", *DATA,
              "--metrics", "ssim,psnr", "--out", str(out), "--no-progress"])
    except SystemExit as e:
        assert not e.code
    r = json.loads((out / "results.json").read_text())
    assert r["method"]["name"] == method and r["n_evaluated"] == 1
    assert 0.0 < r["metrics"]["ssim"]["value"] < 1.0 and r["metrics"]["psnr"]["value"] > 0
    blob = json.dumps(r["method"])
    assert "sha256" in blob  # checkpoint hashes are part of the identity
    assert len(list((out / "videos").glob("*.mp4"))) == 1
