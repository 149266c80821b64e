"""The GT-feature cache: the only reader and writer of reference-side payloads (e.g. FVD's I3D features).

Reference payloads are cached across runs under ``$PAM_BENCH_HOME/gt_cache/<manifest hash[:16]>/<metric
key>/<clip>`` (or under ``--gt-cache``), so evaluating a new checkpoint computes only the generated side.
Each cached payload carries the sha256 of the reference frames it was computed from (:data:`GT_FINGERPRINT`);
whenever the reference clip is decoded anyway, a cached payload whose fingerprint differs (the data on disk
or the synthetic generator changed) is recomputed rather than trusted. Callers see payloads without it.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..store import read_payload, safe_id, write_payload
from ..types import Sample

#: Payload key holding the sha256 of the decoded reference frames a cached payload came from.
GT_FINGERPRINT = "_gt_sha256"


def gt_cache_dir(manifest_hash: str, metric_key: str, root: Path | str | None = None) -> Path:
    """The folder of one metric's reference payloads for one dataset manifest."""
    from ..weights import home

    base = Path(root) if root else home() / "gt_cache"
    return base / manifest_hash[:16] / metric_key


def fingerprint(sample: Sample) -> str | None:
    """sha256 of the decoded reference frames (None when the sample was not decoded)."""
    if sample.video is None:
        return None
    return hashlib.sha256(np.ascontiguousarray(sample.video.frames).data).hexdigest()


def _strip(payload: dict) -> dict:
    return {k: v for k, v in payload.items() if k != GT_FINGERPRINT}


class GTCache:
    """Reference-side payloads of one dataset manifest, under ``root`` (None: $PAM_BENCH_HOME/gt_cache)."""

    def __init__(self, manifest_hash: str, root: Path | str | None = None):
        self.manifest_hash = manifest_hash
        self.root = root

    def dir(self, metric) -> Path:
        """The folder of ``metric``'s reference payloads."""
        return gt_cache_dir(self.manifest_hash, metric.key, self.root)

    def get(self, metric, vid: str, raw: bool = False) -> dict | None:
        """The cached reference payload of clip ``vid`` (None when absent); ``raw`` keeps the fingerprint."""
        d = self.dir(metric)
        for ext in (".npz", ".json"):
            p = d / f"{safe_id(vid)}{ext}"
            if p.is_file():
                payload = read_payload(p)
                return payload if raw else _strip(payload)
        return None

    def has(self, metric, vid: str) -> bool:
        """True when clip ``vid``'s reference payload is cached."""
        return self.get(metric, vid, raw=True) is not None

    def put(self, metric, vid: str, payload: dict, fingerprint: str | None = None) -> None:
        """Cache a reference payload, with the sha256 of the frames it came from when known (a payload
        that already carries its fingerprint, e.g. one exchanged between torchrun ranks, keeps it)."""
        if fingerprint is not None:
            payload = {**payload, GT_FINGERPRINT: fingerprint}
        write_payload(self.dir(metric) / safe_id(vid), payload)

    def reference(self, metric, sample: Sample) -> dict:
        """``metric``'s reference payload of ``sample``: from the cache when its fingerprint matches the
        decoded frames (or the frames were not decoded), else computed and cached."""
        fp = fingerprint(sample)
        cached = self.get(metric, sample.id, raw=True)
        if cached is not None and (fp is None or cached.get(GT_FINGERPRINT) == fp):
            return _strip(cached)
        payload = metric.measure_reference(sample)
        self.put(metric, sample.id, payload, fp)
        return _strip(payload)

    def reference_of(self, metric, vid: str, load=None) -> dict:
        """The reference payload of clip ``vid`` for finalizing: cached, else computed from ``load(vid)``;
        without a loader a missing payload is an error naming the cache folder."""
        ref = self.get(metric, vid)
        if ref is not None:
            return ref
        if load is None:
            raise InputError(self.dir(metric), f"reference payload of {vid} is missing from the GT cache")
        return self.reference(metric, load(vid))
