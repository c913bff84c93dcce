"""Print results as a table, JSON or CSV. Commands build plain dicts/lists and call :func:`emit`."""
from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import click

from cnnkit.core.errors import printable
from cnnkit.core.numbers import format_metric

T = TypeVar("T")


def _cell(value: Any) -> str:
    """One table or CSV cell, printable on one line (control characters and undecodable bytes
    escaped by ``core.errors.printable``)."""
    return printable(_text(value))


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return format_metric(value)
    if isinstance(value, (list, tuple)):
        return " ".join(_text(v) for v in value)
    if isinstance(value, Mapping):
        return json.dumps(value, default=str)
    return str(value)


def format_rows(rows: Sequence[Mapping[str, Any]], fmt: str, columns: Sequence[str] | None = None) -> str:
    """Rows (dicts) as an aligned text table or CSV."""
    cols = list(columns or (rows[0].keys() if rows else []))
    cells = [[_cell(row.get(c)) for c in cols] for row in rows]
    if fmt == "csv":
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows([cols, *cells])
        return buf.getvalue().rstrip("\n")
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(cols)]
    table = [cols, ["-" * w for w in widths], *cells]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in table)


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
