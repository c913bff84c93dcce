"""Options shared by several commands, as decorators."""
from __future__ import annotations

from typing import Callable, TypeVar

import click

F = TypeVar("F", bound=Callable[..., object])


def format_option(fn: F) -> F:
    """``--format table|json|csv`` (default table), passed to the command as ``fmt``."""
    return click.option(
        "--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table",
        show_default=True, help="Output format.",
    )(fn)


def db_option(fn: F) -> F:
    """``--db PATH|URL``: the gallery (default: $CNNKIT_DB, else gallery.sqlite in the XDG data dir)."""
    return click.option(
        "--db", "db", default=None, metavar="PATH|URL",
        help="Gallery: a SQLite file or a postgresql:// URL [default: $CNNKIT_DB, else "
             "$XDG_DATA_HOME/cnnkit/gallery.sqlite].",
    )(fn)


def device_option(fn: F) -> F:
    """``--device cpu|cuda|auto`` (default cpu)."""
    return click.option("--device", default="cpu", show_default=True, help="Torch device.")(fn)
