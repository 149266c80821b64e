"""The ``pam-bench`` command line. Thin: parses, calls the API, prints.

Start-up imports only click and the registry; torch, models and diffusers load when a command needs them.
Sub-command groups live in pam_bench/commands/<name>.py and are loaded lazily from LAZY_COMMANDS.
"""
from __future__ import annotations

import importlib
import sys

import click

from .errors import PamBenchError

LAZY_COMMANDS: dict[str, str] = {
    "evaluate": "pam_bench.commands.evaluate:evaluate",
    "table": "pam_bench.commands.evaluate:table",
    "bench": "pam_bench.commands.bench:bench",
    "data": "pam_bench.commands.data:data",
    "downstream": "pam_bench.commands.downstream:downstream",
    "leaderboard": "pam_bench.commands.leaderboard:leaderboard",
    "check": "pam_bench.commands.leaderboard:check",
    "merge": "pam_bench.commands.leaderboard:merge",
    "weights": "pam_bench.commands.weights:weights",
    "aggregate": "pam_bench.commands.aggregate:aggregate",
    "breakdown": "pam_bench.commands.breakdown:breakdown",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(LAZY_COMMANDS))

    def get_command(self, ctx, name):
        cmd = super().get_command(ctx, name)
        if cmd is not None or name not in LAZY_COMMANDS:
            return cmd
        mod, _, attr = LAZY_COMMANDS[name].partition(":")
        return getattr(importlib.import_module(mod), attr)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="pam-bench")
def cli():
    """pam-bench: evaluate hand-object-interaction video generators on the PAM protocol."""


@cli.command("list")
@click.option("--kind", type=click.Choice(["dataset", "method", "metric"]), default=None)
def list_cmd(kind):
    """Datasets, methods and metrics, with whether each can run here and what is missing."""
    from tabulate import tabulate

    from .registry import REGISTRY

    for k in ([kind] if kind else ["dataset", "method", "metric"]):
        rows = []
        for e in REGISTRY.entries(k):
            miss = e.missing()
            ready = "yes" if not miss else "no"
            need = "; ".join(miss)
            if e.user_files:
                need = (need + "; " if need else "") + f"needs {e.user_files}"
            rows.append([e.name, ready, e.summary, need])
        click.echo(f"\n{k}s")
        click.echo(tabulate(rows, headers=["name", "ready", "what", "missing / needs"], tablefmt="simple",
                            maxcolwidths=[None, None, 60, 60]))


def main(argv=None):
    try:
        rv = cli.main(args=argv, prog_name="pam-bench", standalone_mode=False)
        if isinstance(rv, int) and rv:
            sys.exit(rv)
    except PamBenchError as e:
        click.echo(f"pam-bench: error: {e}", err=True)
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        click.echo("pam-bench: aborted", err=True)
        sys.exit(130)
    except click.ClickException as e:  # usage errors too: one line naming the option
        click.echo(f"pam-bench: error: {e.format_message()}", err=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        click.echo("pam-bench: interrupted; finished videos and payloads are kept, rerun to resume", err=True)
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    main()
