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


def default_threads() -> int:
    """The thread count every command uses unless ``--threads`` says otherwise: ``$CNNKIT_THREADS``,
    else 1.

    One thread is the fast choice on the small, busy machines cnnkit is run on: on the 2-core
    development machine (load 3-8 from other jobs) one thread encoded an ORL face in 0.07 s against
    0.75 s with two, onnxruntime's detector used half the CPU time per face with one thread, and
    ``cnnkit conv train ecg200`` took a fraction of the time (README, "Measured with the defaults").
    Raise it on an idle many-core machine."""
    import os

    raw = os.environ.get("CNNKIT_THREADS", "1")
    try:
        return max(1, int(raw))
    except ValueError:
        raise click.BadParameter(f"CNNKIT_THREADS must be a positive integer, got {raw!r}") from None


def apply_threads(threads: int | None) -> int:
    """Set torch's intra-op threads for this process (the CLI is the application; the library never
    does) and return the number, which the face commands also give onnxruntime's detector."""
    import torch

    n = default_threads() if threads is None else threads
    torch.set_num_threads(n)
    return n


def current_threads() -> int:
    """The thread count :func:`apply_threads` set (torch's own count)."""
    import torch

    return torch.get_num_threads()


def threads_option(fn: F) -> F:
    """``--threads N``: one policy for every command that computes (face, demo, train, conv, style,
    visualize, head): applied as soon as the option is parsed, default :func:`default_threads`."""
    return click.option(
        "--threads", type=click.IntRange(min=1), default=None, expose_value=False,
        callback=lambda ctx, param, value: apply_threads(value),
        help="CPU threads for torch and onnxruntime [default: $CNNKIT_THREADS, else 1, the fastest on a "
             "small busy machine].",
    )(fn)
