"""The evaluate loop: manifest -> generate (or read) -> metrics -> payloads, then the context finalizes.

Data flows one way: dataset -> generator -> store -> metrics -> results. Per-video work is cached in the
run store (videos, payloads), so a killed run resumes and recomputes nothing that finished; reference-side
payloads come from the GT cache (:mod:`.gt_cache`), so evaluating a new checkpoint computes only the
generated side. Decoding/loading the next sample overlaps with the current sample's generation and
metrics (a one-thread prefetch), and memory stays bounded to ~two samples. A clip whose input files
changed since its payloads were computed is recomputed (:mod:`.inputs`). A rerun with fewer ``--metrics``
keeps the other metrics' results when their payloads are all still there (:mod:`.finalize`).
"""
from __future__ import annotations

import contextlib
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..completeness import check_reference, select_ids_arg, select_present
from ..errors import InputError, PamBenchError
from ..prefetch import check_workers, one_thread_per_clip, run_pipeline
from ..store import INPUTS_KEY, RunStore, atomic_write_json
from ..types import Dataset, Generator, Sample, Split, Video, derive_seed
from .components import DEFAULT_METRICS, build_dataset, build_method, build_metrics
from .gt_cache import GTCache
from .inputs import InputFingerprints, forget_changed_inputs
from .selection import check_limit, parse_shard, select_ids
from .state import Run
from .torchrun import context
from .timing import StageClock


@dataclass
class Generation:
    """How a run makes its videos: the method, the seed, the stored codec and the conforming flags."""

    gen: Generator
    seed: int
    codec: str
    save_videos: bool
    trim: bool
    resize: bool

    def needs_video(self, store: RunStore, vid: str) -> bool:
        """True when the method's video of ``vid`` is to be written into the store."""
        return self.gen.writes_videos and self.save_videos and not store.has_video(vid)


def evaluate(method: str | Generator, dataset: str | Dataset = "synthetic",
             metrics: Sequence = DEFAULT_METRICS, out: str | Path | None = "runs/eval", device: str = "cpu",
             seed: int = 42, root=None, split: str | None = None, limit: int | None = None,
             shard: str | None = None, method_options: dict | None = None,
             dataset_options: dict | None = None, metric_options: dict | None = None,
             force: bool = False, codec: str = "lossless", progress: bool = True,
             gt_cache: str | Path | None = None, save_videos: bool = True,
             trim: bool = False, resize: bool = False, condition_noise: float | None = None,
             condition_noise_seed: int = 0, ids: Sequence[str] | None = None,
             allow_missing: bool = False, workers: int | None = None) -> dict:
    """Evaluate a method on a dataset split; returns the results dict (also written to OUT/results.json).

    The arguments are documented one by one at :func:`pam_bench.evaluate`. Resumable: videos and
    per-video payloads already in OUT are reused. ``out=None`` runs in a temporary folder that is removed.
    A method whose videos lie on disk is checked for completeness before any decoding (pam_bench.completeness).
    The selection (``limit``/``ids``) is not part of the run identity: a changed selection is a resume.
    """
    check_limit(limit)
    workers = check_workers(workers)
    ctx = context(device)  # under torchrun: rank r of W takes clips r, r+W, ... (see .torchrun)
    ds = dataset if isinstance(dataset, Dataset) else build_dataset(dataset, root, split, **(dataset_options or {}))
    gen = method if isinstance(method, Generator) else build_method(method, ctx.device, **(method_options or {}))
    if condition_noise:  # noisy conditions in, noise model in the method identity (pam_bench.noise)
        from ..noise import with_condition_noise
        gen = with_condition_noise(gen, condition_noise, condition_noise_seed)
    mets = build_metrics(metrics, ctx.device, metric_options)
    gen.check_ready()
    for m in mets:
        m.check_ready()
    sp = ds.split()
    check_reference(sp, mets)
    shard_t = parse_shard(shard)
    chosen = Split(sp.dataset, sp.name, tuple(select_ids_arg(sp, ids)), sp.protocol) if ids else sp
    ids = select_ids(chosen, limit, shard_t)
    ids = select_present(gen, sp, ids, allow_missing, not ctx.rank, getattr(ds, "sample_index", None))
    if not ids:
        raise PamBenchError(f"dataset '{sp.dataset}' split '{sp.name}' selects no clips")
    identity = {
        "method": gen.identity(),
        "dataset": ds.identity(sp),
        "seed": int(seed),
        "shard": list(shard_t),
        "conform": {"trim": bool(trim), "resize": bool(resize)},
        "metrics": {m.name: m.config() for m in mets},
    }
    with _run_folder(out) as folder:
        store = RunStore(folder)
        ctx.open_store(store, identity, force)
        try:
            if isinstance(dataset, str):  # how to rebuild the dataset later (HTML previews, merge); not identity
                atomic_write_json(store.out / "dataset_args.json", {"name": dataset, "split": split, "options":
                                  dataset_options or {}, "root": str(Path(root).resolve()) if root else None})
            run = Run(store, mets, sp, ids, identity, GTCache(sp.manifest_hash, gt_cache), device=ctx.device)
            making = Generation(gen, seed, codec, save_videos, trim, resize)
            return _evaluate_clips(run, ds, making, ctx, progress, workers)
        finally:
            store.unlock()  # the kernel would drop it at exit; a library caller may run again


