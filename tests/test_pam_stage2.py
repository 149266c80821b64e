"""Stage II: PAM's double ControlNet in the official XLabs key layout, on diffusers' Flux (tiny, CPU)."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from safetensors.torch import load_file, save_file  # noqa: E402
from torch import nn  # noqa: E402

from pam import stage2_appearance as s2  # noqa: E402
from tests import tiny_pam as tiny  # noqa: E402
from pam_bench.errors import InputError  # noqa: E402


@pytest.fixture(scope="module")
def flux_dir(tmp_path_factory):
    return tiny.write_tiny_flux(tmp_path_factory.mktemp("flux") / "flux", seed=0)


@pytest.fixture(scope="module")
def nets(flux_dir):
    return s2.load_double_controlnet(flux_dir / "controlnet.safetensors", tiny.TINY_FLUX_TRANSFORMER)


def test_tiny_file_uses_the_xlabs_key_layout(flux_dir):
    sd = load_file(str(flux_dir / "controlnet.safetensors"))
    for net in ("controlnet1", "controlnet2"):
        for k in ("img_in.weight", "txt_in.weight", "pos_embed_input.weight", "time_in.in_layer.weight",
                  "vector_in.out_layer.bias", "guidance_in.in_layer.weight", "double_blocks.1.img_attn.qkv.weight",
                  "double_blocks.0.txt_attn.norm.key_norm.scale", "double_blocks.0.img_mlp.2.bias",
                  "controlnet_blocks.1.weight", "input_hint_block.0.weight", "input_hint_block.14.bias"):
            assert f"{net}.{k}" in sd, k
        assert sd[f"{net}.input_hint_block.0.weight"].shape[1] == 6  # depth+normal / hand+seg
        assert not any(k.startswith(f"{net}.single_blocks") for k in sd)
    assert not any("transformer_blocks" in k for k in sd)


def test_round_trip_is_bit_identical(flux_dir, nets, tmp_path):
    s2.save_double_controlnet(*nets, tmp_path / "again.safetensors")
    a = load_file(str(flux_dir / "controlnet.safetensors"))
    b = load_file(str(tmp_path / "again.safetensors"))
    assert set(a) == set(b)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_official_torch_bin_loads_with_weights_only(flux_dir, nets, tmp_path):
    sd = load_file(str(flux_dir / "controlnet.safetensors"))
    torch.save({f"module.{k}": v for k, v in sd.items()}, tmp_path / "controlnet.bin")  # DeepSpeed-style prefix
    n1, n2 = s2.load_double_controlnet(tmp_path / "controlnet.bin", tiny.TINY_FLUX_TRANSFORMER)
    for a, b in ((n1, nets[0]), (n2, nets[1])):
        sa, sb = a.state_dict(), b.state_dict()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_key_map_against_an_independent_xlabs_hint_block_and_qkv(flux_dir, nets):
    """The XLabs hint block is nn.Sequential(conv, SiLU, ..., conv) with convs at 0, 2, ..., 14."""
    sd = load_file(str(flux_dir / "controlnet.safetensors"))
    p = "controlnet2."
    layers: list[nn.Module] = []
    for i, q in enumerate(range(0, 16, 2)):
        w = sd[f"{p}input_hint_block.{q}.weight"]
        stride = 2 if q in (4, 8, 12) else 1
        conv = nn.Conv2d(w.shape[1], w.shape[0], 3, padding=1, stride=stride)
        conv.weight.data.copy_(w)
        conv.bias.data.copy_(sd[f"{p}input_hint_block.{q}.bias"])
        layers += [conv, nn.SiLU()] if q < 14 else [conv]
    ref_block = nn.Sequential(*layers)
    x = torch.randn(1, 6, 32, 48, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = ref_block(x)
        out = nets[1].input_hint_block(x)
    assert out.shape == (1, 16, 4, 6)  # 8x down, 16 channels -> 2x2 packing gives in_channels 64
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-6)
    qkv = sd[f"{p}double_blocks.0.img_attn.qkv.weight"]
    attn = nets[1].transformer_blocks[0].attn
    assert torch.equal(torch.cat([attn.to_q.weight, attn.to_k.weight, attn.to_v.weight]), qkv)
    assert torch.equal(nets[1].controlnet_x_embedder.weight, sd[f"{p}pos_embed_input.weight"])


def test_bad_files_give_clear_errors(flux_dir, tmp_path):
    sd = load_file(str(flux_dir / "controlnet.safetensors"))
    only1 = {k: v for k, v in sd.items() if k.startswith("controlnet1.")}
    save_file(only1, str(tmp_path / "one.safetensors"))
    with pytest.raises(InputError, match="controlnet2"):
        s2.load_double_controlnet(tmp_path / "one.safetensors", tiny.TINY_FLUX_TRANSFORMER)
    extra = {**sd, "controlnet1.single_blocks.0.linear1.weight": torch.zeros(2)}
    save_file(extra, str(tmp_path / "extra.safetensors"))
    with pytest.raises(InputError, match="does not know"):
        s2.load_double_controlnet(tmp_path / "extra.safetensors", tiny.TINY_FLUX_TRANSFORMER)
    other = {**tiny.TINY_FLUX_TRANSFORMER, "joint_attention_dim": 48}
    with pytest.raises(InputError, match="does not fit"):
        s2.load_double_controlnet(flux_dir / "controlnet.safetensors", other)
    with pytest.raises(InputError, match="no such file"):
        s2.load_double_controlnet(tmp_path / "absent.bin", tiny.TINY_FLUX_TRANSFORMER)
    (tmp_path / "junk.bin").write_bytes(b"\x80\x04junk")
    with pytest.raises(InputError, match="cannot read"):
        s2.load_double_controlnet(tmp_path / "junk.bin", tiny.TINY_FLUX_TRANSFORMER)


def test_normals_from_depth_condition():
    from pam_bench import render

    lut = render.inferno_lut()
    h, w = 20, 30
    flat = np.zeros((h, w, 3), np.uint8)
    flat[5:15, 5:25] = lut[180]
    n = s2.normals_from_depth_condition(flat)
    assert (n[:5] == 0).all()  # background stays black
    assert np.array_equal(n[8:12, 10:20], np.broadcast_to(np.array([128, 128, 255], np.uint8), (4, 10, 3)))
    ramp = np.zeros((h, w, 3), np.uint8)
    ramp[:, :] = lut[np.linspace(60, 250, w).astype(int)][None]  # nearer (brighter) to the right
    nr = s2.normals_from_depth_condition(ramp)[10, 10:20].astype(int)
    assert (nr[:, 0] < 128).all() and (abs(nr[:, 1] - 128) <= 1).all()  # normal tilts towards -x


def test_appearance_pipeline_end_to_end(flux_dir, nets):
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel

    pipe = s2.AppearancePipeline(FluxTransformer2DModel.from_pretrained(flux_dir / "transformer").eval(),
                                 AutoencoderKL.from_pretrained(flux_dir / "vae").eval(),
                                 FlowMatchEulerDiscreteScheduler.from_pretrained(flux_dir / "scheduler"), *nets)
    pe = load_file(str(flux_dir / "prompt_embeds.safetensors"))
    rng = np.random.default_rng(0)
    depth, normal, hand, seg = (rng.integers(0, 256, (32, 48, 3), dtype=np.uint8) for _ in range(4))
    img = pipe(depth, normal, hand, seg, pe["prompt_embeds"], pe["pooled_prompt_embeds"], seed=0, steps=2)
    assert img.shape == (32, 48, 3) and img.dtype == np.uint8
    run = lambda **kw: pipe(**{"depth": depth, "normal": normal, "hand": hand, "seg": seg,  # noqa: E731
                               "prompt_embeds": pe["prompt_embeds"], "pooled_prompt_embeds":
                               pe["pooled_prompt_embeds"], "seed": 0, "steps": 2, "output": "latent", **kw})
    ref = run()
    assert torch.equal(ref, run())
    assert not torch.equal(ref, run(seg=255 - seg))  # net 2 input
    assert not torch.equal(ref, run(depth=255 - depth))  # net 1 input
    off = run(control_scales=(0.0, 0.0), seg=255 - seg, depth=255 - depth)
    assert torch.equal(off, run(control_scales=(0.0, 0.0)))  # scales 0: conditions have no effect
    with pytest.raises(ValueError, match="divisible"):
        pipe(depth[:24], normal[:24], hand[:24], seg[:24], pe["prompt_embeds"], pe["pooled_prompt_embeds"], seed=0)
