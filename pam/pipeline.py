"""The PAM pipeline: load the resolved parts once, then Stage II (first frame) and Stage III (video).

Sizes: a checkpoint runs at its native size, read from the Stage III transformer config (the learned
positional embedding of CogVideoX-5B-I2V fixes 480x720; its ``sample_frames`` is 49). Inputs at another
size are adapted at the edges only (:func:`to_internal` / :func:`from_internal`): conditions are resized
with nearest-neighbour (they are label-like images) and the first frame bilinearly; frames are picked by
nearest index. With a real checkpoint and protocol clips (49 x 480 x 720) both are the identity.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch

from pam_bench.errors import ArgumentError, InputError, MissingResource, OptionError
from pam_bench.hf_offline import hub_offline
from pam_bench.video import resize_frames

from . import checkpoint as ckpt


def resolve_dtype(dtype: str, device: str) -> torch.dtype:
    """'auto' -> bf16 on CUDA, fp32 elsewhere; or 'fp32' / 'bf16' / 'fp16'."""
    table = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16,
             "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16}
    if dtype == "auto":
        return torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32
    if dtype not in table:
        raise OptionError("pam", "dtype", f"must be auto, fp32, bf16 or fp16, got {dtype!r}")
    return table[dtype]


def frame_indices(n_src: int, n_dst: int) -> np.ndarray:
    """Nearest-index resampling of n_src frames to n_dst (identity when equal)."""
    if n_src == n_dst:
        return np.arange(n_dst)
    return np.rint(np.linspace(0, n_src - 1, n_dst)).astype(int)


def to_internal(frames: np.ndarray, n: int, size: tuple[int, int], nearest: bool) -> np.ndarray:
    fr = frames[frame_indices(len(frames), n)]
    return fr if fr.shape[1:3] == tuple(size) else resize_frames(fr, size, nearest=nearest)


def from_internal(frames: np.ndarray, n: int, size: tuple[int, int]) -> np.ndarray:
    fr = frames[frame_indices(len(frames), n)]
    return fr if fr.shape[1:3] == tuple(size) else resize_frames(fr, size)


@dataclass
class Prompt:
    prompt_embeds: torch.Tensor
    negative_prompt_embeds: torch.Tensor | None


class PAMPipeline:
    """Stage II + Stage III from the resolved parts (``pam.checkpoint.resolve``; a folder path is resolved)."""

    #: optional ``callable(stage_name) -> context manager`` around each stage (pam_bench.stagebench timing)
    stage_timer = None

    def stage(self, name: str):
        return self.stage_timer(name) if self.stage_timer is not None else contextlib.nullcontext()

    def __init__(self, parts, mode: str = "i2v", device: str = "cpu", dtype: torch.dtype = torch.float32,
                 offload: bool = False, vae_tiling: bool = False, compile: bool = False, protocol: str = "pam-bench",
                 shared_prompt: bool = False, prompt: str | None = None, base=None):
        from diffusers import AutoencoderKLCogVideoX, CogVideoXDPMScheduler

        from . import stage3_motion as s3

        if not isinstance(parts, ckpt.Parts):  # clear errors before any loading
            parts = ckpt.resolve(parts, base, mode, need_text=bool(prompt))
        self.parts, self.root, self.mode, self.protocol = parts, parts.home, mode, protocol
        self.shared_prompt, self.prompt_text = shared_prompt, prompt
        hub_offline()
        self.device, self.dtype, self.offload = torch.device(device), dtype, offload
        self.home = torch.device("cpu") if offload else self.device
        tr, self.transformer_info = s3.load_transformer(parts.transformer, dtype=dtype)
        vae = AutoencoderKLCogVideoX.from_pretrained(parts.vae, torch_dtype=dtype)
        if vae_tiling:
            vae.enable_tiling()
            vae.enable_slicing()
        sched = CogVideoXDPMScheduler.from_pretrained(parts.scheduler)
        self.motion = s3.MotionPipeline(tr.to(self.home), vae.to(self.home).eval(), sched, self.device, dtype,
                                        compile=compile)
        self.appearance = self._load_flux() if mode == "full" else None
        m = 2 * self.appearance.vae_scale if self.appearance is not None else 1
        if self.size[0] % m or (protocol == "pam-bench" and self.size[1] % m):  # official: stage2_size rounds w
            raise InputError(parts.transformer / "config.json", f"sample size {self.size[0]}x{self.size[1]}: Stage II "
                                                                f"(FLUX) needs sizes divisible by {m}")
        self._t5 = None

    def _load_flux(self):
        from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel

        from . import stage2_appearance as s2

        f = self.parts.flux
        tr = FluxTransformer2DModel.from_pretrained(f / "transformer", torch_dtype=self.dtype).eval()
        vae = AutoencoderKL.from_pretrained(f / "vae", torch_dtype=self.dtype).eval()
        sched = FlowMatchEulerDiscreteScheduler.from_pretrained(f / "scheduler")
        n1, n2 = s2.load_double_controlnet(ckpt.controlnet_file(f), dict(tr.config), self.dtype)
        mods = [m.to(self.home) for m in (tr, vae, n1, n2)]
        return s2.AppearancePipeline(mods[0], mods[1], sched, mods[2], mods[3], self.device, self.dtype)

    # -- properties
    @property
    def size(self) -> tuple[int, int]:
        return self.motion.size

    @property
    def num_frames(self) -> int:
        return self.motion.num_frames

    # -- offload: whole models move to the device only while they run
    @contextlib.contextmanager
    def _on_device(self, *modules):
        if not self.offload:
            yield
            return
        for m in modules:
            m.to(self.device)
        try:
            yield
        finally:
            for m in modules:
                m.to("cpu")
            if self.device.type == "cuda":
                torch.cuda.empty_cache()

    # -- prompts
    def _encoder(self):
        if self._t5 is None:
            from .prompts import T5PromptEncoder

            p = self.parts
            if p.text_encoder is None or p.tokenizer is None:
                raise MissingResource("CogVideoX-5B-I2V text_encoder/ and tokenizer/ (to encode prompt text)",
                                      ckpt.BASE_HOW)
            self._t5 = T5PromptEncoder(p.text_encoder, p.tokenizer, ckpt.encoder_hash(p), self.device, self.dtype,
                                       int(self.motion.transformer.config.max_text_seq_length))
        return self._t5

    def _from_text(self, text: str) -> Prompt:
        from .prompts import NEGATIVE_PROMPT

        enc = self._encoder()
        return Prompt(enc(text), enc(NEGATIVE_PROMPT))

    def _from_file(self, f: Path) -> Prompt:
        sd = ckpt.read_tensors(f, bad="not a readable prompt embedding file")
        if not {"prompt_embeds", "negative_prompt_embeds"} <= set(sd):
            raise InputError(f, "needs 'prompt_embeds' and 'negative_prompt_embeds' tensors [1, L, D]")
        return Prompt(sd["prompt_embeds"], sd["negative_prompt_embeds"])

    def prompt(self, sample_id: str | None = None, caption: str | None = None,
               captions_file: Path | None = None) -> Prompt:
        """This clip's prompt: its caption (encoded), else its precomputed embeddings, else the shared prompt
        (refused by protocol 'official' unless ``shared_prompt``). ``captions_file``: the caption file that was
        searched for this clip (named when it holds no caption for it)."""
        p = self.parts
        source = None
        if caption:
            out = self._from_text(caption)
        elif sample_id and p.clip_embeds is not None and (p.clip_embeds / f"{sample_id}.safetensors").is_file():
            source = p.clip_embeds / f"{sample_id}.safetensors"
            out = self._from_file(source)
        else:
            if self.protocol == "official" and not self.shared_prompt:
                why = ("the official protocol prompts every clip with its own caption; add it, or pass "
                       "-o shared_prompt=true to run with one shared prompt")
                if captions_file is not None:
                    raise InputError(captions_file, f"has no caption for clip {sample_id}: {why}")
                raise OptionError("pam", "prompts", f"clip {sample_id} has no caption: {why}; pass -o prompts="
                                  "CAPTIONS.jsonl (gen_prompt.py format, e.g. dexycb_prompt.jsonl)")
            if self.prompt_text:
                out = self._from_text(self.prompt_text)
            elif p.shared_embeds is not None:
                source = p.shared_embeds
                out = self._from_file(source)
            else:
                raise OptionError("pam", "prompt", f"clip {sample_id} has no prompt: pass -o prompts="
                                  "CAPTIONS.jsonl, -o prompt=TEXT, or put prompt_embeds.safetensors next to "
                                  "transformer/")
        want = self.motion.transformer.config.text_embed_dim
        if out.prompt_embeds.ndim != 3 or out.prompt_embeds.shape[-1] != want:
            where = source if source is not None else f"the T5 encoder in {p.text_encoder}"
            raise InputError(where, f"prompt embeddings {tuple(out.prompt_embeds.shape)}; the transformer "
                                    f"expects [1, L, {want}]")
        return out

    def flux_prompt(self, sample_id: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The clip's FLUX prompt embeddings: ``flux/prompt_embeds/<clip id>.safetensors`` when there is one,
        else the shared ``flux/prompt_embeds.safetensors``."""
        f = ckpt.flux_prompt_file(self.parts.flux, sample_id)
        sd = ckpt.read_tensors(f, bad="not a readable prompt embedding file")
        if not {"prompt_embeds", "pooled_prompt_embeds"} <= set(sd):
            raise InputError(f, "needs 'prompt_embeds' and 'pooled_prompt_embeds'")
        return sd["prompt_embeds"], sd["pooled_prompt_embeds"]

    # -- stages
    def first_frame(self, conditions: Mapping[str, np.ndarray], seed: int, normals: np.ndarray | None = None,
                    sample_id: str | None = None) -> np.ndarray:
        """Stage II: the first frame from the conditions' first frames (returned at the internal size).

        protocol 'official': generated at ``stage2_official.stage2_size`` (480x640 for 480x720), conditions
        nearest-resized to it, then the image stretched to the internal size with PIL's Lanczos (the
        VaeImageProcessor resize evaluation_sim.py applies to the selected first frame). Normals: ``normals``,
        else a ``conditions['normal']`` video (masked to 0, i.e. -1, where the depth condition is black), else
        estimated from the depth condition (the recorded fallback)."""
        from . import stage2_appearance as s2
        from .stage2_official import stage2_size

        if self.appearance is None:
            raise ArgumentError("Stage II needs mode='full' (a checkpoint with flux/)")
        missing = [n for n in ("depth", "seg", "hand") if n not in conditions]
        if missing:
            raise ArgumentError(f"Stage II needs depth, seg and hand conditions; missing {missing}")
        a = self.appearance
        official = self.protocol in ("official", "sim")
        size = stage2_size(self.size, 2 * a.vae_scale) if official else self.size
        d, s, h = (to_internal(conditions[n][:1], 1, size, nearest=True)[0] for n in ("depth", "seg", "hand"))
        if normals is None and "normal" in conditions:  # a real/simulated normal map, -1 off the foreground
            normals = to_internal(conditions["normal"][:1], 1, size, nearest=True)[0].copy()
            normals[d.max(-1) <= 16] = 0
        n = s2.normals_from_depth_condition(d) if normals is None else normals
        pe, pooled = self.flux_prompt(sample_id)
        with self._on_device(a.transformer, a.vae, a.net1, a.net2):
            img = a(d, n, h, s, pe, pooled, seed=seed, protocol="official" if official else "pam-bench")
        if official and img.shape[:2] != tuple(self.size):  # evaluation_sim.py: VaeImageProcessor, PIL Lanczos
            from PIL import Image

            return np.asarray(Image.fromarray(img).resize(self.size[::-1], Image.LANCZOS))
        return to_internal(img[None], 1, self.size, nearest=False)[0]

    def animate(self, first_frame: np.ndarray, conditions: Mapping[str, np.ndarray], selected: Sequence[str],
                seed: int, steps: int = 50, guidance: float = 6.0, use_dynamic_cfg: bool = True,
                sample_id: str | None = None, caption: str | None = None,
                captions_file: Path | None = None) -> np.ndarray:
        """Stage III: uint8 [T, H, W, 3] at the internal size (``conditions['tracking']``: the tracking slot's
        source video under protocol 'official')."""
        p = self.prompt(sample_id, caption, captions_file)
        m = self.motion
        tracking = conditions["tracking"][0] if "tracking" in conditions else None
        with self._on_device(m.transformer, m.vae):
            return m(first_frame, conditions, selected, p.prompt_embeds, p.negative_prompt_embeds, seed=seed,
                     steps=steps, guidance=guidance, use_dynamic_cfg=use_dynamic_cfg, protocol=self.protocol,
                     tracking_frame=tracking)

    def run(self, conditions: Mapping[str, np.ndarray], selected: Sequence[str], seed: int,
            first_frame: np.ndarray | None = None, steps: int = 50, guidance: float = 6.0,
            use_dynamic_cfg: bool = True, sample_id: str | None = None, caption: str | None = None,
            captions_file: Path | None = None, stage2_seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Any-size inputs -> (video uint8 [T, H, W, 3] at the inputs' size, first frame used).

        ``first_frame`` None: Stage II makes it (mode 'full', with ``stage2_seed`` when given, else ``seed``);
        else it is used as is (mode 'i2v').
        """
        T, H, W = next(iter(conditions.values())).shape[:3]
        n, size = self.num_frames, self.size
        inner = {k: to_internal(v, n, size, nearest=True) for k, v in conditions.items()}
        if first_frame is None:
            with self.stage("stage2"):
                ff = self.first_frame(inner, seed if stage2_seed is None else stage2_seed, sample_id=sample_id)
        else:
            ff = to_internal(first_frame[None], 1, size, nearest=False)[0]
        with self.stage("stage3"):
            video = self.animate(ff, inner, selected, seed, steps, guidance, use_dynamic_cfg, sample_id, caption,
                                 captions_file)
        return from_internal(video, T, (H, W)), from_internal(ff[None], 1, (H, W))[0]

    def from_pose(self, seq, seed: int, steps: int = 50, guidance: float = 6.0,
                  selected: Sequence[str] = ("depth", "seg", "hand"), K: np.ndarray | None = None):
        """Stage I -> II -> III: a ``PoseSequence`` rendered at the internal size, then the full chain.

        Returns (video uint8 [T,H,W,3], conditions {name: Video}, sim RGB Video)."""
        from . import stage1_pose as s1

        h, w = self.size
        K = s1.default_intrinsics(h, w) if K is None else K
        conds, sim, _ = s1.render_conditions(seq, K, h, w)
        arrays = s1.conditions_as_arrays(conds)
        if self.protocol in ("official", "sim"):
            arrays["tracking"] = arrays["depth"]  # the tracking slot's first frame (generator: tracking_source)
        video, _ = self.run(arrays, selected, seed, None, steps, guidance)
        return video, conds, sim
