"""Floating-point formats of the gallery's first-pass copies and their rounding bounds: the one
place both the search (``store.search``) and the kernels that compute it (``distances.lowp``) read.

``"int8"`` is a copy of a different kind: each row is int8 codes (|code| <= 127) times one bfloat16
scale per row, the queries are rounded to bfloat16, and the kernel rounds its output to bfloat16.
A product of a bfloat16 query value (8 significant bits), a code (7) and a scale (8) has at most 23
significant bits, so it is exact in float32 whichever two factors the kernel multiplies first."""
from __future__ import annotations

import functools
from pathlib import Path

#: the formats a gallery copy can be scanned in
FORMATS = ("float32", "float16", "bfloat16", "int8")
#: unit roundoff (round to nearest) of each format's output (int8: the bfloat16 the kernel returns)
UNIT_ROUNDOFF = {"float32": 2.0 ** -24, "float16": 2.0 ** -11, "bfloat16": 2.0 ** -8, "int8": 2.0 ** -8}
#: absolute rounding error of a result that underflows: half the format's smallest subnormal (int8:
#: half of bfloat16's, 2^-134, plus 2^-150 for each of up to 2^22 float32 products and sums)
UNDERFLOW = {"float32": 2.0 ** -150, "float16": 2.0 ** -25, "bfloat16": 2.0 ** -134, "int8": 2.0 ** -126}
#: results of float16 products are kept below this (float16's largest finite value is 65504)
FLOAT16_SAFE = 32768.0
#: the int8 copy's queries, scales and products are kept below this (float32's range ends near 2^128)
INT8_SAFE = 2.0 ** 100
#: the smallest int8 scale: a normal float32, so that a code times its scale is exact
INT8_MIN_SCALE = 2.0 ** -126


def accumulation_roundoff(dim: int) -> float:
    """γ_D: relative error bound of a float32 sum of D terms, in any summation order."""
    u = UNIT_ROUNDOFF["float32"]
    return dim * u / (1.0 - dim * u)


def product_roundoff(fmt: str, dim: int) -> float:
    """ρ for a kernel that multiplies ``fmt`` numbers exactly, sums in float32 and rounds the sum to
    ``fmt``: ``|computed - q·x| <= ρ sum_j |q_j x_j|`` (and so ``<= ρ ||q|| ||x||``). For ``"int8"``
    one more float32 rounding is allowed (γ_{D+1}): a kernel may multiply the sum by the row's scale
    after summing the code products."""
    g, u = accumulation_roundoff(dim + 1 if fmt == "int8" else dim), UNIT_ROUNDOFF[fmt]
    return g + u + g * u


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from ``/proc/cpuinfo`` (empty where it cannot be read)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    return frozenset(w for line in text.splitlines() if line.startswith("flags") for w in line.split())


def native_bfloat16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AVX512-BF16 or AMX); elsewhere torch converts
    to float32 first, and a bfloat16 matrix product is slower than float32 BLAS."""
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags())


def native_bfloat16_convolution() -> bool:
    """Whether bfloat16 convolutions beat float32 ones on this CPU: with AMX only. VGG19 to conv5_1,
    forward and backward, 512 px, one thread, channels-last, on a Xeon with AMX: bfloat16 0.55 s,
    float32 2.60 s; the same CPU with oneDNN held to AVX512-BF16 (``ONEDNN_MAX_CPU_ISA=
    AVX512_CORE_BF16``) 3.95 s in bfloat16, to AVX512 10.9 s. A Xeon with AVX512-BF16 and no AMX took
    a whole style transfer to the bar in 102.6 s in bfloat16 against 82.3 s in float32."""
    return "amx_bf16" in cpu_flags()
