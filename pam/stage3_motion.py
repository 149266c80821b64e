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

Two conventions for a condition that is not used (``MotionPipeline(..., protocol=)``):

- ``official`` (``testing/evaluation_comb_dexycb.py`` with ``CogVideoXImageToVideoPipelineCombination``): the
  slot's video latent is zero but its first frame is still VAE-encoded (tracking: the tracking column's first
  frame; normal: a gray image; an unselected depth/seg/hand: its own first frame). On a tiny model this moves
  the final latents by up to ~1e-2 against the other convention, so the two are NOT interchangeable;
- ``pam-bench``: zero video latent AND zero first-frame latent, as PAM's training data loader drops a cue
  (``training/dataset.py``).

Loading (:func:`load_transformer`) accepts every official layout (``pam.checkpoint``): the branch and its
block count are read from the weight names, not from config.json.
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

from pam_bench.errors import ArgumentError, InputError

from . import checkpoint as ckpt

#: The official condition slot order of the combination transformer.
CONDITION_SLOTS = ("tracking_maps", "normal_maps", "depth_maps", "seg_masks", "hand_keypoints")
#: pam-bench condition name -> slot name. PAM uses these three; tracking and normal stay zero.
CONDITION_TO_SLOT = {"depth": "depth_maps", "seg": "seg_masks", "hand": "hand_keypoints"}
#: The order in which the official script VAE-encodes the used condition videos.
CONDITIONS_ORDER = ("depth", "seg", "hand")
#: Training-time keep probability of each cue (paper: each cue masked with p=0.2).
KEEP_PROB = 0.8
#: ``_class_name`` values that are this architecture (the official save writes ...Tracking).
COMBINATION_CLASS_NAMES = ("CogVideoXTransformer3DModelTracking", "CogVideoXTransformer3DModelCombination",
                           "PAMCogVideoXTransformer3DModel")
OFFICIAL_CLASS_NAME = "CogVideoXTransformer3DModelTracking"
WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"
WEIGHTS_INDEX_NAME = "diffusion_pytorch_model.safetensors.index.json"
_BRANCH = ("transformer_blocks_copy.", "combine_linears.", "initial_combine_linear.")


class PAMCogVideoXTransformer3DModel(CogVideoXTransformer3DModel):
    """The CogVideoX transformer plus PAM's condition branch (see the module docstring)."""

    def __init__(self, num_tracking_blocks: int = 12, **base_config: Any):
        super().__init__(**base_config)
        n_layers = self.config.num_layers
        if not 0 < num_tracking_blocks <= n_layers:
            raise ArgumentError(f"num_tracking_blocks must be in 1..num_layers={n_layers}, got {num_tracking_blocks}")
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
    """The weight files of a diffusers model folder (see ``pam.checkpoint.weight_files``)."""
    return ckpt.weight_files(directory) or [Path(directory) / WEIGHTS_NAME]


read_bin = ckpt.read_bin


