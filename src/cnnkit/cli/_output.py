"""Print results as a table, JSON or CSV (tables and CSV by :func:`cnnkit.core.table.format_rows`).
Commands build plain dicts/lists and call :func:`emit`."""
from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import click

from cnnkit.core.table import format_rows

T = TypeVar("T")


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
