"""``pam-bench data verify`` and ``pam-bench data show``: check a dataset folder, look at one clip.

Flags mean what they mean in ``evaluate``: ``-d key=value`` is a dataset option (e.g. ``-d clip_list=F``).
``verify`` checks everything, then prints counts by kind of problem with the first few paths of each kind
(``--list`` prints all of them).
"""
from __future__ import annotations

import re
from pathlib import Path

import click

from .evaluate import parse_kv

PANEL_ORDER = ("seg", "hand", "depth")


SHOW_PER_KIND = 3
NO_LIMIT = 10 ** 9


def _build(dataset: str, root: str | None, split: str | None, options) -> object:
    from ..run.components import build_dataset

    return build_dataset(dataset, root=root, split=split, **parse_kv(options))


def _common(f):
    f = click.option("-d", "--dataset-option", "options", multiple=True,
                     help="dataset option key=value, as for evaluate (e.g. -d clip_list=F for oakink2)")(f)
    f = click.option("--split", default=None, help="split name (dataset-specific; pam-bench list --kind dataset)")(f)
    f = click.option("--root", default=None, type=click.Path(),
                     help="dataset root folder (not needed for synthetic)")(f)
    f = click.option("--dataset", required=True, help="dataset name (pam-bench list --kind dataset)")(f)
    return f


@click.group("data", epilog="""\b
Examples:
  pam-bench data verify --dataset dexycb --root /data/dexycb --split s0-pam-val
  pam-bench data show --dataset synthetic --out clip.png
""")
def data():
    """Check real dataset folders and look at their clips."""


def problem_kind(path: str, reason: str) -> str:
    """The kind of a problem: the file's name pattern and the reason, numbers folded and details dropped
    ('.../labels_000012.npz', 'missing' -> 'labels_N.npz: missing')."""
    why = reason.split(" (", 1)[0] if reason.startswith("unreadable") else reason
    p = Path(path)
    kind = re.sub(r"\d+", "N", p.stem) + p.suffix + ": " + re.sub(r"\d+", "N", why)
    return kind if len(kind) <= 80 else kind[:77] + "..."


def format_problems(problems: list[tuple[str, str]], show_all: bool = False) -> list[str]:
    """Counts by kind (most frequent first), then the first few paths of each kind (all with show_all)."""
    kinds: dict[str, list[tuple[str, str]]] = {}
    for path, reason in problems:
        kinds.setdefault(problem_kind(path, reason), []).append((path, reason))
    lines = [f"INCOMPLETE: {len(problems)} problem(s) of {len(kinds)} kind(s)"]
    for kind, items in sorted(kinds.items(), key=lambda kv: -len(kv[1])):
        lines.append(f"  {kind}: {len(items)}")
        shown = items if show_all else items[:SHOW_PER_KIND]
        lines += [f"    {path}: {reason}" for path, reason in shown]
        if len(items) > len(shown):
            lines.append(f"    ... and {len(items) - len(shown)} more (--list shows all)")
    return lines


@data.command("verify", epilog="""\b
Examples:
  pam-bench data verify --dataset dexycb --root /data/dexycb --split s0-pam-val
  pam-bench data verify --dataset oakink2 --root /data/oakink2 -d clip_list=val.txt --list
""")
@_common
@click.option("--deep", is_flag=True, help="also decode every clip (slow)")
@click.option("--list", "show_all", is_flag=True, help="print every problem's path, not the first few per kind")
@click.option("--max-problems", default=None, type=int,
              help="stop checking after this many problems [check everything]")
@click.pass_context
def verify(ctx, dataset, root, split, options, deep, show_all, max_problems):
    """Check every clip's files; print counts by kind of problem; exit 1 when incomplete."""
    ds = _build(dataset, root, split, options)
    limit = max_problems or NO_LIMIT
    if hasattr(ds, "verify"):
        rep = ds.verify(deep=deep, max_problems=limit)
    else:
        rep = _generic_verify(ds, limit)
    click.echo(f"{rep.dataset} {rep.split} at {rep.root}")
    for k, v in rep.counts.items():
        click.echo(f"  {k}: {v}")
    for note in rep.notes:
        click.echo(f"  note: {note}")
    if rep.problems:
        for line in format_problems(list(dict.fromkeys(rep.problems)), show_all):  # one line per (path, reason)
            click.echo(line)
        ctx.exit(1)
    click.echo("OK")


