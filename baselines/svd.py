"""``svd-hand`` (InterDyn-style) and ``svd-multi``: Stable Video Diffusion with a ControlNet branch.

Facts (rickakkerman/InterDyn: interdyn/controlnet_sdv.py, unet_spatio_temporal_condition_controlnet.py,
pipeline.py, utils.py; itself from CiaraStrawberry/svd-temporal-controlnet):

- ``ControlNetSDVModel``: a copy of the SVD UNet's conv_in, time/add embeddings, down blocks and mid block;
  a conditioning embedding (conv_in 3->16, then pairs conv3x3 / conv3x3 stride 2 through
  ``conditioning_embedding_out_channels`` (16,32,96,256), SiLU, zero conv_out to block_out_channels[0]) added
  after conv_in; one zero 1x1 conv per skip feature (``controlnet_down_blocks``) and ``controlnet_mid_block``.
  ``ControlNetSDV`` below has the same module names and config keys, so InterDyn's ``controlnet/`` folder
  (config.json + diffusion_pytorch_model.safetensors) loads into it unchanged.
- The UNet adds the residuals INSIDE its down loop: after each down block every skip feature so far gets
  its residual added again, so the residual of block b is added (n_blocks - b) times (conv_in's n times).
  Released weights were trained with that forward: ``residual_mode='interdyn'`` (default) reproduces it,
  ``'standard'`` adds each residual once (diffusers ControlNet convention).
- Pipeline: image [-1,1] + noise_aug 0.02 -> VAE mode (unscaled) repeated over frames and concatenated to
  the latents; CLIP image embedding (antialiased resize to 224, CLIP mean/std); added time ids
  (fps, motion_bucket_id, noise_aug) with fps passed as is (6; diffusers' SVD pipeline subtracts 1, InterDyn
  does not); guidance linear from 1.0 to 3.0 over frames with zero image embeddings and zero image latents
  as the unconditional branch; condition video in [-1,1] (mask 0/1 -> -1/1), same for both CFG halves.
  Native 256x384, 14 frames, fps 6, motion bucket 40, 50 steps (demo).

Protocol adaptation (recorded in identity): frames are resized 480x720 -> 256x384 (same 2:3 aspect, no crop)
and back bilinearly. 49 frames: ``frames_policy='chunked'`` (default) generates 14-frame chunks, the first
from the GT first frame, each next one from the previous chunk's last generated frame with the condition
frames that follow (1-frame overlap, condition frames past the end repeat the last one), so 14+13+13+13 = 53
frames cover 49; ``'resample'`` generates one chunk on 14 condition frames spread evenly over the clip and
fills the others by linear blending of the two nearest generated frames.

``svd-multi`` (PAM supplementary Table 6: SVD with the same three conditions as PAM): the same ControlNet with
one conditioning embedding per condition (depth, seg, hand keypoints; RGB in [-1,1]) whose outputs are summed
after conv_in. No weights are public; a checkpoint folder in our layout (``controlnet/`` with
``conditions`` in its config) is required.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from pam_bench.errors import InputError, MissingResource
from pam_bench.types import Generator, Sample, Video

from ._common import hand_masks, mask_to_rgb, resize_video, target_shape

SVD_HOW = ("a local diffusers copy of stabilityai/stable-video-diffusion-img2vid (unet/, vae/, image_encoder/, "
           "scheduler/, feature_extractor/); pass -o svd=DIR or place it at $PAM_BENCH_HOME/models/"
           "stable-video-diffusion-img2vid")
INTERDYN_HOW = ("InterDyn's released controlnet (huggingface rickakkerman/InterDyn, folder controlnet/ with "
                "config.json + diffusion_pytorch_model.safetensors, non-commercial licence); "
                "pass --checkpoint DIR (the folder holding controlnet/) or place it at $PAM_BENCH_HOME/models/interdyn")


def _build_controlnet_class():
    """Define ControlNetSDV lazily (diffusers is heavy and must not load at CLI start-up)."""
    import torch
    from diffusers.configuration_utils import ConfigMixin, register_to_config
    from diffusers.models.embeddings import TimestepEmbedding, Timesteps
    from diffusers.models.modeling_utils import ModelMixin
    from diffusers.models.unets.unet_3d_blocks import UNetMidBlockSpatioTemporal, get_down_block
    from torch import nn

    def zero(m):
        for p in m.parameters():
            nn.init.zeros_(p)
        return m

    class CondEmbedding(nn.Module):
        """InterDyn's ControlNetConditioningEmbeddingSVD (same parameter names)."""

        def __init__(self, out_channels: int, in_channels: int, channels: tuple[int, ...]):
            super().__init__()
            self.conv_in = nn.Conv2d(in_channels, channels[0], 3, padding=1)
            self.blocks = nn.ModuleList()
            for a, b in zip(channels[:-1], channels[1:]):
                self.blocks.append(nn.Conv2d(a, a, 3, padding=1))
                self.blocks.append(nn.Conv2d(a, b, 3, padding=1, stride=2))
            self.conv_out = zero(nn.Conv2d(channels[-1], out_channels, 3, padding=1))

        def forward(self, x):  # [B, F, C, H, W]
            x = x.flatten(0, 1)
            x = torch.nn.functional.silu(self.conv_in(x))
            for blk in self.blocks:
                x = torch.nn.functional.silu(blk(x))
            return self.conv_out(x)

    class ControlNetSDV(ModelMixin, ConfigMixin):
        """ControlNet for the SVD UNet, key- and config-compatible with InterDyn's ControlNetSDVModel.

        ``conditions``: one conditioning embedding per condition video, summed (our extension for svd-multi);
        the first keeps InterDyn's name ``controlnet_cond_embedding``, the others are ``extra_cond_embeddings.i``.
        """

        @register_to_config
        def __init__(self, sample_size=None, in_channels: int = 8, out_channels: int = 4,
                     down_block_types=("CrossAttnDownBlockSpatioTemporal",) * 3 + ("DownBlockSpatioTemporal",),
                     up_block_types=("UpBlockSpatioTemporal",) + ("CrossAttnUpBlockSpatioTemporal",) * 3,
                     block_out_channels=(320, 640, 1280, 1280), addition_time_embed_dim: int = 256,
                     projection_class_embeddings_input_dim: int = 768, layers_per_block=2,
                     cross_attention_dim=1024, transformer_layers_per_block=1, num_attention_heads=(5, 10, 10, 20),
                     num_frames: int = 25, conditioning_channels: int = 3,
                     conditioning_embedding_out_channels=(16, 32, 96, 256), conditions=("hand",)):
            super().__init__()
            n = len(down_block_types)
            heads = (num_attention_heads,) * n if isinstance(num_attention_heads, int) else num_attention_heads
            cross = (cross_attention_dim,) * n if isinstance(cross_attention_dim, int) else cross_attention_dim
            layers = [layers_per_block] * n if isinstance(layers_per_block, int) else layers_per_block
            tlayers = ([transformer_layers_per_block] * n if isinstance(transformer_layers_per_block, int)
                       else transformer_layers_per_block)
            c0 = block_out_channels[0]
            temb = c0 * 4
            self.conv_in = nn.Conv2d(in_channels, c0, 3, padding=1)
            self.time_proj = Timesteps(c0, True, downscale_freq_shift=0)
            self.time_embedding = TimestepEmbedding(c0, temb)
            self.add_time_proj = Timesteps(addition_time_embed_dim, True, downscale_freq_shift=0)
            self.add_embedding = TimestepEmbedding(projection_class_embeddings_input_dim, temb)
            ch = tuple(conditioning_embedding_out_channels)
            self.controlnet_cond_embedding = CondEmbedding(c0, conditioning_channels, ch)
            self.extra_cond_embeddings = nn.ModuleList(
                CondEmbedding(c0, conditioning_channels, ch) for _ in range(len(conditions) - 1))
            self.down_blocks = nn.ModuleList()
            self.controlnet_down_blocks = nn.ModuleList([zero(nn.Conv2d(c0, c0, 1))])
            out_ch = c0
            for i, kind in enumerate(down_block_types):
                in_ch, out_ch = out_ch, block_out_channels[i]
                last = i == n - 1
                self.down_blocks.append(get_down_block(
                    kind, num_layers=layers[i], transformer_layers_per_block=tlayers[i], in_channels=in_ch,
                    out_channels=out_ch, temb_channels=temb, add_downsample=not last, resnet_eps=1e-5,
                    cross_attention_dim=cross[i], num_attention_heads=heads[i], resnet_act_fn="silu"))
                for _ in range(layers[i] + (0 if last else 1)):
                    self.controlnet_down_blocks.append(zero(nn.Conv2d(out_ch, out_ch, 1)))
            self.controlnet_mid_block = zero(nn.Conv2d(block_out_channels[-1], block_out_channels[-1], 1))
            self.mid_block = UNetMidBlockSpatioTemporal(
                block_out_channels[-1], temb_channels=temb, transformer_layers_per_block=tlayers[-1],
                cross_attention_dim=cross[-1], num_attention_heads=heads[-1])

        @classmethod
        def from_unet(cls, unet, conditions=("hand",), conditioning_embedding_out_channels=(16, 32, 96, 256)):
            c = unet.config
            net = cls(in_channels=c.in_channels, down_block_types=c.down_block_types,
                      block_out_channels=c.block_out_channels, addition_time_embed_dim=c.addition_time_embed_dim,
                      transformer_layers_per_block=c.transformer_layers_per_block,
                      cross_attention_dim=c.cross_attention_dim, num_attention_heads=c.num_attention_heads,
                      num_frames=c.num_frames, sample_size=c.sample_size, layers_per_block=c.layers_per_block,
                      projection_class_embeddings_input_dim=c.projection_class_embeddings_input_dim,
                      conditioning_embedding_out_channels=tuple(conditioning_embedding_out_channels),
                      conditions=tuple(conditions))
            for name in ("conv_in", "time_embedding", "add_embedding", "down_blocks", "mid_block"):
                getattr(net, name).load_state_dict(getattr(unet, name).state_dict())
            return net

        def embed(self, sample, timestep, added_time_ids):
            b, f = sample.shape[:2]
            t = timestep if torch.is_tensor(timestep) else torch.tensor([timestep], device=sample.device)
            t = t.reshape(-1)[:1].to(sample.device).expand(b)
            emb = self.time_embedding(self.time_proj(t).to(sample.dtype))
            add = self.add_time_proj(added_time_ids.flatten()).reshape(b, -1).to(emb.dtype)
            return (emb + self.add_embedding(add)).repeat_interleave(f, dim=0)

        def forward(self, sample, timestep, encoder_hidden_states, added_time_ids, controlnet_cond,
                    conditioning_scale: float = 1.0):
            """``controlnet_cond``: list of [B, F, 3, H, W] videos, one per condition (in config order)."""
            b, f = sample.shape[:2]
            emb = self.embed(sample, timestep, added_time_ids)
            ehs = encoder_hidden_states.repeat_interleave(f, dim=0)
            x = self.conv_in(sample.flatten(0, 1))
            embeds = [self.controlnet_cond_embedding, *self.extra_cond_embeddings]
            if len(controlnet_cond) != len(embeds):
                raise ValueError(f"expected {len(embeds)} condition videos, got {len(controlnet_cond)}")
            for e, c in zip(embeds, controlnet_cond):
                x = x + e(c)
            ind = torch.zeros(b, f, dtype=x.dtype, device=x.device)
            x, res = down_pass(self.down_blocks, x, emb, ehs, ind)
            x = self.mid_block(hidden_states=x, temb=emb, encoder_hidden_states=ehs, image_only_indicator=ind)
            down = [blk(r) * conditioning_scale for r, blk in zip(res, self.controlnet_down_blocks)]
            return down, self.controlnet_mid_block(x) * conditioning_scale

    return ControlNetSDV


