"""``pam-bench breakdown``: a run's metrics per group of clips (object, camera, subject, ...)."""
from __future__ import annotations

import click

from .evaluate import parse_kv


@click.command("breakdown", epilog="""\b
Examples:
  pam-bench breakdown runs/pam --by object
  pam-bench breakdown runs/pam --by camera --min-set-clips 50
""")
@click.argument("run", type=click.Path())
@click.option("--by", required=True, help="clip metadata key: dexycb subject/grasp/object/camera/hand, "
                                          "oakink2 sequence/scene/object/camera, synthetic object/size")
@click.option("--root", type=click.Path(), default=None, help="dataset root, if it moved since the run")
@click.option("-d", "--dataset-option", "dataset_options", multiple=True, help="dataset option key=value")
@click.option("--min-set-clips", type=int, default=10, show_default=True,
              help="FVD/FVMD are reported only for groups with at least this many clips")
@click.option("--gt-cache", type=click.Path(), default=None, help="GT-feature cache [$PAM_BENCH_HOME/gt_cache]")
@click.option("--device", default="cpu", show_default=True, help="device for recomputing missing GT features")
@click.option("--out", type=click.Path(), default=None, help="folder for breakdown_<key>.json/.md [RUN]")
def breakdown(run, by, root, dataset_options, min_set_clips, gt_cache, device, out):
    """Per-group means with 95% intervals (and set metrics where a group is large enough)."""
    from ..report.breakdown import breakdown as run_breakdown
    from ..report.breakdown import format_breakdown, write_breakdown

    rep = run_breakdown(run, by, root, parse_kv(dataset_options), gt_cache, min_set_clips, device)
    click.echo(format_breakdown(rep), nl=False)
    js, md = write_breakdown(rep, out)
    click.echo(f"\nwrote {js} and {md}")
