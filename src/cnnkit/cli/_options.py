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
    """``--device cpu|cuda`` (default cpu)."""
    return click.option("--device", default="cpu", show_default=True, help="Torch device.")(fn)


def face_threads() -> None:
    """Torch threads for the face commands: ``$CNNKIT_THREADS``, default 1.

    The face encoder runs one small chip at a time; on this 2-core machine one thread encoded an
    ORL face in 0.07 s and two threads in 0.75 s (the second thread fights onnxruntime's and
    everything else's). The CLI is the application, so it sets this; the library never does."""
    import os

    import torch

    torch.set_num_threads(max(1, int(os.environ.get("CNNKIT_THREADS", "1"))))
