"""Where a run's time went: seconds per stage (load, generate, write, each metric) of the clips this process
computed, summed over its worker threads, for results.json's ``timing`` and evaluate's closing line.

Timing is provenance, not a result: nothing compares it, and a resumed run counts only the clips it computed.
"""
from __future__ import annotations

import contextlib
import threading
import time


class StageClock:
    """Thread-safe seconds per stage name, and the wall time since the clock was made."""

    def __init__(self, workers: int = 1):
        self.workers = int(workers)
        self._t0 = time.perf_counter()
        self._lock = threading.Lock()
        self.seconds: dict[str, float] = {}
        self.clips = 0

    @contextlib.contextmanager
    def stage(self, name: str):
        t = time.perf_counter()
        try:
            yield
        finally:
            dt = time.perf_counter() - t
            with self._lock:
                self.seconds[name] = self.seconds.get(name, 0.0) + dt

    def clip_done(self) -> None:
        with self._lock:
            self.clips += 1

    def to_json(self) -> dict:
        with self._lock:
            return {"clips_computed": self.clips, "wall_s": round(time.perf_counter() - self._t0, 3),
                    "workers": self.workers, "stage_s": {k: round(v, 3) for k, v in self.seconds.items()},
                    "note": "this process only; stage seconds are summed over worker threads"}


def summary(timing: dict | None) -> str | None:
    """One line for the end of evaluate: wall time, clips, the stages by share (None without timing)."""
    if not timing or not timing.get("clips_computed"):
        return None
    stages = sorted(timing["stage_s"].items(), key=lambda kv: -kv[1])
    total = sum(v for _, v in stages) or 1.0
    parts = ", ".join(f"{k} {v:.1f} s ({100 * v / total:.0f}%)" for k, v in stages)
    return (f"time: {timing['wall_s']:.1f} s for {timing['clips_computed']} clip(s) on {timing['workers']} "
            f"worker(s); {parts}")
