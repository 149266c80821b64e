"""The ``folder`` method: videos a user generated elsewhere.

Looked up per sample, in this order, inside ``--videos DIR``:
  1. ``generated/generated_{index:04d}.mp4`` — the layout the official PAM evaluation script writes
     (index = the clip's position in the ordered split, e.g. DexYCB s0-pam-val);
  2. ``<video_id>.mp4`` with '/' in the id replaced by '__';
  3. ``<video_id>.mp4`` as a relative path.
A missing file is a one-line error naming the path that was expected.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from pam_bench.errors import InputError
from pam_bench.store import safe_id
from pam_bench.types import Generator, Sample, Video


class FolderMethod(Generator):
    name = "folder"
    needs = ()

    def __init__(self, device: str = "cpu", videos=None, **options):
        if videos is None:
            raise InputError("--videos", "the folder method needs --videos DIR (the folder with your generated videos)")
        self.root = Path(videos)
        if not self.root.is_dir():
            raise InputError(self.root, "no such folder")
        self.device = device
        self._sources: dict[str, Path] = {}

    @property
    def writes_videos(self) -> bool:
        return False

    def candidates(self, sample: Sample) -> list[Path]:
        c = []
        if "index" in sample.meta:
            c.append(self.root / "generated" / f"generated_{int(sample.meta['index']):04d}.mp4")
        c += [self.root / f"{safe_id(sample.id)}.mp4", self.root / f"{sample.id}.mp4"]
        return c

    def source_of(self, video_id: str) -> str:
        """The file a clip's video was read from (for error messages)."""
        return str(self._sources.get(video_id, self.root / video_id))

    def generate(self, sample: Sample, seed: int) -> Video:
        from pam_bench.video import read_video

        for p in self.candidates(sample):
            if p.is_file():
                self._sources[sample.id] = p
                return read_video(p)
        raise InputError(self.candidates(sample)[0], f"no generated video for clip {sample.id}")

    def identity(self) -> dict:
        # Names and sizes (not mtimes: a copied folder is the same run); a replaced file changes the
        # identity, so stale payloads are never mixed with new videos (rerun with --force).
        files = sorted(p for p in self.root.rglob("*.mp4") if p.parent.name not in ("gt", "group"))
        h = hashlib.sha256()
        for p in files:
            st = p.stat()
            h.update(f"{p.relative_to(self.root)}:{st.st_size}".encode())
        return {"name": self.name, "videos": str(self.root.resolve()), "n_files": len(files),
                "listing_sha256": h.hexdigest()}
