"""Fréchet statistics and the FVD metric: independent references (numpy eigendecompositions, np.cov),
streaming/merge exactness, the n < 2 path, clip policies, and (with the weights) the port's features."""
from __future__ import annotations

import math

import numpy as np
import pytest

from pam_bench.metrics.frechet import (FrechetStats, frechet_distance, frechet_distance_symmetric,
                                       frechet_from_stats)
from pam_bench.metrics.fvd import FEATURE_DIM, FVD
from pam_bench.types import Sample, Video
from .conftest import require_weights as _require


def require_weights(name: str = "i3d-k400"):
    return _require(name)


def _psd_sqrt(s: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(s)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def reference_fd(x: np.ndarray, y: np.ndarray) -> float:
    """Independent FD: np.cov(bias=True) and Tr sqrtm(S1 S2) = sum sqrt eig(sqrt(S1) S2 sqrt(S1))."""
    m1, m2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False, bias=True), np.cov(y, rowvar=False, bias=True)
    r = _psd_sqrt(s1)
    ev = np.linalg.eigvalsh(r @ s2 @ r)
    return float(np.sum((m1 - m2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.sum(np.sqrt(np.clip(ev, 0, None))))


@pytest.mark.parametrize("n,d", [(200, 16), (60, 24)])
def test_frechet_distance_matches_independent_reference(n, d):
    rng = np.random.default_rng(n + d)
    x = rng.standard_normal((n, d)) @ rng.standard_normal((d, d))
    y = 0.3 + rng.standard_normal((n + 7, d)) @ rng.standard_normal((d, d)) * 0.8
    got = frechet_from_stats(FrechetStats().update(x), FrechetStats().update(y))
    ref = reference_fd(x, y)
    assert got == pytest.approx(ref, rel=1e-6)
    args = (x.mean(0), np.cov(x.T, bias=True), y.mean(0), np.cov(y.T, bias=True))
    assert frechet_distance(*args) == pytest.approx(ref, rel=1e-6)
    assert frechet_distance_symmetric(*args) == pytest.approx(ref, rel=1e-6)


def test_frechet_distance_of_identical_sets_is_zero():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((300, 20)) @ rng.standard_normal((20, 20))
    s = FrechetStats().update(x)
    scale = np.trace(s.cov())
    assert abs(frechet_from_stats(s, s)) < 1e-9 * scale


def test_streaming_and_merge_equal_one_pass_and_np_cov():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((101, 12)).astype(np.float32) * 5 + 3
    one = FrechetStats().update(x)
    streamed = FrechetStats(12)
    for s in range(0, 101, 13):
        streamed.update(x[s:s + 13])
    a, b = FrechetStats().update(x[:40]), FrechetStats().update(x[40:])
    merged = FrechetStats().merge(a).merge(b)
    x64 = x.astype(np.float64)
    for st in (streamed, merged):
        assert st.n == 101
        np.testing.assert_allclose(st.mean(), one.mean(), rtol=1e-13, atol=1e-13)
        np.testing.assert_allclose(st.cov(), one.cov(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(one.mean(), x64.mean(0), rtol=1e-12)
    np.testing.assert_allclose(one.cov(), np.cov(x64, rowvar=False, bias=True), rtol=1e-10, atol=1e-11)
    np.testing.assert_allclose(one.cov(biased=False), np.cov(x64, rowvar=False), rtol=1e-10, atol=1e-11)


def test_stats_reject_bad_input():
    s = FrechetStats(4)
    with pytest.raises(ValueError, match="no features"):
        s.mean()
    with pytest.raises(ValueError, match="dimension"):
        s.update(np.zeros((2, 5)))
    with pytest.raises(ValueError, match="NaN"):
        s.update(np.full((1, 4), np.nan))
    s.update(np.zeros((1, 4)))
    with pytest.raises(ValueError, match="at least 2"):
        s.cov(biased=False)


# --- the metric, with a stand-in feature extractor (plumbing; no weights) ---------------------------

class FakeExtractor:
    """Deterministic 400-d features from per-frame colour means (a fixed random projection)."""

    def __init__(self):
        self.proj = np.random.default_rng(0).standard_normal((FEATURE_DIM, 48))
        self.calls = []

    def __call__(self, clips, where="clips"):
        assert clips.dtype == np.uint8 and clips.ndim == 5
        self.calls.append(clips.copy())
        return fake_features(clips, self.proj)


def fake_features(clips, proj):
    """[B, T, H, W, 3] -> [B, 400]: the first 16 per-frame colour means (zero-padded), projected."""
    stats = np.zeros((clips.shape[0], 16, 3))
    t = min(16, clips.shape[1])
    stats[:, :t] = clips[:, :t].mean(axis=(2, 3)) / 255.0
    return np.tanh(stats.reshape(clips.shape[0], -1) @ proj.T).astype(np.float32)


def _video(seed: int, t: int = 20) -> Video:
    rng = np.random.default_rng(seed)
    return Video(rng.integers(0, 256, size=(t, 8, 10, 3), dtype=np.uint8))


def _fvd(**opts) -> FVD:
    m = FVD(**opts)
    m._extractor = FakeExtractor()
    return m


def _run(m: FVD, pairs) -> tuple[np.ndarray, np.ndarray]:
    """Feed the pairs through measure_reference/measure/update; returns the (real, gen) features."""
    real, gen = [], []
    for i, (gt, g) in enumerate(pairs):
        s = Sample(f"v{i:03d}", gt)
        ref, out = m.measure_reference(s), m.measure(s, g)
        real += [ref["real_feat"]] if ref["real_feat"] is not None else []
        gen += [out["gen_feat"]] if out["gen_feat"] is not None else []
        m.update({**ref, **out})
    return np.array(real, dtype=np.float64), np.array(gen, dtype=np.float64)


def test_fvd_set_value_equals_reference_on_the_features():
    m = _fvd()
    pairs = [(_video(i), _video(1000 + i)) for i in range(6)]
    real, gen = _run(m, pairs)
    res = m.compute()
    assert res.n == 6 and res.value is not None and res.direction == "lower"
    # rank-deficient (6 videos << 400 dims): sqrtm of a singular product, so compare loosely
    assert res.value == pytest.approx(reference_fd(gen, real), rel=1e-4)
    assert "rank-deficient" in res.extras["warning"]
    assert res.extras["n_real"] == res.extras["n_gen"] == 6


def test_fvd_of_identical_sets_is_near_zero():
    m = _fvd(protocol="start")  # paired: the same frames on both sides
    _run(m, [(_video(i), _video(i)) for i in range(5)])
    res = m.compute()
    # exact features on both sides; the residue is sqrtm's error on a singular 400x400 product
    scale = np.trace(m._real.cov())
    assert abs(res.value) < 1e-4 * scale


def test_fvd_needs_two_videos_per_side_and_counts_short_ones():
    m = _fvd()
    _run(m, [(_video(0), _video(1)), (_video(2, t=10), _video(3))])
    res = m.compute()
    assert res.value is None and "at least 2" in res.unavailable
    assert res.extras["n_real"] == 1 and res.extras["n_gen"] == 2
    assert res.extras["n_dropped_real"] == 1
    assert "fewer than the 16-frame clip" in next(iter(res.extras["dropped_real_reasons"]))
    m.reset()
    assert m.compute().value is None and m.compute().n == 0


def test_protocol_stylegan_v_is_the_default_random_real_offset():
    """StyleGAN-V fvd2048_16f: real clip at a seeded offset in [0, T-16] (every offset reachable), generated
    from frame 0; the features are those of exactly those frames."""
    m = _fvd(clip_seed="3")  # CLI options arrive as strings
    assert m.protocol == "stylegan-v" and m.backend == "i3d-k400-port/stylegan-v" and m.biased
    v = _video(9, t=40)
    offsets = []
    for i in range(300):
        ref = m.measure_reference(Sample(f"id{i}", v))
        offsets.append(ref["real_start"])
        if i < 3:
            o = ref["real_start"]
            np.testing.assert_array_equal(m._extractor.calls[-1][0], v.frames[o:o + 16])
    assert min(offsets) == 0 and max(offsets) == 24 and len(set(offsets)) == 25
    again = _fvd(clip_seed=3)
    assert offsets[:20] == [again.measure_reference(Sample(f"id{i}", v))["real_start"] for i in range(20)]
    out = m.measure(Sample("id0", v), v)
    assert out["gen_start"] == 0 and out["gen_windows"] == 1
    np.testing.assert_array_equal(m._extractor.calls[-1][0], v.frames[:16])
    assert _fvd(clip_seed=4).key != m.key
    with pytest.raises(ValueError, match="protocol"):
        FVD(clip="random")  # the old option names the new one
    with pytest.raises(ValueError, match="protocol"):
        FVD(protocol="middle")
    with pytest.raises(ValueError, match="clip_frames"):
        FVD(clip_frames=4)


def test_protocol_start_is_paired_from_frame_0():
    m = _fvd(protocol="start")
    v = _video(9, t=40)
    s = Sample("abc", v)
    assert m.measure_reference(s)["real_start"] == 0
    np.testing.assert_array_equal(m._extractor.calls[-1][0], v.frames[:16])
    assert m.measure(s, v)["gen_start"] == 0
    np.testing.assert_array_equal(m._extractor.calls[-1][0], v.frames[:16])


def test_protocol_windows16_mean_covers_all_49_frames():
    m = _fvd(protocol="windows16-mean")
    v = _video(3, t=49)
    s = Sample("w", v)
    ref = m.measure_reference(s)
    starts = [0, 11, 22, 33]  # written out: 4 windows of 16 evenly spaced over 49 frames
    covered = set().union(*(range(a, a + 16) for a in starts))
    assert covered == set(range(49))
    expect = np.mean([fake_features(v.frames[a:a + 16][None], m._extractor.proj)[0].astype(np.float64)
                      for a in starts], axis=0)
    np.testing.assert_allclose(ref["real_feat"], expect, rtol=1e-6, atol=1e-7)
    gen = m.measure(s, v)
    np.testing.assert_array_equal(gen["gen_feat"], ref["real_feat"])  # paired: the same windows
    assert ref["real_windows"] == 4 and m.backend == "i3d-k400-port/windows16-mean"


def test_protocol_cmvq_uses_all_frames_and_np_cov():
    """cmvq: all T frames as one clip per side, and the unbiased covariance: the value equals a reference
    built with np.cov (ddof=1) and an eigendecomposition trace term."""
    m = _fvd(protocol="cmvq")
    assert not m.biased and m.backend == "i3d-k400-port/cmvq"
    v = _video(5, t=20)
    m.measure_reference(Sample("c", v))
    assert m._extractor.calls[-1].shape[1] == 20  # the whole video
    pairs = [(_video(i, t=12), _video(300 + i, t=12)) for i in range(7)]
    m2 = _fvd(protocol="cmvq")
    real, gen = _run(m2, pairs)
    res = m2.compute()
    s1, s2 = np.cov(gen, rowvar=False), np.cov(real, rowvar=False)  # np.cov default: unbiased
    r = _psd_sqrt(s1)
    ref = (np.sum((gen.mean(0) - real.mean(0)) ** 2) + np.trace(s1) + np.trace(s2)
           - 2 * np.sum(np.sqrt(np.clip(np.linalg.eigvalsh(r @ s2 @ r), 0, None))))
    assert res.value == pytest.approx(ref, rel=1e-4)
    assert res.extras["covariance"] == "unbiased" and res.extras["protocol"] == "cmvq"
    short = _fvd(protocol="cmvq").measure_reference(Sample("s", _video(1, t=9)))
    assert short["real_feat"] is None and "10-frame" in short["real_reason"]


def test_cmvq_resize_and_centre_crop_closed_form():
    """The cmvq preprocessing against a closed form: bilinear resampling reproduces a linear ramp exactly
    away from the borders, so a 48x72 horizontal ramp x*3 becomes, after the short side goes to 224 (long
    side 336) and the centre crop drops 56 columns each side, ((3 * src(j)) / 255 - 0.5) * 2 with
    src(j) = (j + 56 + 0.5) * 72 / 336 - 0.5."""
    pytest.importorskip("torch")
    from pam_bench.metrics.i3d import preprocess_short_side_crop, short_side_crop_size

    assert short_side_crop_size(480, 720) == (224, 336) and short_side_crop_size(720, 480) == (336, 224)
    # upstream computes ceil(h * (224 / h)) for the long side, and 100 * 2.24 = 224.00000000000003 in floats
    assert short_side_crop_size(100, 100) == (math.ceil(100 * (224 / 100)), 224) == (225, 224)
    ramp = np.broadcast_to((np.arange(72) * 3).astype(np.uint8)[None, :, None], (48, 72, 3))
    clip = np.ascontiguousarray(np.broadcast_to(ramp, (2, 48, 72, 3)))[None]
    out = preprocess_short_side_crop(clip).numpy()
    assert out.shape == (1, 3, 2, 224, 224)
    j = np.arange(224)
    src = (j + 56 + 0.5) * 72 / 336 - 0.5
    np.testing.assert_allclose(out[0, 0, 0, 100], (3 * src / 255 - 0.5) * 2, atol=1e-5)
    # vertically: rows 48 -> 224, no crop; a vertical ramp away from the top/bottom border rows
    vramp = np.broadcast_to((np.arange(48) * 5).astype(np.uint8)[:, None, None], (48, 72, 3))
    out = preprocess_short_side_crop(np.ascontiguousarray(vramp)[None, None]).numpy()
    i = np.arange(10, 214)
    src = (i + 0.5) * 48 / 224 - 0.5
    np.testing.assert_allclose(out[0, 1, 0, i, 7], (5 * src / 255 - 0.5) * 2, atol=1e-5)


def test_bootstrap_is_seeded_and_named():
    pairs = [(_video(i), _video(500 + i)) for i in range(8)]
    a = _fvd(bootstrap=5, bootstrap_seed=1)
    _run(a, pairs)
    ra = a.compute()
    assert ra.ci95 is not None and ra.ci95 == a._bootstrap_ci(ra.value)
    assert ra.ci95[0] <= ra.ci95[1]
    assert "basic (pivotal)" in ra.extras["ci95_method"] and ra.extras["bootstrap"]["method"] == "basic"
    a.bootstrap_seed = 2
    assert a._bootstrap_ci(ra.value) != ra.ci95
    assert ra.extras["bootstrap"]["replicates"] == 5
    assert ra.extras["small_n"] is True and ra.extras["full_rank_n"] == 401
    assert _fvd().compute().ci95 is None
    with pytest.raises(ValueError, match="ci"):
        FVD(ci="bca")


def test_bootstrap_interval_covers_the_true_distance_at_the_nominal_rate():
    """Gaussian features with a known Fréchet distance: over 200 simulated data sets (fixed seeds) the basic
    bootstrap interval covers the truth about 95% of the time, while the percentile interval, pushed up by
    the statistic's upward bias, covers it far less often."""
    from pam_bench.metrics.fvd import paired_bootstrap_fd
    from pam_bench.metrics.set_interval import bootstrap_interval

    d, n, reps, k = 4, 100, 200, 150
    mean_shift, var = np.full(d, 0.3), np.linspace(0.5, 2.0, d)
    truth = float(np.sum(mean_shift ** 2) + np.sum(1 + var - 2 * np.sqrt(var)))  # N(0, I) vs N(m, diag(var))
    rng = np.random.default_rng(0)
    hits = {"basic": 0, "percentile": 0}
    for r in range(reps):
        x = rng.standard_normal((n, d))
        y = mean_shift + rng.standard_normal((n, d)) * np.sqrt(var)
        value = frechet_from_stats(FrechetStats().update(y), FrechetStats().update(x))
        boot = paired_bootstrap_fd(list(zip(x, y)), k, seed=r)
        for method in hits:
            lo, hi = bootstrap_interval(value, boot, method)
            hits[method] += lo <= truth <= hi
    coverage = {m: h / reps for m, h in hits.items()}
    assert 0.90 <= coverage["basic"] <= 0.99, coverage
    assert coverage["percentile"] < 0.85, coverage


def test_torchscript_backend_is_a_clear_missing_resource(monkeypatch, tmp_path):
    from pam_bench.errors import MissingResource

    monkeypatch.setenv("PAM_BENCH_HOME", str(tmp_path))
    monkeypatch.delenv("PAM_BENCH_WEIGHT_STYLEGAN_V_I3D", raising=False)
    m = FVD(detector="stylegan-v-torchscript")
    assert m.backend == "stylegan-v-torchscript/stylegan-v" and "stylegan-v-torchscript" in m.key
    with pytest.raises(MissingResource, match="i3d_torchscript.pt"):
        m.check_ready()
    with pytest.raises(MissingResource):
        m.measure_reference(Sample("x", _video(0)))
    assert m.config()["weights_sha256"] is None


# --- with the real port --------------------------------------------------------------------------

@pytest.mark.weights
def test_fvd_port_features_shape_and_pairing():
    require_weights()
    m = FVD(clip_frames=10, protocol="start")  # fewer frames than the default 16 keep the CPU test short
    m.check_ready()
    v = _video(11, t=18)
    s = Sample("p0", v)
    real = m.measure_reference(s)["real_feat"]
    gen = m.measure(s, v)["gen_feat"]
    assert real.shape == (FEATURE_DIM,) and real.dtype == np.float32 and np.isfinite(real).all()
    np.testing.assert_array_equal(real, gen)  # 'start' policy: the same clip on both sides
    assert m.config()["weights_sha256"].startswith("af5c50f0")


# --- the StyleGAN-V TorchScript backend, with a scripted stand-in for the user's file --------------

def _torchscript_stub(path) -> None:
    """A TorchScript module with StyleGAN-V's detector signature: per-(channel, frame) means, tiled to 400."""
    import torch

    class Stub(torch.nn.Module):
        def forward(self, x: torch.Tensor, rescale: bool = False, resize: bool = False,
                    return_features: bool = False) -> torch.Tensor:
            assert x.dtype == torch.uint8 and x.dim() == 5 and x.shape[1] == 3
            assert rescale and resize and return_features
            f = x.float().mean(dim=(3, 4)).flatten(1)  # [B, C*T], channel-major
            reps = 400 // f.shape[1] + 1
            return f.repeat(1, reps)[:, :400]

    import warnings

    with warnings.catch_warnings():  # torch marks jit as deprecated; StyleGAN-V's file is TorchScript
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(torch.jit.script(Stub()), str(path))


def test_torchscript_backend_calls_the_user_file_as_stylegan_v(monkeypatch, tmp_path):
    from pam_bench import weights as W

    stub = tmp_path / "i3d_torchscript.pt"
    _torchscript_stub(stub)
    monkeypatch.setenv("PAM_BENCH_WEIGHT_STYLEGAN_V_I3D", str(stub))
    m = FVD(detector="stylegan-v-torchscript", protocol="start")
    m.check_ready()
    v = _video(4, t=20)
    feat = m.measure_reference(Sample("t0", v))["real_feat"]
    expect = v.frames[:16].astype(np.float64).mean(axis=(1, 2)).T.reshape(-1)  # [C*T], channel-major
    np.testing.assert_allclose(feat[:48], expect, rtol=1e-6)
    np.testing.assert_allclose(feat[48:96], expect, rtol=1e-6)
    assert m.config()["weights_sha256"] == W.sha256_file(stub)
    assert W.sha256_file(stub)[:12] in m.key  # another user file must not reuse cached GT features


@pytest.mark.slow
@pytest.mark.weights
def test_embedded_set_first_frame_held_interval_contains_its_value(tmp_path):
    """The issue's case: 40 clips of the embedded synthetic set, the first frame held, paired `start` clips.
    The percentile interval of FVD v1 lay entirely above the value ([955.0, 1175.7] around 944.3); the
    basic bootstrap interval contains it. Slow: 80 I3D passes on 49x480x720 clips."""
    require_weights()
    from pam_bench.run.loop import evaluate

    res = evaluate("static", "synthetic", metrics=["fvd"], out=tmp_path / "run", dataset_options={"n_clips": 40},
                   metric_options={"fvd": {"protocol": "start", "bootstrap": 1000}}, progress=False,
                   gt_cache=tmp_path / "gt")
    fvd = res["metrics"]["fvd"]
    assert fvd["n"] == 40 and fvd["extras"]["small_n"] is True
    lo, hi = fvd["ci95"]
    assert lo <= fvd["value"] <= hi, (fvd["value"], fvd["ci95"])
    assert fvd["extras"]["bootstrap"]["method"] == "basic"


def _torchscript_cmvq_stub(path) -> None:
    """StyleGAN-V's detector signature, called as common_metrics_on_video_quality calls it: a float clip
    already cropped to 224x224 in [-1, 1], rescale=False, resize=False. Returns per-(channel, frame) means."""
    import torch

    class Stub(torch.nn.Module):
        def forward(self, x: torch.Tensor, rescale: bool = True, resize: bool = True,
                    return_features: bool = False) -> torch.Tensor:
            assert x.dtype == torch.float32 and x.dim() == 5 and x.shape[1] == 3
            assert x.shape[3] == 224 and x.shape[4] == 224
            assert (not rescale) and (not resize) and return_features
            f = x.mean(dim=(3, 4)).flatten(1)
            reps = 400 // f.shape[1] + 1
            return f.repeat(1, reps)[:, :400]

    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(torch.jit.script(Stub()), str(path))


def test_torchscript_backend_cmvq_call(monkeypatch, tmp_path):
    """cmvq with the user's TorchScript: the whole clip, preprocessed as that repository does; a constant
    colour c maps to (c / 255 - 0.5) * 2 whatever the resize (closed form)."""
    stub = tmp_path / "i3d_torchscript.pt"
    _torchscript_cmvq_stub(stub)
    monkeypatch.setenv("PAM_BENCH_WEIGHT_STYLEGAN_V_I3D", str(stub))
    m = FVD(detector="stylegan-v-torchscript", protocol="cmvq")
    assert m.backend == "stylegan-v-torchscript/cmvq"
    colours = np.array([10, 128, 250], np.uint8)
    frames = np.broadcast_to(colours, (12, 30, 44, 3)).copy()
    feat = m.measure_reference(Sample("c0", Video(frames)))["real_feat"]
    expect = np.repeat((colours / 255.0 - 0.5) * 2, 12)  # channel-major [C*T], T = all 12 frames
    np.testing.assert_allclose(feat[:36], expect, atol=1e-6)
