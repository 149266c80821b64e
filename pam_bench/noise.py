"""Condition-noise robustness (PAM supplementary Sec. 2.2, Table 2; Table 6 in the combined paper text).

The paper adds "random Gaussian noise into the input conditions" and states neither the scale, the value
range nor clipping. pam-bench makes the model explicit and records it in the run identity:

- **model**: i.i.d. Gaussian noise, independently per frame, pixel and RGB channel, added to every
  condition video of the sample (depth, seg, hand, whichever are present) before it reaches the method;
- **scale**: ``sigma`` in uint8 units on the 0..255 range the condition videos are stored in (pam-bench's
  one pixel convention). Models that map pixels to [-1, 1] (x / 127.5 - 1: PAM's CogVideoX VAE, SVD) see
  a standard deviation of ``2 * sigma / 255`` in their own units (recorded as ``sigma_model_units``);
- **quantisation**: the noisy values are rounded to the nearest integer and clipped to [0, 255], so the
  method still receives uint8 videos (clipping biases the noise near 0 and 255; on mid-grey it is exact);
- **seed**: per clip ``derive_seed(noise_seed, clip_id)``, and per condition a numpy ``default_rng`` on
  ``[that seed, index of the condition name in (depth, seg, hand)]``: the same noise seed gives the same
  noise for a clip in every run, shard and order; different clips and conditions get different noise.

Only what the method sees is perturbed: metrics compare against the clean reference sample.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from .errors import PamBenchError
from .types import CONDITIONS, Generator, Sample, Video, derive_seed

NOISE_MODEL = "gaussian-iid-per-pixel-channel"


def noise_identity(sigma: float, seed: int) -> dict[str, Any]:
    """What a run with condition noise records (part of the method identity, so runs never merge)."""
    return {"model": NOISE_MODEL, "sigma": float(sigma), "value_range": "uint8 0..255",
            "sigma_model_units": round(2.0 * float(sigma) / 255.0, 6), "model_units": "[-1, 1] (x/127.5-1)",
            "quantise": "round to nearest, clip to [0, 255]", "applies_to": "every condition video",
            "seed": int(seed), "seed_policy": "default_rng([derive_seed(seed, clip_id), condition index])"}


def condition_rng(seed: int, clip_id: str, condition: str) -> np.random.Generator:
    """The generator of one condition's noise for one clip."""
    idx = CONDITIONS.index(condition) if condition in CONDITIONS else derive_seed(0, condition)
    return np.random.default_rng([derive_seed(seed, clip_id), idx])


def noisy_frames(frames: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """uint8 frames + N(0, sigma^2) per element, rounded and clipped to uint8."""
    noise = rng.normal(0.0, float(sigma), size=frames.shape).astype(np.float32)
    return np.clip(np.rint(frames.astype(np.float32) + noise), 0, 255).astype(np.uint8)


def add_condition_noise(sample: Sample, sigma: float, seed: int) -> Sample:
    """A copy of ``sample`` whose condition videos carry the noise (the reference video is untouched)."""
    if sigma < 0:
        raise PamBenchError(f"--condition-noise must be >= 0, got {sigma}")
    conds = {name: Video(noisy_frames(v.frames, sigma, condition_rng(seed, sample.id, name)), v.fps)
             for name, v in sample.conditions.items()}
    return dataclasses.replace(sample, conditions=conds, meta={**sample.meta, "condition_noise": float(sigma)})


class ConditionNoise(Generator):
    """Wraps a conditioned method: noisy conditions in, and the noise model in its identity."""

    def __init__(self, inner: Generator, sigma: float, seed: int = 0):
        if "conditions" not in getattr(inner, "needs", ()):
            raise PamBenchError(f"--condition-noise needs a method that takes condition videos; "
                                f"'{inner.name}' does not (needs: {', '.join(inner.needs) or 'nothing'})")
        if not sigma > 0:
            raise PamBenchError(f"--condition-noise must be > 0, got {sigma}")
        self.inner, self.sigma, self.seed = inner, float(sigma), int(seed)
        self.name = inner.name
        self.needs = inner.needs

    def seed_ignored(self) -> str | None:
        return self.inner.seed_ignored()

    def __getattr__(self, key):  # anything else (source_of, pipeline, ...) is the wrapped method's
        if key == "inner":
            raise AttributeError(key)
        return getattr(self.inner, key)

    @property
    def writes_videos(self) -> bool:
        return self.inner.writes_videos

    def check_ready(self) -> None:
        self.inner.check_ready()

    def identity(self) -> dict[str, Any]:
        return {**self.inner.identity(), "condition_noise": noise_identity(self.sigma, self.seed)}

    def generate(self, sample: Sample, seed: int) -> Video:
        return self.inner.generate(add_condition_noise(sample, self.sigma, self.seed), seed)


def with_condition_noise(gen: Generator, sigma: float | None, seed: int = 0) -> Generator:
    """``gen`` itself when sigma is None or 0 (clean run, unchanged identity), else the noisy wrapper."""
    if not sigma:
        return gen
    return ConditionNoise(gen, sigma, seed)
