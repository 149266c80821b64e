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
    "list": "pam_bench.commands.listing:list_cmd",
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


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]}, epilog="""\b
Examples:
  pam-bench list
  pam-bench evaluate --method folder --videos EVAL_DIR --metrics ssim,psnr,lpips,fvd,mf --out runs/ckpt_0042
  pam-bench check runs/ckpt_0042 --baseline runs/ckpt_0040
Flags mean the same in every command: -o method option, -d dataset option, -m metric option.
""")
@click.version_option(package_name="pam-bench")
def cli():
    """pam-bench: evaluate hand-object-interaction video generators on the PAM protocol."""


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
