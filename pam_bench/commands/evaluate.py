"""``pam-bench evaluate`` and ``pam-bench table``."""
from __future__ import annotations

import click

from ..errors import FlagError, MissingResource, PamBenchError
from ..options import parse_pairs as parse_kv  # -o/-d/-m key=value pairs (pam_bench.options)


def check_device(device: str) -> str:
    """cpu, cuda or cuda:N (a GPU that is there); mps. Anything else is a one-line error."""
    import re

    m = re.fullmatch(r"(cpu|mps|cuda)(?::(\d+))?", str(device))
    if not m or (m.group(1) == "cpu" and m.group(2)):
        raise FlagError("--device", f"unknown device {device!r}; use cpu, cuda or cuda:N")
    if m.group(1) == "cuda":
        import torch

        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise MissingResource(f"a CUDA GPU for --device {device}", "none is visible here; use --device cpu")
        if m.group(2) is not None and int(m.group(2)) >= n:
            raise FlagError("--device", f"{device}: only {n} CUDA device(s) here (cuda:0..cuda:{n - 1})")
    return device


def _metric_options(pairs) -> dict:
    """``-m fvd.detector=stylegan-v-torchscript`` -> {"fvd": {"detector": ...}}."""
    out: dict = {}
    for k, v in parse_kv(pairs).items():
        if "." not in k:
            raise PamBenchError(f"metric option {k!r} must look like metric.key=value")
        m, key = k.split(".", 1)
        out.setdefault(m, {})[key] = v
    return out


@click.command("evaluate", epilog="""\b
Examples:
  pam-bench evaluate --method folder --videos EVAL_DIR --metrics ssim,psnr,lpips,fvd,mf --out runs/ckpt_0042
  pam-bench evaluate --method pam --checkpoint PAM_DIR --dataset dexycb --root DEXYCB --device cuda --out runs/pam
""")
@click.option("--method", "method", required=True, help="a method name (pam-bench list)")
@click.option("--dataset", default=None, help="dataset name [synthetic; pam-eval-dir with --method folder]")
@click.option("--root", type=click.Path(), default=None, help="dataset root folder")
@click.option("--split", default=None, help="split name (dataset-specific)")
@click.option("--videos", type=click.Path(), default=None, help="folder method: the folder of generated videos")
@click.option("--checkpoint", type=click.Path(), default=None, help="model checkpoint directory")
@click.option("--metrics", default=None,
              help="comma-separated metric names [ssim,psnr,lpips]; 'none' generates videos only")
@click.option("--out", type=click.Path(), default=None, help="run folder [runs/<method>-<dataset>]")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:1, ...")
@click.option("--seed", default=42, show_default=True, type=int, help="base seed (per-clip seeds derive from it)")
@click.option("--seeds", default=None,
              help="S1,S2,...: one run per seed in OUT/seed-S, mean ± std in OUT (pam_bench.seeds)")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="evaluate only the first N clips (N >= 1; a later larger --limit resumes the same run)")
@click.option("--ids", default=None,
              help="evaluate only these clip ids: comma-separated, or @FILE with one id per line")
@click.option("--allow-missing", is_flag=True,
              help="folder method: score only the clips whose video is present (default: refuse a partial folder)")
@click.option("--shard", default=None, help="i/N: evaluate every N-th clip from i (merge with pam-bench merge)")
@click.option("-o", "--option", "options", multiple=True, help="method option key=value (repeatable)")
@click.option("-d", "--dataset-option", "dataset_options", multiple=True, help="dataset option key=value")
@click.option("-m", "--metric-option", "metric_options", multiple=True, help="metric option metric.key=value")
@click.option("--codec", type=click.Choice(["lossless", "h264"]), default="lossless", show_default=True,
              help="how generated videos are stored in OUT/videos (lossless: metrics see exactly what was generated)")
@click.option("--trim", is_flag=True, help="trim generated videos longer than the reference to its length")
@click.option("--resize", is_flag=True, help="stretch generated frames to the reference size (bilinear)")
@click.option("--force", is_flag=True, help="discard a run folder that holds a different run")
@click.option("--gt-cache", type=click.Path(), default=None, help="GT-feature cache [$PAM_BENCH_HOME/gt_cache]")
@click.option("--no-progress", is_flag=True, help="no progress bar on stderr")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="clips decoded at once, and measured at once by the CPU metrics (SSIM, PSNR) [the core "
                   "count]; results do not depend on it")
@click.option("--condition-noise", type=float, default=None,
              help="SIGMA: Gaussian noise on the condition videos, uint8 units on 0..255 (pam_bench.noise)")
