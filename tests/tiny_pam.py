"""Test fixture: tiny random configs of PAM's real architectures, and a tiny checkpoint folder.

The configs follow diffusers' own test components (CogVideoX: 2 heads x 16, 4 down/up blocks of 8 channels,
latent 4, temporal ratio 4; Flux: patch 1, heads 2 x 16, rope axes [4,4,8], joint_attention 32,
pooled 32), sized so that the spatial compression (8x) matches the real models: a tiny checkpoint runs at
an internal 32x48 (H x W), 9 frames. ``write_tiny_transformer`` writes PAM's motion transformer in each
official layout (save hook, convert_ckpt.py safetensors or .bin), ``write_tiny_base`` a CogVideoX-5B-I2V
snapshot (vae, scheduler, T5 text_encoder, sentencepiece tokenizer), and ``write_tiny_checkpoint`` a release
folder holding transformer/, vae/, scheduler/, a precomputed shared prompt and flux/ (``write_tiny_flux``;
see ``pam.checkpoint``);
only the sizes differ. Its outputs are noise: it exists to
exercise every code path, never to produce a number anyone should read as PAM's.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

#: Internal tiny size: latent 4x6 (8x VAE), tokens 2x3 (patch 2); 9 frames -> 3 latent frames.
TINY_HEIGHT, TINY_WIDTH, TINY_FRAMES = 32, 48, 9

TINY_COGVIDEOX_TRANSFORMER: dict[str, Any] = dict(
    num_attention_heads=2, attention_head_dim=16, in_channels=8, out_channels=4, time_embed_dim=2,
    text_embed_dim=32, num_layers=2, sample_width=TINY_WIDTH // 8, sample_height=TINY_HEIGHT // 8,
    sample_frames=TINY_FRAMES, patch_size=2, temporal_compression_ratio=4, max_text_seq_length=16,
    use_rotary_positional_embeddings=True, use_learned_positional_embeddings=True,
)
TINY_NUM_TRACKING_BLOCKS = 1
TINY_TEXT_LEN = 16

TINY_COGVIDEOX_VAE: dict[str, Any] = dict(
    in_channels=3, out_channels=3,
    down_block_types=("CogVideoXDownBlock3D",) * 4, up_block_types=("CogVideoXUpBlock3D",) * 4,
    block_out_channels=(8, 8, 8, 8), latent_channels=4, layers_per_block=1, norm_num_groups=2,
    temporal_compression_ratio=4,
)

#: The real CogVideoX-5B-I2V scheduler_config.json values that matter (CogVideoXDPMScheduler).
COGVIDEOX_SCHEDULER: dict[str, Any] = dict(
    beta_end=0.012, beta_schedule="scaled_linear", beta_start=0.00085, clip_sample=False,
    num_train_timesteps=1000, prediction_type="v_prediction", rescale_betas_zero_snr=True,
    sample_max_value=1.0, set_alpha_to_one=True, snr_shift_scale=1.0, steps_offset=0,
    timestep_spacing="trailing", trained_betas=None,
)

TINY_FLUX_TRANSFORMER: dict[str, Any] = dict(
    patch_size=1, in_channels=64, num_layers=1, num_single_layers=1, attention_head_dim=16,
    num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32, axes_dims_rope=[4, 4, 8],
    guidance_embeds=True,
)
TINY_FLUX_VAE: dict[str, Any] = dict(
    in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(8, 8, 8, 8), layers_per_block=1,
    latent_channels=16, norm_num_groups=2, sample_size=32, scaling_factor=0.3611, shift_factor=0.1159,
    use_quant_conv=False, use_post_quant_conv=False,
)
TINY_FLUX_TEXT_LEN = 8
#: XLabs ControlNetFlux: controlnet_depth=2 double blocks, 6-channel hint input.
TINY_XLABS_DEPTH = 2


def tiny_transformer(seed: int = 0):
    """A random tiny PAM Stage III transformer (condition branch randomised too, so it does something)."""
    import torch

    from pam.stage3_motion import PAMCogVideoXTransformer3DModel

    torch.manual_seed(seed)
    model = PAMCogVideoXTransformer3DModel(num_tracking_blocks=TINY_NUM_TRACKING_BLOCKS,
                                           **TINY_COGVIDEOX_TRANSFORMER)
    return model.eval()


def tiny_cogvideox_vae(seed: int = 0):
    import torch
    from diffusers import AutoencoderKLCogVideoX

    torch.manual_seed(seed)
    return AutoencoderKLCogVideoX(**TINY_COGVIDEOX_VAE).eval()


def write_tiny_checkpoint(path, mode: str = "full", seed: int = 0) -> Path:
    """Write a tiny random release folder (``pam.checkpoint``): transformer/ (save-hook config), vae/,
    scheduler/, prompt_embeds.safetensors (one shared precomputed prompt) and, for ``full``, flux/.

    ``mode="full"`` also writes the ``flux/`` part (Stage II); ``"i2v"`` only Stage III.
    """
    import torch
    from safetensors.torch import save_file

    from pam.stage3_motion import save_transformer

    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    model = tiny_transformer(seed)
    # Non-zero branch so that conditions matter in the tiny model (a trained PAM's are non-zero too).
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for lin in [*model.combine_linears, model.initial_combine_linear]:
            lin.weight.copy_(torch.randn(lin.weight.shape, generator=g) * 0.05)
    save_transformer(model, root / "transformer")
    tiny_cogvideox_vae(seed).save_pretrained(root / "vae", safe_serialization=True)
    _write_json(root / "scheduler" / "scheduler_config.json",
                {"_class_name": "CogVideoXDPMScheduler", **COGVIDEOX_SCHEDULER})
    dim = TINY_COGVIDEOX_TRANSFORMER["text_embed_dim"]
    save_file({"prompt_embeds": torch.randn(1, TINY_TEXT_LEN, dim, generator=g),
               "negative_prompt_embeds": torch.randn(1, TINY_TEXT_LEN, dim, generator=g)},
              str(root / "prompt_embeds.safetensors"))
    if mode == "full":
        write_tiny_flux(root / "flux", seed)
    elif mode != "i2v":
        raise ValueError(f"mode must be 'full' or 'i2v', got {mode!r}")
    return root


# --- the official checkpoint layouts (pam.checkpoint), tiny ----------------------------------------------

TINY_T5 = dict(d_model=TINY_COGVIDEOX_TRANSFORMER["text_embed_dim"], d_kv=8, d_ff=64, num_layers=1, num_heads=2,
               relative_attention_num_buckets=8)
_CORPUS = ("a hand grasps a red mug on the table and lifts it slowly", "the person picks up a yellow box",
           "a man is in a lab trying to grasp something", "fingers close around the bottle then move it right",
           "the video is not of a high quality it has a low resolution watermark present in each frame",
           "the background is solid strange body and strange trajectory distortion")


def write_tiny_base(path, seed: int = 0) -> Path:
    """A tiny CogVideoX-5B-I2V snapshot folder: vae/, scheduler/, text_encoder/ (T5), tokenizer/ (sentencepiece),
    laid out as THUDM/CogVideoX-5b-I2V's (its transformer/ is not needed by pam-bench and not written)."""
    import io

    import sentencepiece as spm
    import torch
    from transformers import T5Config, T5EncoderModel, T5Tokenizer

    root = Path(path)
    tiny_cogvideox_vae(seed).save_pretrained(root / "vae", safe_serialization=True)
    _write_json(root / "scheduler" / "scheduler_config.json",
                {"_class_name": "CogVideoXDPMScheduler", **COGVIDEOX_SCHEDULER})
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(_CORPUS * 4), model_writer=model, vocab_size=48,
                                   model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
                                   hard_vocab_limit=False, minloglevel=2)
    (root / "tokenizer").mkdir(parents=True, exist_ok=True)
    spiece = root / "tokenizer" / "spiece.model"
    spiece.write_bytes(model.getvalue())
    tok = T5Tokenizer(vocab_file=str(spiece), extra_ids=0, legacy=True)
    tok.save_pretrained(str(root / "tokenizer"))
    torch.manual_seed(seed)
    T5EncoderModel(T5Config(vocab_size=len(tok), **TINY_T5)).eval().save_pretrained(
        str(root / "text_encoder"), safe_serialization=True)
    return root