@contextlib.contextmanager
def _run_folder(out):
    """``out`` as a Path, or (``out=None``) a temporary folder removed afterwards."""
    if out is not None:
        yield Path(out)
        return
    with tempfile.TemporaryDirectory(prefix="pam-bench-run-") as tmp:
        yield Path(tmp) / "run"


def _evaluate_clips(run: Run, ds: Dataset, making: Generation, ctx, progress: bool, workers: int) -> dict:
    """Make the payloads this process's clips lack, then let the context finalize the run."""
    store, mets, sp, gen = run.store, run.metrics, run.split, making.gen
    mine = ctx.share(run.ids)
    index = {v: i for i, v in enumerate(sp.ids)}
    sample_index = getattr(ds, "sample_index", None)

    def idx(vid: str) -> int:
        return sample_index(vid) if sample_index else index[vid]

    fingerprints = InputFingerprints(ds, gen, idx)
    stale = forget_changed_inputs(store, mine, fingerprints, gen.writes_videos)
    if stale:
        print(f"pam-bench: {len(stale)} clip(s) whose input files changed since their payloads were computed "
              f"are recomputed ({', '.join(stale[:3])}{', ...' if len(stale) > 3 else ''})", file=sys.stderr)
    pending = [v for v in mine if making.needs_video(store, v) or any(not store.has_payload(m.key, v) for m in mets)]
    run.loader = _loader(run, ds, gen, idx, making.trim)
    run.clock = StageClock(workers)
    bar = _progress(len(mine), f"{gen.name} on {sp.dataset}", progress and not ctx.rank)
    bar.update(len(mine) - len(pending))
    load, work, concurrent, early = _jobs(run, making, fingerprints)
    try:
        with one_thread_per_clip(workers if early else 1):  # thread-safe metrics measure in the loader threads
            run_pipeline(pending, load, work, workers=workers, concurrent_work=concurrent,
                         on_done=lambda _v: bar.update(1))  # pam_bench.prefetch: W clips at once, memory bounded
    finally:
        fingerprints.save()  # the input files' digests, for the next resume (also after an error or Ctrl-C)
    bar.close()
    run.recomputed = len(stale)
    return ctx.finish(run)


def _jobs(run: Run, making: Generation, fingerprints) -> tuple:
    """(load, work, concurrent_work, early metrics) for pam_bench.prefetch.run_pipeline.

    When the method reads its videos from disk and some metrics are thread-safe but not all, the loader
    threads also read the generated video and measure the thread-safe metrics (SSIM, PSNR: CPU) while the
    calling thread runs the others (torch: LPIPS, I3D, trackers, hands) one clip at a time: on a GPU server
    the CPU metrics no longer queue behind the GPU ones."""
    clock = run.clock
    early = [m for m in run.metrics if getattr(m, "thread_safe", False)]
    late = [m for m in run.metrics if m not in early]

    def load(vid: str) -> Sample:
        with clock.stage("load"):
            return run.loader(vid)

    if clips_run_concurrently(making.gen, run.metrics) or making.gen.writes_videos or not early:
        return (load, lambda vid, sample: _run_one(vid, sample, making, run, fingerprints(vid)),
                clips_run_concurrently(making.gen, run.metrics), [])

    def load_and_measure(vid: str) -> tuple[Sample, Video]:
        sample = load(vid)
        video = _video(vid, sample, making, run)
        _measure(vid, sample, video, early, run, fingerprints(vid))
        return sample, video

    def rest(vid: str, loaded: tuple[Sample, Video]) -> None:
        _measure(vid, *loaded, late, run, fingerprints(vid))
        clock.clip_done()

    return load_and_measure, rest, False, early


