"""What the commands share: options as decorators, the pipeline and gallery the face commands open,
and :func:`emit`, which prints a result as a table, JSON or CSV (tables and CSV by
:func:`cnnkit.core.table.format_rows`): commands build plain dicts/lists and call it."""
from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import click

from cnnkit.core.errors import CnnkitError
from cnnkit.core.table import format_rows

F = TypeVar("F", bound=Callable[..., object])
T = TypeVar("T")


def options(*decorators: Callable[[F], F]) -> Callable[[F], F]:
    """Several option decorators as one, listed in the order they appear in ``--help``."""
    return lambda fn: functools.reduce(lambda f, option: option(f), reversed(decorators), fn)


class CommaList(click.ParamType):
    """``1,2,3`` -> a tuple of ``kind``; a bad item is one error line naming the option."""

    name = "text"

    def __init__(self, kind: type = str) -> None:
        self.kind = kind

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple:
        try:
            return tuple(self.kind(t.strip()) for t in str(value).split(",") if t.strip())
        except ValueError:
            what = {int: "integers", float: "numbers"}[self.kind]
            raise CnnkitError(f"{param.opts[0] if param else value} must be comma-separated {what}, got {value!r}"
                              ) from None


def apply_threads(threads: int | None) -> int:
    """Set torch's intra-op threads for this process (the CLI is the application; the library never
    does) and return the number, which the face commands also give onnxruntime's detector. The
    default, ``$CNNKIT_THREADS`` else 1, is the fastest choice on the small busy machines cnnkit runs
    on (README, "Measured with the defaults"); raise it on an idle many-core machine."""
    import torch

    raw = os.environ.get("CNNKIT_THREADS", "1") if threads is None else threads
    try:
        n = max(1, int(raw))
    except ValueError:
        raise click.BadParameter(f"CNNKIT_THREADS must be a positive integer, got {raw!r}") from None
    torch.set_num_threads(n)
    return n


format_option = click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table",
                             help="Output format.")
db_option = click.option("--db", metavar="PATH|URL", help="Gallery: a SQLite file or a postgresql:// URL "
                         "[default: $CNNKIT_DB, else $XDG_DATA_HOME/cnnkit/gallery.sqlite].")
device_option = click.option("--device", default="cpu", help="Torch device.")
threads_option = click.option("--threads", type=click.IntRange(min=1), expose_value=False,
                              callback=lambda ctx, param, n: apply_threads(n), help="CPU threads for torch and "
                              "onnxruntime [default: $CNNKIT_THREADS, else 1, the fastest on a small busy machine].")


def encoder_option(*, gallery: bool = True) -> Callable[[F], F]:
    """--encoder, --detector and --threads of every command that runs the face pipeline
    (``gallery``: whether the default is the gallery's own encoder)."""
    first = "the one the gallery's embeddings come from, else " if gallery else ""
    return options(
        click.option("--encoder", help="Encoder name (a fusion: dlib_resnet+sface), or the path of a model trained "
                                       f"with `cnnkit train` [default: {first}cnnkit.faces.encoders.DEFAULT_ENCODER]."),
        click.option("--detector", default="retinaface", help="Face detector: retinaface or hog (dlib's, as "
                                                              "face_recognition)."),
        threads_option)


def face_pipeline(encoder: str | None, device: str, detector: str | None = None, gallery: Any = None) -> Any:
    """The pipeline of ``encoder``, or (None) of the gallery's own encoder, else the default; with
    ``detector`` None (commands without --detector), :class:`~cnnkit.faces.FacePipeline`'s own."""
    import torch

    from cnnkit.faces import FacePipeline
    from cnnkit.faces.encoders import choose_encoder

    tag = gallery.encoder_tag if gallery is not None else None
    chosen = {} if detector is None else {"detector": detector}
    return FacePipeline(choose_encoder(encoder, tag), device=device, threads=torch.get_num_threads(), **chosen)


def open_db(db: str | None, *, create: bool = True) -> Any:
    """The gallery ``--db`` names, searched with torch's score kernel."""
    from cnnkit.distances.lowp import TorchScoreKernel
    from cnnkit.store import open_gallery

    return open_gallery(db, create=create, kernel=TorchScoreKernel())


def emit(data: Any, fmt: str, *, rows: Sequence[Mapping[str, Any]] | None = None,
         columns: Sequence[str] | None = None) -> None:
    """Print ``data`` as JSON, or ``rows`` (default: ``data`` itself, or ``[data]`` for a dict) as a
    table/CSV."""
    if fmt == "json":
        click.echo(json.dumps(data, indent=None, default=_json_default))
        return
    if rows is None:
        rows = [data] if isinstance(data, Mapping) else list(data)
    click.echo(format_rows(rows, fmt, columns))


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "__fspath__"):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def progress_bar(total: int, desc: str, unit: str = "photo") -> Any:
    """A tqdm bar on stderr, shown on a terminal only (tqdm's ``disable=None``), so logs and pipes
    get clean one-line errors."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, disable=None if total > 1 else True, leave=False)


def tracked(items: Iterable[T], total: int, desc: str, error: Callable[[T], str | None]) -> Iterator[T]:
    """Every item, counted on a :func:`progress_bar`, with one ``error: ...`` line on stderr for each
    item that ``error`` finds a message in."""
    with progress_bar(total, desc) as bar:
        for item in items:
            if message := error(item):
                bar.write(f"error: {message}", file=sys.stderr)
            bar.update(1)
            yield item
