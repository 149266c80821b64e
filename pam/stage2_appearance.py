"""Stage II (appearance): FLUX.1-dev with PAM's double ControlNet -> the first frame.

Facts (official ``appearance_gen``, XLabs x-flux code): two ``ControlNetFlux`` nets, ``controlnet_depth=2``
double-stream blocks each, ``condition_in_channels=6``; net 1 gets cat(depth, normal), net 2 gets
cat(hand keypoints, seg) (images in [-1, 1]); each has an 8-conv hint block (three stride-2 convs: 8x, then
2x2 patch packing) and zero-initialised output linears; their residuals are summed (``control_gs=(1, 1)``)
and added to Flux's double blocks cyclically (block i gets residual ``i % 2``). Inference: flux-dev,
28 steps, guidance 4 (guidance-distilled embedding, no CFG); the schedule, size and uint8 conventions of
``protocol=official`` are in ``pam.stage2_official``. The training script saves
``DoubleControl.state_dict()`` (keys ``controlnet1.*`` / ``controlnet2.*`` in the BFL/XLabs naming) as
``controlnet.bin``.

Here each net is a diffusers ``FluxControlNetModel`` subclass whose hint block takes 6 channels (diffusers'
own takes 3); ``patch_size=2`` makes diffusers' hint-output packing equal XLabs' ``b c (h 2) (w 2) -> b (h w)
(c 2 2)``. The official file is loaded by the explicit key map :func:`xlabs_to_diffusers` (and written back
by :func:`diffusers_to_xlabs`, so a round trip is bit-identical). Sampling is our own flow-matching loop on
diffusers' ``FluxTransformer2DModel`` with ``controlnet_blocks_repeat=True`` (the XLabs injection rule).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxControlNetModel, FluxTransformer2DModel
from diffusers.models.controlnets.controlnet import ControlNetConditioningEmbedding

from pam_bench.errors import ArgumentError, InputError

from . import checkpoint as ckpt
from .stage2_official import GUIDANCE, STEPS, official_mu

#: XLabs hint block: nn.Sequential indices of its 8 convolutions (SiLU in between).
_HINT_SEQ = (0, 2, 4, 6, 8, 10, 12, 14)
HINT_CHANNELS = (16, 16, 16, 16)


class PAMFluxControlNetModel(FluxControlNetModel):
    """FluxControlNetModel whose XLabs-style hint block takes ``conditioning_channels`` (PAM: 6) channels."""

    def __init__(self, conditioning_channels: int = 6, **config: Any):
        super().__init__(**config)
        self.register_to_config(conditioning_channels=conditioning_channels)
        if self.input_hint_block is None:
            raise ArgumentError("PAM's nets are XLabs-style: conditioning_embedding_channels must be set")
        self.input_hint_block = ControlNetConditioningEmbedding(
            conditioning_embedding_channels=config["conditioning_embedding_channels"],
            conditioning_channels=conditioning_channels, block_out_channels=HINT_CHANNELS)


def controlnet_config_for(flux_config: Mapping[str, Any], depth: int = 2) -> dict[str, Any]:
    """The controlnet config matching a Flux transformer config (XLabs: depth double blocks, no single)."""
    in_ch = int(flux_config["in_channels"])
    return dict(patch_size=2, in_channels=in_ch, num_layers=depth, num_single_layers=0,
                attention_head_dim=int(flux_config["attention_head_dim"]),
                num_attention_heads=int(flux_config["num_attention_heads"]),
                joint_attention_dim=int(flux_config["joint_attention_dim"]),
                pooled_projection_dim=int(flux_config["pooled_projection_dim"]),
                guidance_embeds=bool(flux_config.get("guidance_embeds", True)),
                axes_dims_rope=list(flux_config.get("axes_dims_rope", [16, 56, 56])),
                conditioning_embedding_channels=in_ch // 4)


# --- the explicit XLabs <-> diffusers key map -------------------------------------------------------

_TOP = {"img_in": "x_embedder", "txt_in": "context_embedder", "pos_embed_input": "controlnet_x_embedder",
        "time_in.in_layer": "time_text_embed.timestep_embedder.linear_1",
        "time_in.out_layer": "time_text_embed.timestep_embedder.linear_2",
        "vector_in.in_layer": "time_text_embed.text_embedder.linear_1",
        "vector_in.out_layer": "time_text_embed.text_embedder.linear_2",
        "guidance_in.in_layer": "time_text_embed.guidance_embedder.linear_1",
        "guidance_in.out_layer": "time_text_embed.guidance_embedder.linear_2"}
_BLOCK = {"img_mod.lin": "norm1.linear", "txt_mod.lin": "norm1_context.linear",
          "img_attn.proj": "attn.to_out.0", "txt_attn.proj": "attn.to_add_out",
          "img_mlp.0": "ff.net.0.proj", "img_mlp.2": "ff.net.2",
          "txt_mlp.0": "ff_context.net.0.proj", "txt_mlp.2": "ff_context.net.2"}
_NORMS = {"img_attn.norm.query_norm.scale": "attn.norm_q.weight",
          "img_attn.norm.key_norm.scale": "attn.norm_k.weight",
          "txt_attn.norm.query_norm.scale": "attn.norm_added_q.weight",
          "txt_attn.norm.key_norm.scale": "attn.norm_added_k.weight"}
_QKV = {"img_attn.qkv": ("attn.to_q", "attn.to_k", "attn.to_v"),
        "txt_attn.qkv": ("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj")}


def _hint_name(i: int) -> str:
    if i == 0:
        return "input_hint_block.conv_in"
    if i == len(_HINT_SEQ) - 1:
        return "input_hint_block.conv_out"
    return f"input_hint_block.blocks.{i - 1}"


def _simple_pairs(depth: int) -> list[tuple[str, str]]:
    """(xlabs, diffusers) parameter-name pairs that map one to one."""
    pairs = [(f"{a}.{s}", f"{b}.{s}") for a, b in _TOP.items() for s in ("weight", "bias")]
    pairs += [(f"input_hint_block.{q}.{s}", f"{_hint_name(i)}.{s}")
              for i, q in enumerate(_HINT_SEQ) for s in ("weight", "bias")]
    for d in range(depth):
        pairs += [(f"controlnet_blocks.{d}.{s}", f"controlnet_blocks.{d}.{s}") for s in ("weight", "bias")]
        pairs += [(f"double_blocks.{d}.{a}.{s}", f"transformer_blocks.{d}.{b}.{s}")
                  for a, b in _BLOCK.items() for s in ("weight", "bias")]
        pairs += [(f"double_blocks.{d}.{a}", f"transformer_blocks.{d}.{b}") for a, b in _NORMS.items()]
    return pairs


def xlabs_depth(sd: Mapping[str, torch.Tensor]) -> int:
    ids = {int(k.split(".")[1]) for k in sd if k.startswith("double_blocks.")}
    return max(ids) + 1 if ids else 0


def xlabs_to_diffusers(sd: Mapping[str, torch.Tensor], where="<state dict>") -> dict[str, torch.Tensor]:
    """One XLabs ControlNetFlux state dict -> PAMFluxControlNetModel names. Every key must be used."""
    depth = xlabs_depth(sd)
    out, used = {}, set()
    for a, b in _simple_pairs(depth):
        if a in sd:
            out[b] = sd[a]
            used.add(a)
    for d in range(depth):
        for a, names in _QKV.items():
            for s in ("weight", "bias"):
                k = f"double_blocks.{d}.{a}.{s}"
                if k not in sd:
                    raise InputError(where, f"missing {k}")
                for n, chunk in zip(names, torch.chunk(sd[k], 3, dim=0)):
                    out[f"transformer_blocks.{d}.{n}.{s}"] = chunk.clone()
                used.add(k)
    left = sorted(set(sd) - used)
    if left:
        raise InputError(where, f"{len(left)} keys the XLabs key map does not know, e.g. {left[:3]}")
    return out


def diffusers_to_xlabs(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Inverse of :func:`xlabs_to_diffusers` (concatenates q, k, v back)."""
    depth = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("transformer_blocks."))
    out = {a: sd[b] for a, b in _simple_pairs(depth) if b in sd}
    for d in range(depth):
        for a, names in _QKV.items():
            for s in ("weight", "bias"):
                out[f"double_blocks.{d}.{a}.{s}"] = torch.cat([sd[f"transformer_blocks.{d}.{n}.{s}"]
                                                               for n in names], dim=0)
    return out


