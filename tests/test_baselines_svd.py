"""svd-hand / svd-multi: InterDyn-layout loading, the residual forward against diffusers' UNet, end to end."""
from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("diffusers")

from pam_bench.errors import InputError, MissingResource, OptionError  # noqa: E402
from pam_bench.types import Sample, Video  # noqa: E402

OPTS = dict(steps=1, height=16, width=24, num_frames=2)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from tests import tiny_baselines as T

    d = tmp_path_factory.mktemp("svd")
    svd = T.write_tiny_svd(d / "svd")
    hand = T.write_tiny_interdyn(d / "interdyn", svd)
    multi = T.write_tiny_interdyn(d / "multi", svd, conditions=("depth", "seg", "hand"))
    return svd, hand, multi


def _sample(t=3, h=32, w=48):
    rng = np.random.default_rng(0)
    seg = np.zeros((t, h, w, 3), np.uint8)
    for i in range(t):
        seg[i, 8:20, 6 + 3 * i:24 + 3 * i] = (92, 0, 255)
    conds = {"seg": Video(seg), "depth": Video(seg // 2), "hand": Video(seg // 3)}
    return Sample("clip", Video(rng.integers(0, 255, (t, h, w, 3), dtype=np.uint8)), conds)


def test_interdyn_layout_loads_exactly(tiny):
    import torch
    from safetensors.torch import load_file

    from baselines.svd_controlnet import load_controlnet

    _, hand, multi = tiny
    cfg = json.loads((hand / "controlnet" / "config.json").read_text())
    assert cfg["_class_name"] == "ControlNetSDVModel" and "conditions" not in cfg
    net, wf = load_controlnet(hand)
    saved = load_file(str(wf))
    sd = net.state_dict()
    assert set(sd) == set(saved)
    assert all(torch.equal(sd[k], saved[k]) for k in saved)
    assert "controlnet_cond_embedding.conv_in.weight" in saved and "controlnet_mid_block.weight" in saved
    assert not any(k.startswith("extra_cond_embeddings") for k in saved)
    net3, _ = load_controlnet(multi)
    assert tuple(net3.config.conditions) == ("depth", "seg", "hand") and len(net3.extra_cond_embeddings) == 2


def test_residual_forward_matches_diffusers_and_interdyn_quirk(tiny):
    import torch
    from diffusers import UNetSpatioTemporalConditionModel

    from baselines.svd_unet import unet_with_residuals

    svd, hand, _ = tiny
    unet = UNetSpatioTemporalConditionModel.from_pretrained(svd / "unet").eval()
    torch.manual_seed(0)
    x = torch.randn(1, 2, 8, 8, 12)
    ehs = torch.randn(1, 1, 32)
    ids = torch.tensor([[6.0, 40.0, 0.02]])
    with torch.no_grad():
        ref = unet(x, 10.0, ehs, ids).sample  # diffusers' own forward
        # shapes of the skip features: conv_in, then each block's outputs
        n_blocks = len(unet.down_blocks)
        shapes = [(2, 32, 8, 12)] + [(2, 32, 8, 12)] * 2 + [(2, 32, 4, 6)] + [(2, 64, 4, 6)] * 2
        zeros = [torch.zeros(s) for s in shapes]
        mid0 = torch.zeros(2, 64, 4, 6)
        for mode in ("interdyn", "standard"):
            got = unet_with_residuals(unet, x, 10.0, ehs, ids, zeros, mid0, mode)
            torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
        # a residual on conv_in's skip only: InterDyn's loop adds it once per down block
        r = [torch.zeros(s) for s in shapes]
        r[0] = torch.randn(shapes[0]) * 0.1
        once = [t * n_blocks for t in r]
        a = unet_with_residuals(unet, x, 10.0, ehs, ids, r, mid0, "interdyn")
        b = unet_with_residuals(unet, x, 10.0, ehs, ids, once, mid0, "standard")
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
        assert not torch.allclose(a, ref)


@pytest.mark.parametrize("policy", ["resample", pytest.param("chunked", marks=pytest.mark.slow)])
def test_svd_hand_end_to_end(tiny, policy):
    from baselines.svd import SVDHand

    svd, hand, _ = tiny
    s = _sample()
    g = SVDHand(checkpoint=hand, svd=svd, frames_policy=policy, **OPTS)
    g.check_ready()
    out = g.generate(s, seed=5)
    assert out.frames.shape == s.video.frames.shape and out.frames.dtype == np.uint8
    np.testing.assert_array_equal(out.frames[0], s.first_frame)
    assert out.frames[1:].std() > 0
    ident = g.identity()
    assert ident["frames_policy"] == policy and ident["native_frames"] == 2 and len(ident["controlnet_sha256"]) == 64


def test_svd_multi_end_to_end_and_condition_check(tiny):
    from baselines.svd import SVDHand, SVDMulti

    svd, hand, multi = tiny
    s = _sample()
    out = SVDMulti(checkpoint=multi, svd=svd, frames_policy="resample", **OPTS).generate(s, seed=1)
    assert out.frames.shape == s.video.frames.shape
    with pytest.raises(InputError, match="conditions"):
        SVDMulti(checkpoint=hand, svd=svd, **OPTS).generate(s, seed=1)
    with pytest.raises(InputError, match="depth"):
        SVDMulti(checkpoint=multi, svd=svd, frames_policy="resample", **OPTS).generate(
            Sample("x", s.video, {"seg": s.conditions["seg"]}), seed=1)
    with pytest.raises(OptionError, match="svd-hand option frames_policy"):
        SVDHand(frames_policy="loop")


def test_missing_weights_are_named(tmp_path, tiny):
    from baselines.svd import SVDHand, SVDMulti

    svd, _, _ = tiny
    with pytest.raises(MissingResource, match="stable-video-diffusion"):
        SVDHand(checkpoint=tmp_path, svd=tmp_path / "nothing").check_ready()
    with pytest.raises(MissingResource, match="InterDyn"):
        SVDHand(checkpoint=tmp_path, svd=svd).check_ready()
    with pytest.raises(MissingResource, match="svd-multi"):
        SVDMulti(checkpoint=tmp_path, svd=svd).check_ready()
