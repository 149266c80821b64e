"""Condition noise (--condition-noise): the added noise is exactly the stated model, seeded per clip, and
runs with different noise never share a run folder."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from pam_bench.errors import IncompatibleResults, PamBenchError
from pam_bench.run.loop import evaluate
from pam_bench.noise import ConditionNoise, add_condition_noise, with_condition_noise
from pam_bench.types import Dataset, Generator, Sample, Split, Video


def grey_sample(sample_id: str = "clip/00", t: int = 4, h: int = 48, w: int = 64) -> Sample:
    grey = np.full((t, h, w, 3), 128, np.uint8)
    ref = np.full((t, h, w, 3), 90, np.uint8)
    return Sample(id=sample_id, video=Video(ref, 15.0),
                  conditions={n: Video(grey.copy(), 15.0) for n in ("depth", "seg", "hand")})


class GreyData(Dataset):
    name = "grey"

    def split(self) -> Split:
        return Split(self.name, "val", ("clip/00", "clip/01"), {"t": 4})

    def load(self, sample_id: str) -> Sample:
        return grey_sample(sample_id)


class Recorder(Generator):
    """A conditioned method that returns its hand condition and keeps what it received."""

    name = "recorder"
    needs = ("conditions",)

    def __init__(self):
        self.seen: dict[str, dict[str, np.ndarray]] = {}

    def identity(self):
        return {"name": self.name}

    def generate(self, sample, seed):
        self.seen[sample.id] = {k: v.frames.copy() for k, v in sample.conditions.items()}
        return sample.conditions["hand"]


@pytest.mark.parametrize("sigma", [5.0, 20.0])
def test_added_noise_has_the_stated_mean_and_std(sigma):
    s = grey_sample(t=8, h=64, w=96)
    noisy = add_condition_noise(s, sigma, seed=3)
    for name in ("depth", "seg", "hand"):
        d = noisy.conditions[name].frames.astype(np.float64) - 128.0
        assert noisy.conditions[name].frames.dtype == np.uint8
        # 147k i.i.d. samples: mean within ~5 standard errors; std within 2% (+ rounding's 1/12 variance)
        assert abs(d.mean()) < 5 * sigma / np.sqrt(d.size)
        assert d.std() == pytest.approx(np.sqrt(sigma ** 2 + 1 / 12), rel=0.02)
        # i.i.d. per channel: channels are uncorrelated
        c = np.corrcoef(d[..., 0].ravel(), d[..., 1].ravel())[0, 1]
        assert abs(c) < 0.02
    # the reference video and the input sample are untouched
    assert np.array_equal(noisy.video.frames, s.video.frames)
    assert (s.conditions["hand"].frames == 128).all()


def test_clipping_keeps_uint8_range():
    s = grey_sample()
    s.conditions["depth"] = Video(np.zeros_like(s.conditions["depth"].frames), 15.0)
    d = add_condition_noise(s, 30.0, 0).conditions["depth"].frames
    assert d.min() == 0 and d.max() <= 255 and d.mean() > 0  # negative draws clip to 0


def test_same_seed_same_noise_other_clip_or_condition_differs():
    a1 = add_condition_noise(grey_sample("clip/00"), 10.0, seed=7)
    a2 = add_condition_noise(grey_sample("clip/00"), 10.0, seed=7)
    b = add_condition_noise(grey_sample("clip/01"), 10.0, seed=7)
    c = add_condition_noise(grey_sample("clip/00"), 10.0, seed=8)
    h = lambda x, n="hand": x.conditions[n].frames  # noqa: E731
    assert np.array_equal(h(a1), h(a2))
    assert not np.array_equal(h(a1), h(b))
    assert not np.array_equal(h(a1), h(c))
    assert not np.array_equal(h(a1, "depth"), h(a1, "seg"))


def test_wrapper_identity_and_refusals():
    rec = Recorder()
    assert with_condition_noise(rec, None) is rec and with_condition_noise(rec, 0.0) is rec
    w = with_condition_noise(rec, 12.0, 5)
    ident = w.identity()
    assert ident["name"] == "recorder"
    cn = ident["condition_noise"]
    assert cn["sigma"] == 12.0 and cn["seed"] == 5 and cn["value_range"] == "uint8 0..255"
    assert cn["sigma_model_units"] == pytest.approx(24 / 255, abs=1e-6)

    class NoCond(Recorder):
        needs = ("first_frame",)

    with pytest.raises(PamBenchError, match="condition videos"):
        ConditionNoise(NoCond(), 5.0)
    with pytest.raises(PamBenchError, match="> 0"):
        ConditionNoise(rec, -1.0)


def test_harness_feeds_noisy_conditions_and_scores_against_clean_reference(tmp_path):
    rec = Recorder()
    res = evaluate(rec, GreyData(), ["psnr"], tmp_path / "noisy", progress=False, condition_noise=10.0,
                   condition_noise_seed=1)
    assert set(rec.seen) == {"clip/00", "clip/01"}
    for vid, conds in rec.seen.items():
        expect = add_condition_noise(grey_sample(vid), 10.0, 1)
        for n in ("depth", "seg", "hand"):
            assert np.array_equal(conds[n], expect.conditions[n].frames)
    # PSNR of the (noisy) output against the clean reference, computed independently
    ref = grey_sample().video.frames.astype(np.float64)
    psnrs = []
    for vid in ("clip/00", "clip/01"):
        mse = ((rec.seen[vid]["hand"].astype(np.float64) - ref) ** 2).mean(axis=(1, 2, 3))
        psnrs.append(np.mean(10 * np.log10(255.0 ** 2 / mse)))
    assert res["metrics"]["psnr"]["value"] == pytest.approx(np.mean(psnrs), rel=1e-9)
    assert res["method"]["condition_noise"]["sigma"] == 10.0
    run = json.loads((tmp_path / "noisy" / "run.json").read_text())
    assert run["method"]["condition_noise"]["seed"] == 1


def test_runs_with_different_noise_never_merge(tmp_path):
    out = tmp_path / "run"
    evaluate(Recorder(), GreyData(), ["psnr"], out, progress=False, condition_noise=10.0)
    with pytest.raises(IncompatibleResults, match="method"):
        evaluate(Recorder(), GreyData(), ["psnr"], out, progress=False, condition_noise=20.0)
    with pytest.raises(IncompatibleResults):
        evaluate(Recorder(), GreyData(), ["psnr"], out, progress=False, condition_noise=10.0,
                 condition_noise_seed=1)
    with pytest.raises(IncompatibleResults):
        evaluate(Recorder(), GreyData(), ["psnr"], out, progress=False)  # clean vs noisy
    evaluate(Recorder(), GreyData(), ["psnr"], out, progress=False, condition_noise=10.0)  # same: resumes


def test_cli_options(tmp_path, monkeypatch):
    from pam_bench.cli import cli

    seen = {}

    def fake(**kw):
        seen.update(kw)
        raise PamBenchError("stop here")

    monkeypatch.setattr("pam_bench.run.loop.evaluate", fake)
    r = CliRunner().invoke(cli, ["evaluate", "--method", "static", "--out", str(tmp_path / "o"),
                                  "--condition-noise", "7.5", "--condition-noise-seed", "3"])
    assert isinstance(r.exception, PamBenchError) and "stop here" in str(r.exception)
    assert seen["condition_noise"] == 7.5 and seen["condition_noise_seed"] == 3


def test_supp2_board_puts_clean_and_noisy_runs_side_by_side(tmp_path):
    from pam_bench.report.leaderboard import board_rows, build, method_label
    from pam_bench.results import load_results

    evaluate(Recorder(), GreyData(), ["psnr"], tmp_path / "clean", progress=False)
    evaluate(Recorder(), GreyData(), ["psnr"], tmp_path / "noisy", progress=False, condition_noise=25.0)
    rows = board_rows(build([load_results(tmp_path / "clean"), load_results(tmp_path / "noisy")], "supp2"))
    measured = {r["label"]: r for r in rows if r["kind"] == "measured"}
    assert set(measured) == {"recorder", "recorder + noisy cond (σ=25/255)"}
    clean = measured["recorder"]["values"]["PSNR↑"]
    noisy = measured["recorder + noisy cond (σ=25/255)"]["values"]["PSNR↑"]
    assert clean == pytest.approx(10 * np.log10(255.0 ** 2 / 38.0 ** 2))  # grey 128 vs reference 90
    assert noisy < clean
    reported = [r["label"] for r in rows if r["kind"] == "reported"]
    assert reported == ["0 Mask Prob + Clean Cond", "0 Mask Prob + Noisy Cond",
                        "0.2 Mask Prob + Clean Cond (Ours)", "0.2 Mask Prob + Noisy Cond"]
    # supp3 labels carry the Stage-I source
    assert method_label({"method": {"name": "pam", "conditions": ["depth"], "stage1": {"source": "dgrasp"}}}) \
        == "pam w/ depth, Stage I dgrasp"


def test_reported_supp_rows_transcribed():
    """Cross-checks against other tables: supp. Table 2's masked clean row is Table 1's PAM row."""
    from pam_bench.report.leaderboard import load_reported

    def val(table, method, metric):
        return next(float(r["value"]) for r in load_reported(table=table)
                    if r["method"] == method and r["metric"] == metric)

    for metric in ("fvd", "psnr", "mpjpe"):
        assert val("supp2", "0.2 Mask Prob + Clean Cond (Ours)", metric) == val("table1", "PAM (Ours w/ all)", metric)
    assert len(load_reported(table="supp2")) == 12 and len(load_reported(table="supp3")) == 6
