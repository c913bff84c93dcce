"""The root click group and its commands. The command modules import only click and ``cnnkit.core``
(about 7 ms for all of them); each command imports the library code it runs when it is called, so
``cnnkit face ...`` never imports the style code and ``cnnkit --help`` never imports torch."""
from __future__ import annotations

import sys
import warnings
from typing import Any

import click

from cnnkit import __version__
from cnnkit.cli import conv, face, serve, style, train, visualize, weights
from cnnkit.core.errors import CnnkitError, ImageDecodeWarning


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: Any = None, line: str | None = None) -> None:
    """Decoder warnings on one line ("warning: FILE: ..."); others as Python prints them."""
    if issubclass(category, ImageDecodeWarning):
        click.echo(f"warning: {message}", err=True)
    else:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


class _Group(click.Group):
    """The root group: a ``CnnkitError`` is one ``error: ...`` line and exit 2, Ctrl-C exit 130."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            with warnings.catch_warnings():
                warnings.showwarning = _show_warning  # restored when the block ends
                return super().invoke(ctx)
        except CnnkitError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, prog_name="cnnkit")
def cli() -> None:
    """cnnkit: face verification and recognition, Siamese training, style transfer, unit
    visualisation and 1D/2D/3D convolutions."""


for _command in (conv.conv, face.demo, face.face, face.head, serve.serve, style.style, train.train,
                 visualize.visualize, weights.weights):
    cli.add_command(_command)