@click.option("--condition-noise-seed", type=int, default=0, show_default=True, help="seed of that noise")
def evaluate(method, dataset, root, split, videos, checkpoint, metrics, out, device, seed, seeds, limit, ids,
             allow_missing, shard, options, dataset_options, metric_options, codec, trim, resize, force, gt_cache,
             no_progress,
             condition_noise, condition_noise_seed, workers):
    """Generate (or read) videos for a dataset split and score them."""
    from ..run.components import DEFAULT_METRICS
    from ..run.loop import evaluate as run

    check_device(device)
    mopts = parse_kv(options)
    if checkpoint:
        mopts["checkpoint"] = checkpoint
    if videos:
        mopts["videos"] = videos
    if dataset is None:
        dataset = "pam-eval-dir" if method == "folder" and videos and not root else "synthetic"
        if dataset == "pam-eval-dir":
            root = videos
    if metrics and metrics.strip() == "none":
        names = []  # generate only (e.g. PAM's OAKINK2 sample, which ships no GT video)
    else:
        names = [m.strip() for m in metrics.split(",")] if metrics else list(DEFAULT_METRICS)
        if not all(names) or len(set(names)) != len(names):
            raise FlagError("--metrics", f"must be distinct comma-separated metric names, got {metrics!r}")
    out = out or f"runs/{method}-{dataset}"
    kw = dict(method=method, dataset=dataset, metrics=names, device=device, root=root,
              split=split, limit=limit, shard=shard, method_options=mopts,
              dataset_options=parse_kv(dataset_options), metric_options=_metric_options(metric_options),
              force=force, codec=codec, progress=not no_progress, gt_cache=gt_cache, trim=trim, resize=resize,
              condition_noise=condition_noise, condition_noise_seed=condition_noise_seed,
              ids=parse_ids(ids), allow_missing=allow_missing, workers=workers)
    if seeds:
        from ..seeds import evaluate_seeds, parse_seeds

        res = evaluate_seeds(parse_seeds(seeds), run, out, **kw)
    else:
        res = run(seed=seed, out=out, **kw)
    from ..console import is_main_process
    from ..report.smalln import warnings_for

    if not is_main_process():
        return
    click.echo(format_results([res]))
    from ..results import console_notes

    for line in console_notes(res):
        click.echo(line)
    for w in warnings_for(res):
        click.echo(f"pam-bench: warning: {w}", err=True)
    from ..run.timing import summary

    took = summary(res.get("timing"))
    if took:
        click.echo(f"\n{took}")
    click.echo(f"\nwrote {out}/results.json and {out}/per_video.jsonl")


def parse_ids(spec: str | None) -> list[str] | None:
    """``--ids a,b,c`` or ``--ids @FILE`` (one id per line; blank lines and # comments skipped)."""
    if not spec:
        return None
    if spec.startswith("@"):
        from pathlib import Path

        from ..errors import InputError

        p = Path(spec[1:])
        try:
            lines = p.read_text().splitlines()
        except OSError as e:
            raise InputError(p, f"cannot read the --ids file ({e.strerror or e})") from None
        out = [x.strip() for x in lines if x.strip() and not x.strip().startswith("#")]
    else:
        out = [x.strip() for x in spec.split(",") if x.strip()]
    if not out:
        raise PamBenchError(f"--ids {spec!r} names no clip")
    return out


def format_results(results: list[dict], tablefmt: str = "github") -> str:
    """One row per result; columns are metric name + backend, so different backends never share one."""
    from tabulate import tabulate

    from ..results import column_key
    from ..report.smalln import MARK, is_small, note

    cols: list[tuple] = []
    meta = {}
    for r in results:
        for name, m in r["metrics"].items():
            ck = column_key(name, m)
            if ck not in cols:
                cols.append(ck)
                meta[ck] = m
    names = [c[0] for c in cols]
    headers = ["method", "dataset", "N"]
    for c in cols:
        arrow = "↓" if meta[c]["direction"] == "lower" else "↑"
        label = f"{c[0]} {arrow}"
        if names.count(c[0]) > 1:
            label += f" [{c[1]}]"
        headers.append(label)
    rows = []
    marked = False
    for r in results:
        row = [r["method"]["name"], f"{r['dataset']['name']}/{r['dataset'].get('split')}",
               f"{r['n_evaluated']}/{r['n_expected']}" + (f" × {len(r['seeds'])} seeds" if r.get("seeds") else "")]
        for c in cols:
            m = r["metrics"].get(c[0])
            if m is None or column_key(c[0], m) != c:
                row.append("")
            elif m["value"] is None:
                row.append("n/a")
            else:
                from ..results import whole_frame_mark

                small = is_small(c[0], m)
                marked = marked or small
                row.append(_fmt(m) + whole_frame_mark(c[0], m) + (MARK if small else ""))
        rows.append(row)
    backends = "; ".join(f"{c[0]}={c[1]}@{c[2]}" for c in cols)
    text = tabulate(rows, headers=headers, tablefmt=tablefmt) + f"\n\nbackends: {backends}"
    return text + (f"\n{note()}" if marked else "")


def _fmt(m: dict) -> str:
    from ..seeds import format_cell

    if format_cell(m) is not None:  # aggregated over seeds: mean ± std
        return format_cell(m)
    v = m["value"]
    s = f"{v:.4g}" if abs(v) < 1000 else f"{v:.1f}"
    if m.get("ci95"):
        lo, hi = m["ci95"]
        s += f" ±{(hi - lo) / 2:.2g}"
    return s


@click.command("table", epilog="""\b
Examples:
  pam-bench table runs/ckpt_0040 runs/ckpt_0042
  pam-bench table runs/* --format latex
""")
@click.argument("results", nargs=-1, required=True, type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["github", "simple", "latex", "tsv"]), default="github",
              show_default=True, help="table style (tabulate); for the paper's layouts use pam-bench leaderboard")
def table(results, fmt):
    """Print results (results.json files or run folders) side by side, one row per run."""
    from ..results_types import load_checked

    click.echo(format_results([load_checked(r) for r in results], tablefmt=fmt))
