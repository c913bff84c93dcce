"""Floating-point formats of the gallery's first-pass copies and their rounding bounds: the one
place both the search (``store.search``) and the kernels that compute it (``distances.lowp``) read."""
from __future__ import annotations

#: unit roundoff (round to nearest) of each format a gallery copy can be scanned in
UNIT_ROUNDOFF = {"float32": 2.0 ** -24, "float16": 2.0 ** -11, "bfloat16": 2.0 ** -8}
#: absolute rounding error of a result that underflows: half the format's smallest subnormal
UNDERFLOW = {"float32": 2.0 ** -150, "float16": 2.0 ** -25, "bfloat16": 2.0 ** -134}
#: results of float16 products are kept below this (float16's largest finite value is 65504)
FLOAT16_SAFE = 32768.0


def accumulation_roundoff(dim: int) -> float:
    """γ_D: relative error bound of a float32 sum of D terms, in any summation order."""
    u = UNIT_ROUNDOFF["float32"]
    return dim * u / (1.0 - dim * u)


def product_roundoff(fmt: str, dim: int) -> float:
    """ρ for a kernel that multiplies ``fmt`` numbers exactly, sums in float32 and rounds the sum to
    ``fmt``: ``|computed - q·x| <= ρ sum_j |q_j x_j|`` (and so ``<= ρ ||q|| ||x||``)."""
    g, u = accumulation_roundoff(dim), UNIT_ROUNDOFF[fmt]
    return g + u + g * u
