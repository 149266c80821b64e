"""``pam-eval-dir``: the GT side of the folder the official PAM evaluation script writes.

Layout (testing/evaluation_comb_dexycb.py): ``generated/generated_{idx:04d}.mp4``, ``gt/gt_{idx:04d}.mp4``
(and ``group/`` side-by-side previews, ignored). Ids are the 4-digit indices; every generated video must
have its gt partner and vice versa (a one-line error names the first file without one).
"""
from __future__ import annotations

import re
from pathlib import Path

from ..errors import InputError
from ..types import Dataset, Sample, Split

_GT = re.compile(r"^gt_(\d+)\.mp4$")
_GEN = re.compile(r"^generated_(\d+)\.mp4$")


class PamEvalDir(Dataset):
    name = "pam-eval-dir"

    def __init__(self, root=None, split=None, **options):
        if root is None:
            raise InputError("--root", "pam-eval-dir needs the evaluation folder (--videos or --root)")
        self.root = Path(root)
        self.split_name = split or "all"
        if not self.root.is_dir():
            raise InputError(self.root, "no such folder")

    def _indices(self, sub: str, pat) -> dict[int, Path]:
        d = self.root / sub
        if not d.is_dir():
            return {}
        out = {}
        for p in d.iterdir():
            m = pat.match(p.name)
            if m:
                out[int(m.group(1))] = p
        return out

    def split(self) -> Split:
        gt = self._indices("gt", _GT)
        gen = self._indices("generated", _GEN)
        if not gt and not gen:
            raise InputError(self.root, "empty: expected gt/gt_XXXX.mp4 and generated/generated_XXXX.mp4")
        for i in sorted(set(gen) - set(gt)):
            raise InputError(gen[i], f"has no partner {self.root / 'gt' / f'gt_{i:04d}.mp4'}")
        for i in sorted(set(gt) - set(gen)):
            raise InputError(gt[i], f"has no partner {self.root / 'generated' / f'generated_{i:04d}.mp4'}")
        ids = tuple(f"{i:04d}" for i in sorted(gt))
        return Split(self.name, self.split_name, ids, {"source": str(self.root.resolve())})

    def load(self, sample_id: str) -> Sample:
        from ..video import read_video

        v = read_video(self.root / "gt" / f"gt_{sample_id}.mp4")
        return Sample(id=sample_id, video=v, meta={"index": int(sample_id), "source": "pam-eval-dir"})
