"""Stage III (motion): CogVideoX-5B-I2V with PAM's multi-condition branch.

Architecture (facts from the official ``models/cogvidex_combination.py``; re-implemented here):

- ``transformer_blocks_copy``: N copied ``CogVideoXBlock`` (N=12 in PAM's training and evaluation);
- ``combine_linears``: one zero-initialised inner->inner linear per copied block;
- ``initial_combine_linear``: zero-initialised 5*inner -> inner linear.

Five condition slots, in the official order ``CONDITION_SLOTS``. PAM trains and evaluates with three
(``hand_keypoints, depth, seg_mask``); the ``tracking`` and ``normal`` slots then hold zero latents.
Each slot's input is ``cat([condition video latent, condition first-frame latent (zero padded)], dim=2)``
([B, F, in_channels, h, w]), passed through the shared ``patch_embed`` with the prompt embeddings, the
text tokens stripped. ``initial_combine_linear(hidden.repeat(1,1,5) + cat(slots))`` starts the condition
stream; copied block i runs on it after main block i, and ``combine_linears[i]`` of its output is added
to the main hidden state.

A dropped condition (not selected, or dropped by training-time dropout) is a zero video latent AND a zero
first-frame latent, exactly as PAM's training data loader does (``training/dataset.py``). Note: PAM's
evaluation script zeroes the video latent of an unused condition but still encodes its first frame; we
follow the training-time definition (recorded in the generator identity as ``dropped_condition``).
"""
from __future__ import annotations

import inspect
import json
import math
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from diffusers import AutoencoderKLCogVideoX, CogVideoXDPMScheduler, CogVideoXTransformer3DModel
from diffusers.models.modeling_outputs import Transformer2DModelOutput
from diffusers.models.transformers.cogvideox_transformer_3d import CogVideoXBlock

from pam_bench.errors import InputError

#: The official condition slot order of the combination transformer.
CONDITION_SLOTS = ("tracking_maps", "normal_maps", "depth_maps", "seg_masks", "hand_keypoints")
#: pam-bench condition name -> slot name. PAM uses these three; tracking and normal stay zero.
CONDITION_TO_SLOT = {"depth": "depth_maps", "seg": "seg_masks", "hand": "hand_keypoints"}
#: Training-time keep probability of each cue (paper: each cue masked with p=0.2).
KEEP_PROB = 0.8
#: ``_class_name`` values that are this architecture (the official save writes ...Tracking).
COMBINATION_CLASS_NAMES = ("CogVideoXTransformer3DModelTracking", "CogVideoXTransformer3DModelCombination",
                           "PAMCogVideoXTransformer3DModel")
OFFICIAL_CLASS_NAME = "CogVideoXTransformer3DModelTracking"
WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"
WEIGHTS_INDEX_NAME = "diffusion_pytorch_model.safetensors.index.json"


