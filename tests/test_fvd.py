"""Fréchet statistics and the FVD metric: independent references (numpy eigendecompositions, np.cov),
streaming/merge exactness, the n < 2 path, clip policies, and (with the weights) the port's features."""
from __future__ import annotations


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
        assert clips.dtype == np.uint8 and clips.shape[1] == 16
        self.calls.append(clips.copy())
        stats = clips.mean(axis=(2, 3)).reshape(clips.shape[0], -1) / 255.0  # [B, 48]
        return np.tanh(stats @ self.proj.T).astype(np.float32)


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
    m = _fvd()
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


def test_clip_policies():
    start = _fvd()
    v = _video(9, t=40)
    s = Sample("abc", v)
    assert start.measure_reference(s)["real_start"] == 0
    np.testing.assert_array_equal(start._extractor.calls[-1][0], v.frames[:16])
    rnd = _fvd(clip="random", clip_seed="3")  # CLI options arrive as strings
    offsets = [rnd.measure_reference(Sample(f"id{i}", v))["real_start"] for i in range(20)]
    assert all(0 <= o <= 24 for o in offsets) and len(set(offsets)) > 1
    again = _fvd(clip="random", clip_seed=3)
    assert offsets == [again.measure_reference(Sample(f"id{i}", v))["real_start"] for i in range(20)]
    assert rnd.measure(s, v)["gen_start"] == 0
    assert start.key != rnd.key and "16f" in start.key
    with pytest.raises(ValueError, match="clip"):
        FVD(clip="middle")
    with pytest.raises(ValueError, match="clip_frames"):
        FVD(clip_frames=4)


def test_bootstrap_is_seeded_and_brackets_plausible_values():
    pairs = [(_video(i), _video(500 + i)) for i in range(8)]
    a = _fvd(bootstrap=3, bootstrap_seed=1)
    _run(a, pairs)
    ra = a.compute()
    assert ra.ci95 is not None and ra.ci95 == a._bootstrap_ci()
    assert 0 <= ra.ci95[0] <= ra.ci95[1]
    a.bootstrap_seed = 2
    assert a._bootstrap_ci() != ra.ci95
    assert ra.extras["bootstrap"]["replicates"] == 3
    assert _fvd().compute().ci95 is None


def test_torchscript_backend_is_a_clear_missing_resource(monkeypatch, tmp_path):
    from pam_bench.errors import MissingResource

    monkeypatch.setenv("PAM_BENCH_HOME", str(tmp_path))
    monkeypatch.delenv("PAM_BENCH_WEIGHT_STYLEGAN_V_I3D", raising=False)
    m = FVD(detector="stylegan-v-torchscript")
    assert m.backend == "stylegan-v-torchscript" and "stylegan-v-torchscript" in m.key
    with pytest.raises(MissingResource, match="i3d_torchscript.pt"):
        m.check_ready()
    with pytest.raises(MissingResource):
        m.measure_reference(Sample("x", _video(0)))
    assert m.config()["weights_sha256"] is None


# --- with the real port --------------------------------------------------------------------------

@pytest.mark.weights
def test_fvd_port_features_shape_and_pairing():
    require_weights()
    m = FVD(clip_frames=10)  # fewer frames than the default 16 keep the CPU test short
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
    m = FVD(detector="stylegan-v-torchscript")
    m.check_ready()
    v = _video(4, t=20)
    feat = m.measure_reference(Sample("t0", v))["real_feat"]
    expect = v.frames[:16].astype(np.float64).mean(axis=(1, 2)).T.reshape(-1)  # [C*T], channel-major
    np.testing.assert_allclose(feat[:48], expect, rtol=1e-6)
    np.testing.assert_allclose(feat[48:96], expect, rtol=1e-6)
    assert m.config()["weights_sha256"] == W.sha256_file(stub)
    assert W.sha256_file(stub)[:12] in m.key  # another user file must not reuse cached GT features
