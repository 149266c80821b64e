"""``svd-hand`` (InterDyn-style) and ``svd-multi``: Stable Video Diffusion with a ControlNet branch.

The model parts live beside this file: :mod:`baselines.svd_controlnet` (the ControlNet and its loader) and
:mod:`baselines.svd_unet` (the UNet forward with residuals). Facts (rickakkerman/InterDyn: pipeline.py,
utils.py):

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

from pam_bench.errors import InputError, MissingResource, OptionError, require_packages
from pam_bench.options import choice, integer, real
from pam_bench.types import Generator, Sample, Video

from ._common import hand_masks, mask_to_rgb, resize_video, target_shape

from .svd_controlnet import INTERDYN_HOW, load_controlnet
from .svd_unet import unet_with_residuals

SVD_HOW = ("a local diffusers copy of stabilityai/stable-video-diffusion-img2vid (unet/, vae/, image_encoder/, "
           "scheduler/, feature_extractor/); pass -o svd=DIR or place it at $PAM_BENCH_HOME/models/"
           "stable-video-diffusion-img2vid")


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
            raise OptionError(self.name, ", ".join(sorted(options)), f"unknown -o option(s) of method {self.name}")
        choice(self.name, "frames_policy", frames_policy, self.POLICIES)
        choice(self.name, "residual_mode", residual_mode, ("interdyn", "standard"))
        self.device = device
        self.checkpoint = Path(checkpoint) if checkpoint else _default(self.default_dir)
        self.svd_dir = Path(svd) if svd else _default("stable-video-diffusion-img2vid")
        n, i, r = self.name, integer, real
        self.steps, self.guidance, self.min_guidance = i(n, "steps", steps, 1), r(n, "guidance", guidance), r(
            n, "min_guidance", min_guidance)
        self.size = (i(n, "height", height, 8), i(n, "width", width, 8))
        self.native_frames = i(n, "num_frames", num_frames, 1)
        self.fps, self.motion_bucket_id = i(n, "fps", fps, 1), i(n, "motion_bucket_id", motion_bucket_id, 0)
        self.noise_aug = r(n, "noise_aug_strength", noise_aug_strength)
        self.frames_policy, self.residual_mode = frames_policy, residual_mode
        self.conditioning_scale, self.dtype_name = r(n, "conditioning_scale", conditioning_scale), dtype
        self._parts = None
        self._sha: str | None = None

    default_dir: ClassVar[str] = "interdyn"

    # --- resources -----------------------------------------------------------------------------
    def check_ready(self) -> None:
        require_packages("diffusers", "transformers", "safetensors", how="pip install 'pam-bench[models]'")
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

            from pam_bench.hf_offline import hub_offline
            from pam_bench.weights import sha256_file

            from ._diffusers_util import pick_dtype

            self.check_ready()
            dt = pick_dtype(self.device, self.dtype_name, component=self.name)
            net, wf = load_controlnet(self.checkpoint)
            got = tuple(net.config.conditions)
            if got != self.conditions:
                raise InputError(wf, f"controlnet was built for conditions {got}, {self.name} needs {self.conditions}")
            self._sha = sha256_file(wf)
            hub_offline()
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
                "train one or write a tiny one with write_tiny_interdyn(..., conditions=...) in "
                "tests/tiny_baselines.py; "
                "pass --checkpoint DIR or place it at $PAM_BENCH_HOME/models/svd-multi")