_CLASS = None


def __getattr__(name: str):
    """``baselines.svd.ControlNetSDV`` is built on first access (keeps diffusers out of plain imports)."""
    global _CLASS
    if name == "ControlNetSDV":
        if _CLASS is None:
            _CLASS = _build_controlnet_class()
        return _CLASS
    raise AttributeError(name)


def down_pass(blocks, x, emb, ehs, ind, after_block=None):
    """The spatio-temporal down blocks of SVD's UNet (and its ControlNet copy): returns the hidden state and
    the tuple of skip residuals; ``after_block(res)`` may rewrite the residuals after each block."""
    res = (x,)
    for blk in blocks:
        if getattr(blk, "has_cross_attention", False):
            x, r = blk(hidden_states=x, temb=emb, encoder_hidden_states=ehs, image_only_indicator=ind)
        else:
            x, r = blk(hidden_states=x, temb=emb, image_only_indicator=ind)
        res += r
        if after_block is not None:
            res = after_block(res)
    return x, res


def unet_with_residuals(unet, sample, timestep, encoder_hidden_states, added_time_ids, down_res, mid_res,
                        residual_mode: str = "interdyn"):
    """The SVD UNet forward with ControlNet residuals (InterDyn's UNetSpatioTemporalConditionControlNetModel)."""
    import torch

    b, f = sample.shape[:2]
    t = timestep if torch.is_tensor(timestep) else torch.tensor([timestep], device=sample.device)
    t = t.reshape(-1)[:1].to(sample.device).expand(b)
    emb = unet.time_embedding(unet.time_proj(t).to(sample.dtype))
    add = unet.add_time_proj(added_time_ids.flatten()).reshape(b, -1).to(emb.dtype)
    emb = (emb + unet.add_embedding(add)).repeat_interleave(f, dim=0)
    ehs = encoder_hidden_states.repeat_interleave(f, dim=0)
    x = unet.conv_in(sample.flatten(0, 1))
    ind = torch.zeros(b, f, dtype=x.dtype, device=x.device)

    def readd(res):  # InterDyn re-adds the residuals after every down block, as in the released code
        return tuple(a + d for a, d in zip(res, down_res)) + res[len(down_res):]

    x, res = down_pass(unet.down_blocks, x, emb, ehs, ind, readd if residual_mode == "interdyn" else None)
    if residual_mode == "standard":
        res = tuple(a + d for a, d in zip(res, down_res))
    x = unet.mid_block(hidden_states=x, temb=emb, encoder_hidden_states=ehs, image_only_indicator=ind) + mid_res
    for blk in unet.up_blocks:
        r, res = res[-len(blk.resnets):], res[:-len(blk.resnets)]
        if getattr(blk, "has_cross_attention", False):
            x = blk(hidden_states=x, temb=emb, res_hidden_states_tuple=r, encoder_hidden_states=ehs,
                    image_only_indicator=ind)
        else:
            x = blk(hidden_states=x, temb=emb, res_hidden_states_tuple=r, image_only_indicator=ind)
    x = unet.conv_out(unet.conv_act(unet.conv_norm_out(x)))
    return x.reshape(b, f, *x.shape[1:])