def split_double(sd: Mapping[str, torch.Tensor], where="<state dict>") -> tuple[dict, dict]:
    """The official DoubleControl state dict -> (controlnet1, controlnet2) XLabs dicts."""
    parts: tuple[dict, dict] = ({}, {})
    for k, v in sd.items():
        k = k[len("module."):] if k.startswith("module.") else k
        if k.startswith("controlnet1."):
            parts[0][k[len("controlnet1."):]] = v
        elif k.startswith("controlnet2."):
            parts[1][k[len("controlnet2."):]] = v
        else:
            raise InputError(where, f"unexpected key {k!r} (expected controlnet1.* / controlnet2.*)")
    if not parts[0] or not parts[1]:
        raise InputError(where, "needs both controlnet1.* and controlnet2.* keys (PAM's double ControlNet)")
    return parts


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """safetensors, or a torch pickle read with weights_only=True (the official controlnet.bin)."""
    return ckpt.read_tensors(path)


def load_double_controlnet(path: Path, flux_config: Mapping[str, Any], dtype: torch.dtype | None = None
                           ) -> tuple[PAMFluxControlNetModel, PAMFluxControlNetModel]:
    """Build both nets from the official XLabs-layout file through the explicit key map (strict)."""
    nets = []
    for i, part in enumerate(split_double(read_state_dict(path), path)):
        mapped = xlabs_to_diffusers(part, f"{path} (controlnet{i + 1})")
        hint = mapped.get("input_hint_block.conv_in.weight")
        cond_ch = int(hint.shape[1]) if hint is not None else 6
        net = PAMFluxControlNetModel(conditioning_channels=cond_ch,
                                     **controlnet_config_for(flux_config, xlabs_depth(part)))
        try:
            net.load_state_dict(mapped, strict=True)
        except RuntimeError as e:
            raise InputError(path, f"controlnet{i + 1} does not fit the FLUX config: "
                                   f"{str(e).splitlines()[1][:200] if len(str(e).splitlines()) > 1 else e}") from None
        if dtype is not None:
            torch.nn.Module.to(net, dtype)
        nets.append(net.eval())
    return nets[0], nets[1]


