"""``pam-bench bench``: speed and memory of pam-bench's own passes, as ratios measured in one run."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import click


@click.command("bench", epilog="""\b
Examples:
  pam-bench bench --pairs 4 --clip ~/.cache/pam-bench/testdata/pam_samples/dexycb/val_video.mp4
  pam-bench bench --what decode --pairs 4
  pam-bench bench --what gt-cache --pairs 6
  pam-bench bench --method pam --checkpoint /ckpt/pam --device cuda
""")
@click.option("--pairs", default=4, show_default=True, help="number of video pairs (N)")
@click.option("--frames", default=49, show_default=True, help="frames per clip")
@click.option("--height", default=480, show_default=True, help="clip height (px)")
@click.option("--width", default=720, show_default=True, help="clip width (px)")
@click.option("--what", type=click.Choice(["pixel", "decode", "gt-cache"]), default="pixel", show_default=True,
              help="pixel: decode floor vs the SSIM+PSNR and SSIM+PSNR+LPIPS passes vs a naive loop, peak "
                   "memory at N and 8N, where the time goes; decode: every decoder path on lossless RGB, "
                   "yuv420p h264 and mpeg4; gt-cache: FVD with a cold vs a warm GT-feature cache")
@click.option("--clip", type=click.Path(exists=True, dir_okay=False), default=None,
              help="a real video whose frames make the pairs (e.g. the DexYCB sample) [a synthetic clip]")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="evaluate --workers [core count]")
@click.option("--skip-naive", is_flag=True, help="do not run the (slow) naive loop")
@click.option("--method", default=None, help="per-stage time and memory of one method on one synthetic clip "
              "(pam: Stage I/II/III beside the paper's Table 5; others: one 'generate' stage)")
@click.option("--checkpoint", type=click.Path(), default=None, help="--method: model checkpoint directory")
@click.option("-o", "--option", "options", multiple=True, help="--method: method option key=value")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, ... (--method; pixel: LPIPS in its "
              "pass and in the stage table, and the transfer)")
@click.option("--seed", default=42, show_default=True, type=int, help="--method: base seed")
@click.option("--no-progress", is_flag=True, help="no 'making pairs' lines on stderr")
def bench(pairs, frames, height, width, what, clip, workers, skip_naive, method, checkpoint, options, device,
          seed, no_progress):
    """Benchmark the metric pass on N video pairs (subprocesses; peak RSS per mode), or with --method M one
    method's generation stages."""
    from .evaluate import check_device

    check_device(device)  # before anything is made: a missing GPU is one line, not a subprocess's traceback
    if method:
        from ..stagebench import bench_method, format_table
        from .evaluate import parse_kv

        opts = {**parse_kv(options), **({"checkpoint": checkpoint} if checkpoint else {})}
        click.echo(format_table(bench_method(method, device, opts, frames, height, width, seed)))
        return
    from ..bench import make_pairs

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if not no_progress:
            click.echo(f"making {pairs} pairs of {frames}x{height}x{width} clips ...", err=True)
        d1 = make_pairs(tmp / "n", pairs, frames, height, width, clip=Path(clip) if clip else None)
        if what == "pixel":
            if not no_progress:
                click.echo(f"making {8 * pairs} pairs for the 8N memory check ...", err=True)
            d8 = make_pairs(tmp / "8n", 8 * pairs, frames, height, width, clip=Path(clip) if clip else None)
            _pixel(d1, d8, pairs, workers, skip_naive, device)
        elif what == "decode":
            _decode_table(d1)
        else:
            _gt_cache(d1, tmp / "gt_cache")