def load_controlnet(root: Path):
    """An InterDyn-layout controlnet folder (``root/controlnet`` or ``root`` itself) -> ControlNetSDV."""
    import json

    from safetensors.torch import load_file

    d = root / "controlnet" if (root / "controlnet").is_dir() else root
    cfg_f, w_f = d / "config.json", d / "diffusion_pytorch_model.safetensors"
    for f in (cfg_f, w_f):
        if not f.is_file():
            raise MissingResource(f"controlnet file {f.name} (looked in {d})", INTERDYN_HOW)
    cfg = {k: v for k, v in json.loads(cfg_f.read_text()).items() if not k.startswith("_")}
    cls = __getattr__("ControlNetSDV")
    import inspect

    known = set(inspect.signature(cls.__init__).parameters)
    unknown = sorted(set(cfg) - known)
    if unknown:
        raise InputError(cfg_f, f"unknown ControlNetSDV config keys {unknown}")
    net = cls(**cfg)
    sd = load_file(str(w_f))
    missing, unexpected = net.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise InputError(w_f, f"does not match the config: missing {missing[:3]}, unexpected {unexpected[:3]}")
    return net, w_f


def _default(name: str) -> Path:
    from pam_bench.weights import home

    return home() / "models" / name


def _uint8_to_tensor(frames: np.ndarray):
    import torch

    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


