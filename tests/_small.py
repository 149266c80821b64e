"""A tiny in-memory dataset built from the real DexYCB clip, for fast harness tests."""
from __future__ import annotations

import numpy as np

from pam_bench.types import Dataset, Generator, Sample, Split, Video


class SmallReal(Dataset):
    name = "small-real"

    def __init__(self, frames: np.ndarray, n: int = 4, t: int = 6):
        import cv2

        self.clips = []
        for i in range(n):
            sub = frames[i * 3: i * 3 + t]
            self.clips.append(np.stack([cv2.resize(f, (128, 96), interpolation=cv2.INTER_AREA) for f in sub]))

    def split(self) -> Split:
        return Split(self.name, "val", tuple(f"clip/{i:02d}" for i in range(len(self.clips))), {"t": 6})

    def load(self, sample_id: str) -> Sample:
        i = int(sample_id.split("/")[1])
        return Sample(id=sample_id, video=Video(self.clips[i], 15.0))


class Noisy(Generator):
    """GT plus seeded noise; counts calls; can be told to die after k videos (a killed run)."""

    name = "noisy"

    def __init__(self, device="cpu", amp=20, die_after=None):
        self.amp, self.die_after, self.calls = amp, die_after, 0

    def identity(self):
        return {"name": self.name, "amp": self.amp}

    def generate(self, sample, seed):
        if self.die_after is not None and self.calls >= self.die_after:
            raise KeyboardInterrupt("killed")
        self.calls += 1
        rng = np.random.default_rng(seed)
        f = sample.video.frames.astype(np.int16) + rng.integers(-self.amp, self.amp + 1, sample.video.frames.shape)
        return Video(np.clip(f, 0, 255).astype(np.uint8), sample.video.fps)
