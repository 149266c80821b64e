"""``pam-bench bench``: speed and memory of pam-bench's own passes, as ratios measured in one run."""
from __future__ import annotations

import tempfile
from pathlib import Path

import click


@click.command("bench")
@click.option("--pairs", default=4, show_default=True, help="number of video pairs (N)")
@click.option("--frames", default=49, show_default=True)
@click.option("--height", default=480, show_default=True)
@click.option("--width", default=720, show_default=True)
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
def bench(pairs, frames, height, width, what, skip_naive, method, checkpoint, options, device, seed):
    """Benchmark the metric pass on N synthetic video pairs (subprocesses; peak RSS per mode), or with
    --method M one method's generation stages."""
    if method:
        from ..stagebench import bench_method, format_table
        from .evaluate import parse_kv

        opts = {**parse_kv(options), **({"checkpoint": checkpoint} if checkpoint else {})}
        click.echo(format_table(bench_method(method, device, opts, frames, height, width, seed)))
        return
    from tabulate import tabulate

    from ..bench import make_pairs, run_mode

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        click.echo(f"making {pairs} pairs of {frames}x{height}x{width} clips ...", err=True)
        d1 = make_pairs(tmp / "n", pairs, frames, height, width)
        rows = []
        if what == "pixel":
            d2 = make_pairs(tmp / "2n", 2 * pairs, frames, height, width)
            dec = run_mode("decode", d1)
            ours = run_mode("pipeline", d1)
            ours2 = run_mode("pipeline", d2)
            modes = [("decode only (N)", dec), ("pam-bench pass (N)", ours), ("pam-bench pass (2N)", ours2)]
            if not skip_naive:
                naive = run_mode("naive", d1)
                naive2 = run_mode("naive", d2)
                modes += [("naive per-frame loop (N)", naive), ("naive per-frame loop (2N)", naive2)]
            for label, r in modes:
                rows.append([label, r["seconds"], r["cpu_seconds"], r["peak_rss_mb"],
                             r["cpu_seconds"] / dec["cpu_seconds"]])
            click.echo(tabulate(rows, headers=["mode", "wall s", "CPU s", "peak RSS MB", "x decode CPU"],
                                floatfmt=".2f"))
            click.echo(f"\npam-bench peak memory N -> 2N: {ours['peak_rss_mb']:.0f} -> {ours2['peak_rss_mb']:.0f} MB")
            if not skip_naive:
                click.echo(f"naive peak memory N -> 2N: {naive['peak_rss_mb']:.0f} -> {naive2['peak_rss_mb']:.0f} MB")
                click.echo(f"speed-up over the naive loop (CPU time, robust to other load): "
                           f"{naive['cpu_seconds'] / ours['cpu_seconds']:.2f}x at N, "
                           f"{naive2['cpu_seconds'] / ours2['cpu_seconds']:.2f}x at 2N; "
                           f"wall: {naive['seconds'] / ours['seconds']:.2f}x")
                diffs = {k: abs(naive["values"][k] - ours["values"][k]) for k in ours["values"]}
                click.echo("max |naive - pam-bench| per metric: " + ", ".join(f"{k}={v:.2e}" for k, v in diffs.items()))
        else:
            cache = tmp / "gt_cache"
            cold = run_mode("fvd-cold", d1, str(cache))
            warm = run_mode("fvd-warm", d1, str(cache))
            rows = [["cold GT cache", cold["seconds"], cold["cpu_seconds"], cold["peak_rss_mb"]],
                    ["warm GT cache", warm["seconds"], warm["cpu_seconds"], warm["peak_rss_mb"]]]
            click.echo(tabulate(rows, headers=["FVD run", "wall s", "CPU s", "peak RSS MB"], floatfmt=".2f"))
            click.echo("(model loading excluded from both; the warm run decodes only the generated videos)")
            click.echo(f"\nwarm speed-up (CPU time): {cold['cpu_seconds'] / warm['cpu_seconds']:.2f}x; "
                       f"same value: {cold['values'] == warm['values']}")