def save_double_controlnet(net1, net2, path: Path) -> Path:
    """Write both nets in the official XLabs layout (safetensors)."""
    from safetensors.torch import save_file

    sd = {}
    for name, net in (("controlnet1", net1), ("controlnet2", net2)):
        for k, v in diffusers_to_xlabs(net.state_dict()).items():
            sd[f"{name}.{k}"] = v.detach().contiguous().cpu()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_file(sd, str(path))
    return Path(path)


# --- condition images --------------------------------------------------------------------------------

def normals_from_depth_condition(depth_rgb: np.ndarray, strength: float = 8.0) -> np.ndarray:
    """An approximate normal map (uint8 RGB, (n+1)/2*255) from a PAM-style inferno depth image.

    PAM's net 1 takes depth + normal; its sim input renders normals and on real data they come from a
    normal estimator. pam-bench samples carry no normals, so we read the inferno position back as relative
    inverse depth and take image gradients (``strength`` scales them); background (black) -> (0,0,0).
    This is an approximation, recorded in the generator identity (``normals``).
    """
    from pam_bench import render

    d = np.asarray(depth_rgb, np.uint8)
    fg = d.max(-1) > 16
    q = d >> 3
    pos = render._inferno_inverse()[q[..., 0], q[..., 1], q[..., 2]].astype(np.float32)
    pos[~fg] = 0.0
    gy, gx = np.gradient(pos)
    n = np.stack([-gx * strength, -gy * strength, np.ones_like(pos)], -1)
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    out = np.rint((n + 1.0) * 127.5).astype(np.uint8)
    out[~fg] = 0
    return out


def _to_unit(img: np.ndarray, device, dtype) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img)).to(device).permute(2, 0, 1)[None].to(dtype) / 127.5 - 1


# --- sampling ----------------------------------------------------------------------------------------

