"""``pam-bench bench``: speed and memory of pam-bench's own passes, as ratios measured in one run."""
from __future__ import annotations

import tempfile
from pathlib import Path

import click


@click.command("bench", epilog="""\b
Examples:
  pam-bench bench --pairs 2 --frames 49
  pam-bench bench --what gt-cache --pairs 6
  pam-bench bench --method pam --checkpoint /ckpt/pam --device cuda
""")
@click.option("--pairs", default=4, show_default=True, help="number of video pairs (N)")
@click.option("--frames", default=49, show_default=True, help="frames per synthetic clip")
@click.option("--height", default=480, show_default=True, help="clip height (px)")
@click.option("--width", default=720, show_default=True, help="clip width (px)")
@click.option("--what", type=click.Choice(["pixel", "gt-cache"]), default="pixel", show_default=True,
              help="pixel: SSIM/PSNR/LPIPS pass vs decode vs a naive loop (memory at N and 2N); "
                   "gt-cache: FVD with a cold vs a warm GT-feature cache")
@click.option("--skip-naive", is_flag=True, help="do not run the (slow) naive loop")
@click.option("--method", default=None, help="per-stage time and memory of one method on one synthetic clip "
              "(pam: Stage I/II/III beside the paper's Table 5; others: one 'generate' stage)")
@click.option("--checkpoint", type=click.Path(), default=None, help="--method: model checkpoint directory")
@click.option("-o", "--option", "options", multiple=True, help="--method: method option key=value")
@click.option("--device", default="cpu", show_default=True, help="--method: cpu, cuda, ...")
@click.option("--seed", default=42, show_default=True, type=int, help="--method: base seed")
@click.option("--no-progress", is_flag=True, help="no per-stage progress bar on stderr")
def bench(pairs, frames, height, width, what, skip_naive, method, checkpoint, options, device, seed, no_progress):
    """Benchmark the metric pass on N synthetic video pairs (subprocesses; peak RSS per mode), or with
    --method M one method's generation stages."""
    if method:
        from ..stagebench import bench_method, format_table
        from .evaluate import parse_kv

        opts = {**parse_kv(options), **({"checkpoint": checkpoint} if checkpoint else {})}
        click.echo(format_table(bench_method(method, device, opts, frames, height, width, seed)))
        return
    from ..bench import make_pairs
    from ..console import progress

    n_stages = (5 if not skip_naive else 3) if what == "pixel" else 2
    bar = progress(n_stages, "bench stages", "stage", not no_progress)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        click.echo(f"making {pairs} pairs of {frames}x{height}x{width} clips ...", err=True)
        d1 = make_pairs(tmp / "n", pairs, frames, height, width)
        if what == "pixel":
            d2 = make_pairs(tmp / "2n", 2 * pairs, frames, height, width)
            _pixel(_staged(bar), d1, d2, skip_naive, bar)
        else:
            _gt_cache(_staged(bar), d1, tmp / "gt_cache", bar)


def _staged(bar):
    """run_mode that names the stage on the progress bar and advances it when the stage ends."""
    from ..bench import run_mode

    def run(mode, *args):
        bar.set_postfix_str(mode)
        r = run_mode(mode, *args)
        bar.update(1)
        return r
    return run


def _pixel(run_mode, d1, d2, skip_naive: bool, bar) -> None:
    from tabulate import tabulate

    dec = run_mode("decode", d1)
    ours = run_mode("pipeline", d1)
    ours2 = run_mode("pipeline", d2)
    modes = [("decode only (N)", dec), ("pam-bench pass (N)", ours), ("pam-bench pass (2N)", ours2)]
    if not skip_naive:
        naive = run_mode("naive", d1)
        naive2 = run_mode("naive", d2)
        modes += [("naive per-frame loop (N)", naive), ("naive per-frame loop (2N)", naive2)]
    bar.close()
    rows = [[label, r["seconds"], r["cpu_seconds"], r["peak_rss_mb"], r["cpu_seconds"] / dec["cpu_seconds"]]
            for label, r in modes]
    click.echo(tabulate(rows, headers=["mode", "wall s", "CPU s", "peak RSS MB", "x decode CPU"], floatfmt=".2f"))
    click.echo(f"\npam-bench peak memory N -> 2N: {ours['peak_rss_mb']:.0f} -> {ours2['peak_rss_mb']:.0f} MB")
    if not skip_naive:
        click.echo(f"naive peak memory N -> 2N: {naive['peak_rss_mb']:.0f} -> {naive2['peak_rss_mb']:.0f} MB")
        click.echo(f"speed-up over the naive loop (CPU time, robust to other load): "
                   f"{naive['cpu_seconds'] / ours['cpu_seconds']:.2f}x at N, "
                   f"{naive2['cpu_seconds'] / ours2['cpu_seconds']:.2f}x at 2N; "
                   f"wall: {naive['seconds'] / ours['seconds']:.2f}x")
        diffs = {k: abs(naive["values"][k] - ours["values"][k]) for k in ours["values"]}
        click.echo("max |naive - pam-bench| per metric: " + ", ".join(f"{k}={v:.2e}" for k, v in diffs.items()))


def _gt_cache(run_mode, d1, cache, bar) -> None:
    from tabulate import tabulate

    cold = run_mode("fvd-cold", d1, str(cache))
    warm = run_mode("fvd-warm", d1, str(cache))
    bar.close()
    rows = [["cold GT cache", cold["seconds"], cold["cpu_seconds"], cold["peak_rss_mb"]],
            ["warm GT cache", warm["seconds"], warm["cpu_seconds"], warm["peak_rss_mb"]]]
    click.echo(tabulate(rows, headers=["FVD run", "wall s", "CPU s", "peak RSS MB"], floatfmt=".2f"))
    click.echo("(model loading excluded from both; the warm run decodes only the generated videos)")
    click.echo(f"\nwarm speed-up (CPU time): {cold['cpu_seconds'] / warm['cpu_seconds']:.2f}x; "
               f"same value: {cold['values'] == warm['values']}")
