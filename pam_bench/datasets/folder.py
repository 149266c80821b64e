"""``pam-eval-dir``: the GT side of the folder the official PAM evaluation script writes.

Layout (testing/evaluation_comb_dexycb.py): ``generated/generated_{idx:04d}.mp4``, ``gt/gt_{idx:04d}.mp4``
(and ``group/`` side-by-side previews, ignored). Ids are the 4-digit indices of the GT files; the split is
what ``gt/`` holds. Which generated videos are present is the ``folder`` method's business (``evaluate``
counts them against the split before any decoding); a generated video without its GT partner is an
error. Two files with one index (``gt_0000.mp4`` and ``gt_00000.mp4``) are an error naming both; a dangling
symbolic link or a link loop is a one-line error naming it.

The folder holds no segmentation, so Motion Fidelity would sample its points from the whole frame (and
says so: ``whole-frame`` in results.json, on the console and in tables). ``-d seg_videos=DIR`` gives a
folder of segmentation videos, ``DIR/seg_XXXX.mp4`` (or ``DIR/XXXX.mp4``), one per clip, e.g. PAM's seg
condition videos in the same order; non-black pixels of frame 0 are the foreground (source ``seg-videos``).
A missing one is an error naming the file. The seg videos join the manifest by their sha256, not their
path, so a moved or copied folder is the same dataset. To take the foreground (and GT joints) from the dataset
itself instead, score the generated folder against the dataset: ``--method folder --videos EVALDIR
--dataset dexycb --root DEXYCB``.

The official script writes one such folder per checkpoint, each with its own copy of the same GT. A folder
is therefore identified by the *content* of its GT, not by its path: the manifest holds the sha256 of every
``gt_XXXX.mp4``, so folders with byte-identical GT are one dataset (they share the GT-feature cache, pass
``check`` against each other and share a leaderboard). Hashing is cached per file by (resolved path, size,
mtime) in ``$PAM_BENCH_HOME/hash_cache.json`` (:func:`pam_bench.weights.cached_sha256s`), so a folder is
hashed once.
"""
from __future__ import annotations

import errno
import os
import re
from pathlib import Path

from ..errors import FlagError, InputError, OptionError
from ..types import Dataset, Sample, Split, stable_hash
from ..weights import cached_sha256s

_GT = re.compile(r"^gt_(\d+)\.mp4$")
_GEN = re.compile(r"^generated_(\d+)\.mp4$")


def _check_link(p: Path) -> None:
    """A dangling symbolic link or a link loop is an InputError naming it."""
    try:
        os.stat(p)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise InputError(p, "symbolic link loop") from None
        raise InputError(p, "dangling symbolic link" if p.is_symlink() else f"unreadable ({e.strerror})") from None


class PamEvalDir(Dataset):
    name = "pam-eval-dir"

    def __init__(self, root=None, split=None, seg_videos=None, **options):
        if root is None:
            raise FlagError("--root", "pam-eval-dir needs the evaluation folder (--videos or --root)")
        if options:
            raise OptionError("pam-eval-dir", sorted(options)[0], "unknown -d option; known: seg_videos")
        self.root = Path(root)
        self.split_name = split or "all"
        if not self.root.is_dir():
            raise InputError(self.root, "no such folder")
        self.seg_videos = Path(seg_videos) if seg_videos else None
        if self.seg_videos is not None and not self.seg_videos.is_dir():
            raise InputError(self.seg_videos, "no such folder (-d seg_videos=DIR)")

    def _indices(self, sub: str, pat) -> dict[int, Path]:
        d = self.root / sub
        if not d.is_dir():
            return {}
        out: dict[int, Path] = {}
        for p in sorted(d.iterdir()):
            m = pat.match(p.name)
            if not m:
                continue
            _check_link(p)
            i = int(m.group(1))
            if i in out:
                raise InputError(p, f"has the same index {i} as {out[i]}; keep one of the two files")
            out[i] = p
        return out

    def split(self) -> Split:
        gt = self._indices("gt", _GT)
        if not gt:
            raise InputError(self.root / "gt", "holds no gt_XXXX.mp4 (expected the official evaluation folder: "
                                               "gt/gt_XXXX.mp4 and generated/generated_XXXX.mp4)")
        gen = self._indices("generated", _GEN)
        for i in sorted(set(gen) - set(gt)):
            raise InputError(gen[i], f"has no partner {self.root / 'gt' / f'gt_{i:04d}.mp4'}")
        order = sorted(gt)
        digests = cached_sha256s([gt[i] for i in order])
        ids = tuple(f"{i:04d}" for i in order)
        self._gt = gt
        # content, not location: identical GT in two folders is one manifest
        protocol = {"gt_sha256": stable_hash(dict(zip(ids, digests)))}
        if self.seg_videos is not None:  # by content too, so a moved or copied folder is the same dataset
            segs = {i: p for i in ids if (p := self._seg_or_none(i)) is not None}
            protocol["seg_sha256"] = stable_hash(dict(zip(segs, cached_sha256s(list(segs.values())))))
        return Split(self.name, self.split_name, ids, protocol)

    def identity(self, split: Split | None = None) -> dict:
        """The dataset identity; ``content_guarded`` says that a changed ``gt_sha256`` alone (same files,
        new content) resumes a run folder: each payload records its GT file's sha256, so exactly the changed
        clips are recomputed (pam_bench.store.same_files_new_content)."""
        guarded = ["gt_sha256", "seg_sha256"] if self.seg_videos is not None else "gt_sha256"
        return {**super().identity(split), "content_guarded": guarded}

    def _gt_file(self, sample_id: str) -> Path:
        gt = getattr(self, "_gt", None) or self._indices("gt", _GT)
        try:
            return gt[int(sample_id)]
        except (KeyError, ValueError):
            raise InputError(self.root / "gt", f"no GT file for clip {sample_id!r}") from None

    def sample_index(self, sample_id: str) -> int:
        """The clip's number in the official file names (generated_XXXX.mp4), not its position."""
        return int(sample_id)

    def source_files(self, sample_id: str) -> list[Path]:
        seg = [self.seg_path(sample_id)] if self.seg_videos is not None else []  # MF's foreground
        return [self._gt_file(sample_id), *seg]

    def _seg_or_none(self, sample_id: str) -> Path | None:
        for name in (f"seg_{sample_id}.mp4", f"{sample_id}.mp4"):
            if (self.seg_videos / name).is_file():
                return self.seg_videos / name
        return None

    def seg_path(self, sample_id: str) -> Path:
        found = self._seg_or_none(sample_id)
        if found is not None:
            return found
        raise InputError(self.seg_videos / f"seg_{sample_id}.mp4", f"no segmentation video for clip {sample_id}")

    def load(self, sample_id: str) -> Sample:
        from ..video import read_video

        v = read_video(self._gt_file(sample_id))
        meta = {"index": int(sample_id), "source": "pam-eval-dir"}
        conditions = {}
        if self.seg_videos is not None:
            conditions["seg"] = read_video(self.seg_path(sample_id))
            meta["seg_source"] = "seg-videos"
        return Sample(id=sample_id, video=v, conditions=conditions, meta=meta)
