"""The root click group. Each sub-command ``NAME`` is the attribute ``NAME`` of the module
``cnnkit.cli.NAME``, loaded only when it is called (``cnnkit face ...`` never imports the style code)."""
from __future__ import annotations

import importlib
import importlib.util
import sys
import warnings
from typing import Any

import click

from cnnkit import __version__
from cnnkit.core.errors import CnnkitError, ImageDecodeWarning

# a module that is not present is simply not listed
_COMMANDS = ("face", "demo", "train", "head", "style", "visualize", "conv", "serve", "weights")


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: Any = None, line: str | None = None) -> None:
    """Decoder warnings on one line ("warning: FILE: ..."); others as Python prints them."""
    if issubclass(category, ImageDecodeWarning):
        click.echo(f"warning: {message}", err=True)
    else:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        found = [name for name in _COMMANDS if importlib.util.find_spec(f"cnnkit.cli.{name}")]
        return sorted(set(found) | set(super().list_commands(ctx)))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in _COMMANDS:
            module = f"cnnkit.cli.{name}"
            return getattr(importlib.import_module(module), name) if importlib.util.find_spec(module) else None
        return super().get_command(ctx, name)

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


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, prog_name="cnnkit")
def cli() -> None:
    """cnnkit: face verification and recognition, Siamese training, style transfer, unit
    visualisation and 1D/2D/3D convolutions."""
