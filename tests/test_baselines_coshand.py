"""coshand: LDM -> diffusers conversion round trip on a tiny LDM-layout checkpoint, safe loading, end to end."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("diffusers")

from pam_bench.errors import InputError, MissingResource, OptionError  # noqa: E402
from pam_bench.types import Sample, Video  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from tests import tiny_baselines as T

    d = tmp_path_factory.mktemp("coshand")
    models = T.tiny_coshand_models(seed=0)
    plain = T.write_tiny_coshand(d / "plain" / "coshandrelease.ckpt", seed=0, ema=False)
    ema = T.write_tiny_coshand(d / "ema" / "coshandrelease.ckpt", seed=0, ema=True, lightning_extras=True)
    return models, plain, ema


def _sample(t=3, h=40, w=160):
    """A wide frame, so the official crop (start 60, +50 px: columns 110..150) holds the hand."""
    rng = np.random.default_rng(0)
    seg = np.zeros((t, h, w, 3), np.uint8)
    for i in range(t):
        seg[i, 10:22, 108 + 3 * i:130 + 3 * i] = (185, 0, 255)
    return Sample("clip", Video(rng.integers(0, 255, (t, h, w, 3), dtype=np.uint8)), {"seg": Video(seg)})


def test_checkpoint_is_in_ldm_layout(tiny):
    from baselines._diffusers_util import load_torch_state_dict

    _, plain, _ = tiny
    sd, how = load_torch_state_dict(plain)
    assert how == "torch.load(weights_only=True)"
    # names of the original CompVis/OpenAI layouts, with their original shapes
    assert tuple(sd["model.diffusion_model.input_blocks.0.0.weight"].shape[:2]) == (32, 16)
    assert sd["first_stage_model.encoder.mid.attn_1.q.weight"].ndim == 4  # LDM VAE attention: 1x1 conv
    assert "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight" in sd
    assert "cond_stage_model.model.visual.transformer.resblocks.0.attn.in_proj_weight" in sd
    assert not any(k.startswith("model_ema.") for k in sd)


def test_conversion_round_trips_exactly(tiny):
    import torch

    from baselines._diffusers_util import load_torch_state_dict
    from baselines.coshand import convert_ldm_checkpoint

    models, plain, _ = tiny
    parts = convert_ldm_checkpoint(load_torch_state_dict(plain)[0])
    assert parts["ema"] is False
    for name in ("unet", "vae", "clip"):
        ref = {k: v for k, v in models[name].state_dict().items() if "position_ids" not in k}
        got = parts[name]
        assert set(got) == set(ref), name
        for k in ref:
            assert torch.equal(got[k], ref[k]), (name, k)
    assert torch.equal(parts["cc_projection"]["weight"], models["cc_projection"].weight)
    assert parts["unet_arch"]["in_channels"] == 16 and parts["unet_arch"]["attention_levels"] == (True, False)


def test_ema_weights_and_restricted_unpickler(tiny):
    import torch

    from baselines._diffusers_util import load_torch_state_dict
    from baselines.coshand import convert_ldm_checkpoint

    models, _, ema = tiny
    sd, how = load_torch_state_dict(ema)  # holds a non-tensor Lightning-like object: weights_only refuses it
    assert how.startswith("restricted unpickler")
    parts = convert_ldm_checkpoint(sd, use_ema=True)
    ref = models["unet"].state_dict()
    assert parts["ema"] is True
    assert all(torch.allclose(parts["unet"][k], ref[k] + 0.01) for k in ref)
    no_ema = convert_ldm_checkpoint(sd, use_ema=False)
    assert all(torch.equal(no_ema["unet"][k], ref[k]) for k in ref)


def test_generates_end_to_end_on_cpu(tiny):
    from baselines.coshand import CosHand

    _, plain, _ = tiny
    s = _sample()
    for mode in ("autoregressive", "from-first"):
        g = CosHand(checkpoint=plain.parent, steps=2, resolution=32, mode=mode)
        g.check_ready()
        out = g.generate(s, seed=3)
        assert out.frames.shape == s.video.frames.shape and out.frames.dtype == np.uint8
        np.testing.assert_array_equal(out.frames[0], s.first_frame)
        assert out.frames[1:].std() > 0
        np.testing.assert_array_equal(g.generate(s, seed=3).frames, out.frames)  # seeded: reproducible
    ident = g.identity()
    assert ident["native_resolution"] == [32, 32] and ident["steps"] == 2 and len(ident["checkpoint_sha256"]) == 64
    assert ident["video_policy"].startswith("from-first")


def test_missing_and_bad_inputs(tmp_path):
    from baselines._common import hand_masks
    from baselines.coshand import CosHand

    with pytest.raises(MissingResource, match="coshandrelease.ckpt"):
        CosHand(checkpoint=tmp_path).check_ready()
    with pytest.raises(OptionError, match="coshand option mode"):
        CosHand(mode="backwards")
    bad = tmp_path / "coshandrelease.ckpt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="coshandrelease.ckpt"):
        CosHand(checkpoint=tmp_path, steps=2)._load()
    s = _sample()
    m = hand_masks(s)
    assert m.dtype == bool and m[0, 10:22, 108:130].all() and m.sum() == 3 * 12 * 22
    with pytest.raises(InputError, match="seg"):
        hand_masks(Sample("x", s.video, {}))


# --- parity with the official sampler and preprocessing (SruthiSudhakar/CosHand) -------------------------
def _reference_executed_timesteps(steps: int) -> list[int]:
    """Written from the facts, independently of baselines.coshand: ldm make_ddim_timesteps('uniform') is
    np.asarray(range(0, 1000, 1000 // steps)) + 1; ddim_sampling(t_start=-1) keeps timesteps[:-1] and runs
    them flipped (np.flip)."""
    listed = np.asarray(list(range(0, 1000, 1000 // steps))) + 1
    return [int(t) for t in np.flip(listed[:-1])]


@pytest.mark.parametrize("steps, first, n", [(50, 961, 49), (20, 901, 19)])
def test_timestep_list_equals_the_official_samplers(steps, first, n):
    from baselines.coshand import ddim_schedule, official_ddim_timesteps

    ref = _reference_executed_timesteps(steps)
    got = official_ddim_timesteps(steps)
    assert got == ref
    assert len(got) == n and got[0] == first and got[-1] == 1
    # alpha_prev of each update: alphas_cumprod at the next-lower listed timestep, alphas_cumprod[0] last
    betas = np.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=np.float64) ** 2
    ac = np.cumprod(1 - betas).astype(np.float32)
    sched = ddim_schedule(steps, eta=1.0)
    assert [s[0] for s in sched] == ref
    for (t, a_t, a_prev, sigma), t_next in zip(sched, ref[1:] + [None]):
        assert a_t == pytest.approx(float(ac[t]), rel=1e-6)
        assert a_prev == pytest.approx(float(ac[t_next] if t_next is not None else ac[0]), rel=1e-6)
        assert sigma == pytest.approx(float(np.sqrt((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev))), rel=1e-6)
    # the earlier behaviour stays available by name: all listed steps from t=981 for 50
    assert official_ddim_timesteps(50, "diffusers")[0] == 981


def test_the_sampler_runs_exactly_the_official_timesteps(tiny):
    from baselines.coshand import CosHand

    _, plain, _ = tiny
    g = CosHand(checkpoint=plain.parent, steps=20, resolution=32, mode="from-first")
    model = g._load()
    seen = []
    model.unet.register_forward_pre_hook(lambda m, args, kwargs: seen.append(int(args[1])), with_kwargs=True)
    g.generate(_sample(t=2), seed=0)
    assert seen == _reference_executed_timesteps(20)


def test_official_crop_and_identity(tiny):
    from baselines.coshand import CosHand, official_crop_box

    # run_results_on_final_eval_set.py resize_image on 480x720: new width 480, start 120, +50 px offset
    assert official_crop_box(480, 720) == (0, 480, 170, 650)
    assert official_crop_box(720, 480) == (120, 600, 0, 480)  # height crop: no offset
    assert official_crop_box(40, 120) == (0, 40, 90, 120)  # numpy slicing clips the shifted crop at the edge
    _, plain, _ = tiny
    s = _sample(t=3)
    g = CosHand(checkpoint=plain.parent, steps=2, resolution=32)
    out = g.generate(s, seed=1).frames
    y0, y1, x0, x1 = official_crop_box(40, 160)
    assert (x0, x1) == (110, 150)
    outside = np.ones((40, 160), bool)
    outside[y0:y1, x0:x1] = False
    for f in out[1:]:  # outside the crop: the GT first frame; inside: the prediction
        np.testing.assert_array_equal(f[outside], s.first_frame[outside])
        assert not np.array_equal(f[~outside], s.first_frame[~outside])
    ident = g.identity()
    assert ident["dtype"] == "fp32" and ident["timesteps"] == "official" and ident["resize"].startswith("official")
    assert "1 updates from t=1" in ident["sampler"]  # 2 steps: listed 1, 501; 501 dropped
    st = CosHand(checkpoint=plain.parent, steps=2, resolution=32, resize="stretch", dtype="bf16").identity()
    assert st["resize"].startswith("stretch") and st["dtype"] == "bf16" and st != ident
    with pytest.raises(OptionError, match="coshand option resize"):
        CosHand(resize="squash")
    with pytest.raises(OptionError, match="coshand option timesteps"):
        CosHand(timesteps="karras")
    narrow = _sample(t=2, h=40, w=60)  # start 10 + 50 px: the official slice is empty
    with pytest.raises(InputError, match="resize=stretch"):
        g.generate(narrow, seed=0)
