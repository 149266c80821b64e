"""The run store and the evaluate loop: resume, atomicity, identity checks, seeds."""
from __future__ import annotations

import json

import numpy as np
import pytest

from pam_bench.errors import IncompatibleResults
from pam_bench.run.loop import evaluate
from pam_bench.metrics.pixel import psnr_frames, ssim_frames
from pam_bench.types import derive_seed

from ._small import Noisy, SmallReal

METRICS = ["ssim", "psnr"]


@pytest.fixture
def ds(dexycb_clip):
    return SmallReal(dexycb_clip)


def test_results_equal_an_independent_computation(ds, tmp_path):
    gen = Noisy()
    res = evaluate(gen, ds, METRICS, tmp_path / "run", progress=False)
    per_video_ssim, per_video_psnr = [], []
    for vid in ds.split().ids:
        s = ds.load(vid)
        g = Noisy().generate(s, derive_seed(42, vid))
        per_video_ssim.append(ssim_frames(s.video.frames, g.frames).mean())
        per_video_psnr.append(psnr_frames(s.video.frames, g.frames).mean())
    assert res["metrics"]["ssim"]["value"] == pytest.approx(np.mean(per_video_ssim), abs=1e-12)
    assert res["metrics"]["psnr"]["value"] == pytest.approx(np.mean(per_video_psnr), abs=1e-12)
    assert res["n_evaluated"] == res["n_expected"] == 4
    lines = (tmp_path / "run" / "per_video.jsonl").read_text().splitlines()
    assert [json.loads(x)["video_id"] for x in lines] == list(ds.split().ids)
    on_disk = json.loads((tmp_path / "run" / "results.json").read_text())
    assert on_disk["metrics"]["ssim"]["backend"] == "skimage-gaussian11-s1.5"
    assert on_disk["dataset"]["manifest_hash"] == ds.split().manifest_hash


def test_killed_run_resumes_without_recomputing(ds, tmp_path):
    out = tmp_path / "run"
    full = evaluate(Noisy(), ds, METRICS, tmp_path / "ref", progress=False)
    dying = Noisy(die_after=2)
    with pytest.raises(KeyboardInterrupt):
        evaluate(dying, ds, METRICS, out, progress=False)
    assert dying.calls == 2
    assert len(list((out / "videos").glob("*.mp4"))) == 2
    assert not list(out.rglob("*.part*"))  # atomic: no half-written files
    resumed = Noisy()
    res = evaluate(resumed, ds, METRICS, out, progress=False)
    assert resumed.calls == 2  # only the two unfinished clips
    for k in METRICS:
        assert res["metrics"][k]["value"] == full["metrics"][k]["value"]
    again = Noisy()
    evaluate(again, ds, METRICS, out, progress=False)
    assert again.calls == 0


def test_changed_identity_is_refused_unless_forced(ds, tmp_path):
    out = tmp_path / "run"
    evaluate(Noisy(amp=20), ds, METRICS, out, progress=False, limit=1)
    with pytest.raises(IncompatibleResults, match="method"):
        evaluate(Noisy(amp=5), ds, METRICS, out, progress=False, limit=1)
    with pytest.raises(IncompatibleResults, match="seed"):
        evaluate(Noisy(amp=20), ds, METRICS, out, progress=False, limit=1, seed=7)
    res = evaluate(Noisy(amp=5), ds, METRICS, out, progress=False, limit=1, force=True)
    assert res["method"]["amp"] == 5


def test_adding_a_metric_reuses_videos(ds, tmp_path):
    out = tmp_path / "run"
    evaluate(Noisy(), ds, ["ssim"], out, progress=False)
    g = Noisy()
    res = evaluate(g, ds, ["ssim", "psnr"], out, progress=False)
    assert g.calls == 0 and set(res["metrics"]) == {"ssim", "psnr"}


def test_shards_cover_the_split_and_seeds_do_not_depend_on_order(ds, tmp_path):
    from pam_bench.run.selection import parse_shard, select_ids

    sp = ds.split()
    parts = [select_ids(sp, None, parse_shard(f"{i}/3")) for i in range(3)]
    assert sorted(sum(parts, [])) == sorted(sp.ids)
    assert derive_seed(42, "clip/01") == derive_seed(42, "clip/01") != derive_seed(43, "clip/01")


