"""``pam-bench leaderboard``, ``pam-bench check`` and ``pam-bench merge``."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from ..report.leaderboard import LAYOUTS, parse_labels
from .evaluate import parse_kv


LEADERBOARD_EXAMPLES = """\b
Examples:
  pam-bench leaderboard runs/pam runs/mine --label runs/mine=Ours --format md
  pam-bench leaderboard runs/pam runs/mine --format tex --out table1.tex
  pam-bench leaderboard runs/pam runs/mine --format html --out site --clips 4
  pam-bench leaderboard runs/pam runs/mine --format html --out site --group-by object
"""


@click.command("leaderboard", epilog=LEADERBOARD_EXAMPLES)
@click.argument("results", nargs=-1, type=click.Path())
@click.option("--layout", type=click.Choice(list(LAYOUTS)), default="table1",
              show_default=True, help="the paper's table: 1 DexYCB, 2 OAKINK2, 3 condition ablation, supp. 6 backbone")
@click.option("--format", "fmt", type=click.Choice(["md", "tex", "csv", "html"]), default="md", show_default=True,
              help="md (Markdown), tex (booktabs LaTeX for a paper), csv (full precision), html (a site in --out)")
@click.option("--label", "labels", multiple=True,
              help="RUN=NAME: the row name of the run folder RUN (repeatable) [method name + options]")
@click.option("--all-columns", is_flag=True,
              help="also show backend columns that no measured row fills (the paper's backends, reported only)")
@click.option("--out", type=click.Path(), default=None,
              help="output file (md/tex/csv; default stdout) or folder (html: DIR/index.html + previews)")
@click.option("--reported", type=click.Path(), default=None,
              help="reported-numbers CSV [pam_bench/reported.csv]")
@click.option("--no-reported", is_flag=True, help="measured rows only")
@click.option("--clips", default="2", show_default=True,
              help="html: number of clips to preview, or comma-separated clip ids")
@click.option("--root", type=click.Path(), default=None, help="html: dataset root for GT/condition previews")
@click.option("-d", "--dataset-option", "dataset_options", multiple=True, help="html: dataset option key=value")
@click.option("--group-by", default=None, metavar="KEY",
              help="html: group clips.html by this clip-metadata key (as breakdown --by: object, camera, ...)")
def leaderboard(results, layout, fmt, labels, all_columns, out, reported, no_reported, clips, root, dataset_options,
                group_by):
    """A paper-layout table of RESULTS (results.json files or run folders) beside the paper's reported rows."""
    from ..errors import FlagError
    from ..results_types import load_checked

    if group_by is not None and fmt != "html":
        raise FlagError("--group-by", f"groups the clips page of the HTML site: use it with --format html, not {fmt}")
    for r in results:
        load_checked(r)
    if fmt == "html":
        from ..report.html import write_html

        if not out:
            raise click.UsageError("--format html needs --out DIR")
        sel = int(clips) if clips.strip().isdigit() else [c.strip() for c in clips.split(",") if c.strip()]
        if sel == 0 or sel == []:
            raise click.BadParameter("must be a number >= 1 or clip ids", param_hint="--clips")
        index = write_html(results, out, layout, reported, not no_reported, sel, root, parse_kv(dataset_options),
                           labels=parse_labels(labels), all_columns=all_columns, group_by=group_by)
        click.echo(f"wrote {index}")
        return
    from ..report.leaderboard import leaderboard as make

    text = make(results, layout, fmt, reported, not no_reported, parse_labels(labels), all_columns)
    if out:
        from ..store import atomic_write_bytes

        atomic_write_bytes(Path(out), text.encode("utf-8"))
        click.echo(f"wrote {out}")
    else:
        click.echo(text, nl=False)


@click.command("check", epilog="""\b
Examples:
  pam-bench check runs/ckpt_0042 --baseline runs/ckpt_0040
  pam-bench check runs/ckpt_0042 --baseline runs/ckpt_0040 --tolerances tol.json
""")
@click.argument("result", type=click.Path())
@click.option("--baseline", required=True, type=click.Path(), help="the baseline results.json or run folder")
@click.option("--tolerances", type=click.Path(), default=None,
              help='JSON {"metric": {"abs": x, "rel": y}, "default": {...}} (defaults: pam_bench.report.regression)')
@click.option("--require-better", default=None,
              help="m1,m2: fail unless these metrics improved beyond tolerance and the seed spread")
def check(result, baseline, tolerances, require_better):
    """Exit 1 when a metric of RESULT got worse than BASELINE beyond its tolerance (the regression gate).

    Per-video metrics: paired bootstrap over per_video.jsonl (worse beyond tolerance AND significant);
    set metrics: tolerance (and the baseline's ci95). Improvements are reported, not failed. Exit 2 when
    the results cannot be compared (other dataset manifest, metric backend or version).
    """
    from ..report.regression import check as run_check
    from ..report.regression import format_report
    from ..results_types import load_checked

    load_checked(result)
    load_checked(baseline)
    rep = run_check(result, baseline, tolerances,
                    [m.strip() for m in require_better.split(",") if m.strip()] if require_better else ())
    click.echo(format_report(rep))
    if rep.failed:
        sys.exit(1)


@click.command("merge", epilog="""\b
Examples:
  pam-bench evaluate ... --shard 0/2 --out runs/s0 && pam-bench evaluate ... --shard 1/2 --out runs/s1
  pam-bench merge runs/s0 runs/s1 --out runs/all
""")
@click.argument("runs", nargs=-1, required=True, type=click.Path())
@click.option("--out", required=True, type=click.Path(), help="the merged run folder")
@click.option("--device", default="cpu", show_default=True, help="device for metrics computed at merge time")
@click.option("--gt-cache", type=click.Path(), default=None, help="GT-feature cache [$PAM_BENCH_HOME/gt_cache]")
@click.option("--force", is_flag=True, help="discard an --out folder that holds a different run")
@click.option("--allow-partial", is_flag=True,
              help="merge even when a shard lacks some per-video payloads (results then cover fewer clips)")
def merge(runs, out, device, gt_cache, force, allow_partial):
    """Merge the shard folders of one run (evaluate --shard i/N, e.g. a SLURM array) and compute its results."""
    from ..distributed import merge as run_merge
    from .evaluate import check_device, format_results

    check_device(device)
    res = run_merge(runs, out, device=device, gt_cache=gt_cache, force=force, allow_partial=allow_partial)
    click.echo(format_results([res]))
    click.echo(f"\nmerged {len(runs)} shards into {out}/results.json")