class AppearancePipeline:
    """Flux + PAM's two ControlNets -> one uint8 [H, W, 3] first frame (no text encoders)."""

    def __init__(self, transformer: FluxTransformer2DModel, vae: AutoencoderKL,
                 scheduler: FlowMatchEulerDiscreteScheduler, net1: PAMFluxControlNetModel,
                 net2: PAMFluxControlNetModel, device="cpu", dtype: torch.dtype = torch.float32):
        self.transformer, self.vae, self.scheduler = transformer, vae, scheduler
        self.net1, self.net2 = net1, net2
        self.device, self.dtype = torch.device(device), dtype
        self.vae_scale = 2 ** (len(vae.config.block_out_channels) - 1)

    def control_images(self, depth: np.ndarray, normal: np.ndarray, hand: np.ndarray, seg: np.ndarray):
        """(net 1 input cat(depth, normal), net 2 input cat(hand, seg)), each [1, 6, H, W] in [-1, 1]."""
        u = lambda x: _to_unit(x, self.device, self.dtype)  # noqa: E731
        return torch.cat([u(depth), u(normal)], 1), torch.cat([u(hand), u(seg)], 1)

    def timesteps(self, height: int, width: int, steps: int = STEPS, protocol: str = "pam-bench") -> torch.Tensor:
        """The scheduler's timesteps (sigma * 1000) for an image of height x width.

        'official': mu of XLabs' ``get_schedule(steps, (W//8)*(H//8)//256)`` (``pam.stage2_official``);
        'pam-bench': diffusers' ``calculate_shift`` on the packed token count."""
        from diffusers.pipelines.flux.pipeline_flux import calculate_shift, retrieve_timesteps

        if protocol == "official":
            mu = official_mu(height, width)
        else:
            sc = self.scheduler.config
            packed = (height // self.vae_scale // 2) * (width // self.vae_scale // 2)
            mu = calculate_shift(packed, sc.get("base_image_seq_len", 256), sc.get("max_image_seq_len", 4096),
                                 sc.get("base_shift", 0.5), sc.get("max_shift", 1.15))
        sigmas = np.linspace(1.0, 1 / steps, steps)
        timesteps, _ = retrieve_timesteps(self.scheduler, steps, self.device, sigmas=sigmas, mu=mu)
        return timesteps

    @torch.no_grad()
    def __call__(self, depth: np.ndarray, normal: np.ndarray, hand: np.ndarray, seg: np.ndarray,
                 prompt_embeds: torch.Tensor, pooled_prompt_embeds: torch.Tensor, seed: int,
                 steps: int = STEPS, guidance: float = GUIDANCE, control_scales=(1.0, 1.0), output: str = "uint8",
                 protocol: str = "pam-bench"):
        """-> uint8 [H, W, 3] (``output='latent'``: the final packed latents, for tests).

        ``protocol='official'``: appearance_gen's schedule argument and uint8 truncation (``.byte()``)."""
        from diffusers.pipelines.flux.pipeline_flux import FluxPipeline

        h, w = depth.shape[:2]
        if h % (2 * self.vae_scale) or w % (2 * self.vae_scale):
            raise ArgumentError(f"Flux needs sizes divisible by {2 * self.vae_scale}, got {h}x{w}")
        c1, c2 = self.control_images(depth, normal, hand, seg)
        ch = self.vae.config.latent_channels
        lh, lw = h // self.vae_scale, w // self.vae_scale
        gen = torch.Generator(device="cpu").manual_seed(int(seed))
        lat = torch.randn((1, ch, lh, lw), generator=gen, dtype=torch.float32).to(self.device, self.dtype)
        lat = FluxPipeline._pack_latents(lat, 1, ch, lh, lw)
        img_ids = FluxPipeline._prepare_latent_image_ids(1, lh // 2, lw // 2, self.device, self.dtype)
        pe = prompt_embeds.to(self.device, self.dtype)
        pooled = pooled_prompt_embeds.to(self.device, self.dtype)
        txt_ids = torch.zeros(pe.shape[1], 3, device=self.device, dtype=self.dtype)
        g = torch.full((1,), guidance, device=self.device, dtype=self.dtype)
        for t in self.timesteps(h, w, steps, protocol):
            tt = t.expand(1).to(self.dtype) / 1000
            common = dict(hidden_states=lat, timestep=tt, guidance=g, pooled_projections=pooled,
                          encoder_hidden_states=pe, txt_ids=txt_ids, img_ids=img_ids, return_dict=False)
            r1 = self.net1(controlnet_cond=c1, conditioning_scale=control_scales[0], **common)[0]
            r2 = self.net2(controlnet_cond=c2, conditioning_scale=control_scales[1], **common)[0]
            res = [a + b for a, b in zip(r1, r2)]
            pred = self.transformer(controlnet_block_samples=res, controlnet_single_block_samples=None,
                                    controlnet_blocks_repeat=True, **common)[0]
            lat = self.scheduler.step(pred, t, lat, return_dict=False)[0]
        if output == "latent":
            return lat
        lat = FluxPipeline._unpack_latents(lat, h, w, self.vae_scale)
        lat = lat / self.vae.config.scaling_factor + self.vae.config.shift_factor
        x = self.vae.decode(lat.to(self.vae.dtype), return_dict=False)[0]
        x = (x[0].float().clamp(-1, 1) + 1) * 127.5
        x = x.to(torch.uint8) if protocol == "official" else x.round().to(torch.uint8)  # .byte() truncates
        return x.permute(1, 2, 0).cpu().numpy()


def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise InputError(path, f"cannot read JSON ({e})") from None