def load_safetensors_dir(directory: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a model folder (safetensors single/sharded, or .bin single/sharded), stored dtypes."""
    sd: dict[str, torch.Tensor] = {}
    for f in weight_files(directory):
        if not f.is_file():
            raise InputError(f, "weight file listed for this model is missing")
        sd.update(ckpt.read_tensors(f, bad="not a readable safetensors file"))
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


def _check_weights_fit(model, sd: dict, directory: Path, has_branch: bool) -> None:
    """The stored tensors against the model config.json builds: the same names (the branch may be absent
    when it is to be initialised) and the same shapes, or one InputError naming the first weight file."""
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = set(shapes) - set(sd)
    if not has_branch:
        missing -= {k for k in shapes if k.startswith(_BRANCH)}
    unexpected = set(sd) - set(shapes)
    f = weight_files(directory)[0]
    if missing or unexpected:
        raise InputError(f, f"weights do not match config.json: {len(missing)} missing "
                            f"(e.g. {sorted(missing)[:2]}), {len(unexpected)} unexpected (e.g. {sorted(unexpected)[:2]})")
    other = sorted(k for k in sd if tuple(sd[k].shape) != shapes[k])
    if other:
        k = other[0]
        raise InputError(f, f"weights do not match config.json: {len(other)} tensor(s) of another shape (e.g. {k} "
                            f"is {list(sd[k].shape)}, the config builds {list(shapes[k])}; sample_height/"
                            "sample_width/num_layers and the other sizes must be the checkpoint's)")


def load_transformer(directory: Path, dtype: torch.dtype | None = None, init_from_base: bool = False,
                     num_tracking_blocks: int = 12) -> tuple[PAMCogVideoXTransformer3DModel, dict]:
    """Load a PAM transformer folder in any official layout (``pam.checkpoint``); returns (model, info).

    The branch is recognised from the weight names, so both the save hook's config
    (``CogVideoXTransformer3DModelTracking`` + ``num_tracking_blocks``) and convert_ckpt.py's plain CogVideoX
    config load; the number of copied blocks is counted from ``transformer_blocks_copy.N.*``.
    ``dtype`` None keeps the stored dtypes (convert_ckpt output: fp32 branch, bf16 frozen weights).
    ``init_from_base`` builds PAM before fine-tuning from a plain CogVideoX transformer (copies of the first
    ``num_tracking_blocks`` main blocks, zero linears); it is refused when the weights hold a branch, which
    would otherwise be silently replaced.
    """
    directory = Path(directory)
    cfg = read_transformer_config(directory)
    sd = load_safetensors_dir(directory)
    branch = ckpt.check_branch(directory, cfg, list(sd))
    if branch.present and init_from_base:
        raise InputError(directory, f"the weights hold PAM's trained condition branch ({branch.blocks} copied "
                                    "blocks); init_from_base would re-initialise it: refused")
    if not branch.present and not init_from_base:
        raise InputError(directory / "config.json",
                         f"_class_name {cfg.get('_class_name', '')!r} is a plain CogVideoX transformer without PAM's "
                         "condition branch (no transformer_blocks_copy.* weights); point it at PAM's motion checkpoint")
    cfg = {**cfg, "num_tracking_blocks": branch.blocks if branch.present else num_tracking_blocks}
    from accelerate import init_empty_weights

    try:
        with init_empty_weights():
            model = transformer_from_config(cfg)
    except ValueError as e:  # ArgumentError (num_tracking_blocks) or diffusers' own config checks
        raise InputError(directory / "config.json", f"does not build a PAM transformer ({e})") from None
    _check_weights_fit(model, sd, directory, branch.present)
    if not branch.present:
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
    info = {"class_name": cfg.get("_class_name", ""), "num_tracking_blocks": model.num_tracking_blocks,
            "init": "checkpoint" if branch.present else "copies-from-base",
            "stored_dtypes": sorted({str(v.dtype).replace("torch.", "") for v in sd.values()})}
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
    def encode_video(self, frames: np.ndarray | torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """uint8 [T,H,W,3] (or a [1, 3, T, H, W] tensor in [-1, 1]) -> scaled latents [1, F, C, h, w]
        (latent_dist.sample() * scaling_factor)."""
        x = frames if isinstance(frames, torch.Tensor) else frames_to_tensor(frames, self.device, self.vae.dtype)
        lat = self.vae.encode(x.to(self.vae.dtype)).latent_dist.sample(generator=generator) * self.scaling_factor
        return lat.permute(0, 2, 1, 3, 4).to(self.dtype)

    def encode_first_frame(self, frame: np.ndarray, n_latent_frames: int,
                           generator: torch.Generator | None) -> torch.Tensor:
        """One uint8 frame -> [1, F, C, h, w]: its latent, then zero padding (the I2V image-latent convention)."""
        return self.encode_first_tensor(frames_to_tensor(frame[None], self.device, self.vae.dtype),
                                        n_latent_frames, generator)

    def encode_first_tensor(self, x: torch.Tensor, n_latent_frames: int,
                            generator: torch.Generator | None) -> torch.Tensor:
        """[1, 3, 1, H, W] in [-1, 1] -> [1, F, C, h, w] (latent_dist.sample * scaling factor, zero padded)."""
        lat = self.vae.encode(x.to(self.vae.dtype)).latent_dist.sample(generator=generator).permute(0, 2, 1, 3, 4)
        lat = lat / self.scaling_factor if self.invert_scale else lat * self.scaling_factor
        pad = lat.new_zeros((1, n_latent_frames - 1, *lat.shape[2:]))
        return torch.cat([lat, pad], dim=1).to(self.dtype)

    def decode(self, latents: torch.Tensor) -> np.ndarray:
        x = self.vae.decode((latents.permute(0, 2, 1, 3, 4) / self.scaling_factor).to(self.vae.dtype)).sample
        x = ((x[0].float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        return x.permute(1, 2, 3, 0).cpu().numpy()

    def condition_inputs(self, conditions: Mapping[str, np.ndarray], selected: Sequence[str],
                         n_latent_frames: int, latent_shape, generator) -> dict[str, torch.Tensor]:
        """protocol 'pam-bench': slot name -> [1, F, 2C, h, w]; an unselected / absent slot is all zeros (a cue
        dropped by training-time dropout: zero video latent AND zero first-frame latent)."""
        out = {}
        for slot in CONDITION_SLOTS:
            name = _name_of(slot)
            if name in selected:
                vid = self.encode_video(conditions[name], generator)
                first = self.encode_first_frame(conditions[name][0], n_latent_frames, generator)
                out[slot] = torch.cat([vid, first], dim=2)
            else:
                out[slot] = torch.zeros((1, n_latent_frames, 2 * latent_shape[2], *latent_shape[3:]),
                                        device=self.device, dtype=self.dtype)
        return out

    def official_inputs(self, first_frame: np.ndarray, conditions: Mapping[str, np.ndarray],
                        selected: Sequence[str], tracking_frame: np.ndarray | None, shape, gen, cond_gen,
                        sim: bool = False):
        """protocol 'official' (testing/evaluation_comb_dexycb.py + CogVideoXImageToVideoPipelineCombination):
        returns (initial latents, image latents, slot inputs).

        - a selected condition's video latent is sampled with ``cond_gen`` (the official script samples it
          from the unseeded global RNG: the one recorded deviation);
        - an unselected condition's video latent is zero, and so are tracking's and normal's, but EVERY slot's
          first frame is still VAE-encoded: depth/seg/hand their condition's first frame, tracking
          ``tracking_frame`` (the tracking column's first frame), normal a gray image (0 in [-1, 1]);
        - ``sim`` (``testing/evaluation_sim.py``): the tracking slot is used (``conditions['tracking']``'s
          video latent) and the normal slot gets the latent of a gray VIDEO instead of zeros;
        - ``gen`` draws in the official order: image latent, initial noise, then per slot (tracking, normal,
          depth, seg, hand) its first-frame latent and one discarded noise draw (``prepare_latents`` again).
        """
        n_lat, (h, w) = shape[1], self.size
        videos = {}
        if sim:  # evaluation_sim.py encodes tracking.mp4 and a gray normal video
            T = conditions["tracking"].shape[0]
            videos["tracking_maps"] = self.encode_video(conditions["tracking"], cond_gen)
            videos["normal_maps"] = self.encode_video(
                torch.zeros((1, 3, T, h, w), device=self.device, dtype=self.vae.dtype), cond_gen)
        videos.update({CONDITION_TO_SLOT[n]: self.encode_video(conditions[n], cond_gen) for n in CONDITIONS_ORDER
                       if n in selected})
        image_latents = self.encode_first_frame(first_frame, n_lat, gen)
        latents = self._noise(shape, gen)
        gray = torch.zeros((1, 3, 1, h, w), device=self.device, dtype=self.vae.dtype)
        out = {}
        for slot in CONDITION_SLOTS:
            if slot == "normal_maps":
                first = self.encode_first_tensor(gray, n_lat, gen)
            elif slot == "tracking_maps":
                if tracking_frame is None:
                    raise ArgumentError("protocol 'official' needs the tracking column's first frame")
                first = self.encode_first_frame(tracking_frame, n_lat, gen)
            else:
                first = self.encode_first_frame(conditions[_name_of(slot)][0], n_lat, gen)
            self._noise(shape, gen)  # prepare_latents(latents=None) draws noise it then discards
            vid = videos.get(slot)
            vid = torch.zeros_like(first) if vid is None else vid
            out[slot] = torch.cat([vid, first], dim=2)
        return latents * self.scheduler.init_noise_sigma, image_latents, out

    def _noise(self, shape, gen) -> torch.Tensor:
        """diffusers' randn_tensor: drawn on the generator's device in the model dtype."""
        return torch.randn(shape, generator=gen, device=gen.device, dtype=self.dtype).to(self.device)

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
                 steps: int = 50, guidance: float = 6.0, use_dynamic_cfg: bool = True, output: str = "uint8",
                 protocol: str = "pam-bench", tracking_frame: np.ndarray | None = None):
        """first_frame uint8 [H,W,3]; conditions name -> uint8 [T,H,W,3] at (self.size, self.num_frames).

        ``protocol``: 'official' or 'sim' (see :meth:`official_inputs`; generator on the run's device, as the
        official scripts') or 'pam-bench' (CPU generator; unselected slots all zero, :meth:`condition_inputs`).
        Returns uint8 [T, H, W, 3] (``output='latent'``: the final latents [1, F, C, h, w], for tests)."""
        h, w = self.size
        T = self.num_frames
        if first_frame.shape[:2] != (h, w):
            raise ArgumentError(f"first frame must be {h}x{w}, got {first_frame.shape[:2]}")
        need = set(selected) | (set(CONDITIONS_ORDER) if protocol in ("official", "sim") else set())
        need |= {"tracking"} if protocol == "sim" else set()
        for n in need:
            if n not in conditions or conditions[n].shape[:3] != (T, h, w):
                got = conditions[n].shape[:3] if n in conditions else "nothing"
                raise ArgumentError(f"condition {n} must be {T}x{h}x{w}, got {got}")
        n_lat = (T - 1) // self.vae_scale_temporal + 1
        c_lat = self.transformer.config.out_channels
        shape = (1, n_lat, c_lat, h // self.vae_scale_spatial, w // self.vae_scale_spatial)
        if protocol in ("official", "sim"):
            gen = torch.Generator(device=self.device).manual_seed(int(seed))
            cond_gen = torch.Generator(device=self.device).manual_seed(int(seed) + 1)
            latents, image_latents, cond = self.official_inputs(first_frame, conditions, selected, tracking_frame,
                                                                shape, gen, cond_gen, sim=protocol == "sim")
        elif protocol == "pam-bench":
            gen = torch.Generator(device="cpu").manual_seed(int(seed))
            latents = torch.randn(shape, generator=gen, dtype=torch.float32).to(self.device, self.dtype)
            latents = latents * self.scheduler.init_noise_sigma
            image_latents = self.encode_first_frame(first_frame, n_lat, gen)
            cond = self.condition_inputs(conditions, selected, n_lat, shape, gen)
        else:
            raise ArgumentError(f"protocol must be 'official', 'sim' or 'pam-bench', got {protocol!r}")
        latents = self._denoise(latents, image_latents, cond, prompt_embeds, negative_prompt_embeds, gen,
                                steps, guidance, use_dynamic_cfg, n_lat, upcast=protocol == "pam-bench")
        return latents if output == "latent" else self.decode(latents)

    def _denoise(self, latents, image_latents, cond, prompt_embeds, negative_prompt_embeds, gen, steps, guidance,
                 use_dynamic_cfg, n_lat, upcast=True):
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
                                                    latents.float() if upcast else latents, generator=gen,
                                                    return_dict=False)  # official: model-dtype latents
            latents = latents.to(self.dtype)
        return latents


def _name_of(slot: str) -> str | None:
    return next((n for n, s in CONDITION_TO_SLOT.items() if s == slot), None)
