"""``pam-bench bench --method M``: wall time and peak memory per generation stage, beside the paper's Table 5.

One synthetic clip (``SyntheticHOI``, protocol size unless told otherwise) goes through the method exactly as
an evaluation would (``run.components.build_method`` with the same options, ``derive_seed(seed, clip id)``). PAM's
pipeline exposes a per-stage hook (``PAMPipeline.stage_timer``): Stage I (pose -> rendered conditions; only
with ``-o stage1=...``), Stage II (first frame; mode ``full``), Stage III (video). Methods without stages are
one ``generate`` stage. Model loading is timed on its own row (the paper's figures exclude it, we assume).

Memory per stage:
- host: peak resident set size during the stage, sampled every 5 ms from /proc/self/statm (Linux), and the
  process high-water mark (ru_maxrss) at the end of the stage, which includes everything before it;
- CUDA (when the device is cuda): ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats`` at
  the start of the stage (allocated by PyTorch, not reserved; the paper does not say which it reports).

The reported columns are the PAM supplementary's Table 1 (Table 5 in the combined text), measured by the
authors on an NVIDIA H20 for one clip: never computed here, shown for reference only.
"""
from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .procstats import maxrss_bytes, rss_bytes

#: PAM supplementary Table 1 / paper Table 5 (NVIDIA H20): stage -> (seconds, GB).
REPORTED = {"stage1": (19.3, 0.03), "stage2": (36.1, 41.4), "stage3": (245.7, 30.3)}
REPORTED_TOTAL_S = 301.1  # "the full pipeline runs in 301.1 s for 40 frames"
REPORTED_SOURCE = "PAM supplementary Table 1 (Table 5 in the combined text), NVIDIA H20, one clip"
STAGE_LABELS = {"load": "model loading", "stage1": "Stage I (pose)", "stage2": "Stage II (appearance)",
                "stage3": "Stage III (motion)", "generate": "generate (no stages)"}


@dataclass
class StageRecord:
    name: str
    seconds: float
    host_peak_gb: float | None
    host_highwater_gb: float
    cuda_peak_gb: float | None


@dataclass
class StageTimer:
    """``timer(name)`` is a context manager that records one stage (repeatable; names keep their order)."""

    device: str = "cpu"
    interval_s: float = 0.005
    records: list[StageRecord] = field(default_factory=list)

    def _cuda(self) -> bool:
        return str(self.device).startswith("cuda")

    @contextlib.contextmanager
    def __call__(self, name: str):
        cuda = self._cuda()
        if cuda:
            import torch

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        peak = [rss_bytes()]
        stop = threading.Event()

        def sample():
            while not stop.wait(self.interval_s):
                r = rss_bytes()
                if r is not None and peak[0] is not None:
                    peak[0] = max(peak[0], r)

        th = threading.Thread(target=sample, daemon=True)
        th.start()
        t0 = time.perf_counter()
        try:
            yield
        finally:
            if cuda:
                import torch

                torch.cuda.synchronize()
            dt = time.perf_counter() - t0
            stop.set()
            th.join()
            end = rss_bytes()
            if end is not None and peak[0] is not None:
                peak[0] = max(peak[0], end)
            cuda_peak = None
            if cuda:
                import torch

                cuda_peak = torch.cuda.max_memory_allocated() / 1e9
            self.records.append(StageRecord(name, dt, None if peak[0] is None else peak[0] / 1e9,
                                            maxrss_bytes() / 1e9, cuda_peak))


def bench_method(method: str, device: str = "cpu", options: dict | None = None, frames: int = 49,
                 height: int = 480, width: int = 720, seed: int = 42) -> dict[str, Any]:
    """Run one synthetic clip through ``method`` with per-stage timing; returns records and context."""
    from .datasets.synthetic import SyntheticHOI
    from .run.components import build_method
    from .types import derive_seed

    gen = build_method(method, device, **(options or {}))
    gen.check_ready()
    ds = SyntheticHOI(n_clips=1, frames=frames, height=height, width=width)
    vid = ds.split().ids[0]
    sample = ds.load(vid)
    timer = StageTimer(device)
    staged = callable(getattr(gen, "pipeline", None))
    if staged:
        with timer("load"):
            pipe = gen.pipeline()
        pipe.stage_timer = timer
    t0 = time.perf_counter()
    if staged:
        video = gen.generate(sample, derive_seed(seed, vid))
    else:
        with timer("generate"):
            video = gen.generate(sample, derive_seed(seed, vid))
    total = time.perf_counter() - t0
    return {"method": method, "device": device, "records": timer.records, "generate_seconds": total,
            "clip": f"{frames}x{height}x{width}", "output": tuple(video.frames.shape),
            "staged": staged, "mode": getattr(gen, "mode", None), "stage1": getattr(gen, "stage1", None)}


def _gb(v: float | None) -> str:
    return "–" if v is None else f"{v:.2f}"


def _not_run_reason(stage: str, result: dict) -> str:
    if stage == "stage1":
        return "not run (no -o stage1=...)"
    if stage == "stage2":
        return f"not run (mode={result.get('mode')}: GT first frame)"
    return "not run"


def format_table(result: dict) -> str:
    """Table-5-shaped rows: measured columns, then the paper's reported H20 columns (cited)."""
    from tabulate import tabulate

    recs = result["records"]
    names = [r.name for r in recs]
    cuda = str(result["device"]).startswith("cuda")
    rows = []
    order = ["load"] + (["stage1", "stage2", "stage3"] if result["staged"] else ["generate"])
    for st in order:
        rep = REPORTED.get(st)
        rep_cells = [f"{rep[0]:.1f}", f"{rep[1]:.2f}"] if rep else ["", ""]
        got = [r for r in recs if r.name == st]
        if not got:
            if st == "load":
                continue
            rows.append([STAGE_LABELS[st], _not_run_reason(st, result), "", "", ""] + rep_cells)
            continue
        for r in got:
            rows.append([STAGE_LABELS[st], f"{r.seconds:.2f}", _gb(r.host_peak_gb), f"{r.host_highwater_gb:.2f}",
                         _gb(r.cuda_peak_gb) if cuda else "– (cpu)"] + rep_cells)
    rows.append(["total (generate, excl. loading)", f"{result['generate_seconds']:.2f}", "", "", "",
                 f"{REPORTED_TOTAL_S:.1f}", ""])
    headers = ["stage", "wall s", "host peak RSS GB", "host high-water GB", "CUDA peak alloc GB",
               "reported s (H20)", "reported GB (H20)"]
    out = tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)
    extra = [r for r in names if r not in order]
    note = (f"\nmethod {result['method']} on {result['device']}, one synthetic clip {result['clip']} "
            f"(output {'x'.join(map(str, result['output']))}); reported columns: {REPORTED_SOURCE}, copied, "
            "not measured here (the paper says 301.1 s 'for 40 frames').")
    if extra:
        note += f" Other timed stages: {', '.join(extra)}."
    return out + "\n" + note
