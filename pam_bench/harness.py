"""The evaluate loop: manifest -> generate (or read) -> metrics -> results.

Data flows one way: dataset -> generator -> store -> metrics -> results. Per-video work is cached in the
run store (videos, payloads), so a killed run resumes and recomputes nothing that finished. Reference-side
payloads (e.g. FVD features of GT clips) are cached across runs under $PAM_BENCH_HOME/gt_cache, keyed by the
dataset manifest hash and the metric key, so evaluating a new checkpoint computes only the generated side.
Decoding the next samples overlaps with the current samples' generation and metrics, on ``workers`` cores
(pam_bench.prefetch: whole clips in parallel threads where the method reads files and the metrics are
thread-safe, else a decode prefetch), and memory stays bounded by ``workers`` samples, not by N.

Reuse is guarded by content: every per-video payload records the sha256 of the input files it came from
(the GT file and the generated file, where the dataset and the method read files); a clip whose files
changed since is recomputed, and the run says how many were. A rerun with fewer ``--metrics`` keeps the
other metrics' results when their payloads are all still there.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import sys
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from .errors import InputError, PamBenchError
from .prefetch import check_workers, run_pipeline
from .registry import REGISTRY
from .results import SCHEMA_VERSION, env_info
from .store import (INPUTS_KEY, RunStore, atomic_write_bytes, atomic_write_json, read_json, read_payload, safe_id,
                    write_payload)
from .types import Dataset, Generator, Sample, Split, Video, derive_seed

DEFAULT_METRICS = ("ssim", "psnr", "lpips")


def parse_shard(shard: str | None) -> tuple[int, int]:
    if not shard:
        return 0, 1
    try:
        i, n = (int(x) for x in shard.split("/"))
    except ValueError:
        raise PamBenchError(f"--shard must look like i/N (e.g. 0/4), got {shard!r}") from None
    if not (n >= 1 and 0 <= i < n):
        raise PamBenchError(f"--shard {shard}: need 0 <= i < N")
    return i, n


def check_limit(limit) -> None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise InputError("--limit", f"must be a whole number >= 1, got {limit!r}")


def select_ids(split: Split, limit: int | None = None, shard: tuple[int, int] = (0, 1)) -> list[str]:
    check_limit(limit)
    ids = list(split.ids)[:limit]
    i, n = shard
    return ids[i::n]


def _construct(kind: str, name: str, cls, **kw):
    """Build a registered component; a bad option is a one-line error naming the component."""
    try:
        return cls(**kw)
    except PamBenchError:
        raise
    except (TypeError, ValueError) as e:
        raise PamBenchError(f"{kind} '{name}': {e}") from None


def build_dataset(name: str, root=None, split=None, **options) -> Dataset:
    cls = REGISTRY.load("dataset", name)
    kw = {k: v for k, v in {"root": root, "split": split}.items() if v is not None}
    return _construct("dataset", name, cls, **kw, **options)


def build_method(name: str, device: str = "cpu", **options) -> Generator:
    cls = REGISTRY.load("method", name)
    return _construct("method", name, cls, device=device, **options)


def build_metrics(names: Sequence[str], device: str = "cpu", options: dict | None = None) -> list:
    unknown = set(options or {}) - set(names)
    if unknown:
        raise PamBenchError(f"metric options given for {sorted(unknown)}, which are not among --metrics {list(names)}")
    out = []
    for n in names:
        cls = REGISTRY.load("metric", n)
        opts = (options or {}).get(n, {})
        known = metric_option_names(cls)
        if known is not None and set(opts) - set(known):
            bad = sorted(set(opts) - set(known))[0]
            raise InputError(f"-m {n}.{bad}", f"metric '{n}' has no option {bad!r}; "
                                              + (f"known: {', '.join(known)}" if known else "it takes no options"))
        out.append(_construct("metric", n, cls, device=device, **opts))
    return out


def metric_option_names(cls) -> tuple[str, ...] | None:
    """The options a metric class reads: its ``option_names``; none when it keeps the base constructor;
    None (checked by the backend it builds) otherwise."""
    from .metrics.base import Metric

    if getattr(cls, "option_names", None) is not None:
        return tuple(cls.option_names)
    return () if cls.__init__ is Metric.__init__ else None


def gt_cache_dir(manifest_hash: str, metric_key: str, root: Path | None = None) -> Path:
    from .weights import home

    base = Path(root) if root else home() / "gt_cache"
    return base / manifest_hash[:16] / metric_key


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


def evaluate(method: str | Generator, dataset: str | Dataset = "synthetic",
             metrics: Sequence[str] = DEFAULT_METRICS, out: str | Path = "runs/eval", device: str = "cpu",
             seed: int = 42, root=None, split: str | None = None, limit: int | None = None,
             shard: str | None = None, method_options: dict | None = None,
             dataset_options: dict | None = None, metric_options: dict | None = None,
             force: bool = False, codec: str = "lossless", progress: bool = True,
             gt_cache: str | Path | None = None, save_videos: bool = True,
             trim: bool = False, resize: bool = False, condition_noise: float | None = None,
             condition_noise_seed: int = 0, ids: Sequence[str] | None = None,
             allow_missing: bool = False, workers: int | None = None) -> dict:
    """Evaluate a method on a dataset split; returns the results dict (also written to OUT/results.json).

    Resumable: videos and per-video payloads already in OUT are reused. ``shard="i/N"`` evaluates every
    N-th clip starting at i (for job arrays; merge the shard folders with :func:`merge`).
    ``condition_noise=SIGMA``: Gaussian noise on the condition videos (uint8 units; see pam_bench.noise).
    ``ids``: evaluate these clips of the split (in split order). A method whose videos lie on disk is checked
    for completeness before any decoding (pam_bench.completeness; ``allow_missing`` scores what is there).
    The selection (``limit``/``ids``) is not part of the run identity: payloads are per clip, so a changed
    selection of the same run is a resume.
    ``workers``: clips decoded and measured at once (default: the core count; see pam_bench.prefetch).
    """
    from .completeness import check_reference, select_ids_arg, select_present
    from .distributed import context

    check_limit(limit)
    workers = check_workers(workers)
    dctx = context(device)  # under torchrun: rank r of W takes clips r, r+W, ... (see pam_bench.distributed)
    device = dctx.device if dctx else device
    ds = dataset if isinstance(dataset, Dataset) else build_dataset(dataset, root, split, **(dataset_options or {}))
    gen = method if isinstance(method, Generator) else build_method(method, device, **(method_options or {}))
    if condition_noise:  # noisy conditions in, noise model in the method identity (pam_bench.noise)
        from .noise import with_condition_noise
        gen = with_condition_noise(gen, condition_noise, condition_noise_seed)
    mets = build_metrics(metrics, device, metric_options)
    gen.check_ready()
    for m in mets:
        m.check_ready()
    sp = ds.split()
    check_reference(sp, mets)
    shard_t = parse_shard(shard)
    chosen = Split(sp.dataset, sp.name, tuple(select_ids_arg(sp, ids)), sp.protocol) if ids else sp
    ids = select_ids(chosen, limit, shard_t)
    ids = select_present(gen, sp, ids, allow_missing, not (dctx and dctx.rank), getattr(ds, "sample_index", None))
    if not ids:
        raise PamBenchError(f"dataset '{sp.dataset}' split '{sp.name}' selects no clips")
    store = RunStore(Path(out))
    identity = {
        "method": gen.identity(),
        "dataset": ds.identity(sp),
        "seed": int(seed),
        "shard": list(shard_t),
        "conform": {"trim": bool(trim), "resize": bool(resize)},
        "metrics": {m.name: m.config() for m in mets},
    }
    if dctx:
        dctx.open_store(store, identity, force)
    else:
        store.open(identity, force=force)
    try:
        if isinstance(dataset, str):  # how to rebuild the dataset later (HTML previews, merge); not identity
            atomic_write_json(store.out / "dataset_args.json", {"name": dataset, "split": split, "options":
                              dataset_options or {}, "root": str(Path(root).resolve()) if root else None})
        mine = dctx.share(ids) if dctx else ids
        index = {v: i for i, v in enumerate(sp.ids)}
        sample_index = getattr(ds, "sample_index", None)

        def idx(vid: str) -> int:
            return sample_index(vid) if sample_index else index[vid]

        fingerprints = InputFingerprints(ds, gen, idx)
        stale = forget_changed_inputs(store, mine, fingerprints, gen.writes_videos)
        if stale:
            print(f"pam-bench: {len(stale)} clip(s) whose input files changed since their payloads were computed "
                  f"are recomputed ({', '.join(stale[:3])}{', ...' if len(stale) > 3 else ''})", file=sys.stderr)

        def todo(vid: str) -> tuple[bool, bool]:
            need_vid = gen.writes_videos and save_videos and not store.has_video(vid)
            need_m = any(not store.has_payload(m.key, vid) for m in mets)
            return need_vid, need_m

        pending = [v for v in mine if any(todo(v))]

        def reference_not_needed(vid: str) -> bool:
            """True when nothing pending for this clip reads the GT sample: the method's videos already lie on
            disk and each pending metric takes its GT side from a warm cache (e.g. FVD's I3D features)."""
            if gen.writes_videos:
                return False
            for m in mets:
                if store.has_payload(m.key, vid):
                    continue
                if m.uses_reference_video or not hasattr(m, "measure_reference"):
                    return False
                if _cached_reference(m, vid, sp, gt_cache) is None:
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

        bar = _progress(len(mine), f"{gen.name} on {sp.dataset}", progress and not (dctx and dctx.rank))
        bar.update(len(mine) - len(pending))
        run_pipeline(pending, load, lambda vid, sample: _run_one(  # pam_bench.prefetch: W clips at once
            vid, sample, gen, mets, store, sp, seed, codec, save_videos, gt_cache, trim, resize, fingerprints(vid)),
            workers=workers, concurrent_work=clips_run_concurrently(gen, mets), on_done=lambda _v: bar.update(1))
        bar.close()
        if dctx:
            return dctx.finish(store, mets, sp, ids, identity, gt_cache, load)
        res = finalize(store, mets, sp, ids, identity, device, gt_cache, load)
        if stale:
            res["recomputed_changed_inputs"] = len(stale)
            atomic_write_json(store.out / "results.json", res)
        return res
    finally:
        store.unlock()  # the kernel would drop it at exit; a library caller may run again


def clips_run_concurrently(gen: Generator, mets) -> bool:
    """Whole clips may run in parallel threads when the method only reads files and every metric says its
    ``measure`` is thread-safe; otherwise only decoding runs ahead (pam_bench.prefetch)."""
    return not gen.writes_videos and all(getattr(m, "thread_safe", False) for m in mets)


class InputFingerprints:
    """sha256 of the files a clip's payloads come from (dataset GT file, method's generated file), once
    per clip and run; None when neither side reads files (the manifest alone decides)."""

    def __init__(self, ds: Dataset, gen: Generator, idx):
        self.ds, self.gen, self.idx = ds, gen, idx
        self._memo: dict[str, str | None] = {}

    def __call__(self, vid: str) -> str | None:
        if vid not in self._memo:
            files = [*self.ds.source_files(vid), *self.gen.source_files(vid, self.idx(vid))]
            self._memo[vid] = files_sha256(files) if files else None
        return self._memo[vid]


def files_sha256(files) -> str:
    from .weights import sha256_file

    h = hashlib.sha256()
    for f in files:
        try:
            h.update(f"{Path(f).name}:{sha256_file(f)}\n".encode())
        except OSError as e:
            raise InputError(f, f"cannot read ({e.strerror or e})") from None
    return h.hexdigest()


def forget_changed_inputs(store: RunStore, vids, fingerprints, writes_videos: bool) -> list[str]:
    """Remove the payloads (and stored video) of clips whose input files changed; returns those clips."""
    stale = []
    for vid in vids:
        files = store.payload_files(vid)
        if not files:
            continue
        fp = fingerprints(vid)
        if fp is None:
            continue
        if any(read_payload(f).get(INPUTS_KEY) != fp for f in files):
            store.forget(vid)
            stale.append(vid)
    return stale


def _run_one(vid, sample, gen, mets, store: RunStore, sp: Split, seed, codec, save_videos, gt_cache, trim, resize,
             inputs_sha256: str | None = None):
    from .video import conform

    need_vid, need_m = (gen.writes_videos and save_videos and not store.has_video(vid),
                        [m for m in mets if not store.has_payload(m.key, vid)])
    if gen.writes_videos and store.has_video(vid):
        video = store.read_video(vid)
    else:
        video = gen.generate(sample, derive_seed(seed, vid))
        if sample.video is not None and (trim or resize):
            video = conform(video, vid, sample.video.num_frames, sample.video.size, trim, resize)
        _check_shape(sample, video, getattr(gen, "source_of", lambda v: v)(vid))
        if need_vid:
            store.write_video(vid, video, codec=codec)
    _check_shape(sample, video, store.video_path(vid) if gen.writes_videos else vid)
    for m in need_m:
        payload = m.measure(sample, video)
        if inputs_sha256 is not None:
            payload = {**payload, INPUTS_KEY: inputs_sha256}
        store.write_payload(m.key, vid, payload)
        if hasattr(m, "measure_reference"):
            reference_payload(m, sample, sp, gt_cache)


GT_FINGERPRINT = "_gt_sha256"


def _fingerprint(sample: Sample) -> str | None:
    """sha256 of the decoded reference frames (None when the sample was not decoded)."""
    if sample.video is None:
        return None
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(sample.video.frames).data).hexdigest()