class _MeanColour:
    """A set metric shaped like FVD: the GT side comes from measure_reference (cached across runs)."""

    from pam_bench.metrics.base import MeanMetric as _Base


class MeanColourGap(_MeanColour._Base):
    name = "colourgap"
    direction = "lower"
    version = "1"
    backend = "test"
    uses_reference_video = False

    def measure_reference(self, sample):
        self.reference_calls = getattr(self, "reference_calls", 0) + 1
        return {"real_mean": np.asarray(sample.video.frames.mean(axis=(0, 1, 2)))}

    def measure(self, sample, generated):
        return {"gen_mean": np.asarray(generated.frames.mean(axis=(0, 1, 2)))}

    def update(self, payload):
        super().update({"value": float(np.abs(payload["real_mean"] - payload["gen_mean"]).mean())})


def test_warm_gt_cache_skips_reference_decoding(ds, tmp_path, monkeypatch):
    """Folder-method re-evaluation with a warm GT cache never loads the GT clips, with identical results."""
    from pam_bench.registry import REGISTRY

    monkeypatch.setitem(REGISTRY._entries, ("metric", "colourgap"),
                        REGISTRY.get("metric", "ssim").__class__("metric", "colourgap",
                                                                 "tests.test_harness:MeanColourGap", "test"))
    first = evaluate(Noisy(), ds, ["colourgap"], tmp_path / "gen", progress=False, gt_cache=tmp_path / "cache")
    from baselines.folder import FolderMethod

    loads = []
    real_load = ds.load
    monkeypatch.setattr(ds, "load", lambda vid: loads.append(vid) or real_load(vid))
    videos = tmp_path / "gen" / "videos"
    res = evaluate(FolderMethod(videos=videos), ds, ["colourgap"], tmp_path / "warm", progress=False,
                   gt_cache=tmp_path / "cache")
    assert loads == []
    assert res["metrics"]["colourgap"]["value"] == pytest.approx(first["metrics"]["colourgap"]["value"], abs=1e-9)
    cold = evaluate(FolderMethod(videos=videos), ds, ["colourgap"], tmp_path / "cold", progress=False,
                    gt_cache=tmp_path / "cache2")
    assert len(loads) == len(ds.split().ids)
    assert cold["metrics"]["colourgap"]["value"] == res["metrics"]["colourgap"]["value"]


def test_stale_gt_cache_entries_are_recomputed(ds, tmp_path, monkeypatch):
    """A cached reference payload is trusted only while its fingerprint matches the decoded GT frames."""
    from pam_bench.run.gt_cache import GT_FINGERPRINT
    from pam_bench.registry import REGISTRY
    from pam_bench.store import read_payload, write_payload

    monkeypatch.setitem(REGISTRY._entries, ("metric", "colourgap"),
                        REGISTRY.get("metric", "ssim").__class__("metric", "colourgap",
                                                                 "tests.test_harness:MeanColourGap", "test"))
    cache = tmp_path / "cache"
    fresh = evaluate(Noisy(), ds, ["colourgap"], tmp_path / "a", progress=False, gt_cache=cache)
    files = sorted(cache.rglob("*.npz"))
    assert len(files) == len(ds.split().ids)

    def tamper(fingerprint):
        for f in files:
            p = read_payload(f)
            p["real_mean"] = p["real_mean"] + 50.0
            if fingerprint is not None:
                p[GT_FINGERPRINT] = fingerprint
            f.unlink()
            write_payload(f.with_suffix(""), p)

    tamper(None)  # same fingerprint, changed features: the cache is used as is
    trusted = evaluate(Noisy(), ds, ["colourgap"], tmp_path / "b", progress=False, gt_cache=cache)
    assert trusted["metrics"]["colourgap"]["value"] > fresh["metrics"]["colourgap"]["value"] + 10
    tamper("0" * 64)  # the GT data changed since the entry was written: recomputed
    again = evaluate(Noisy(), ds, ["colourgap"], tmp_path / "c", progress=False, gt_cache=cache)
    assert again["metrics"]["colourgap"]["value"] == pytest.approx(fresh["metrics"]["colourgap"]["value"], abs=1e-9)