def _generic_verify(ds, max_problems: int):
    """Datasets without their own verify: load every sample and collect the errors."""
    from ..datasets._common import VerifyReport
    from ..errors import PamBenchError

    s = ds.split()
    rep = VerifyReport(ds.name, str(getattr(ds, "root", "")), s.name, {"clips": len(s)})
    for sid in s.ids:
        try:
            ds.load(sid)
            rep.bump("complete")
        except PamBenchError as e:
            rep.add(getattr(e, "path", sid), getattr(e, "problem", str(e)))
            if len(rep.problems) >= max_problems:
                break
    return rep


@data.command("show", epilog="""\b
Examples:
  pam-bench data show --dataset synthetic --out clip.png
  pam-bench data show --dataset dexycb --root /data/dexycb --id ID --out clip.mp4
""")
@_common
@click.option("--id", "sample_id", default=None, help="clip id [the split's first]")
@click.option("--frame", default=0, show_default=True, type=int, help="frame for a .png")
@click.option("--out", required=True, type=click.Path(), help="F.png (one frame) or F.mp4 (the clip)")
def show(dataset, root, split, options, sample_id, frame, out):
    """Write frame | conditions | joints overlay side by side."""
    from ..errors import FlagError, InputError

    ds = _build(dataset, root, split, options)
    sid = sample_id or ds.split().ids[0]
    sample = ds.load(sid)
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in (".png", ".mp4"):
        raise InputError(out, "use a .png (one frame) or .mp4 (the whole clip) output")
    t = sample.video.num_frames
    if suffix == ".png":
        if not 0 <= frame < t:
            raise FlagError("--frame", f"{frame} is outside 0..{t - 1}")
        from PIL import Image

        out.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(side_by_side(sample, frame)).save(out)
    else:
        import numpy as np

        from ..types import Video
        from ..video import write_video

        frames = np.stack([side_by_side(sample, i) for i in range(t)])
        write_video(out, Video(frames, sample.video.fps), codec="h264")
    click.echo(f"wrote {out} ({sid}: frame | {' | '.join(PANEL_ORDER)} | joints)")


def side_by_side(sample, i: int):
    """One row: RGB, each condition (a grey 'no X' panel when absent), RGB with the GT joints drawn."""
    import cv2
    import numpy as np

    rgb = sample.video.frames[i]
    h, w = rgb.shape[:2]
    panels = [rgb]
    for name in PANEL_ORDER:
        c = sample.conditions.get(name)
        if c is None:
            p = np.full((h, w, 3), 64, np.uint8)
            cv2.putText(p, f"no {name}", (20, h // 2), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (220, 220, 220), 2)
        else:
            p = c.frames[min(i, c.num_frames - 1)]
        panels.append(p)
    panels.append(joints_overlay(rgb, None if sample.joints_2d is None else sample.joints_2d[i]))
    return np.concatenate(panels, axis=1)


def joints_overlay(rgb, joints_2d):
    """RGB with each hand's 21 joints and bones drawn (a 'no joints' label when unavailable)."""
    import cv2
    import numpy as np

    from ..render import LIMBS, code_color

    img = np.ascontiguousarray(rgb.copy())
    if joints_2d is None:
        cv2.putText(img, "no joints", (20, 40), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (255, 255, 255), 2)
        return img
    for hand in np.asarray(joints_2d):
        if not np.isfinite(hand).all():
            continue
        pts = np.round(hand).astype(int)
        for n, (a, b) in enumerate(LIMBS):
            cv2.line(img, tuple(map(int, pts[a])), tuple(map(int, pts[b])), code_color(n), 2)
        for p in pts:
            cv2.circle(img, (int(p[0]), int(p[1])), 3, (255, 255, 255), -1)
    return img
