"""A bounded pipeline over clips: decode the next clips while the current ones are measured, on every core.

``run_pipeline(items, load, work, workers=W, concurrent_work=...)`` calls ``work(item, load(item))`` for
every item, and ``on_done(item)`` in the calling thread as each one finishes:

- ``concurrent_work=True`` (the method reads its videos from disk and every metric is ``thread_safe``):
  W worker threads each take a whole clip (decode its GT and generated videos, run its metrics). Decoding
  (PyAV, decord), OpenCV filters, NumPy on large arrays and torch all release the GIL, so the clips run on
  W cores at once. At most W clips are in flight.
- otherwise (a method that generates, or a metric that is not thread-safe): ``load`` runs in W threads, at
  most W clips ahead, and ``work`` runs in the calling thread in order, one clip at a time.

Either way memory is bounded by W clips, not by the number of clips. Results do not depend on W: each clip's
payloads are computed by the same code on the same frames, and the results are collected afterwards in clip
order. When a clip fails, no new clip starts, the clips in flight finish (their payloads are kept), and the
error of the earliest failed clip (in list order) is raised.

While W > 1 clips run at once, OpenCV uses one thread inside each clip (restored afterwards), so W clips
fill W cores instead of W x cores threads contending for them. Metrics on torch (LPIPS, I3D) are not
``thread_safe``: torch may choose other kernels for other thread counts, so they run one clip at a time on
torch's own threads while the next clips decode.
"""
from __future__ import annotations

import contextlib
import os
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Callable, Iterable, TypeVar

T = TypeVar("T")
L = TypeVar("L")


def default_workers() -> int:
    """The cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def check_workers(workers) -> int:
    from .errors import FlagError

    if workers is None:
        return default_workers()
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise FlagError("--workers", f"must be a whole number >= 1, got {workers!r}")
    return workers


@contextlib.contextmanager
def one_thread_per_clip(workers: int):
    """OpenCV uses one thread inside each clip while ``workers`` > 1 clips run at once (its filters give the
    same values with any thread count). torch is left alone: its kernels may pick another algorithm for
    another thread count, so torch metrics are not ``thread_safe`` and run one clip at a time."""
    if workers <= 1:
        yield
        return
    import cv2

    saved = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(saved)


def run_pipeline(items: Iterable[T], load: Callable[[T], L], work: Callable[[T, L], None], *, workers: int = 1,
                 concurrent_work: bool = False, on_done: Callable[[T], None] | None = None) -> None:
    """Run ``work(item, load(item))`` over ``items`` with at most ``workers`` clips in memory (see above)."""
    items = list(items)
    workers = max(1, min(int(workers), len(items) or 1))
    done = on_done or (lambda _item: None)
    if concurrent_work and workers > 1:
        with one_thread_per_clip(workers):
            _concurrent(items, lambda it: work(it, load(it)), workers, done)
    else:
        _prefetched(items, load, work, workers, done)


def _concurrent(items: list, job: Callable, workers: int, done: Callable) -> None:
    errors: dict[int, BaseException] = {}
    running: dict[Future, int] = {}
    nxt = 0
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pam-clip") as pool:
        while running or (nxt < len(items) and not errors):
            while len(running) < workers and nxt < len(items) and not errors:
                running[pool.submit(job, items[nxt])] = nxt
                nxt += 1
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for f in finished:
                i = running.pop(f)
                if f.exception() is not None:
                    errors[i] = f.exception()
                else:
                    done(items[i])
    if errors:
        raise errors[min(errors)]


def _prefetched(items: list, load: Callable, work: Callable, workers: int, done: Callable) -> None:
    ahead = max(1, workers)
    with ThreadPoolExecutor(max_workers=ahead, thread_name_prefix="pam-load") as pool:
        futs = [pool.submit(load, it) for it in items[:ahead]]
        try:
            for k, it in enumerate(items):
                loaded = futs[k].result()
                futs[k] = None  # the clip is dropped once measured: memory stays bounded
                if k + ahead < len(items):
                    futs.append(pool.submit(load, items[k + ahead]))
                work(it, loaded)
                done(it)
        finally:
            for f in futs:
                if f is not None:
                    f.cancel()
