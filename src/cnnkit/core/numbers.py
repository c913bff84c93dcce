"""How a measured number is shown: one rule for every table, progress bar and JSON result."""
from __future__ import annotations

import math
from typing import Any


def round_metric(value: Any, digits: int = 4) -> Any:
    """Floats to ``digits`` significant digits (``0.8799999952316284`` -> ``0.88``,
    ``40123456789.0`` -> ``4.012e10``); a fraction k/n is shown beside its n by the caller;
    anything else (ints, strings, NaN, infinities, None) unchanged."""
    if isinstance(value, float) and math.isfinite(value):
        return float(f"{value:.{digits}g}")
    return value


def format_metric(value: float, digits: int = 4) -> str:
    """``round_metric`` as text, the same characters in a table cell and a progress bar."""
    return "nan" if isinstance(value, float) and math.isnan(value) else f"{round_metric(float(value), digits):g}"


__all__ = ["format_metric", "round_metric"]