def _pixel(d1: Path, d8: Path, n: int, workers, skip_naive: bool, device: str) -> None:
    from tabulate import tabulate

    from ..bench import run_mode
    from ..prefetch import default_workers

    w = str(workers or default_workers())
    dec, dec8 = run_mode("decode", d1), run_mode("decode", d8)
    modes = [("decode floor: 2N videos, one after the other, 1 thread (N)", dec),
             (f"SSIM+PSNR pass, {w} workers (N)", run_mode("pass", d1, "ssim,psnr", w)),
             ("decode floor: 16N videos, one after the other, 1 thread (8N)", dec8),
             (f"SSIM+PSNR pass, {w} workers (8N)", run_mode("pass", d8, "ssim,psnr", w)),
              (f"SSIM+PSNR+LPIPS pass, {w} workers, LPIPS on {device} (N)",
              run_mode("pass", d1, "ssim,psnr,lpips", w, device))]
    if not skip_naive:
        modes.append(("naive per-frame loop, SSIM+PSNR+LPIPS (N)", run_mode("naive", d1)))
    rows = []
    for label, r in modes:
        clips, floor = (8 * n, dec8) if "(8N)" in label else (n, dec)  # each pass against its own floor
        rows.append([label, r["seconds"], r["cpu_seconds"], r["peak_rss_mb"], r["seconds"] / floor["seconds"],
                     clips / r["seconds"]])
    click.echo(tabulate(rows, headers=["mode", "wall s", "CPU s", "peak RSS MB", "x decode floor (wall)",
                                       "clips/s"], floatfmt=".2f"))
    ssim_psnr, ssim_psnr8, full = (modes[i][1] for i in (1, 3, 4))
    click.echo(f"\nSSIM+PSNR pass / decode floor: {ssim_psnr['seconds'] / dec['seconds']:.2f}x wall at N, "
               f"{ssim_psnr8['seconds'] / dec8['seconds']:.2f}x at 8N "
               f"(CPU: {ssim_psnr['cpu_seconds'] / dec['cpu_seconds']:.2f}x); SSIM+PSNR+LPIPS: "
               f"{full['seconds'] / dec['seconds']:.2f}x wall; {os.cpu_count()} cores, load average "
               f"{os.getloadavg()[0]:.1f} at the end")
    click.echo(f"peak RSS of the SSIM+PSNR pass N -> 8N: {ssim_psnr['peak_rss_mb']:.0f} -> "
               f"{ssim_psnr8['peak_rss_mb']:.0f} MB ({ssim_psnr8['peak_rss_mb'] / ssim_psnr['peak_rss_mb']:.2f}x)")
    same = all(ssim_psnr["values"][k] == full["values"][k] for k in ssim_psnr["values"])
    click.echo(f"SSIM and PSNR equal in both passes: {same}")
    if not skip_naive:
        naive = modes[-1][1]
        click.echo(f"speed-up over the naive loop (wall): {naive['seconds'] / full['seconds']:.2f}x; "
                   "max |naive - pam-bench| per metric: " + ", ".join(
                       f"{k}={abs(naive['values'][k] - full['values'][k]):.2e}" for k in full["values"]))
    _stage_table(d1, device)


def _stage_table(d1: Path, device: str) -> None:
    from tabulate import tabulate

    from ..bench import run_mode

    st = run_mode("stages", d1, device, "1")["values"]
    total = sum(st["seconds"].values())
    rows = [[k, v / st["pairs"], st["pairs"] / v if v else float("inf"), 100 * v / total]
            for k, v in st["seconds"].items()]
    click.echo(f"\nwhere one pair's time goes (one thread, stage by stage, device {device}):")
    click.echo(tabulate(rows, headers=["stage", "s per pair", "pairs/s", "% of the pair"], floatfmt=".3f"))


def _decode_table(d1: Path) -> None:
    from tabulate import tabulate

    from ..bench import run_mode

    r = run_mode("decoders", d1)["values"]
    paths = list(next(iter(r.values())))
    rows = [[kind] + [f"{v[p]['seconds']:.2f}{'' if v[p]['identical'] else ' (differs)'}" for p in paths]
            for kind, v in r.items()]
    click.echo(tabulate(rows, headers=["file kind (GT videos re-encoded)"] + [f"{p} s" for p in paths]))
    click.echo("(decoder x threads per clip; '(differs)' marks frames unequal to the default path's)")


def _gt_cache(d1: Path, cache: Path) -> None:
    from tabulate import tabulate

    from ..bench import run_mode

    cold = run_mode("fvd-cold", d1, str(cache))
    warm = run_mode("fvd-warm", d1, str(cache))
    rows = [["cold GT cache", cold["seconds"], cold["cpu_seconds"], cold["peak_rss_mb"]],
            ["warm GT cache", warm["seconds"], warm["cpu_seconds"], warm["peak_rss_mb"]]]
    click.echo(tabulate(rows, headers=["FVD run", "wall s", "CPU s", "peak RSS MB"], floatfmt=".2f"))
    click.echo("(model loading excluded from both; the warm run decodes only the generated videos)")
    click.echo(f"\nwarm speed-up (CPU time): {cold['cpu_seconds'] / warm['cpu_seconds']:.2f}x; "
               f"same value: {cold['values'] == warm['values']}")
