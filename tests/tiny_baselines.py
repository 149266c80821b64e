"""Test fixture: tiny random models and tiny checkpoints written in each ORIGINAL key layout.

- ``write_tiny_coshand(path)``: a CosHand-style LDM/Lightning checkpoint (``{"state_dict": ...}`` with
  ``model.diffusion_model.*``, ``first_stage_model.*``, ``cond_stage_model.model.visual.*`` (OpenAI CLIP
  layout), ``cc_projection.*`` and LitEma ``model_ema.*`` copies). The LDM names are produced by the
  diffusers -> LDM renaming below (the inverse of what ``baselines.coshand`` loads with diffusers' own
  LDM -> diffusers conversion, so the round trip checks one against the other).
- ``write_tiny_svd(dir)``: a diffusers-format tiny SVD folder (unet/, vae/, image_encoder/, scheduler/,
  feature_extractor/) with the sizes of diffusers' own SVD tests.
- ``write_tiny_interdyn(dir, ...)``: an InterDyn-layout controlnet folder (``controlnet/config.json`` +
  ``diffusion_pytorch_model.safetensors``, ControlNetSDVModel key names and config keys).
Nothing here is a trained model: outputs are noise-like; only shapes, keys and plumbing are real.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

#: Tiny CosHand: channels must be multiples of 32 (LDM GroupNorm(32)); CLIP width 64 -> 1 head (width // 64).
TINY_COSHAND = {"model_channels": 32, "channel_mult": (1, 2), "attention": (True, False), "num_res_blocks": 1,
                "num_heads": 8, "context_dim": 32, "vae_ch": 32, "vae_mult": (1, 2), "clip_width": 64,
                "clip_layers": 1, "clip_patch": 8, "clip_image": 32, "resolution": 32}


def tiny_coshand_models(seed: int = 0) -> dict[str, Any]:
    """Random tiny diffusers UNet/VAE, HF CLIP vision tower and cc_projection in CosHand's structure."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPVisionModelWithProjection

    from baselines.coshand import clip_config, unet_config, vae_config

    c = TINY_COSHAND
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(**unet_config({
        "in_channels": 16, "out_channels": 4, "model_channels": c["model_channels"], "channel_mult": c["channel_mult"],
        "num_res_blocks": c["num_res_blocks"], "attention_levels": c["attention"], "num_heads": c["num_heads"],
        "context_dim": c["context_dim"]}))
    vae = AutoencoderKL(**vae_config({"ch": c["vae_ch"], "ch_mult": c["vae_mult"], "num_res_blocks": 1,
                                      "z_channels": 4, "in_channels": 3}))
    clip = CLIPVisionModelWithProjection(clip_config({
        "width": c["clip_width"], "patch": c["clip_patch"], "image_size": c["clip_image"], "layers": c["clip_layers"],
        "heads": 1, "output_dim": c["context_dim"]}))
    proj = torch.nn.Linear(c["context_dim"], c["context_dim"])
    _randomise(unet, vae, clip, proj)
    return {"unet": unet, "vae": vae, "clip": clip, "cc_projection": proj}


def _randomise(*modules) -> None:
    """Non-trivial values everywhere (zero-initialised layers would hide key mix-ups)."""
    import torch

    with torch.no_grad():
        for m in modules:
            for p in m.parameters():
                p.copy_(torch.randn_like(p) * 0.05 + (1.0 if p.ndim == 1 and p.shape[0] > 0 else 0.0) * 0.01)


# --- diffusers -> LDM renaming ---------------------------------------------------------------------
_RESNET_UNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
                "norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}


def _rn(rest: str, table: dict[str, str]) -> str:
    head, _, tail = rest.partition(".")
    return f"{table.get(head, head)}.{tail}"


