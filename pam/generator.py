"""``PAMGenerator``: the PAM engine behind pam-bench's Generator interface (method ``pam``).

Cheap to import: torch and diffusers are imported only when the pipeline is built (first ``generate``).

- ``mode='i2v'`` (PAM's evaluation protocol): the sample's ground-truth first frame + the condition videos
  -> Stage III. ``mode='full'``: Stage II makes the first frame from the conditions' first frames, then
  Stage III.
- ``conditions``: the subset of depth,seg,hand fed to Stage III; the others get zero latents (video and
  first-frame latent), exactly as a cue dropped by PAM's training-time dropout.
- Sizes: see ``pam.pipeline`` (a real checkpoint runs at 49 x 480 x 720; the tiny one at 9 x 32 x 48, with
  nearest-index frame picking and resizing at the edges, recorded in ``identity()['adapt']``).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from pam_bench.errors import InputError, MissingResource
from pam_bench.types import CONDITIONS, Generator, Sample, Video

from . import checkpoint as ckpt

_CHECKPOINT_HOW = ("pass --checkpoint PAM_DIR: a folder with transformer/ (PAM's released motion checkpoint), "
                   "vae/ and scheduler/ (THUDM/CogVideoX-5b-I2V), prompt_embeds.safetensors, and flux/ for "
                   "mode=full (layout: docs/pam_gpu.md); tests/tiny_pam.py (write_tiny_checkpoint) writes a tiny "
                   "random one for tests")


def _as_bool(v) -> bool:
    if isinstance(v, str):
        if v.lower() in ("1", "true", "yes", "on"):
            return True
        if v.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"not a boolean: {v!r}")
    return bool(v)


class PAMGenerator(Generator):
    name = "pam"
    needs = ("first_frame", "conditions")

    def __init__(self, device: str = "cpu", checkpoint=None, mode: str = "i2v",
                 conditions: str | tuple = "depth,seg,hand", steps: int = 50, guidance: float = 6.0,
                 dtype: str = "auto", offload=False, vae_tiling=False, use_dynamic_cfg=True, compile=False,
                 stage1: str | None = None, stage1_file=None, mano_dir=None, **options: Any):
        if options:
            raise ValueError(f"unknown option(s) for method pam: {sorted(options)}; known: checkpoint, mode, "
                             "conditions, steps, guidance, dtype, offload, vae_tiling, use_dynamic_cfg, compile, "
                             "stage1, stage1_file, mano_dir")
        from .stage1_sources import check_options

        check_options(stage1, stage1_file, mode)  # Stage-I source for mode=full (pam.stage1_sources)
        self.stage1, self.stage1_file, self.mano_dir = stage1, stage1_file, mano_dir
        if mode not in ("i2v", "full"):
            raise ValueError(f"mode must be 'i2v' or 'full', got {mode!r}")
        names = conditions.split(",") if isinstance(conditions, str) else list(conditions)
        names = [n.strip() for n in names if n.strip()]
        bad = [n for n in names if n not in CONDITIONS]
        if bad or len(set(names)) != len(names):
            raise ValueError(f"conditions must be distinct names from {','.join(CONDITIONS)}; got {conditions!r}")
        self.device = str(device)
        self.checkpoint = Path(checkpoint).expanduser() if checkpoint else None
        self.mode = mode
        self.conditions = tuple(n for n in CONDITIONS if n in names)  # canonical order
        self.steps, self.guidance = int(steps), float(guidance)
        self.dtype_name = str(dtype)
        self.offload, self.vae_tiling = _as_bool(offload), _as_bool(vae_tiling)
        self.use_dynamic_cfg, self.compile = _as_bool(use_dynamic_cfg), _as_bool(compile)
        if self.steps < 1:
            raise ValueError("steps must be >= 1")
        self._pipe = None
        self._hashes: dict[str, str] | None = None

    # -- readiness and identity
    def check_ready(self) -> None:
        """Packages and every checkpoint file, before any work (no hashing, no model loading)."""
        for pkg in ("diffusers", "transformers", "accelerate"):
            if importlib.util.find_spec(pkg) is None:
                raise MissingResource(f"python package '{pkg}'", "pip install 'pam-bench[models]'")
        if self.checkpoint is None:
            raise MissingResource("PAM checkpoint (--checkpoint)", _CHECKPOINT_HOW)
        ckpt.required_files(self.checkpoint, self.mode)
        self._check_transformer_config()

    def _check_transformer_config(self) -> None:
        import json

        f = self.checkpoint / "transformer" / "config.json"
        try:
            cfg = json.loads(f.read_text())
        except json.JSONDecodeError as e:
            raise InputError(f, f"not valid JSON ({e})") from None
        if "num_tracking_blocks" not in cfg:
            raise InputError(f, f"_class_name {cfg.get('_class_name')!r} has no num_tracking_blocks: not a PAM "
                                "motion transformer (CogVideoXTransformer3DModelTracking)")

    def identity(self) -> dict[str, Any]:
        self.check_ready()
        if self._hashes is None:
            self._hashes = ckpt.checkpoint_hashes(self.checkpoint, self.mode)
        return {
            "name": self.name, "mode": self.mode, "conditions": list(self.conditions),
            "steps": self.steps, "guidance": self.guidance, "use_dynamic_cfg": self.use_dynamic_cfg,
            "scheduler": "CogVideoXDPMScheduler(timestep_spacing=trailing)", "dtype": self._dtype_resolved(),
            "dropped_condition": "zero video latent and zero first-frame latent (training-time dropout)",
            "first_frame": "ground truth" if self.mode == "i2v" else "Stage II (FLUX double ControlNet, 28 steps, "
                                                                     "guidance 4, normals from depth gradients)",
            "adapt": "conditions: nearest-index frames + nearest resize to the model size; first frame: "
                     "bilinear; output: nearest-index frames + bilinear resize to the sample size",
            "checkpoint_sha256": self._hashes,
            "seed_policy": "torch.Generator(cpu).manual_seed(derive_seed(base, video_id)) for noise and VAE sampling",
            **({"stage1": _stage1_identity(self.stage1, self.stage1_file, self.mano_dir)} if self.stage1 else {}),
        }

    def _dtype_resolved(self) -> str:
        if self.dtype_name != "auto":
            return self.dtype_name
        return "bf16" if self.device.startswith("cuda") else "fp32"

    # -- generation
    def pipeline(self):
        if self._pipe is None:
            self.check_ready()
            from .pipeline import PAMPipeline, resolve_dtype

            self._pipe = PAMPipeline(self.checkpoint, self.mode, self.device,
                                     resolve_dtype(self.dtype_name, self.device), offload=self.offload,
                                     vae_tiling=self.vae_tiling, compile=self.compile)
        return self._pipe

    def _inputs(self, sample: Sample):
        where = f"sample {sample.id}"
        need = set(self.conditions) | ({"depth", "seg", "hand"} if self.mode == "full" else set())
        missing = sorted(need - set(sample.conditions))
        if missing:
            raise InputError(where, f"has no condition video(s) {missing} (needed by pam mode={self.mode})")
        conds = {n: sample.conditions[n].frames for n in need}
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
        return conds, None, ref.fps, ref.size

    def generate(self, sample: Sample, seed: int) -> Video:
        if self.stage1:
            from .pipeline import from_internal

            conds, _, fps, size = self._stage1_inputs(sample)
            video, _ = self.pipeline().run(conds, self.conditions, seed, None, self.steps, self.guidance,
                                           self.use_dynamic_cfg, sample_id=sample.id)
            return Video(from_internal(video, len(video), size), fps)
        conds, first, fps = self._inputs(sample)
        video, _ = self.pipeline().run(conds, self.conditions, seed, first, self.steps, self.guidance,
                                       self.use_dynamic_cfg, sample_id=sample.id)
        return Video(video, fps)


def _stage1_identity(stage1, stage1_file, mano_dir):
    from .stage1_sources import identity

    return identity(stage1, stage1_file, mano_dir)