def reference_payload(metric, sample: Sample, sp: Split, gt_cache=None) -> dict:
    """The GT-side payload of a metric, from the cross-run cache or computed (then cached).

    Each cached payload carries the sha256 of the reference frames it was computed from; whenever the
    reference clip is decoded anyway, a cached payload whose fingerprint differs (the data on disk or the
    synthetic generator changed) is recomputed rather than trusted.
    """
    d = gt_cache_dir(sp.manifest_hash, metric.key, gt_cache)
    fp = _fingerprint(sample)
    cached = _cached_reference(metric, sample.id, sp, gt_cache)
    if cached is not None and (fp is None or cached.get(GT_FINGERPRINT) == fp):
        return _strip(cached)
    payload = metric.measure_reference(sample)
    if fp is not None:
        payload = {**payload, GT_FINGERPRINT: fp}
    write_payload(d / safe_id(sample.id), payload)
    return _strip(payload)


def _strip(payload: dict) -> dict:
    return {k: v for k, v in payload.items() if k != GT_FINGERPRINT}


def _cached_reference(metric, vid: str, sp: Split, gt_cache) -> dict | None:
    d = gt_cache_dir(sp.manifest_hash, metric.key, gt_cache)
    for ext in (".npz", ".json"):
        p = d / f"{safe_id(vid)}{ext}"
        if p.is_file():
            return read_payload(p)
    return None