def unet_to_ldm(sd: dict, layers_per_block: int) -> dict:
    """diffusers UNet2DConditionModel keys -> LDM openaimodel UNetModel keys (SD 1.x layout)."""
    n1 = layers_per_block + 1
    n_up = layers_per_block + 1
    fixed = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
             "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2"}
    out = {}
    for k, v in sd.items():
        p = k.split(".")
        mod, leaf = ".".join(p[:-1]), p[-1]
        if mod in fixed:
            nk = f"{fixed[mod]}.{leaf}"
        elif p[0] == "down_blocks":
            b = int(p[1])
            if p[2] == "resnets":
                nk = f"input_blocks.{1 + b * n1 + int(p[3])}.0." + _rn(".".join(p[4:]), _RESNET_UNET)
            elif p[2] == "attentions":
                nk = f"input_blocks.{1 + b * n1 + int(p[3])}.1." + ".".join(p[4:])
            else:  # downsamplers.0.conv
                nk = f"input_blocks.{1 + b * n1 + layers_per_block}.0.op.{leaf}"
        elif p[0] == "mid_block":
            idx = {"resnets.0": 0, "attentions.0": 1, "resnets.1": 2}[".".join(p[1:3])]
            rest = ".".join(p[3:])
            nk = f"middle_block.{idx}." + (_rn(rest, _RESNET_UNET) if p[1] == "resnets" else rest)
        elif p[0] == "up_blocks":
            b = int(p[1])
            if p[2] == "resnets":
                nk = f"output_blocks.{b * n_up + int(p[3])}.0." + _rn(".".join(p[4:]), _RESNET_UNET)
            elif p[2] == "attentions":
                nk = f"output_blocks.{b * n_up + int(p[3])}.1." + ".".join(p[4:])
            else:  # upsamplers.0.conv: after the attention when the block has one
                has_attn = any(x.startswith(f"up_blocks.{b}.attentions.") for x in sd)
                nk = f"output_blocks.{b * n_up + layers_per_block}.{2 if has_attn else 1}.conv.{leaf}"
        else:
            raise KeyError(k)
        out["model.diffusion_model." + nk] = v
    return out


_RESNET_VAE = {"conv_shortcut": "nin_shortcut"}
_ATTN_VAE = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def vae_to_ldm(sd: dict, n_levels: int) -> dict:
    """diffusers AutoencoderKL keys -> LDM AutoencoderKL keys (attention projections back to 1x1 convs)."""
    out = {}
    for k, v in sd.items():
        p = k.split(".")
        part = p[0]
        if part in ("quant_conv", "post_quant_conv"):
            nk = k
        elif p[1] in ("conv_in", "conv_out"):
            nk = k
        elif p[1] == "conv_norm_out":
            nk = f"{part}.norm_out.{p[-1]}"
        elif p[1] in ("down_blocks", "up_blocks"):
            lvl = int(p[2]) if p[1] == "down_blocks" else n_levels - 1 - int(p[2])
            name = "down" if p[1] == "down_blocks" else "up"
            if p[3] == "resnets":
                nk = f"{part}.{name}.{lvl}.block.{p[4]}." + _rn(".".join(p[5:]), _RESNET_VAE)
            else:  # downsamplers.0.conv / upsamplers.0.conv
                nk = f"{part}.{name}.{lvl}.{'downsample' if name == 'down' else 'upsample'}.conv.{p[-1]}"
        elif p[1] == "mid_block":
            if p[2] == "resnets":
                nk = f"{part}.mid.block_{int(p[3]) + 1}." + _rn(".".join(p[4:]), _RESNET_VAE)
            else:
                inner = ".".join(p[4:-1])
                nk = f"{part}.mid.attn_1.{_ATTN_VAE[inner]}.{p[-1]}"
                if p[-1] == "weight" and inner != "group_norm":
                    v = v[:, :, None, None]
        else:
            raise KeyError(k)
        out["first_stage_model." + nk] = v
    return out


