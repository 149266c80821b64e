"""``pam-bench list``: every dataset, method and metric, whether it can run here, and what is missing.

Readiness is honest: an entry that needs an input only the user can supply (a checkpoint folder, a dataset
root, a method option) is "no" with "needs FLAG (where to get it)" until the user passes that input here,
exactly as they would pass it to ``evaluate``. With ``--method NAME`` / ``--dataset NAME`` and those
inputs, the component is built and runs its own readiness check (which may import its model code); the
plain listing never imports a model.
"""
from __future__ import annotations

import click

from .evaluate import parse_kv

EXAMPLES = """\b
Examples:
  pam-bench list
  pam-bench list --method pam --checkpoint /ckpt/pam
  pam-bench list --dataset oakink2 --root /data/oakink2 -d clip_list=/data/oakink2/val.txt
"""


def _row(entry, given: dict, probe: bool) -> list[str]:
    from ..errors import PamBenchError

    miss = entry.missing(given)
    if not miss and probe:
        try:
            _probe(entry, given)
        except PamBenchError as e:
            miss = [str(e)]
    ready = "yes" if not miss else "no"
    need = "; ".join(miss)
    if entry.user_files and miss:
        need += f"; evaluate flags: {entry.user_files}"
    return [entry.name, ready, entry.summary, need]


def _probe(entry, given: dict) -> None:
    """Build the component from the user's inputs and run its readiness check (raises PamBenchError)."""
    from ..run.components import build_dataset, build_method, build_metrics

    if entry.kind == "method":
        opts = dict(given.get("o") or {})
        for k in ("checkpoint", "videos"):
            if given.get(k):
                opts[k] = given[k]
        build_method(entry.name, given.get("device", "cpu"), **opts).check_ready()
    elif entry.kind == "dataset":
        build_dataset(entry.name, given.get("root"), None, **(given.get("d") or {}))
    else:
        for m in build_metrics([entry.name]):
            m.check_ready()


@click.command("list", epilog=EXAMPLES)
@click.option("--kind", type=click.Choice(["dataset", "method", "metric"]), default=None,
              help="list only datasets, methods or metrics")
@click.option("--method", "method", default=None, help="check one method with the inputs given here")
@click.option("--dataset", default=None, help="check one dataset with the inputs given here")
@click.option("--metric", default=None, help="check one metric (builds it: its weights and packages)")
@click.option("--checkpoint", type=click.Path(), default=None, help="the method's checkpoint folder, as for evaluate")
@click.option("--videos", type=click.Path(), default=None, help="folder method: the videos folder, as for evaluate")
@click.option("--root", type=click.Path(), default=None, help="the dataset root folder, as for evaluate")
@click.option("-o", "--option", "options", multiple=True, help="method option key=value, as for evaluate")
@click.option("-d", "--dataset-option", "dataset_options", multiple=True, help="dataset option key=value")
def list_cmd(kind, method, dataset, metric, checkpoint, videos, root, options, dataset_options):
    """Datasets, methods and metrics, with whether each can run here and what is missing."""
    from tabulate import tabulate

    from ..registry import REGISTRY

    given = {"checkpoint": checkpoint, "videos": videos, "root": root, "o": parse_kv(options),
             "d": parse_kv(dataset_options)}
    chosen = {"method": method, "dataset": dataset, "metric": metric}
    kinds = [k for k, v in chosen.items() if v] or ([kind] if kind else ["dataset", "method", "metric"])
    for k in kinds:
        entries = [REGISTRY.get(k, chosen[k])] if chosen[k] else REGISTRY.entries(k)
        rows = [_row(e, given, probe=bool(chosen[k])) for e in entries]
        click.echo(f"\n{k}s")
        click.echo(tabulate(rows, headers=["name", "ready", "what", "missing / needs"], tablefmt="simple",
                            maxcolwidths=[None, None, 50, 70]))