def collect(store: RunStore, mets, ids: Iterable[str], sp: Split, gt_cache=None, datasets_load=None):
    """Feed every cached payload of ``ids`` to the metrics (reset first); returns per-video rows."""
    rows = []
    for m in mets:
        m.reset()
    for vid in ids:
        row: dict[str, Any] = {"video_id": vid}
        for m in mets:
            if not store.has_payload(m.key, vid):
                continue
            payload = store.read_payload(m.key, vid)  # without the input fingerprint
            if hasattr(m, "measure_reference"):
                ref = _cached_reference(m, vid, sp, gt_cache)
                ref = None if ref is None else _strip(ref)
                if ref is None:
                    if datasets_load is None:
                        raise InputError(gt_cache_dir(sp.manifest_hash, m.key, gt_cache),
                                         f"reference payload of {vid} is missing from the GT cache")
                    ref = reference_payload(m, datasets_load(vid), sp, gt_cache)
                payload = {**ref, **payload}
            m.update(payload)
            v = payload.get("value")
            if m.kind == "per_video":
                row[m.name] = v if v is None else float(v)
        rows.append(row)
    return rows


def kept_metrics(store: RunStore, mets, ids: list[str]) -> tuple[dict, dict[str, dict]]:
    """Metrics of the previous results.json in this folder that this run does not compute, kept when each
    of ``ids`` still has its payload (so their numbers still describe these clips): (entries, per-video
    values by video id). A metric whose payloads are gone is dropped, with a note."""
    p = store.out / "results.json"
    try:
        old = read_json(p) if p.is_file() else {}
    except InputError:
        old = {}
    now = {m.name for m in mets}
    entries = {}
    for name, e in (old.get("metrics") or {}).items() if isinstance(old, dict) else ():
        if name in now or not isinstance(e, dict):
            continue
        key = f"{name}@{e.get('version')}-{e.get('backend')}"
        if all(store.has_payload(key, v) for v in ids):
            entries[name] = e
        else:
            print(f"pam-bench: {name} is dropped from results.json: some of its payloads were recomputed away "
                  f"or are missing; add it to --metrics to compute it again", file=sys.stderr)
    rows: dict[str, dict] = {}
    pv = store.out / "per_video.jsonl"
    if entries and pv.is_file():
        for line in pv.read_text().splitlines():
            try:
                r = json.loads(line)
                rows[r["video_id"]] = {k: r[k] for k in entries if k in r}
            except (ValueError, KeyError, TypeError):
                continue
    return entries, rows


def finalize(store: RunStore, mets, sp: Split, ids: list[str], identity: dict, device: str,
             gt_cache=None, datasets_load=None) -> dict:
    kept, kept_rows = kept_metrics(store, mets, ids)
    rows = collect(store, mets, ids, sp, gt_cache, datasets_load)
    for r in rows:
        r.update(kept_rows.get(r["video_id"], {}))
    atomic_write_bytes(store.out / "per_video.jsonl",
                       "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows).encode())
    n_eval = sum(1 for vid in ids if all(store.has_payload(m.key, vid) for m in mets))
    results = {
        "schema_version": SCHEMA_VERSION,
        "method": identity["method"],
        "dataset": identity["dataset"],
        "seed": identity["seed"],
        "shard": identity.get("shard"),
        "n_expected": len(ids),
        "n_evaluated": n_eval,
        "metrics": {**{m.name: m.compute().to_json() for m in mets}, **kept},
        "env": env_info(device),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    atomic_write_json(store.out / "results.json", results)
    return results