def clip_to_openai(sd: dict) -> dict:
    """HF CLIPVisionModelWithProjection -> OpenAI CLIP ``visual.*`` keys (as FrozenCLIPImageEmbedder stores them)."""
    import torch

    pre = "cond_stage_model.model.visual."
    out = {pre + "class_embedding": sd["vision_model.embeddings.class_embedding"],
           pre + "conv1.weight": sd["vision_model.embeddings.patch_embedding.weight"],
           pre + "positional_embedding": sd["vision_model.embeddings.position_embedding.weight"],
           pre + "ln_pre.weight": sd["vision_model.pre_layrnorm.weight"],
           pre + "ln_pre.bias": sd["vision_model.pre_layrnorm.bias"],
           pre + "ln_post.weight": sd["vision_model.post_layernorm.weight"],
           pre + "ln_post.bias": sd["vision_model.post_layernorm.bias"],
           pre + "proj": sd["visual_projection.weight"].t().contiguous()}
    layers = len({k.split(".")[3] for k in sd if k.startswith("vision_model.encoder.layers.")})
    for i in range(layers):
        s, d = f"vision_model.encoder.layers.{i}.", f"{pre}transformer.resblocks.{i}."
        for w in ("weight", "bias"):
            out[d + f"attn.in_proj_{w}"] = torch.cat([sd[s + f"self_attn.{x}_proj.{w}"] for x in "qkv"], 0)
            for a, b in (("attn.out_proj", "self_attn.out_proj"), ("ln_1", "layer_norm1"), ("ln_2", "layer_norm2"),
                         ("mlp.c_fc", "mlp.fc1"), ("mlp.c_proj", "mlp.fc2")):
                out[d + f"{a}.{w}"] = sd[s + f"{b}.{w}"]
    # FrozenCLIPImageEmbedder deletes the text transformer but keeps these text-side tensors
    width = sd["visual_projection.weight"].shape[0]
    out["cond_stage_model.model.positional_embedding"] = torch.zeros(4, 8)
    out["cond_stage_model.model.text_projection"] = torch.zeros(8, width)
    out["cond_stage_model.model.logit_scale"] = torch.tensor(4.6052)
    return out


def coshand_ldm_state_dict(models: dict[str, Any], ema: bool = True) -> dict:
    """The LDM-layout state_dict of tiny CosHand models (EMA copies = the same weights + 0.01 when ``ema``)."""
    c = TINY_COSHAND
    sd = {}
    sd.update(unet_to_ldm(models["unet"].state_dict(), c["num_res_blocks"]))
    sd.update(vae_to_ldm(models["vae"].state_dict(), len(c["vae_mult"])))
    sd.update(clip_to_openai({k: v for k, v in models["clip"].state_dict().items() if "position_ids" not in k}))
    sd["cc_projection.weight"] = models["cc_projection"].weight.detach().clone()
    sd["cc_projection.bias"] = models["cc_projection"].bias.detach().clone()
    if ema:
        for k in [k for k in sd if k.startswith("model.diffusion_model.")]:
            sd["model_ema." + "".join(k.split(".")[1:])] = sd[k] + 0.01
        import torch

        sd["model_ema.decay"] = torch.tensor(0.9999)
        sd["model_ema.num_updates"] = torch.tensor(10, dtype=torch.int32)
    return {k: (v.detach().clone() if hasattr(v, "detach") else v) for k, v in sd.items()}


def write_tiny_coshand(path, seed: int = 0, ema: bool = True, lightning_extras: bool = False) -> Path:
    """Write a tiny CosHand checkpoint in the LDM/Lightning layout; returns the file path.

    ``lightning_extras`` adds a non-tensor Lightning-style object (refused by weights_only=True) to exercise
    the restricted-unpickler fallback.
    """
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    models = tiny_coshand_models(seed)
    obj: dict[str, Any] = {"state_dict": coshand_ldm_state_dict(models, ema), "global_step": 10, "epoch": 0}
    if lightning_extras:
        obj["callbacks"] = {"ModelCheckpoint": _FakeCallback()}
    torch.save(obj, path)
    return path


class _FakeCallback:
    """Stands for a pytorch_lightning callback object pickled into a real checkpoint."""

    def __init__(self):
        self.best_model_path = "/somewhere/last.ckpt"


# --- SVD / InterDyn ------------------------------------------------------------------------------
#: diffusers' own SVD test sizes (tests/pipelines/stable_video_diffusion), with few frames for speed.
TINY_SVD = {"block_out_channels": (32, 64), "layers_per_block": 2, "cross_attention_dim": 32,
            "num_attention_heads": (8, 8), "addition_time_embed_dim": 32, "projection_class_embeddings_input_dim": 96,
            "clip_hidden": 32, "clip_image": 32, "clip_patch": 4, "native": (32, 48), "frames": 4}


