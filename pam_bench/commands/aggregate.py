"""``pam-bench aggregate``: runs that differ only in seed -> mean ± std over seeds (pam_bench.seeds)."""
from __future__ import annotations

import click


@click.command("aggregate", epilog="""\b
Examples:
  pam-bench aggregate runs/pam-s42 runs/pam-s43 runs/pam-s44 --out runs/pam-3seeds
""")
@click.argument("runs", nargs=-1, required=True, type=click.Path())
@click.option("--out", required=True, type=click.Path(), help="folder for the aggregate results.json")
def aggregate(runs, out):
    """Aggregate the run folders of one run at several seeds into mean ± std per metric."""
    from ..seeds import aggregate as run
    from .evaluate import format_results

    res = run(runs, out)
    click.echo(format_results([res]))
    click.echo(f"\naggregated {len(runs)} seeds into {out}/results.json")
