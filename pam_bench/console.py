"""What pam-bench prints to a person: rank-0-only output under torchrun, and progress bars with an ETA.

Under ``torchrun`` every rank runs the same command; only rank 0 (``RANK`` unset or 0) prints tables,
"wrote" lines and progress, so a K-process run prints each once. Progress bars go to stderr, so piping a
table (``pam-bench table ... > t.md``) stays clean.
"""
from __future__ import annotations

import os
import sys


def is_main_process(env: dict | None = None) -> bool:
    """True outside torchrun and on its rank 0."""
    e = os.environ if env is None else env
    try:
        return int(e.get("RANK", "0") or 0) == 0
    except ValueError:
        return True


def progress(total: int | None, desc: str, unit: str = "it", enabled: bool = True, position: int | None = None):
    """A tqdm bar on stderr with elapsed time and ETA; silent when disabled or not on rank 0."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not (enabled and is_main_process()), file=sys.stderr,
                dynamic_ncols=True, position=position, leave=True,  # a finished bar stays: its final count is shown
                bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]")


def echo(msg: str = "", err: bool = False) -> None:
    """click.echo on rank 0 only."""
    import click

    if is_main_process():
        click.echo(msg, err=err)