def _branch_key(k: str) -> bool:
    return k.startswith(("transformer_blocks_copy.", "combine_linears.", "initial_combine_linear."))


def write_tiny_transformer(path, layout: str = "save-hook", seed: int = 0, shard_bytes: int = 40_000) -> dict:
    """PAM's tiny motion transformer in one official layout; returns the state dict as saved.

    - ``save-hook``: ``save_pretrained`` with shards + index, then config.json rewritten as the official
      ``save_pretrained`` override does (``_class_name: CogVideoXTransformer3DModelTracking``,
      ``num_tracking_blocks``; ``_name_or_path``/``_use_default_values`` dropped);
    - ``convert``: convert_ckpt.py's output: THUDM's plain ``CogVideoXTransformer3DModel`` config.json,
      ``diffusion_pytorch_model-XXXXX-of-YYYYY.safetensors`` shards + index (metadata + weight_map), the branch
      fp32 and the frozen weights bf16 (as ZeRO's fp32 export of a bf16-frozen model holds them);
    - ``convert-bin``: the same without ``--safe_serialization`` (``pytorch_model-*.bin`` + its index).
    """
    import torch
    from huggingface_hub import split_torch_state_dict_into_shards
    from safetensors.torch import save_file

    d = Path(path)
    model = tiny_transformer(seed)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for lin in [*model.combine_linears, model.initial_combine_linear]:
            lin.weight.copy_(torch.randn(lin.weight.shape, generator=g) * 0.05)
    if layout == "save-hook":
        model.save_pretrained(str(d), safe_serialization=True, max_shard_size=shard_bytes)
        cfg = json.loads((d / "config.json").read_text())
        for k in ("_name_or_path", "_use_default_values"):
            cfg.pop(k, None)
        cfg["_class_name"] = "CogVideoXTransformer3DModelTracking"
        cfg["num_tracking_blocks"] = model.num_tracking_blocks
        _write_json(d / "config.json", cfg)
        return {k: v.detach().clone() for k, v in model.state_dict().items()}
    if layout not in ("convert", "convert-bin"):
        raise ValueError(f"layout must be save-hook, convert or convert-bin, got {layout!r}")
    sd = {k: (v.detach().float() if _branch_key(k) else v.detach().to(torch.bfloat16)).contiguous()
          for k, v in model.state_dict().items()}
    safe = layout == "convert"
    name = "diffusion_pytorch_model.safetensors" if safe else "pytorch_model.bin"
    pattern = name.replace(".safetensors", "{suffix}.safetensors").replace(".bin", "{suffix}.bin")
    split = split_torch_state_dict_into_shards(sd, filename_pattern=pattern, max_shard_size=shard_bytes)
    d.mkdir(parents=True, exist_ok=True)
    for fname, keys in split.filename_to_tensors.items():
        shard = {k: sd[k] for k in keys}
        save_file(shard, str(d / fname), metadata={"format": "pt"}) if safe else torch.save(shard, d / fname)
    if split.is_sharded:
        index = "diffusion_pytorch_model.safetensors.index.json" if safe else "pytorch_model.bin.index.json"
        (d / index).write_text(json.dumps({"metadata": split.metadata, "weight_map": split.tensor_to_filename},
                                          indent=2, sort_keys=True) + "\n")
    base_cfg = {k: v for k, v in dict(model.config).items() if not k.startswith("_") and k != "num_tracking_blocks"}
    _write_json(d / "config.json", {"_class_name": "CogVideoXTransformer3DModel", "_diffusers_version": "0.31.0.dev0",
                                    **base_cfg})
    return sd


