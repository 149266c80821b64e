"""``coshand``: CosHand (Sudhakar et al., ECCV'24) rebuilt on diffusers, applied frame by frame.

CosHand is an IMAGE model on the CompVis LDM code (SruthiSudhakar/CosHand, configs/sd-*-finetune.yaml,
run_results_on_final_eval_set.py). Facts it is rebuilt from:

- UNet: LDM ``UNetModel`` in 16 -> out 4, model_channels 320, channel_mult (1,2,4,4), 2 res blocks,
  attention at downsampling 4,2,1, 8 heads, context 768 (SD 1.x layout). Here: diffusers
  ``UNet2DConditionModel`` with the same numbers (``attention_head_dim=8`` is diffusers' SD1 spelling of 8 heads).
- Input channels: ``cat([noisy latent, c_concat])`` with c_concat = [VAE(hand mask of the input frame),
  VAE(input frame), VAE(target hand mask)], each the posterior MODE, unscaled (only the denoised latent
  uses scale_factor 0.18215). Mask images are white hand on black, RGB, in [-1, 1].
- Cross-attention context: ``cc_projection`` (Linear 768->768) of the CLIP ViT-L/14 image embedding of the
  input frame ([-1,1] -> bicubic 224 align_corners -> CLIP mean/std), one token. (CosHand's training code
  feeds ``cc_projection(zeros)`` - the null prompt - while its released inference uses the image embedding;
  we follow the inference script, option ``context='image'``; ``context='null'`` gives the training one.)
- Sampling: DDIM, eta 1.0, classifier-free guidance 1.5 with zero c_concat and zero context as the
  unconditional branch; betas LDM 'linear' 0.00085..0.012 over 1000 steps (= diffusers scaled_linear).
  Timesteps exactly as the official sampler runs them (``official_ddim_timesteps``): LDM 'uniform'
  discretisation ``range(0, 1000, 1000 // steps) + 1``, then ``DDIMSampler.ddim_sampling(t_start=-1)`` slices
  ``[:-1]``, dropping the LAST (largest) timestep; so 50 steps execute 49 DDIM updates from t=961 down to t=1
  (20 steps: 19 from t=901). alpha_prev of each update is the previous entry of the full list,
  alphas_cumprod[0] for the last. ``-o timesteps=diffusers`` restores the earlier behaviour (all 50 from t=981).
- Preprocessing (``-o resize=crop``, the default): the official inference script's ``resize_image``: a
  centre square crop whose columns are shifted by +50 px (only when the frame is wider than tall; numpy
  slicing clips the crop at the right edge), then ``cv2.resize`` INTER_LINEAR to 256x256, for the frame
  and for the hand masks alike. The prediction covers only the crop: it is resized (INTER_LINEAR) to the
  crop's size and pasted there; outside the crop every output frame shows the GT first frame's pixels
  (the model never sees them). ``-o resize=stretch`` stretches the whole frame to 256x256 and back.
  Output conversion: ``uint8(255 * clamp((x + 1) / 2))`` with truncation, as the script does.
- Precision: fp32 by default, as the official script (``precision='fp32'``); ``-o dtype=bf16`` is an option.
- 256x256 native. Video policy (recorded in identity): frame 0 is the GT first frame; frame t is predicted
  from the conditioning frame (``mode='autoregressive'``: the previous generated frame and its hand mask;
  ``mode='from-first'``: the GT first frame and hand mask 0) and hand mask t.

Checkpoint: the official ``coshandrelease.ckpt`` (LDM/Lightning layout), converted by ``convert_ldm_checkpoint``;
architecture numbers are read from the tensor shapes (heads: 8, the config's value, or ``num_heads``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from pam_bench.errors import ArgumentError, InputError, MissingResource, OptionError, require_packages
from pam_bench.options import boolean, choice, integer, real
from pam_bench.types import Generator, Sample, Video

from ._common import hand_masks, mask_to_rgb, resize_video, target_shape

CKPT_NAME = "coshandrelease.ckpt"
HOW_TO_GET = ("download coshandrelease.ckpt from the CosHand release (github.com/SruthiSudhakar/CosHand README) "
              "and pass --checkpoint DIR (the folder holding it, or the file itself); "
              "default folder: $PAM_BENCH_HOME/models/coshand/")
SCALE_FACTOR = 0.18215
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
UNET = "model.diffusion_model."
VAE = "first_stage_model."
CLIP = "cond_stage_model.model.visual."


# ---------------------------------------------------------------------------------------------------
# architecture from the LDM tensor shapes
def ldm_unet_arch(sd: dict, num_heads: int = 8) -> dict[str, Any]:
    """The LDM UNetModel numbers, read from the checkpoint's tensor shapes."""
    w0 = sd[UNET + "input_blocks.0.0.weight"]
    mc, in_ch = int(w0.shape[0]), int(w0.shape[1])
    ids = sorted({int(k[len(UNET + "input_blocks."):].split(".")[0]) for k in sd if k.startswith(UNET + "input_blocks.")})
    # a level ends with a downsampler (".0.op.weight"), except the last one
    down = [i for i in ids if UNET + f"input_blocks.{i}.0.op.weight" in sd]
    levels = len(down) + 1
    nres = (len(ids) - 1 - len(down)) // levels
    mult, attn = [], []
    for lvl in range(levels):
        first = 1 + lvl * (nres + 1)
        mult.append(int(sd[UNET + f"input_blocks.{first}.0.out_layers.3.weight"].shape[0]) // mc)
        attn.append(UNET + f"input_blocks.{first}.1.norm.weight" in sd)
    ctx = next(v for k, v in sd.items() if k.startswith(UNET) and k.endswith("attn2.to_k.weight"))
    return {"in_channels": in_ch, "out_channels": int(sd[UNET + "out.2.weight"].shape[0]), "model_channels": mc,
            "channel_mult": tuple(mult), "num_res_blocks": nres, "attention_levels": tuple(attn),
            "num_heads": int(num_heads), "context_dim": int(ctx.shape[1])}


def ldm_vae_arch(sd: dict) -> dict[str, Any]:
    ch = int(sd[VAE + "encoder.conv_in.weight"].shape[0])
    levels = len({k.split(".")[3] for k in sd if k.startswith(VAE + "encoder.down.")})
    nres = len({k.split(".")[5] for k in sd if k.startswith(VAE + "encoder.down.0.block.")})
    mult = tuple(int(sd[VAE + f"encoder.down.{i}.block.{nres - 1}.conv2.weight"].shape[0]) // ch
                 for i in range(levels))
    return {"ch": ch, "ch_mult": mult, "num_res_blocks": nres, "z_channels": int(sd[VAE + "post_quant_conv.weight"].shape[0]),
            "in_channels": int(sd[VAE + "encoder.conv_in.weight"].shape[1])}


def clip_arch(sd: dict) -> dict[str, Any] | None:
    if CLIP + "conv1.weight" not in sd:
        return None
    conv = sd[CLIP + "conv1.weight"]
    width, patch = int(conv.shape[0]), int(conv.shape[2])
    n_tok = int(sd[CLIP + "positional_embedding"].shape[0])
    layers = len({k.split(".")[5] for k in sd if k.startswith(CLIP + "transformer.resblocks.")})
    return {"width": width, "patch": patch, "image_size": int(round((n_tok - 1) ** 0.5)) * patch, "layers": layers,
            "heads": max(width // 64, 1), "output_dim": int(sd[CLIP + "proj"].shape[1])}


def unet_config(a: dict) -> dict[str, Any]:
    """diffusers UNet2DConditionModel config for an LDM UNetModel (SD 1.x conventions)."""
    n = len(a["channel_mult"])
    down = ["CrossAttnDownBlock2D" if a["attention_levels"][i] else "DownBlock2D" for i in range(n)]
    up = ["CrossAttnUpBlock2D" if a["attention_levels"][n - 1 - i] else "UpBlock2D" for i in range(n)]
    return {"sample_size": 32, "in_channels": a["in_channels"], "out_channels": a["out_channels"],
            "down_block_types": down, "up_block_types": up, "layers_per_block": a["num_res_blocks"],
            "block_out_channels": [a["model_channels"] * m for m in a["channel_mult"]],
            "cross_attention_dim": a["context_dim"], "attention_head_dim": a["num_heads"], "norm_num_groups": 32,
            "flip_sin_to_cos": True, "freq_shift": 0}


def vae_config(a: dict) -> dict[str, Any]:
    n = len(a["ch_mult"])
    return {"in_channels": a["in_channels"], "out_channels": a["in_channels"], "latent_channels": a["z_channels"],
            "down_block_types": ["DownEncoderBlock2D"] * n, "up_block_types": ["UpDecoderBlock2D"] * n,
            "block_out_channels": [a["ch"] * m for m in a["ch_mult"]], "layers_per_block": a["num_res_blocks"],
            "norm_num_groups": 32, "scaling_factor": SCALE_FACTOR, "sample_size": 256}


def clip_config(a: dict):
    from transformers import CLIPVisionConfig

    return CLIPVisionConfig(hidden_size=a["width"], intermediate_size=4 * a["width"], num_hidden_layers=a["layers"],
                            num_attention_heads=a["heads"], image_size=a["image_size"], patch_size=a["patch"],
                            projection_dim=a["output_dim"], hidden_act="quick_gelu", layer_norm_eps=1e-5)


# ---------------------------------------------------------------------------------------------------
# LDM -> diffusers conversion
def _bad_checkpoint(path, problem: str) -> Exception:
    """An InputError naming the checkpoint file; an ArgumentError for a state_dict passed without its file."""
    return InputError(path, problem) if path is not None else ArgumentError(f"CosHand state_dict: {problem}")


def _with_ema(sd: dict, path=None) -> tuple[dict, bool]:
    """Replace the UNet weights by their EMA copies (LitEma keys: 'model_ema.' + name without dots)."""
    ema = {k for k in sd if k.startswith("model_ema.")}
    if not ema:
        return sd, False
    out = dict(sd)
    for k in sd:
        if k.startswith(UNET):
            flat = "model_ema." + "".join(k.split(".")[1:])
            if flat not in sd:
                raise _bad_checkpoint(path, f"has EMA weights but none for {k}")
            out[k] = sd[flat]
    return out, True


def convert_clip_visual(sd: dict) -> dict:
    """OpenAI CLIP ``visual.*`` (in_proj q|k|v stacked, ``proj`` [width, out]) -> HF CLIPVisionModelWithProjection."""
    g = lambda k: sd[CLIP + k]  # noqa: E731
    out = {"vision_model.embeddings.class_embedding": g("class_embedding"),
           "vision_model.embeddings.patch_embedding.weight": g("conv1.weight"),
           "vision_model.embeddings.position_embedding.weight": g("positional_embedding"),
           "vision_model.pre_layrnorm.weight": g("ln_pre.weight"), "vision_model.pre_layrnorm.bias": g("ln_pre.bias"),
           "vision_model.post_layernorm.weight": g("ln_post.weight"),
           "vision_model.post_layernorm.bias": g("ln_post.bias"), "visual_projection.weight": g("proj").t().contiguous()}
    layers = len({k.split(".")[5] for k in sd if k.startswith(CLIP + "transformer.resblocks.")})
    for i in range(layers):
        src, dst = f"transformer.resblocks.{i}.", f"vision_model.encoder.layers.{i}."
        for which in ("weight", "bias"):
            q, k, v = g(src + f"attn.in_proj_{which}").chunk(3, dim=0)
            out[dst + f"self_attn.q_proj.{which}"] = q.contiguous()
            out[dst + f"self_attn.k_proj.{which}"] = k.contiguous()
            out[dst + f"self_attn.v_proj.{which}"] = v.contiguous()
            for a, b in (("attn.out_proj", "self_attn.out_proj"), ("ln_1", "layer_norm1"), ("ln_2", "layer_norm2"),
                         ("mlp.c_fc", "mlp.fc1"), ("mlp.c_proj", "mlp.fc2")):
                out[dst + f"{b}.{which}"] = g(src + f"{a}.{which}")
    return out


def convert_ldm_checkpoint(sd: dict, num_heads: int = 8, use_ema: bool = True, path=None) -> dict[str, Any]:
    """CosHand's LDM state_dict -> {'unet', 'vae', 'clip' (or None), 'cc_projection', configs, 'ema', 'path'}.

    ``path``: the checkpoint file ``sd`` was read from, named by the errors (None: a state_dict given directly).

    UNet and VAE key renaming is diffusers' own SD conversion (``convert_ldm_unet_checkpoint``,
    ``convert_ldm_vae_checkpoint``); the CLIP visual tower and ``cc_projection`` are mapped here.
    """
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint

    for key in (UNET + "input_blocks.0.0.weight", VAE + "encoder.conv_in.weight", "cc_projection.weight"):
        if key not in sd:
            raise _bad_checkpoint(path, f"is not a CosHand LDM checkpoint: no '{key}'")
    src, ema = _with_ema(sd, path) if use_ema else (sd, False)
    ua, va, ca = ldm_unet_arch(src, num_heads), ldm_vae_arch(src), clip_arch(src)
    ucfg, vcfg = unet_config(ua), vae_config(va)
    unet_sd = convert_ldm_unet_checkpoint({k: v for k, v in src.items() if k.startswith(UNET)}, ucfg)
    vae_sd = convert_ldm_vae_checkpoint({k: v for k, v in src.items() if k.startswith(VAE)}, vcfg)
    return {"unet": unet_sd, "vae": vae_sd, "clip": convert_clip_visual(src) if ca else None,
            "cc_projection": {"weight": src["cc_projection.weight"], "bias": src["cc_projection.bias"]},
            "unet_config": ucfg, "vae_config": vcfg, "clip_arch": ca, "unet_arch": ua, "ema": ema, "path": path}


# ---------------------------------------------------------------------------------------------------
class CosHandModel:
    """The four CosHand parts on one device: unet, vae, image encoder, cc_projection."""

    def __init__(self, parts: dict[str, Any], device: str, dtype, clip_dir: Path | None = None):
        import torch
        from diffusers import AutoencoderKL, UNet2DConditionModel
        from transformers import CLIPVisionModelWithProjection

        self.unet = UNet2DConditionModel(**parts["unet_config"])
        self.unet.load_state_dict(parts["unet"], strict=True)
        self.vae = AutoencoderKL(**parts["vae_config"])
        self.vae.load_state_dict(parts["vae"], strict=True)
        if parts["clip"] is not None:
            self.clip = CLIPVisionModelWithProjection(clip_config(parts["clip_arch"]))
            missing, unexpected = self.clip.load_state_dict(parts["clip"], strict=False)
            missing = [k for k in missing if not k.endswith("position_ids")]
            if missing or unexpected:
                raise _bad_checkpoint(parts.get("path"), f"CLIP visual tower does not match: missing {missing[:3]}, "
                                                         f"unexpected {unexpected[:3]}")
        elif clip_dir is not None:
            self.clip = CLIPVisionModelWithProjection.from_pretrained(str(clip_dir), local_files_only=True)
        else:
            raise MissingResource("CosHand CLIP image encoder (the checkpoint has no cond_stage_model weights)",
                                  "pass -o clip=DIR with a local openai/clip-vit-large-patch14 "
                                  "CLIPVisionModelWithProjection folder")
        w = parts["cc_projection"]["weight"]
        self.cc_projection = torch.nn.Linear(w.shape[1], w.shape[0])
        self.cc_projection.load_state_dict(parts["cc_projection"])
        for m in (self.unet, self.vae, self.clip, self.cc_projection):
            m.to(device=device, dtype=dtype).eval().requires_grad_(False)
        self.device, self.dtype = device, dtype

    def clip_context(self, img):
        """[B,3,H,W] in [-1,1] -> [B,1,context] (FrozenCLIPImageEmbedder + cc_projection)."""
        import torch
        import torch.nn.functional as F

        size = self.clip.config.image_size
        x = F.interpolate(img.float(), size=(size, size), mode="bicubic", align_corners=True)
        x = (x + 1.0) / 2.0
        mean = torch.tensor(CLIP_MEAN, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(CLIP_STD, device=x.device).view(1, 3, 1, 1)
        x = ((x - mean) / std).to(self.dtype)
        emb = self.clip(pixel_values=x).image_embeds.unsqueeze(1)
        return self.cc_projection(emb)

    def encode_mode(self, img):
        return self.vae.encode(img.to(self.dtype)).latent_dist.mode()

    def decode(self, z):
        return self.vae.decode(z / SCALE_FACTOR).sample


NUM_TRAIN_TIMESTEPS = 1000
LINEAR_START, LINEAR_END = 0.00085, 0.012
TIMESTEP_RULES = ("official", "diffusers")


def ldm_alphas_cumprod():
    """LDM ``make_beta_schedule('linear')``: sqrt-linear betas in float64, cumprod, stored as float32."""
    betas = np.linspace(LINEAR_START ** 0.5, LINEAR_END ** 0.5, NUM_TRAIN_TIMESTEPS, dtype=np.float64) ** 2
    return np.cumprod(1.0 - betas).astype(np.float32).astype(np.float64)


def official_ddim_timesteps(steps: int, rule: str = "official") -> list[int]:
    """The timesteps the sampler executes, in execution order (descending); see the module docstring.

    ``official``: LDM 'uniform' list + 1 with its last entry dropped (``t_start=-1``);
    ``diffusers``: the full list (diffusers 'leading' + steps_offset 1)."""
    if rule not in TIMESTEP_RULES:
        raise OptionError("coshand", "timesteps", f"unknown timestep rule {rule!r}; use {' or '.join(TIMESTEP_RULES)}")
    if not 1 <= int(steps) <= NUM_TRAIN_TIMESTEPS:
        raise OptionError("coshand", "steps", f"must be between 1 and {NUM_TRAIN_TIMESTEPS}, got {steps}")
    full = list(range(0, NUM_TRAIN_TIMESTEPS, NUM_TRAIN_TIMESTEPS // int(steps)))
    full = [t + 1 for t in full]
    run = full[:-1] if rule == "official" else full
    if not run:
        raise OptionError("coshand", "steps",
                          "1 step executes nothing with the official sampler (it drops the last timestep)")
    return run[::-1]


def ddim_schedule(steps: int, eta: float, rule: str = "official") -> list[tuple[int, float, float, float]]:
    """(t, alpha_t, alpha_prev, sigma_t) per executed update, as ``make_ddim_sampling_parameters`` gives
    them: alpha_prev is alphas_cumprod at the previous entry of the full list (alphas_cumprod[0] first)."""
    ac = ldm_alphas_cumprod()
    run = official_ddim_timesteps(steps, rule)[::-1]  # ascending: the full list minus the dropped tail
    out = []
    for i, t in enumerate(run):
        a_t = ac[t]
        a_prev = ac[0] if i == 0 else ac[run[i - 1]]
        sigma = eta * np.sqrt((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev))
        out.append((t, float(a_t), float(a_prev), float(sigma)))
    return out[::-1]


def sample_frame(model: CosHandModel, frame, mask_in, mask_target, steps: int, guidance: float, eta: float,
                 generator, context: str = "image", rule: str = "official"):
    """One CosHand prediction. Tensors [1,3,S,S] in [-1,1]; returns [1,3,S,S] in [-1,1]."""
    import torch

    from ._diffusers_util import randn

    with torch.no_grad():
        c_concat = torch.cat([model.encode_mode(mask_in), model.encode_mode(frame), model.encode_mode(mask_target)], 1)
        ctx = model.clip_context(frame)
        if context == "null":
            ctx = model.cc_projection(torch.zeros_like(ctx))
        h, w = c_concat.shape[-2:]
        x = randn((1, model.unet.config.out_channels, h, w), generator, model.device, model.dtype).float()
        cc2 = torch.cat([torch.zeros_like(c_concat), c_concat])
        ctx2 = torch.cat([torch.zeros_like(ctx), ctx])
        for t, a_t, a_prev, sigma in ddim_schedule(steps, eta, rule):
            inp = torch.cat([torch.cat([x, x]).to(model.dtype), cc2], 1)
            e_u, e_c = model.unet(inp, t, encoder_hidden_states=ctx2).sample.float().chunk(2)
            eps = e_u + guidance * (e_c - e_u)
            x0 = (x - (1 - a_t) ** 0.5 * eps) / a_t ** 0.5
            x = a_prev ** 0.5 * x0 + (1 - a_prev - sigma ** 2) ** 0.5 * eps
            if sigma > 0:
                x = x + sigma * randn(tuple(x.shape), generator, model.device, torch.float32)
        return model.decode(x.to(model.dtype)).float().clamp(-1, 1)


RESIZES = ("crop", "stretch")
CROP_OFFSET_X = 50  # run_results_on_final_eval_set.py resize_image: the width crop is shifted by +50 px


def official_crop_box(h: int, w: int) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1) of CosHand's inference crop to a square (see the module docstring)."""
    if w / h > 1.0:
        new_w = int(h * 1.0)
        start = (w - new_w) // 2
        return 0, h, min(start + CROP_OFFSET_X, w), min(start + new_w + CROP_OFFSET_X, w)
    new_h = int(w / 1.0)
    start = (h - new_h) // 2
    return start, start + new_h, 0, w


def _linear_resize(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import cv2

    return np.stack([cv2.resize(f, (size[1], size[0]), interpolation=cv2.INTER_LINEAR) for f in frames])


def _to_tensor(frames: np.ndarray, device: str):
    """uint8 [N,H,W,3] -> float [N,3,H,W] in [-1,1]."""
    import torch

    return torch.from_numpy(frames).permute(0, 3, 1, 2).float().div(127.5).sub(1.0).to(device)


def _to_uint8(x) -> np.ndarray:
    """The official conversion: ``(255 * clamp((x + 1) / 2)).astype(uint8)``, i.e. truncation."""
    y = (x.float().clamp(-1, 1) + 1.0) / 2.0
    return (255.0 * y.clamp(0, 1)).permute(0, 2, 3, 1).cpu().numpy().astype(np.uint8)


def _default_dir() -> Path:
    from pam_bench.weights import home

    return home() / "models" / "coshand"


class CosHand(Generator):
    """CosHand image model, applied frame by frame from the GT first frame and the hand-mask sequence."""

    name: ClassVar[str] = "coshand"
    needs: ClassVar[tuple[str, ...]] = ("first_frame", "conditions")
    MODES = ("autoregressive", "from-first")

    def __init__(self, device: str = "cpu", checkpoint=None, steps: int = 50, guidance: float = 1.5,
                 eta: float = 1.0, mode: str = "autoregressive", resolution: int = 256, context: str = "image",
                 num_heads: int = 8, ema: bool = True, dtype: str = "fp32", clip=None, resize: str = "crop",
                 timesteps: str = "official", **options: Any):
        if options:
            raise OptionError("coshand", ", ".join(sorted(options)), "unknown -o option(s) of method coshand")
        choice("coshand", "mode", mode, self.MODES)
        choice("coshand", "context", context, ("image", "null"))
        choice("coshand", "resize", resize, RESIZES)
        official_ddim_timesteps(integer("coshand", "steps", steps), timesteps)  # validates steps and the rule
        self.resize, self.timestep_rule = resize, timesteps
        self.device = device
        self.steps, self.guidance = integer("coshand", "steps", steps), real("coshand", "guidance", guidance)
        self.eta = real("coshand", "eta", eta)
        self.mode, self.context = mode, context
        self.resolution = integer("coshand", "resolution", resolution, lo=8)
        self.num_heads = integer("coshand", "num_heads", num_heads, lo=1)
        self.use_ema = boolean("coshand", "ema", ema)
        self.dtype_name = dtype
        self.clip_dir = Path(clip) if clip else None
        self.checkpoint = Path(checkpoint) if checkpoint else _default_dir()
        self._model: CosHandModel | None = None
        self._loaded_how = None

    def _ckpt_file(self) -> Path:
        p = self.checkpoint
        return p / CKPT_NAME if p.is_dir() or p.suffix != ".ckpt" else p

    def check_ready(self) -> None:
        require_packages("diffusers", "transformers", how="pip install 'pam-bench[models]'")
        f = self._ckpt_file()
        if not f.is_file():
            raise MissingResource(f"CosHand checkpoint {CKPT_NAME} (looked at {f})", HOW_TO_GET)

    def _load(self) -> CosHandModel:
        if self._model is None:
            from ._diffusers_util import load_torch_state_dict, pick_dtype

            self.check_ready()
            f = self._ckpt_file()
            sd, self._loaded_how = load_torch_state_dict(f)
            parts = convert_ldm_checkpoint(sd, self.num_heads, self.use_ema, path=f)
            self._ema = parts["ema"]
            dtype = pick_dtype(self.device, self.dtype_name, component=self.name)
            self._model = CosHandModel(parts, self.device, dtype, self.clip_dir)
        return self._model

    def _checkpoint_sha(self, f: Path) -> str | None:
        """sha256 of the checkpoint, cached by (path, size, mtime) across runs (pam_bench.weights' cache)."""
        from pam_bench.weights import cached_sha256

        return cached_sha256(f) if f.is_file() else None

    def identity(self) -> dict[str, Any]:
        f = self._ckpt_file()
        ts = official_ddim_timesteps(self.steps, self.timestep_rule)
        return {"name": self.name, "checkpoint": str(f.name), "checkpoint_sha256": self._checkpoint_sha(f),
                "native_resolution": [self.resolution, self.resolution], "native_frames": 1,
                "video_policy": f"{self.mode}: frame t from "
                + ("the previous generated frame + its hand mask" if self.mode == "autoregressive"
                   else "the GT first frame + hand mask 0") + " and hand mask t; frame 0 = GT first frame",
                "resize": ("official: centre square crop shifted +50 px in x, cv2 INTER_LINEAR to native; "
                           "prediction pasted back into the crop, GT first frame outside it")
                if self.resize == "crop" else "stretch to native (no crop), bilinear back to the protocol size",
                "sampler": f"DDIM, {self.timestep_rule} timesteps: {len(ts)} updates from t={ts[0]}",
                "timesteps": self.timestep_rule, "steps": self.steps, "guidance": self.guidance,
                "eta": self.eta, "context": self.context, "num_heads": self.num_heads, "ema": self.use_ema,
                "dtype": self.dtype_name if self.dtype_name != "auto" else
                ("bf16" if str(self.device).startswith("cuda") else "fp32"),
                "output_uint8": "truncate (official)",
                "seed_policy": "one CPU torch.Generator per video seeded with the per-sample seed, consumed in frame order"}

    def _prepare(self, sample: Sample, t: int) -> tuple[np.ndarray, np.ndarray, tuple | None]:
        """(first frame [1,S,S,3], masks [t,S,S,3]) at native size, and the crop box (None: stretched)."""
        s = (self.resolution, self.resolution)
        masks = mask_to_rgb(hand_masks(sample)[:t])
        first = sample.first_frame[None]
        if self.resize == "stretch":
            return resize_video(first, s), resize_video(masks, s), None
        box = official_crop_box(*first.shape[1:3])
        y0, y1, x0, x1 = box
        if y1 - y0 < 2 or x1 - x0 < 2:
            raise InputError(sample.id, f"a {first.shape[2]}x{first.shape[1]} frame leaves no pixels in CosHand's "
                                        "official crop (+50 px offset); use -o resize=stretch")
        return (_linear_resize(first[:, y0:y1, x0:x1], s), _linear_resize(masks[:, y0:y1, x0:x1], s), box)

    def _to_protocol(self, pred, sample: Sample, box: tuple | None) -> np.ndarray:
        h, w = sample.first_frame.shape[:2]
        img = _to_uint8(pred)
        if box is None:
            return resize_video(img, (h, w))[0]
        y0, y1, x0, x1 = box
        out = sample.first_frame.copy()
        out[y0:y1, x0:x1] = _linear_resize(img, (y1 - y0, x1 - x0))[0]
        return out

    def generate(self, sample: Sample, seed: int) -> Video:
        from ._diffusers_util import torch_generator

        model = self._load()
        t = target_shape(sample)[0]
        first, masks, box = self._prepare(sample, t)
        gen = torch_generator(seed, self.device)
        out = [sample.first_frame]
        cond_frame, cond_mask = _to_tensor(first, self.device), _to_tensor(masks[:1], self.device)
        for i in range(1, t):
            pred = sample_frame(model, cond_frame, cond_mask, _to_tensor(masks[i:i + 1], self.device), self.steps,
                                self.guidance, self.eta, gen, self.context, self.timestep_rule)
            out.append(self._to_protocol(pred, sample, box))
            if self.mode == "autoregressive":
                cond_frame, cond_mask = pred.to(self.device), _to_tensor(masks[i:i + 1], self.device)
        fps = sample.video.fps if sample.video is not None else next(iter(sample.conditions.values())).fps
        return Video(np.stack(out).astype(np.uint8), fps)