def clips_run_concurrently(gen: Generator, mets) -> bool:
    """Whole clips may run in parallel threads when the method only reads files and every metric says its
    ``measure`` is thread-safe; otherwise only decoding runs ahead (pam_bench.prefetch)."""
    return not gen.writes_videos and all(getattr(m, "thread_safe", False) for m in mets)


def _loader(run: Run, ds: Dataset, gen: Generator, idx, trim: bool):
    """The sample loader: the reference clip is not decoded when nothing pending for it reads it."""

    def reference_not_needed(vid: str) -> bool:
        """True when nothing pending for this clip reads the GT sample: the method's videos already lie on
        disk and each pending metric takes its GT side from a warm cache (e.g. FVD's I3D features)."""
        if gen.writes_videos:
            return False
        for m in run.metrics:
            if run.store.has_payload(m.key, vid):
                continue
            if m.uses_reference_video or not m.has_reference or not run.cache.has(m, vid):
                return False
        return True

    def load(vid: str) -> Sample:
        if reference_not_needed(vid):
            return Sample(id=vid, video=None, meta={"index": idx(vid), "reference": "not decoded (GT cache)",
                                                    "trim": trim})
        sample = ds.load(vid)
        sample.meta.setdefault("index", idx(vid))  # position in the ordered split (official file names)
        sample.meta["trim"] = trim  # a method reading files decodes at most the reference's frame count
        return sample

    return load


def _progress(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="video", disable=not enabled, file=sys.stderr,
                dynamic_ncols=True, bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}]")


def _check_shape(sample: Sample, video: Video, where) -> None:
    if sample.video is None:
        return
    if video.frames.shape != sample.video.frames.shape:
        g, r = video.frames.shape, sample.video.frames.shape
        raise InputError(where, f"generated video is {g[0]} frames of {g[1]}x{g[2]} but the reference clip "
                                f"is {r[0]} frames of {r[1]}x{r[2]} (pass --trim/--resize to adapt explicitly)")


def _run_one(vid: str, sample: Sample, making: Generation, run: Run, inputs_sha256: str | None = None) -> None:
    """One clip: its video (stored, or generated and conformed), then each missing payload."""
    video = _video(vid, sample, making, run)
    _measure(vid, sample, video, run.metrics, run, inputs_sha256)
    run.clock.clip_done()


def _video(vid: str, sample: Sample, making: Generation, run: Run) -> Video:
    """The clip's video: read from the store, or generated (or read from the method's files), conformed,
    checked against the reference, and stored when the run keeps videos."""
    from ..video import conform

    gen, store = making.gen, run.store
    clock = run.clock
    if gen.writes_videos and store.has_video(vid):
        with clock.stage("read stored video"):
            video = store.read_video(vid)
    else:
        with clock.stage("generate" if gen.writes_videos else "read videos"):
            video = gen.generate(sample, derive_seed(making.seed, vid))
        if sample.video is not None and (making.trim or making.resize):
            video = conform(video, vid, sample.video.num_frames, sample.video.size, making.trim, making.resize)
        _check_shape(sample, video, getattr(gen, "source_of", lambda v: v)(vid))
        if making.needs_video(store, vid):
            with clock.stage("write video"):
                store.write_video(vid, video, codec=making.codec)
    _check_shape(sample, video, store.video_path(vid) if gen.writes_videos else vid)
    return video


def _measure(vid: str, sample: Sample, video: Video, metrics, run: Run, inputs_sha256: str | None) -> None:
    """The payloads of ``metrics`` this clip lacks, each written as soon as it is measured."""
    store, clock = run.store, run.clock
    for m in [m for m in metrics if not store.has_payload(m.key, vid)]:
        with clock.stage(m.name):
            payload = m.measure(sample, video)
        if inputs_sha256 is not None:
            payload = {**payload, INPUTS_KEY: inputs_sha256}
        store.write_payload(m.key, vid, payload)
        if m.has_reference:
            run.cache.reference(m, sample)