class _SVDControlBase(Generator):
    """Shared SVD + ControlNet sampling; subclasses say which condition videos feed the ControlNet."""

    needs: ClassVar[tuple[str, ...]] = ("first_frame", "conditions")
    conditions: ClassVar[tuple[str, ...]] = ("hand",)
    #: True: the 'hand' input is the binary hand mask (from seg); False: the hand-keypoint video.
    hand_as_mask: ClassVar[bool] = True
    POLICIES = ("chunked", "resample")

    def __init__(self, device: str = "cpu", checkpoint=None, steps: int = 50, guidance: float = 3.0,
                 min_guidance: float = 1.0, svd=None, height: int = 256, width: int = 384, num_frames: int = 14,
                 fps: int = 6, motion_bucket_id: int = 40, noise_aug_strength: float = 0.02,
                 frames_policy: str = "chunked", residual_mode: str = "interdyn", conditioning_scale: float = 1.0,
                 dtype: str = "auto", **options: Any):
        if options:
            raise InputError("options", f"{self.name} does not know {', '.join(sorted(options))}")
        if frames_policy not in self.POLICIES:
            raise InputError("frames_policy", f"unknown policy {frames_policy!r}; use {' or '.join(self.POLICIES)}")
        if residual_mode not in ("interdyn", "standard"):
            raise InputError("residual_mode", f"unknown {residual_mode!r}; use interdyn or standard")
        self.device = device
        self.checkpoint = Path(checkpoint) if checkpoint else _default(self.default_dir)
        self.svd_dir = Path(svd) if svd else _default("stable-video-diffusion-img2vid")
        self.steps, self.guidance, self.min_guidance = int(steps), float(guidance), float(min_guidance)
        self.size, self.native_frames = (int(height), int(width)), int(num_frames)
        self.fps, self.motion_bucket_id, self.noise_aug = int(fps), int(motion_bucket_id), float(noise_aug_strength)
        self.frames_policy, self.residual_mode = frames_policy, residual_mode
        self.conditioning_scale, self.dtype_name = float(conditioning_scale), dtype
        self._parts = None
        self._sha: str | None = None

    default_dir: ClassVar[str] = "interdyn"

    # --- resources -----------------------------------------------------------------------------
    def check_ready(self) -> None:
        import importlib.util

        for pkg in ("diffusers", "transformers", "safetensors"):
            if importlib.util.find_spec(pkg) is None:
                raise MissingResource(f"python package '{pkg}'", "pip install 'pam-bench[models]'")
        for sub in ("unet", "vae", "image_encoder", "scheduler", "feature_extractor"):
            if not (self.svd_dir / sub).is_dir():
                raise MissingResource(f"SVD base model part '{sub}/' (looked in {self.svd_dir})", SVD_HOW)
        d = self.checkpoint / "controlnet" if (self.checkpoint / "controlnet").is_dir() else self.checkpoint
        if not (d / "diffusion_pytorch_model.safetensors").is_file():
            raise MissingResource(f"{self.name} controlnet weights (looked in {d})", self.checkpoint_how())

    def checkpoint_how(self) -> str:
        return INTERDYN_HOW

    def _load(self):
        if self._parts is None:
            from diffusers import (AutoencoderKLTemporalDecoder, EulerDiscreteScheduler,
                                   UNetSpatioTemporalConditionModel)
            from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

            from pam_bench.weights import sha256_file

            from ._diffusers_util import pick_dtype

            self.check_ready()
            dt = pick_dtype(self.device, self.dtype_name)
            net, wf = load_controlnet(self.checkpoint)
            got = tuple(net.config.conditions)
            if got != self.conditions:
                raise InputError(wf, f"controlnet was built for conditions {got}, {self.name} needs {self.conditions}")
            self._sha = sha256_file(wf)
            p = {"controlnet": net,
                 "unet": UNetSpatioTemporalConditionModel.from_pretrained(self.svd_dir / "unet"),
                 "vae": AutoencoderKLTemporalDecoder.from_pretrained(self.svd_dir / "vae"),
                 "image_encoder": CLIPVisionModelWithProjection.from_pretrained(self.svd_dir / "image_encoder"),
                 "scheduler": EulerDiscreteScheduler.from_pretrained(self.svd_dir / "scheduler"),
                 "feature_extractor": CLIPImageProcessor.from_pretrained(self.svd_dir / "feature_extractor")}
            for k in ("controlnet", "unet", "vae", "image_encoder"):
                p[k].to(device=self.device, dtype=dt).eval().requires_grad_(False)
            p["dtype"] = dt
            self._parts = p
        return self._parts

    def identity(self) -> dict[str, Any]:
        if self._sha is None:
            d = self.checkpoint / "controlnet" if (self.checkpoint / "controlnet").is_dir() else self.checkpoint
            f = d / "diffusion_pytorch_model.safetensors"
            if f.is_file():
                from pam_bench.weights import sha256_file

                self._sha = sha256_file(f)
        svd_sha = None
        for name in ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors"):
            f = self.svd_dir / "unet" / name
            if f.is_file():
                from pam_bench.weights import sha256_file

                svd_sha = sha256_file(f)
                break
        return {"name": self.name, "conditions": list(self.conditions), "controlnet_sha256": self._sha,
                "svd_unet_sha256": svd_sha, "native_resolution": list(self.size), "native_frames": self.native_frames,
                "frames_policy": self.frames_policy, "resize": "stretch (same 2:3 aspect as 480x720), bilinear back",
                "steps": self.steps, "guidance": [self.min_guidance, self.guidance], "fps_id": self.fps,
                "motion_bucket_id": self.motion_bucket_id, "noise_aug_strength": self.noise_aug,
                "residual_mode": self.residual_mode, "conditioning_scale": self.conditioning_scale,
                "dtype": self.dtype_name if self.dtype_name != "auto" else
                ("bf16" if str(self.device).startswith("cuda") else "fp32"),
                "seed_policy": "one CPU torch.Generator per video seeded with the per-sample seed, chunks in order"}

    # --- conditions ----------------------------------------------------------------------------
    def condition_videos(self, sample: Sample, t: int) -> list[np.ndarray]:
        """uint8 [T, h, w, 3] per condition at the native size."""
        out = []
        for name in self.conditions:
            if name == "hand" and self.hand_as_mask:
                fr = mask_to_rgb(hand_masks(sample)[:t])
                out.append(resize_video(fr, self.size, nearest=True))
                continue
            v = sample.conditions.get(name)
            if v is None:
                raise InputError(sample.id, f"{self.name} needs the '{name}' condition video")
            out.append(resize_video(v.frames[:t], self.size))
        return out

    # --- sampling ------------------------------------------------------------------------------
    def _chunk(self, image: np.ndarray, conds: list[np.ndarray], generator) -> np.ndarray:
        """One native clip: image uint8 [h,w,3], conds uint8 [F,h,w,3] each -> uint8 [F,h,w,3]."""
        import torch
        from diffusers.pipelines.stable_video_diffusion.pipeline_stable_video_diffusion import (
            _append_dims, _resize_with_antialiasing)

        from ._diffusers_util import randn

        p = self._load()
        dev, dt = self.device, p["dtype"]
        vae, enc, fe, unet, net = p["vae"], p["image_encoder"], p["feature_extractor"], p["unet"], p["controlnet"]
        sched = p["scheduler"]
        f = conds[0].shape[0]
        with torch.no_grad():
            img = _uint8_to_tensor(image[None]).to(dev)  # [1,3,h,w] in [-1,1]
            size = enc.config.image_size
            x = (_resize_with_antialiasing(img, (size, size)) + 1.0) / 2.0
            mean = torch.tensor(fe.image_mean, device=dev).view(1, 3, 1, 1)
            std = torch.tensor(fe.image_std, device=dev).view(1, 3, 1, 1)
            emb = enc(((x - mean) / std).to(dt)).image_embeds.unsqueeze(1)
            emb = torch.cat([torch.zeros_like(emb), emb])
            noisy = img + self.noise_aug * randn(img.shape, generator, dev, torch.float32)
            lat_img = vae.encode(noisy.to(dt)).latent_dist.mode()
            lat_img = torch.cat([torch.zeros_like(lat_img), lat_img]).unsqueeze(1).repeat(1, f, 1, 1, 1)
            ids = torch.tensor([[self.fps, self.motion_bucket_id, self.noise_aug]], device=dev, dtype=dt).repeat(2, 1)
            sched.set_timesteps(self.steps, device=dev)
            h, w = self.size
            scale = 2 ** (len(vae.config.block_out_channels) - 1)
            lat = randn((1, f, 4, h // scale, w // scale), generator, dev, torch.float32) * sched.init_noise_sigma
            cond = [_uint8_to_tensor(c).unsqueeze(0).to(dev, dt) for c in conds]
            cond = [torch.cat([c, c]) for c in cond]
            g = torch.linspace(self.min_guidance, self.guidance, f, device=dev).unsqueeze(0)
            g = _append_dims(g, lat.ndim)
            for t in sched.timesteps:
                inp = sched.scale_model_input(torch.cat([lat, lat]), t)
                inp = torch.cat([inp.to(dt), lat_img], dim=2)
                down, mid = net(inp, t, emb, ids, cond, self.conditioning_scale)
                eps = unet_with_residuals(unet, inp, t, emb, ids, down, mid, self.residual_mode).float()
                e_u, e_c = eps.chunk(2)
                lat = sched.step(e_u + g * (e_c - e_u), t, lat).prev_sample
            z = (lat / vae.config.scaling_factor).flatten(0, 1).to(dt)
            frames = vae.decode(z, num_frames=f).sample.float()
        return ((frames.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()

    def generate(self, sample: Sample, seed: int) -> Video:
        from ._diffusers_util import torch_generator

        t, h, w = target_shape(sample)
        conds = self.condition_videos(sample, t)
        first = resize_video(sample.first_frame[None], self.size)[0]
        gen = torch_generator(seed, self.device)
        n = self.native_frames
        if self.frames_policy == "chunked":
            frames = [first]
            start = 0
            while len(frames) < t:
                idx = np.minimum(np.arange(start, start + n), t - 1)
                clip = self._chunk(frames[-1], [c[idx] for c in conds], gen)
                frames.extend(clip[1:])
                start += n - 1
            native = np.stack(frames[:t])
        else:
            idx = np.round(np.linspace(0, t - 1, n)).astype(int)
            clip = self._chunk(first, [c[idx] for c in conds], gen)
            native = _blend(clip, idx, t)
        out = resize_video(native, (h, w))
        out[0] = sample.first_frame
        fps = sample.video.fps if sample.video is not None else next(iter(sample.conditions.values())).fps
        return Video(np.ascontiguousarray(out, dtype=np.uint8), fps)


def _blend(clip: np.ndarray, idx: np.ndarray, t: int) -> np.ndarray:
    """Frames at integer times ``idx`` -> all t frames by linear blending of the two nearest."""
    out = np.empty((t,) + clip.shape[1:], dtype=np.uint8)
    for i in range(t):
        j = int(np.clip(np.searchsorted(idx, i, side="right") - 1, 0, len(idx) - 1))
        if j == len(idx) - 1 or idx[j] == i:
            out[i] = clip[j]
        else:
            a = (i - idx[j]) / (idx[j + 1] - idx[j])
            out[i] = np.round((1 - a) * clip[j] + a * clip[j + 1]).astype(np.uint8)
    return out


class SVDHand(_SVDControlBase):
    """InterDyn-style: SVD + ControlNet on the binary hand-mask video."""

    name: ClassVar[str] = "svd-hand"
    conditions: ClassVar[tuple[str, ...]] = ("hand",)
    default_dir: ClassVar[str] = "interdyn"


class SVDMulti(_SVDControlBase):
    """SVD + ControlNet on depth, seg and hand-keypoint videos (three embeddings summed)."""

    name: ClassVar[str] = "svd-multi"
    conditions: ClassVar[tuple[str, ...]] = ("depth", "seg", "hand")
    hand_as_mask: ClassVar[bool] = False
    default_dir: ClassVar[str] = "svd-multi"

    def checkpoint_how(self) -> str:
        return ("an SVD-multi controlnet folder in pam-bench's layout (controlnet/config.json with "
                "conditions [depth, seg, hand] + diffusion_pytorch_model.safetensors); no weights are public, "
                "train one or write a tiny one with baselines.tiny.write_tiny_interdyn(..., conditions=...); "
                "pass --checkpoint DIR or place it at $PAM_BENCH_HOME/models/svd-multi")
