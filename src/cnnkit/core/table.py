"""Rows (dicts) as an aligned text table or CSV: the one formatter the CLI, ``nn.shapes.format_summary``
and anyone printing results call. Cells are printable on one line (``core.errors.printable``)."""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from typing import Any

from cnnkit.core.errors import printable
from cnnkit.core.numbers import format_metric


def cell_text(value: Any) -> str:
    """One cell: ``None`` empty, floats as :func:`~cnnkit.core.numbers.format_metric`, sequences
    space-separated, mappings as JSON; control characters and undecodable bytes escaped."""
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


def format_rows(rows: Sequence[Mapping[str, Any]], fmt: str = "table", columns: Sequence[str] | None = None) -> str:
    """``rows`` as an aligned text table (``fmt="table"``: header, dashes, left-aligned columns) or
    CSV (``"csv"``); ``columns`` default to the first row's keys, a missing key is an empty cell."""
    cols = list(columns or (rows[0].keys() if rows else []))
    cells = [[cell_text(row.get(c)) for c in cols] for row in rows]
    if fmt == "csv":
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows([cols, *cells])
        return buf.getvalue().rstrip("\n")
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(cols)]
    table = [cols, ["-" * w for w in widths], *cells]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in table)


__all__ = ["cell_text", "format_rows"]
