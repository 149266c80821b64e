"""The ``folder`` method: videos a user generated elsewhere.

Looked up per sample, in this order, inside ``--videos DIR``:
  1. ``generated/generated_{index:04d}.mp4`` — the layout the official PAM evaluation script writes
     (index = the clip's position in the ordered split, e.g. DexYCB s0-pam-val);
  2. ``generated_{index:04d}.mp4`` directly in DIR (split order, without the ``generated/`` folder);
  3. ``<video_id>.mp4`` with '/' in the id replaced by '__';
  4. ``<video_id>.mp4`` as a relative path.
``evaluate`` asks :meth:`FolderMethod.locate` for every selected clip before any decoding, so a folder with
fewer videos than the split is reported with its counts up front (pam_bench.completeness).
A missing file is a one-line error naming the path that was expected. A clip id with a '..', '.' or
empty component, or an absolute one, is refused: reads stay inside ``--videos``. Decoding is bounded by the
reference clip's frame count, probed before any frame is decoded (pam_bench.video.read_video).
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from pam_bench.errors import FlagError, InputError
from pam_bench.store import safe_id
from pam_bench.types import Generator, Sample, Video


class FolderMethod(Generator):
    name = "folder"
    needs = ()

    def __init__(self, device: str = "cpu", videos=None, **options):
        if videos is None:
            raise FlagError("--videos", "the folder method needs --videos DIR (the folder with your generated videos)")
        self.root = Path(videos)
        if not self.root.is_dir():
            raise InputError(self.root, "no such folder")
        self.device = device
        self._sources: dict[str, Path] = {}

    @property
    def writes_videos(self) -> bool:
        return False

    def candidates(self, sample: Sample) -> list[Path]:
        return self._candidates(sample.id, sample.meta.get("index"))

    def _candidates(self, video_id: str, index) -> list[Path]:
        parts = str(video_id).replace("\\", "/").split("/")
        if str(video_id).startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise InputError(self.root, f"clip id {video_id!r} would read outside --videos (a '..', '.' or "
                                        "empty path component)")
        c = []
        if index is not None:
            c += [self.root / "generated" / f"generated_{int(index):04d}.mp4",
                  self.root / f"generated_{int(index):04d}.mp4"]
        c += [self.root / f"{safe_id(video_id)}.mp4", self.root / f"{video_id}.mp4"]
        return c

    def source_files(self, video_id: str, index: int | None = None) -> list[Path]:
        """The file the clip's video is read from (its sha256 guards reused payloads); [] when none is."""
        return [p for p in self._candidates(video_id, index) if p.is_file()][:1]

    def locate(self, video_id: str, index: int | None) -> Path | None:
        """The file that holds a clip's video (None when absent); no decoding."""
        return next((p for p in self._candidates(video_id, index) if p.is_file()), None)

    def expected(self, video_id: str, index: int | None) -> Path:
        """The first place a clip's video is looked for (named when it is missing)."""
        return self._candidates(video_id, index)[0]

    def source_of(self, video_id: str) -> str:
        """The file a clip's video was read from (for error messages)."""
        return str(self._sources.get(video_id, self.root / video_id))

    def seed_ignored(self) -> str:
        return "its videos were made elsewhere"

    def generate(self, sample: Sample, seed: int) -> Video:
        from pam_bench.video import read_video

        expect = sample.video.num_frames if sample.video is not None else sample.meta.get("expect_frames")
        trim = bool(sample.meta.get("trim", False))
        for p in self.candidates(sample):
            if p.is_file() or p.is_symlink():
                self._sources[sample.id] = p
                return read_video(p, expect_frames=expect, trim=trim)
        raise InputError(self.candidates(sample)[0], f"no generated video for clip {sample.id}")

    def identity(self) -> dict:
        # The listing of names under --videos, gt/ included (not sizes or mtimes: a copied folder is the
        # same run). File contents are guarded per clip: each payload records the sha256 of the generated
        # and GT files it came from, and a changed file is recomputed on the next run (pam_bench.run.inputs).
        files = []
        for top, dirs, names in os.walk(self.root, followlinks=False):
            dirs[:] = sorted(d for d in dirs if d != "group")
            files += [Path(top, n).relative_to(self.root).as_posix() for n in names if n.endswith(".mp4")]
        files.sort()
        h = hashlib.sha256("\n".join(files).encode())
        try:
            where = str(self.root.resolve())
        except (OSError, RuntimeError) as e:
            raise InputError(self.root, f"cannot resolve the folder ({e})") from None
        return {"name": self.name, "videos": where, "n_files": len(files), "listing_sha256": h.hexdigest(),
                "contents": "sha256 per clip, in each payload"}