class PAMCogVideoXTransformer3DModel(CogVideoXTransformer3DModel):
    """The CogVideoX transformer plus PAM's condition branch (see the module docstring)."""

    def __init__(self, num_tracking_blocks: int = 12, **base_config: Any):
        super().__init__(**base_config)
        n_layers = self.config.num_layers
        if not 0 < num_tracking_blocks <= n_layers:
            raise ValueError(f"num_tracking_blocks must be in 1..num_layers={n_layers}, got {num_tracking_blocks}")
        self.register_to_config(num_tracking_blocks=num_tracking_blocks)
        inner = self.config.num_attention_heads * self.config.attention_head_dim
        c = self.config
        self.transformer_blocks_copy = nn.ModuleList([
            CogVideoXBlock(dim=inner, num_attention_heads=c.num_attention_heads,
                           attention_head_dim=c.attention_head_dim, time_embed_dim=c.time_embed_dim,
                           dropout=c.dropout, activation_fn=c.activation_fn, attention_bias=c.attention_bias,
                           norm_elementwise_affine=c.norm_elementwise_affine, norm_eps=c.norm_eps)
            for _ in range(num_tracking_blocks)])
        self.combine_linears = nn.ModuleList([nn.Linear(inner, inner) for _ in range(num_tracking_blocks)])
        self.initial_combine_linear = nn.Linear(inner * len(CONDITION_SLOTS), inner)
        self.zero_init_branch()

    @property
    def num_tracking_blocks(self) -> int:
        return int(self.config.num_tracking_blocks)

    def zero_init_branch(self) -> None:
        """Zero the combine linears (the branch then adds exactly nothing)."""
        for lin in [*self.combine_linears, self.initial_combine_linear]:
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)

    def init_copies_from_base(self) -> None:
        """Copied block i <- main block i (PAM's initialisation before fine-tuning)."""
        for i, blk in enumerate(self.transformer_blocks_copy):
            blk.load_state_dict(self.transformer_blocks[i].state_dict())

    def trainable_parameters(self) -> list[nn.Parameter]:
        """What PAM trains: the copies and the combine linears (everything else frozen)."""
        mods = [self.transformer_blocks_copy, self.combine_linears, self.initial_combine_linear]
        return [p for m in mods for p in m.parameters()]

    def _embed_condition(self, encoder_hidden_states: torch.Tensor, cond: torch.Tensor, text_len: int):
        x = self.embedding_dropout(self.patch_embed(encoder_hidden_states, cond))
        return x[:, text_len:]

    def forward(self, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor,
                timestep, timestep_cond: torch.Tensor | None = None, ofs=None,
                image_rotary_emb=None, attention_kwargs: dict | None = None,
                tracking_maps: torch.Tensor | None = None, normal_maps: torch.Tensor | None = None,
                depth_maps: torch.Tensor | None = None, seg_masks: torch.Tensor | None = None,
                hand_keypoints: torch.Tensor | None = None, return_dict: bool = True):
        """As the base forward, plus the five condition inputs ([B, F, in_channels, h, w]; None = zeros)."""
        if self.config.patch_size_t is not None:
            raise NotImplementedError("PAM's branch is defined for CogVideoX 1.0 (patch_size_t=None)")
        batch, frames, _, height, width = hidden_states.shape
        emb = self.time_embedding(self.time_proj(timestep).to(dtype=hidden_states.dtype), timestep_cond)
        if self.ofs_embedding is not None:
            emb = emb + self.ofs_embedding(self.ofs_proj(ofs).to(dtype=hidden_states.dtype))
        text_len = encoder_hidden_states.shape[1]
        slots = dict(zip(CONDITION_SLOTS, (tracking_maps, normal_maps, depth_maps, seg_masks, hand_keypoints)))
        conds = [self._embed_condition(encoder_hidden_states,
                                       torch.zeros_like(hidden_states) if c is None else c.to(hidden_states.dtype),
                                       text_len) for c in slots.values()]
        hs = self.embedding_dropout(self.patch_embed(encoder_hidden_states, hidden_states))
        enc, hs = hs[:, :text_len], hs[:, text_len:]
        cond = self.initial_combine_linear(hs.repeat(1, 1, len(conds)) + torch.cat(conds, dim=2))
        for i, block in enumerate(self.transformer_blocks):
            hs, enc = self._run_block(block, hs, enc, emb, image_rotary_emb, attention_kwargs)
            if i < len(self.transformer_blocks_copy):
                cond, _ = self._run_block(self.transformer_blocks_copy[i], cond, enc, emb, image_rotary_emb,
                                          attention_kwargs)
                cond = self.combine_linears[i](cond)
                hs = hs + cond
        hs = self.proj_out(self.norm_out(self.norm_final(hs), temb=emb))
        p = self.config.patch_size
        out = hs.reshape(batch, frames, height // p, width // p, -1, p, p)
        out = out.permute(0, 1, 4, 2, 5, 3, 6).flatten(5, 6).flatten(3, 4)
        return Transformer2DModelOutput(sample=out) if return_dict else (out,)

    def _run_block(self, block, hs, enc, emb, rope, attention_kwargs):
        if torch.is_grad_enabled() and self.gradient_checkpointing:
            return self._gradient_checkpointing_func(block, hs, enc, emb, rope, attention_kwargs)
        return block(hidden_states=hs, encoder_hidden_states=enc, temb=emb, image_rotary_emb=rope,
                     attention_kwargs=attention_kwargs)


# --- condition dropout (training-time, for fine-tuning code) -----------------------------------------

def condition_keep_mask(names: Sequence[str], generator: torch.Generator | None = None,
                        keep_prob: float = KEEP_PROB) -> dict[str, bool]:
    """Independently keep each cue with probability ``keep_prob`` (PAM: 0.8, i.e. masked with p=0.2)."""
    draws = torch.rand(len(names), generator=generator)
    return {n: bool(d < keep_prob) for n, d in zip(names, draws.tolist())}


def apply_condition_dropout(slot_latents: Mapping[str, torch.Tensor], generator: torch.Generator | None = None,
                            keep_prob: float = KEEP_PROB) -> tuple[dict[str, torch.Tensor], dict[str, bool]]:
    """Training-time dropout: a dropped cue's whole input (video latent and first-frame latent) becomes zeros.

    ``slot_latents``: slot name -> [B, F, in_channels, h, w] (video latent concatenated with its first-frame
    latent). Returns the new dict and the keep mask.
    """
    keep = condition_keep_mask(list(slot_latents), generator, keep_prob)
    return {k: (v if keep[k] else torch.zeros_like(v)) for k, v in slot_latents.items()}, keep


# --- save / load (handles the official _class_name quirk) --------------------------------------------

def _base_init_keys() -> set[str]:
    return set(inspect.signature(CogVideoXTransformer3DModel.__init__).parameters) - {"self"}


def transformer_from_config(config: Mapping[str, Any]) -> PAMCogVideoXTransformer3DModel:
    """Build (randomly initialised) from a config dict; unknown keys (``_class_name`` ...) are ignored."""
    keys = _base_init_keys()
    base = {k: v for k, v in config.items() if k in keys}
    return PAMCogVideoXTransformer3DModel(num_tracking_blocks=int(config.get("num_tracking_blocks", 12)), **base)


def read_transformer_config(directory: Path) -> dict:
    cfg_path = Path(directory) / "config.json"
    if not cfg_path.is_file():
        raise InputError(cfg_path, "no such file (a transformer folder needs config.json)")
    try:
        return json.loads(cfg_path.read_text())
    except json.JSONDecodeError as e:
        raise InputError(cfg_path, f"not valid JSON ({e})") from None


def weight_files(directory: Path) -> list[Path]:
    """The safetensors files of a diffusers model folder (single file or sharded with an index)."""
    directory = Path(directory)
    index = directory / WEIGHTS_INDEX_NAME
    if index.is_file():
        try:
            wm = json.loads(index.read_text())["weight_map"]
        except (json.JSONDecodeError, KeyError) as e:
            raise InputError(index, f"not a safetensors index ({e})") from None
        return [directory / f for f in sorted(set(wm.values()))]
    return [directory / WEIGHTS_NAME]


def load_safetensors_dir(directory: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    sd: dict[str, torch.Tensor] = {}
    for f in weight_files(directory):
        if not f.is_file():
            raise InputError(f, "weight file listed for this model is missing")
        try:
            sd.update(load_file(str(f)))
        except Exception as e:  # safetensors raises its own error types
            raise InputError(f, f"not a readable safetensors file ({e})") from None
    return sd


def save_transformer(model: PAMCogVideoXTransformer3DModel, directory: Path) -> Path:
    """Write config.json (with the official ``_class_name`` quirk) and one safetensors file, atomically."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    cfg = {k: v for k, v in dict(model.config).items() if not k.startswith("_")}
    cfg["_class_name"] = OFFICIAL_CLASS_NAME
    cfg["num_tracking_blocks"] = model.num_tracking_blocks
    sd = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    _atomic(directory / WEIGHTS_NAME, lambda p: save_file(sd, str(p), metadata={"format": "pt"}))
    _atomic(directory / "config.json", lambda p: Path(p).write_text(json.dumps(cfg, indent=2, default=list)))
    return directory


def _atomic(dest: Path, write) -> None:
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.part")
    try:
        write(tmp)
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()


def load_transformer(directory: Path, dtype: torch.dtype | None = None, init_from_base: bool = False,
                     num_tracking_blocks: int = 12) -> tuple[PAMCogVideoXTransformer3DModel, dict]:
    """Load a PAM transformer folder; returns (model, info).

    ``dtype`` None keeps the stored dtypes (a save/load round trip is then bit-identical).
    Accepts the official ``_class_name: CogVideoXTransformer3DModelTracking``. A plain CogVideoX transformer
    (no condition branch) is refused unless ``init_from_base`` (then the copies start from the first N
    main blocks and the linears are zero: PAM before fine-tuning, i.e. the base model's output).
    """
    directory = Path(directory)
    cfg = read_transformer_config(directory)
    cls_name = cfg.get("_class_name", "")
    is_branch = cls_name in COMBINATION_CLASS_NAMES or "num_tracking_blocks" in cfg
    if not is_branch and not init_from_base:
        raise InputError(directory / "config.json",
                         f"_class_name {cls_name!r} is a plain CogVideoX transformer without PAM's condition "
                         "branch; point transformer/ at PAM's released motion checkpoint")
    if not is_branch:
        cfg = {**cfg, "num_tracking_blocks": num_tracking_blocks}
    sd = load_safetensors_dir(directory)
    from accelerate import init_empty_weights

    with init_empty_weights():
        model = transformer_from_config(cfg)
    expected = set(model.state_dict())
    missing = expected - set(sd)
    if not is_branch:
        missing -= {k for k in expected if k.startswith(("transformer_blocks_copy.", "combine_linears.",
                                                          "initial_combine_linear."))}
    unexpected = set(sd) - expected
    if missing or unexpected:
        f = weight_files(directory)[0]
        raise InputError(f, f"weights do not match config.json: {len(missing)} missing "
                            f"(e.g. {sorted(missing)[:2]}), {len(unexpected)} unexpected (e.g. {sorted(unexpected)[:2]})")
    if not is_branch:
        model = model.to_empty(device="cpu")
        model.load_state_dict(sd, strict=False)
        model.init_copies_from_base()
        model.zero_init_branch()
    else:
        model.load_state_dict(sd, strict=True, assign=True)
    _fill_non_persistent_buffers(model, cfg)
    if dtype is not None:  # nn.Module.to: diffusers' ModelMixin.to warns about fp32-kept modules needlessly
        nn.Module.to(model, dtype)
    model.eval()
    info = {"class_name": cls_name, "num_tracking_blocks": model.num_tracking_blocks,
            "init": "checkpoint" if is_branch else "copies-from-base"}
    return model, info


def _fill_non_persistent_buffers(model: PAMCogVideoXTransformer3DModel, cfg: Mapping[str, Any]) -> None:
    """Buffers not saved in the state dict (sincos position tables) must be recomputed after a meta init."""
    pe = model.patch_embed
    if getattr(pe, "pos_embedding", None) is not None and pe.pos_embedding.is_meta:
        table = pe._get_positional_embeddings(pe.sample_height, pe.sample_width, pe.sample_frames)
        pe.register_buffer("pos_embedding", table, persistent=False)
    for name, buf in list(model.named_buffers()):
        if buf.is_meta:
            raise RuntimeError(f"buffer {name} left uninitialised after loading")


# --- the sampling loop ---------------------------------------------------------------------------------

def frames_to_tensor(frames: np.ndarray, device, dtype) -> torch.Tensor:
    """uint8 [T,H,W,3] -> float [1, 3, T, H, W] in [-1, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).to(device=device)
    x = x.permute(3, 0, 1, 2).unsqueeze(0).to(dtype) / 127.5 - 1.0
    return x


class MotionPipeline:
    """CogVideoX-I2V sampling with PAM's condition branch; no text encoder (precomputed prompt embeddings).

    Defaults follow PAM's evaluation: 50 steps, guidance 6, use_dynamic_cfg, CogVideoXDPMScheduler with
    timestep_spacing="trailing", 49 frames at 480x720 (the real transformer's learned positional embedding
    fixes the resolution; the tiny test model has its own).
    """

    def __init__(self, transformer: PAMCogVideoXTransformer3DModel, vae: AutoencoderKLCogVideoX,
                 scheduler: CogVideoXDPMScheduler, device="cpu", dtype: torch.dtype = torch.float32,
                 compile: bool = False):
        self.transformer = transformer
        self.vae = vae
        self.scheduler = CogVideoXDPMScheduler.from_config(scheduler.config, timestep_spacing="trailing")
        self.device = torch.device(device)
        self.dtype = dtype
        self.vae_scale_spatial = 2 ** (len(vae.config.block_out_channels) - 1)
        self.vae_scale_temporal = int(vae.config.temporal_compression_ratio)
        self.scaling_factor = float(vae.config.scaling_factor)
        self.invert_scale = bool(getattr(vae.config, "invert_scale_latents", False))
        self._forward = transformer
        # The official pipeline calls torch.compile in __init__; only worth it (and only done) on CUDA.
        if compile and self.device.type == "cuda":
            self._forward = torch.compile(transformer)

    @property
    def size(self) -> tuple[int, int]:
        c = self.transformer.config
        return c.sample_height * self.vae_scale_spatial, c.sample_width * self.vae_scale_spatial

    @property
    def num_frames(self) -> int:
        return int(self.transformer.config.sample_frames)

    # -- VAE helpers
    def encode_video(self, frames: np.ndarray, generator: torch.Generator | None) -> torch.Tensor:
        """uint8 [T,H,W,3] -> scaled latents [1, F, C, h, w] (latent_dist.sample() * scaling_factor)."""
        x = frames_to_tensor(frames, self.device, self.vae.dtype)
        lat = self.vae.encode(x).latent_dist.sample(generator=generator) * self.scaling_factor
        return lat.permute(0, 2, 1, 3, 4).to(self.dtype)

    def encode_first_frame(self, frame: np.ndarray, n_latent_frames: int,
                           generator: torch.Generator | None) -> torch.Tensor:
        """One frame -> [1, F, C, h, w]: its latent, then zero padding (the I2V image-latent convention)."""
        x = frames_to_tensor(frame[None], self.device, self.vae.dtype)
        lat = self.vae.encode(x).latent_dist.sample(generator=generator).permute(0, 2, 1, 3, 4)
        lat = lat / self.scaling_factor if self.invert_scale else lat * self.scaling_factor
        pad = lat.new_zeros((1, n_latent_frames - 1, *lat.shape[2:]))
        return torch.cat([lat, pad], dim=1).to(self.dtype)

    def decode(self, latents: torch.Tensor) -> np.ndarray:
        x = self.vae.decode((latents.permute(0, 2, 1, 3, 4) / self.scaling_factor).to(self.vae.dtype)).sample
        x = ((x[0].float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        return x.permute(1, 2, 3, 0).cpu().numpy()

    def condition_inputs(self, conditions: Mapping[str, np.ndarray], selected: Sequence[str],
                         n_latent_frames: int, latent_shape, generator) -> dict[str, torch.Tensor]:
        """Slot name -> [1, F, 2C, h, w]; unselected / absent slots get all-zero inputs (dropped cue)."""
        out = {}
        for slot in CONDITION_SLOTS:
            name = next((n for n, s in CONDITION_TO_SLOT.items() if s == slot), None)
            if name in selected:
                vid = self.encode_video(conditions[name], generator)
                first = self.encode_first_frame(conditions[name][0], n_latent_frames, generator)
                out[slot] = torch.cat([vid, first], dim=2)
            else:
                out[slot] = torch.zeros((1, n_latent_frames, 2 * latent_shape[2], *latent_shape[3:]),
                                        device=self.device, dtype=self.dtype)
        return out

    def _rope(self, n_latent_frames: int):
        if not self.transformer.config.use_rotary_positional_embeddings:
            return None
        from diffusers.models.embeddings import get_3d_rotary_pos_embed
        from diffusers.pipelines.cogvideo.pipeline_cogvideox_image2video import get_resize_crop_region_for_grid

        c = self.transformer.config
        h, w = self.size
        gh, gw = h // (self.vae_scale_spatial * c.patch_size), w // (self.vae_scale_spatial * c.patch_size)
        crops = get_resize_crop_region_for_grid((gh, gw), c.sample_width // c.patch_size,
                                                c.sample_height // c.patch_size)
        return get_3d_rotary_pos_embed(embed_dim=c.attention_head_dim, crops_coords=crops, grid_size=(gh, gw),
                                       temporal_size=n_latent_frames, device=self.device)

    @torch.no_grad()
    def __call__(self, first_frame: np.ndarray, conditions: Mapping[str, np.ndarray], selected: Sequence[str],
                 prompt_embeds: torch.Tensor, negative_prompt_embeds: torch.Tensor | None, seed: int,
                 steps: int = 50, guidance: float = 6.0, use_dynamic_cfg: bool = True, output: str = "uint8"):
        """first_frame uint8 [H,W,3]; conditions name -> uint8 [T,H,W,3] at (self.size, self.num_frames).

        Returns uint8 [T, H, W, 3] (``output='latent'``: the final latents [1, F, C, h, w], for tests)."""
        h, w = self.size
        T = self.num_frames
        if first_frame.shape[:2] != (h, w):
            raise ValueError(f"first frame must be {h}x{w}, got {first_frame.shape[:2]}")
        for n in selected:
            if conditions[n].shape[:3] != (T, h, w):
                raise ValueError(f"condition {n} must be {T}x{h}x{w}, got {conditions[n].shape[:3]}")
        gen = torch.Generator(device="cpu").manual_seed(int(seed))
        n_lat = (T - 1) // self.vae_scale_temporal + 1
        c_lat = self.transformer.config.out_channels
        shape = (1, n_lat, c_lat, h // self.vae_scale_spatial, w // self.vae_scale_spatial)
        latents = torch.randn(shape, generator=gen, dtype=torch.float32).to(self.device, self.dtype)
        latents = latents * self.scheduler.init_noise_sigma
        image_latents = self.encode_first_frame(first_frame, n_lat, gen)
        cond = self.condition_inputs(conditions, selected, n_lat, shape, gen)
        cfg = guidance > 1.0
        pe = prompt_embeds.to(self.device, self.dtype)
        if cfg:
            neg = torch.zeros_like(pe) if negative_prompt_embeds is None else negative_prompt_embeds
            pe = torch.cat([neg.to(self.device, self.dtype), pe])
        dup = (lambda x: torch.cat([x, x])) if cfg else (lambda x: x)
        cond_in = {k: dup(v) for k, v in cond.items()}
        img_in = dup(image_latents)
        rope = self._rope(n_lat)
        ofs = None if self.transformer.config.ofs_embed_dim is None else latents.new_full((1,), 2.0)
        self.scheduler.set_timesteps(steps, device=self.device)
        timesteps = self.scheduler.timesteps
        old_pred = None
        for i, t in enumerate(timesteps):
            x = self.scheduler.scale_model_input(dup(latents), t)
            x = torch.cat([x, img_in], dim=2)
            noise = self._forward(hidden_states=x, encoder_hidden_states=pe, timestep=t.expand(x.shape[0]),
                                  ofs=ofs, image_rotary_emb=rope, return_dict=False, **cond_in)[0].float()
            scale = guidance
            if use_dynamic_cfg:  # CogVideoX's dynamic CFG schedule (as in the official pipelines)
                scale = 1 + guidance * ((1 - math.cos(math.pi * ((steps - t.item()) / steps) ** 5.0)) / 2)
            if cfg:
                unc, txt = noise.chunk(2)
                noise = unc + scale * (txt - unc)
            latents, old_pred = self.scheduler.step(noise, old_pred, t, timesteps[i - 1] if i > 0 else None,
                                                    latents.float(), generator=gen, return_dict=False)
            latents = latents.to(self.dtype)
        return latents if output == "latent" else self.decode(latents)