def tiny_svd_components(seed: int = 0) -> dict[str, Any]:
    import torch
    from diffusers import AutoencoderKLTemporalDecoder, EulerDiscreteScheduler, UNetSpatioTemporalConditionModel
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    c = TINY_SVD
    torch.manual_seed(seed)
    unet = UNetSpatioTemporalConditionModel(
        block_out_channels=c["block_out_channels"], layers_per_block=c["layers_per_block"], sample_size=32,
        in_channels=8, out_channels=4, down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
        up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
        cross_attention_dim=c["cross_attention_dim"], num_attention_heads=c["num_attention_heads"],
        projection_class_embeddings_input_dim=c["projection_class_embeddings_input_dim"],
        addition_time_embed_dim=c["addition_time_embed_dim"], num_frames=c["frames"])
    vae = AutoencoderKLTemporalDecoder(block_out_channels=[32, 64], in_channels=3, out_channels=3,
                                       down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"], latent_channels=4)
    enc = CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=c["clip_hidden"], projection_dim=c["cross_attention_dim"], num_hidden_layers=2,
        num_attention_heads=4, image_size=c["clip_image"], intermediate_size=37, patch_size=c["clip_patch"]))
    sched = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                   interpolation_type="linear", num_train_timesteps=1000,
                                   prediction_type="v_prediction",
                                   sigma_max=700.0, sigma_min=0.002, steps_offset=1, timestep_spacing="leading",
                                   timestep_type="continuous", use_karras_sigmas=True)
    fe = CLIPImageProcessor(crop_size=c["clip_image"], size=c["clip_image"])
    return {"unet": unet, "vae": vae, "image_encoder": enc, "scheduler": sched, "feature_extractor": fe}


def write_tiny_svd(root, seed: int = 0) -> Path:
    """A diffusers-format tiny SVD folder (the layout of stabilityai/stable-video-diffusion-img2vid)."""
    root = Path(root)
    comps = tiny_svd_components(seed)
    for name, obj in comps.items():
        obj.save_pretrained(root / name)
    (root / "model_index.json").write_text(json.dumps({
        "_class_name": "StableVideoDiffusionPipeline", "feature_extractor": ["transformers", "CLIPImageProcessor"],
        "image_encoder": ["transformers", "CLIPVisionModelWithProjection"],
        "scheduler": ["diffusers", "EulerDiscreteScheduler"], "unet": ["diffusers", "UNetSpatioTemporalConditionModel"],
        "vae": ["diffusers", "AutoencoderKLTemporalDecoder"]}))
    return root


def write_tiny_interdyn(root, svd_dir, conditions: tuple[str, ...] = ("hand",), seed: int = 1) -> Path:
    """An InterDyn-layout controlnet folder: ``root/controlnet/{config.json, diffusion_pytorch_model.safetensors}``.

    The weights are the tiny SVD UNet's encoder copied in (as ``from_unet`` does) with the zero convolutions
    and the conditioning embedding randomised (so the branch changes the output).
    """
    import torch
    from diffusers import UNetSpatioTemporalConditionModel
    from safetensors.torch import save_file

    from baselines.svd_controlnet import ControlNetSDV

    unet = UNetSpatioTemporalConditionModel.from_pretrained(Path(svd_dir) / "unet")
    net = ControlNetSDV.from_unet(unet, conditions=conditions, conditioning_embedding_out_channels=(8, 16))
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if "controlnet_" in name or "cond_embedding" in name:
                p.copy_(torch.randn_like(p) * 0.05)
    out = Path(root) / "controlnet"
    out.mkdir(parents=True, exist_ok=True)
    cfg = {k: (list(v) if isinstance(v, tuple) else v) for k, v in net.config.items() if not k.startswith("_")}
    cfg["_class_name"] = "ControlNetSDVModel"
    if tuple(conditions) == ("hand",):
        cfg.pop("conditions", None)  # InterDyn's config has no such key
    (out / "config.json").write_text(json.dumps(cfg, indent=1))
    save_file({k: v.contiguous() for k, v in net.state_dict().items()},
              str(out / "diffusion_pytorch_model.safetensors"))
    return Path(root)
