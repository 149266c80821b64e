"""Input fingerprints: the sha256 of the files a clip's payloads come from, and forgetting changed clips.

Reuse is guarded by content: every per-video payload records the sha256 of the input files it came from
(the GT file and the generated file, where the dataset and the method read files); a clip whose files
changed since is recomputed, and the run says how many were.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from ..store import INPUTS_KEY, RunStore, read_payload
from ..types import Dataset, Generator


class InputFingerprints:
    """sha256 of the files a clip's payloads come from (dataset GT file, method's generated file), once
    per clip and run; None when neither side reads files (the manifest alone decides).

    File digests go through the (path, size, mtime) hash cache (:class:`pam_bench.weights.HashCache`), which
    the worker threads share; :meth:`save` writes the new ones back once, so resuming a run of 1,600 clips
    does not hash its 3,200 videos again."""

    def __init__(self, ds: Dataset, gen: Generator, idx):
        from ..weights import HashCache

        self.ds, self.gen, self.idx = ds, gen, idx
        self.cache = HashCache()
        self._memo: dict[str, str | None] = {}

    def __call__(self, vid: str) -> str | None:
        if vid not in self._memo:
            files = [*self.ds.source_files(vid), *self.gen.source_files(vid, self.idx(vid))]
            self._memo[vid] = files_sha256(files, self.cache.sha256) if files else None
        return self._memo[vid]

    def save(self) -> None:
        self.cache.save()


def files_sha256(files, digest) -> str:
    """One sha256 over the names and sha256s (``digest(file)``, e.g. :meth:`HashCache.sha256
    <pam_bench.weights.HashCache.sha256>`, which names an unreadable file in its InputError) of ``files``."""
    h = hashlib.sha256()
    for f in files:
        h.update(f"{Path(f).name}:{digest(f)}\n".encode())
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