def _write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2))


def write_tiny_flux(directory: Path, seed: int = 0) -> Path:
    """The ``flux/`` part of a checkpoint folder, tiny and random, in the real layout."""
    import torch
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel
    from safetensors.torch import save_file

    from pam.stage2_appearance import PAMFluxControlNetModel, controlnet_config_for, save_double_controlnet

    d = Path(directory)
    torch.manual_seed(seed)
    tr = FluxTransformer2DModel(**TINY_FLUX_TRANSFORMER)
    tr.save_pretrained(d / "transformer", safe_serialization=True)
    AutoencoderKL(**TINY_FLUX_VAE).save_pretrained(d / "vae", safe_serialization=True)
    FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
                                    base_image_seq_len=256, max_image_seq_len=4096).save_config(d / "scheduler")
    cfg = controlnet_config_for(dict(tr.config), TINY_XLABS_DEPTH)
    g = torch.Generator().manual_seed(seed + 7)
    nets = []
    for _ in range(2):
        net = PAMFluxControlNetModel(conditioning_channels=6, **cfg)
        with torch.no_grad():  # non-zero zero-convs so the tiny conditions reach the output
            for p in [*net.controlnet_blocks.parameters(), *net.input_hint_block.conv_out.parameters()]:
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
        nets.append(net)
    save_double_controlnet(nets[0], nets[1], d / "controlnet.safetensors")
    save_file({"prompt_embeds": torch.randn(1, TINY_FLUX_TEXT_LEN, tr.config.joint_attention_dim,
                                            generator=g),
               "pooled_prompt_embeds": torch.randn(1, tr.config.pooled_projection_dim, generator=g)},
              str(d / "prompt_embeds.safetensors"))
    return d
