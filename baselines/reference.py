"""Weight-free reference methods: the bounds every learned generator sits between.

- ``oracle``: returns the GT clip (upper bound: SSIM 1, LPIPS 0, PSNR at its cap, MF maximal).
- ``static``: the GT first frame held for every frame (the no-motion bound).
- ``sim-render``: the condition videos composited as RGB (what a simulator gives without appearance).
"""
from __future__ import annotations

import numpy as np

from pam_bench.errors import InputError
from pam_bench.types import Generator, Sample, Video


class _WeightFree(Generator):
    def __init__(self, device: str = "cpu", **options):
        if options:
            raise TypeError(f"{self.name} takes no options, got {sorted(options)}")
        self.device = device

    def identity(self) -> dict:
        return {"name": self.name, "kind": "reference", "version": "1"}

    def seed_ignored(self) -> str:
        return "a weight-free reference is deterministic"


class Oracle(_WeightFree):
    name = "oracle"
    needs = ("video",)

    def generate(self, sample: Sample, seed: int) -> Video:
        if sample.video is None:
            raise InputError(sample.id, "oracle needs the reference video")
        return sample.video


class Static(_WeightFree):
    name = "static"
    needs = ("first_frame",)

    def generate(self, sample: Sample, seed: int) -> Video:
        first = sample.first_frame
        t = sample.video.num_frames
        return Video(np.ascontiguousarray(np.broadcast_to(first, (t,) + first.shape)), sample.video.fps)


class SimRender(_WeightFree):
    name = "sim-render"
    needs = ("conditions",)

    def generate(self, sample: Sample, seed: int) -> Video:
        from pam_bench.render import composite

        missing = [c for c in ("depth", "seg", "hand") if c not in sample.conditions]
        if missing:
            raise InputError(sample.id, f"sim-render needs the condition videos; missing {', '.join(missing)}")
        conds = {k: v.frames for k, v in sample.conditions.items()}
        t = conds["seg"].shape[0]
        frames = np.stack([composite({k: v[i] for k, v in conds.items()}) for i in range(t)])
        return Video(frames, sample.conditions["seg"].fps)
