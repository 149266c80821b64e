"""``PAMGenerator``: the PAM engine behind pam-bench's Generator interface (method ``pam``).

Cheap to import: torch and diffusers are imported only when the pipeline is built (first ``generate``).

- ``mode='i2v'`` (Table 1: the sample's ground-truth first frame + the condition videos -> Stage III) or
  ``'full'`` (Stage II makes the first frame from the conditions' first frames, then Stage III).
- ``protocol`` (default ``official`` for ``i2v``, ``pam-bench`` for ``full``; or ``sim``): :data:`PROTOCOLS` says what
  each one does. ``official`` reproduces ``testing/evaluation_comb_dexycb.py``: unused slots get zero video
  latents but VAE latents of their first frames (tracking: the tracking column's first frame; normal: a
  gray image), VAE tiling + slicing, 50 DPM (trailing) steps, guidance 6 with dynamic CFG, bf16 on CUDA,
  seed 42 for every clip on a generator on the run's device, one caption per clip, output at 15 fps; with
  ``mode=full`` also appearance_gen's Stage II conventions (``pam.stage2_appearance``).
  ``sim`` (``mode=full`` only) follows ``testing/evaluation_sim.py``: the tracking slot is used, the normal
  slot gets a gray video's latents, one fixed prompt.
  ``pam-bench`` is the earlier behaviour: a dropped cue is a zero video AND first-frame latent (PAM's
  training-time dropout), per-clip seeds, no VAE tiling, the sample's fps.
- Prompts (``pam.prompts``): ``-o prompts=CAPTIONS.jsonl`` (gen_prompt.py format) or a caption column with
  ``-o prompt_videos=VIDEOS.txt``; else the sample's ``meta['caption']`` (a dataset's caption column); else
  precomputed ``prompt_embeds/<clip id>.safetensors``; else one shared prompt (``-o prompt=TEXT`` or
  ``prompt_embeds.safetensors``), which ``protocol=official`` refuses unless ``-o shared_prompt=true``.
- Sizes: see ``pam.pipeline`` (a real checkpoint runs at 49 x 480 x 720; the tiny one at 9 x 32 x 48, with
  nearest-index frame picking and resizing at the edges, recorded in ``identity()['adapt']``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from pam_bench.errors import InputError, MissingResource, OptionError, require_packages
from pam_bench.options import boolean, choice, integer, real
from pam_bench.types import CONDITIONS, Generator, Sample, Video

from . import checkpoint as ckpt

_CHECKPOINT_HOW = ("pass --checkpoint with PAM's motion transformer folder (convert_ckpt.py output, or a training "
                   "checkpoint-N/ whose transformer/ the save hook wrote) and -o base=DIR with a local "
                   "THUDM/CogVideoX-5b-I2V snapshot (docs/pam_gpu.md); tests/tiny_pam.py "
                   "(write_tiny_checkpoint) writes a tiny random one for tests")

#: What each protocol sets (the run identity records the resolved values).
PROTOCOLS: dict[str, dict[str, Any]] = {
    "official": {
        "vae_tiling": True, "seed_policy": "official", "fps": 15.0, "requires_per_clip_prompts": True,
        "unused_slots": "zero video latents; first frames still VAE-encoded (tracking: the tracking column's "
                        "first frame; normal: a gray image) as testing/evaluation_comb_dexycb.py does",
        "generator": "torch.Generator(run device).manual_seed(seed); draws in the official pipeline's order",
    },
    "sim": {
        "vae_tiling": True, "seed_policy": "official", "fps": 15.0, "requires_per_clip_prompts": False,
        "unused_slots": "testing/evaluation_sim.py: the tracking slot is used (video and first-frame latents); the "
                        "normal slot gets the latents of a gray video and a gray first frame",
        "generator": "torch.Generator(run device).manual_seed(seed); draws in the official pipeline's order",
    },
    "pam-bench": {
        "vae_tiling": False, "seed_policy": "per-clip", "fps": None, "requires_per_clip_prompts": False,
        "unused_slots": "zero video latent and zero first-frame latent (training-time dropout)",
        "generator": "torch.Generator(cpu).manual_seed(seed)",
    },
}
SEED_POLICIES = ("official", "per-clip")
TRACKING_SOURCES = ("depth", "tracking")
_KNOWN = ("checkpoint, base, flux, mode, protocol, conditions, steps, guidance, dtype, offload, vae_tiling, "
          "use_dynamic_cfg, compile, seed_policy, fixed_seed, prompts, prompt_videos, prompt, shared_prompt, "
          "tracking_source, stage1, stage1_file, mano_dir, stage2_picks")


class PAMGenerator(Generator):
    name = "pam"
    needs = ("first_frame", "conditions")

    def __init__(self, device: str = "cpu", checkpoint=None, mode: str = "i2v",
                 conditions: str | tuple = "depth,seg,hand", steps: int = 50, guidance: float = 6.0,
                 dtype: str = "auto", offload=False, vae_tiling=None, use_dynamic_cfg=True, compile=False,
                 base=None, flux=None, protocol: str | None = None, seed_policy: str | None = None,
                 fixed_seed: int = 42, prompts=None, prompt_videos=None, prompt: str | None = None,
                 shared_prompt=False, tracking_source: str = "depth",
                 stage1: str | None = None, stage1_file=None, mano_dir=None, stage2_picks=None, **options: Any):
        if options:
            raise OptionError("pam", sorted(options)[0], f"unknown option(s) for method pam: {sorted(options)}; "
                                                           f"known: {_KNOWN}")
        from .stage1_sources import check_options

        check_options(stage1, stage1_file, mode)  # Stage-I source for mode=full (pam.stage1_sources)
        self.stage1, self.stage1_file, self.mano_dir = stage1, stage1_file, mano_dir
        choice("pam", "mode", mode, ("i2v", "full"))
        self.stage2_picks = _stage2_picks(stage2_picks, mode)
        names = conditions.split(",") if isinstance(conditions, str) else list(conditions)
        names = [n.strip() for n in names if n.strip()]
        bad = [n for n in names if n not in CONDITIONS]
        if bad or len(set(names)) != len(names):
            raise OptionError("pam", "conditions",
                              f"conditions must be distinct names from {','.join(CONDITIONS)}; got {conditions!r}")
        self.device = str(device)
        self.checkpoint = Path(checkpoint).expanduser() if checkpoint else None
        self.base, self.flux = base, flux
        self.mode = mode
        self.protocol = protocol or ("official" if mode == "i2v" else "pam-bench")
        choice("pam", "protocol", self.protocol, tuple(PROTOCOLS))
        if self.protocol == "sim" and mode != "full":
            raise OptionError("pam", "protocol", "protocol=sim (testing/evaluation_sim.py) is the sim-to-real "
                                                 "protocol: it needs mode=full")
        p = PROTOCOLS[self.protocol]
        self.conditions = tuple(n for n in CONDITIONS if n in names)  # canonical order
        self.steps, self.guidance = integer("pam", "steps", steps, 1), real("pam", "guidance", guidance)
        self.dtype_name = str(dtype)
        self.offload = boolean("pam", "offload", offload)
        self.vae_tiling = p["vae_tiling"] if vae_tiling is None else boolean("pam", "vae_tiling", vae_tiling)
        self.use_dynamic_cfg = boolean("pam", "use_dynamic_cfg", use_dynamic_cfg)
        self.compile = boolean("pam", "compile", compile)
        self.seed_policy = seed_policy or p["seed_policy"]
        choice("pam", "seed_policy", self.seed_policy, SEED_POLICIES)
        self.fixed_seed = int(fixed_seed)
        choice("pam", "tracking_source", tracking_source, TRACKING_SOURCES)
        self.tracking_source = tracking_source
        if self.protocol == "sim" and prompt is None:
            from .prompts import SIM_PROMPT

            prompt = SIM_PROMPT  # evaluation_sim.py's fixed prompt
        self.shared_prompt, self.prompt_text = boolean("pam", "shared_prompt", shared_prompt), prompt
        self.captions = None
        if prompts:
            from .prompts import CaptionTable

            self.captions = CaptionTable(prompts, prompt_videos)
        elif prompt_videos:
            raise OptionError("pam", "prompt_videos", "prompt_videos needs prompts=CAPTION_COLUMN.txt")
        self._pipe = None
        self._parts: ckpt.Parts | None = None
        self._hashes: dict | None = None

    # -- readiness and identity
    @property
    def needs_text(self) -> bool:
        """Prompt text is encoded (T5 needed) unless only precomputed embeddings can be used."""
        if self.captions is not None or self.prompt_text:
            return True
        c = self.checkpoint  # precomputed embeddings lie next to transformer/ (or in the transformer folder)
        return not (c is not None and ((c / "prompt_embeds.safetensors").is_file() or (c / "prompt_embeds").is_dir()))

    def check_ready(self) -> None:
        """Packages and every file, before any work (weight names are read from headers; no model loading)."""
        require_packages("diffusers", "transformers", "accelerate", how="pip install 'pam-bench[models]'")
        if self.checkpoint is None:
            raise MissingResource("PAM checkpoint (--checkpoint)", _CHECKPOINT_HOW)
        self._parts = ckpt.resolve(self.checkpoint, self.base, self.mode, self.needs_text, self.flux)

    def identity(self) -> dict[str, Any]:
        self.check_ready()
        if self._hashes is None:
            self._hashes = ckpt.checkpoint_hashes(self._parts)
        p = PROTOCOLS[self.protocol]
        prompts = self._prompt_identity()
        return {
            "name": self.name, "mode": self.mode, "protocol": self.protocol, "conditions": list(self.conditions),
            "steps": self.steps, "guidance": self.guidance, "use_dynamic_cfg": self.use_dynamic_cfg,
            "scheduler": "CogVideoXDPMScheduler(timestep_spacing=trailing)", "dtype": self._dtype_resolved(),
            "vae_tiling_slicing": self.vae_tiling, "fps": p["fps"] or "the sample's",
            "unused_slots": p["unused_slots"],
            **({"tracking_slot_first_frame": {"depth": "the depth condition's first frame (the official OAKINK2 "
                                                       "script passes the depth list as its tracking column)",
                                              "tracking": "the sample's 'tracking' video, first frame"
                                              }[self.tracking_source]} if self._uses_tracking else {}),
            "seed_policy": {"policy": self.seed_policy, "generator": p["generator"],
                            **({"seed": self.fixed_seed, "note": "--seed is ignored"}
                               if self.seed_policy == "official" else {"seed": "derive_seed(--seed, clip id)"})},
            "prompts": prompts,
            "first_frame": "ground truth" if self.mode == "i2v" else self._stage2_identity(),
            "adapt": "conditions: nearest-index frames + nearest resize to the model size; first frame: "
                     "bilinear; output: nearest-index frames + bilinear resize to the sample size",
            "checkpoint": {"layout": getattr(self._parts, "layout", None),
                           "num_tracking_blocks": getattr(self._parts, "branch_blocks", None)},
            "checkpoint_sha256": self._hashes,
            "deviations": self._deviations(),
            "variant": self._variant(prompts),
            **({"stage1": _stage1_identity(self.stage1, self.stage1_file, self.mano_dir)} if self.stage1 else {}),
        }

    def _prompt_identity(self) -> dict[str, Any]:
        from pam_bench.weights import cached_sha256

        from .prompts import NEGATIVE_PROMPT

        order, files = [], {}
        if self.captions is not None:
            order.append("caption file (-o prompts)")
            files = {f.name: cached_sha256(f) for f in self.captions.files}
        order.append("the sample's caption (dataset caption column, hashed in the dataset identity)")
        parts = self._parts
        if parts is not None and parts.clip_embeds is not None:
            order.append("precomputed prompt_embeds/<clip id>.safetensors")
        shared = self.prompt_text or ("precomputed prompt_embeds.safetensors"
                                      if parts is not None and parts.shared_embeds is not None else None)
        per_clip_required = PROTOCOLS[self.protocol]["requires_per_clip_prompts"]
        allowed = shared is not None and (self.shared_prompt or not per_clip_required)
        if allowed:
            order.append("one shared prompt" + (" (-o shared_prompt=true)" if self.shared_prompt else ""))
        return {"per_clip": not allowed, "order": order, "files_sha256": files,
                "shared": shared if allowed else None, "negative_prompt": NEGATIVE_PROMPT,
                "encoder": ("CogVideoX-5B-I2V T5 (text_encoder/, tokenizer/; hashes in checkpoint_sha256), padded "
                            "to the transformer's max_text_seq_length (226)") if self.needs_text
                else "precomputed embeddings"}

    def _stage2_identity(self) -> dict[str, Any]:
        from .stage2_official import identity

        out = identity(self.protocol, per_clip_prompts=ckpt.flux_per_clip_prompts(getattr(self._parts, "flux", None)))
        if self.stage2_picks is not None:
            out["seeds"] = {"picks": self.stage2_picks.identity()}
        return out

    def _deviations(self) -> list[str]:
        if self.protocol == "pam-bench":
            return ["protocol pam-bench: not the official evaluation's conventions (see unused_slots, seed_policy)"]
        out = ["condition-video VAE sampling is seeded (torch.Generator(run device), seed+1); the official script "
               "samples it from the unseeded global RNG"]
        if not self.device.startswith("cuda"):
            out.append(f"device {self.device}: the official evaluation runs bf16 on CUDA")
        if (self.steps, self.guidance, self.use_dynamic_cfg, self.vae_tiling) != (50, 6.0, True, True):
            out.append("sampling settings differ from the official 50 steps / guidance 6 / dynamic CFG / VAE tiling")
        if self.seed_policy != "official" or self.fixed_seed != 42:
            out.append("seed differs from the official 42 for every clip")
        if self.protocol == "sim":
            out.append("the official sim script seeds one generator once and reuses it for every clip (clip k's "
                       "draws depend on the clips before it); pam-bench seeds each clip")
            if self.tracking_source == "depth":
                out.append("tracking slot: the depth video stands in for the simulator's tracking.mp4 "
                           "(pam-bench renders no tracking video; -o tracking_source=tracking uses the sample's)")
        elif self.mode == "full":
            out.append("mode full with protocol official: Stage III follows evaluation_comb_dexycb.py; "
                       "-o protocol=sim follows evaluation_sim.py")
        return out

    def _variant(self, prompts: dict) -> str:
        bits = [] if self.protocol == "official" else [f"protocol={self.protocol}"]
        if not prompts["per_clip"] and self.protocol != "sim":  # sim's one fixed prompt is its protocol
            bits.append("one shared prompt")
        return ", ".join(bits)

    def _dtype_resolved(self) -> str:
        if self.dtype_name != "auto":
            return self.dtype_name
        return "bf16" if self.device.startswith("cuda") else "fp32"

    # -- generation
    def pipeline(self):
        if self._pipe is None:
            self.check_ready()
            from .pipeline import PAMPipeline, resolve_dtype

            self._pipe = PAMPipeline(self._parts, self.mode, self.device, resolve_dtype(self.dtype_name, self.device),
                                     offload=self.offload, vae_tiling=self.vae_tiling, compile=self.compile,
                                     protocol=self.protocol, shared_prompt=self.shared_prompt,
                                     prompt=self.prompt_text)
        return self._pipe

    def seed_ignored(self) -> str | None:
        if self.seed_policy == "official":
            return (f"seed_policy=official gives every clip seed {self.fixed_seed}, as the official evaluation "
                    "does; pass -o seed_policy=per-clip for one seed per run")
        return None

    def _seed(self, seed: int) -> int:
        return self.fixed_seed if self.seed_policy == "official" else int(seed)

    def _caption(self, sample: Sample) -> str | None:
        if self.protocol == "sim":
            return None  # evaluation_sim.py prompts every clip with its fixed prompt
        if self.captions is not None:
            cap = self.captions.lookup(sample.id)
            if cap is not None:
                return cap
        cap = (sample.meta or {}).get("caption")
        return cap if isinstance(cap, str) and cap.strip() else None

    def _inputs(self, sample: Sample):
        where = f"sample {sample.id}"
        need = set(self.conditions) | ({"depth", "seg", "hand"} if self.mode == "full" or
                                       self._uses_tracking else set())
        missing = sorted(need - set(sample.conditions))
        if missing:
            raise InputError(where, f"has no condition video(s) {missing} (needed by pam mode={self.mode}, "
                                    f"protocol={self.protocol})")
        if self.mode == "full" and "normal" in sample.conditions:  # Stage II's normal input when the sample has one
            need.add("normal")
        conds = {n: sample.conditions[n].frames for n in need}
        if self._uses_tracking:
            src = sample.conditions.get(self.tracking_source)
            if src is None:
                raise InputError(where, f"has no '{self.tracking_source}' video for the tracking slot's first frame "
                                        "(-o tracking_source)")
            conds["tracking"] = src.frames
        shapes = {v.shape[:3] for v in conds.values()}
        if len(shapes) != 1:
            raise InputError(where, f"condition videos differ in frames/size: {sorted(shapes)}")
        first = None
        if self.mode == "i2v":
            if sample.video is None:
                raise InputError(where, "has no reference video, so no first frame (use mode=full)")
            first = sample.first_frame
        fps = next(iter(sample.conditions.values())).fps if sample.video is None else sample.video.fps
        return conds, first, fps

    @property
    def _uses_tracking(self) -> bool:
        return self.protocol in ("official", "sim")

    def _fps(self, fps: float) -> float:
        return PROTOCOLS[self.protocol]["fps"] or fps

    def _stage1_inputs(self, sample: Sample):
        """Stage I: conditions rendered from the pose source at the internal size (pam.stage1_sources)."""
        from .stage1_sources import render_for_clip

        ref = sample.video if sample.video is not None else next(iter(sample.conditions.values()), None)
        if ref is None:
            raise InputError(f"sample {sample.id}", "has neither a reference video nor conditions (frame count)")
        pipe = self.pipeline()
        with pipe.stage("stage1"):
            conds = render_for_clip(self.stage1, self.stage1_file, sample.id, ref.num_frames, pipe.size,
                                    self.mano_dir)
        if self._uses_tracking:
            if self.tracking_source not in conds:
                raise OptionError("pam", "tracking_source", f"Stage I renders no '{self.tracking_source}' video "
                                                                f"for clip {sample.id}; it renders {sorted(conds)}")
            conds = {**conds, "tracking": conds[self.tracking_source]}
        return conds, None, ref.fps, ref.size

    def generate(self, sample: Sample, seed: int) -> Video:
        kw = dict(sample_id=sample.id, caption=self._caption(sample),
                  captions_file=self.captions.path if self.captions is not None else None,
                  stage2_seed=self._seed(seed) + self.stage2_picks.offset(sample.id)
                  if self.stage2_picks is not None else None)
        if self.stage1:
            from .pipeline import from_internal

            conds, _, fps, size = self._stage1_inputs(sample)
            video, _ = self.pipeline().run(conds, self.conditions, self._seed(seed), None, self.steps, self.guidance,
                                           self.use_dynamic_cfg, **kw)
            return Video(from_internal(video, len(video), size), self._fps(fps))
        conds, first, fps = self._inputs(sample)
        video, _ = self.pipeline().run(conds, self.conditions, self._seed(seed), first, self.steps, self.guidance,
                                       self.use_dynamic_cfg, **kw)
        return Video(video, self._fps(fps))


def _stage2_picks(path, mode: str):
    """The hand-picked Stage II candidates of ``-o stage2_picks`` (pam.stage2_picks), for mode=full only."""
    if not path:
        return None
    if mode != "full":
        raise OptionError("pam", "stage2_picks", "only mode=full runs Stage II (mode=i2v takes the GT first frame)")
    from .stage2_picks import Stage2Picks

    return Stage2Picks(path)


def _stage1_identity(stage1, stage1_file, mano_dir):
    from .stage1_sources import identity

    return identity(stage1, stage1_file, mano_dir)
