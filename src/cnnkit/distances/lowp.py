"""The gallery search's first pass on low-precision copies: int8 for one query or a few (a quarter
of float32's bytes; a matrix-vector product is bound by the bytes it reads), bfloat16 for batches on
CPUs that multiply it natively (AMX / AVX512-BF16), int8 for batches elsewhere (there torch converts
bfloat16 to float32 first, and at 2e5 x 64 a bfloat16 search took 1.8x the float32 floor, int8 0.4x).

The kernel only computes inner products; the bound that makes the search exact, and the re-rank,
are in ``cnnkit.store.search``. Its error bound (:func:`cnnkit.core.precision.product_roundoff`)
assumes products exact in float32, float32 accumulation and an output rounded to nearest;
:meth:`TorchScoreKernel.format_for` checks that on this build of torch once per format, and falls
back to float32 where the check fails. The int8 products are torch's ``_weight_int8pack_mm`` (a
bfloat16 query times int8 codes times a bfloat16 scale per row, vectorised for AVX2, AVX512 and
NEON), which reads codes 8 or 16 at a time: the copies are padded to ``INT8_COLUMNS`` columns.
"""
from __future__ import annotations

import numpy as np
import torch

from cnnkit.core.errors import ConfigError
from cnnkit.core.precision import native_bfloat16, product_roundoff

_TORCH_DTYPE = {"float16": torch.float16, "bfloat16": torch.bfloat16}


def _tensor(a: np.ndarray, fmt: str) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(a))
    return t.view(torch.bfloat16) if fmt == "bfloat16" else t


def _int8_scores(queries: torch.Tensor, codes: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """(M, D) bfloat16 queries, (B, D') int8 codes, (B,) bfloat16 scales -> (M, B) float32 scores.
    The queries are copied into a zero-padded (M, D') tensor of torch's (aligned) allocation."""
    a = torch.zeros((queries.shape[0], codes.shape[1]), dtype=torch.bfloat16)
    a[:, :queries.shape[1]] = queries
    if codes.data_ptr() % 16:  # the kernels load codes with 16-byte aligned loads
        codes = codes.clone()
    return torch._weight_int8pack_mm(a, codes, scale).float()


class TorchScoreKernel:
    """First-pass inner products in int8 (batches below ``batch_from`` queries) or ``batch_format``.

    Args:
        batch_from: batches of at least this many queries are scanned in ``batch_format``.
        batch_format: ``"bfloat16"`` or ``"int8"``; default: bfloat16 where the CPU multiplies it
            natively (:func:`cnnkit.core.precision.native_bfloat16`), else int8.
    """

    def __init__(self, *, batch_from: int = 8, batch_format: str | None = None) -> None:
        if batch_format not in (None, "bfloat16", "int8"):
            raise ConfigError(f"batch_format must be 'bfloat16' or 'int8', got {batch_format!r}")
        self.batch_from = batch_from
        self.batch_format = batch_format or ("bfloat16" if native_bfloat16() else "int8")
        self._accumulates_in_float32: dict[str, bool] = {}

    def _float32_accumulation(self, fmt: str) -> bool:
        """1024 + 127 x 0.25 = 1055.75: summed in float32 it rounds to 1056; summed in the
        format itself every 0.25 is lost next to 1024 and the result is 1024. For int8, also
        the products of random codes, scales and queries, against float64 within ρ, and an odd
        number of rows (the kernels' tail blocks)."""
        if fmt not in self._accumulates_in_float32:
            if fmt == "int8":
                self._accumulates_in_float32[fmt] = self._int8_exact()
            else:
                dt = _TORCH_DTYPE[fmt]
                x = torch.full((2, 128), 0.25, dtype=dt)
                x[:, 0] = 1024.0
                q = torch.ones((2, 128), dtype=dt)
                got = (q @ x.T).float()
                self._accumulates_in_float32[fmt] = bool((got == 1056.0).all())
        return self._accumulates_in_float32[fmt]

    @staticmethod
    def _int8_exact() -> bool:
        if not hasattr(torch, "_weight_int8pack_mm"):
            return False
        try:
            q = torch.full((1, 128), 0.25, dtype=torch.bfloat16)
            q[0, 0] = 1024.0
            ones = torch.ones((3, 128), dtype=torch.int8)
            if not bool((_int8_scores(q, ones, torch.ones(3, dtype=torch.bfloat16)) == 1056.0).all()):
                return False
            gen = torch.Generator().manual_seed(0)
            for m, d in ((1, 32), (3, 96), (5, 128)):
                a = torch.randn((m, d), generator=gen).to(torch.bfloat16)
                codes = torch.randint(-127, 128, (7, d), generator=gen, dtype=torch.int8)
                scale = torch.rand(7, generator=gen).to(torch.bfloat16) + 0.5
                got = _int8_scores(a, codes, scale).double()
                terms = a.double()[:, None, :] * (codes.double() * scale.double()[:, None])[None]
                bound = product_roundoff("int8", d) * terms.abs().sum(-1)
                if not bool(((got - terms.sum(-1)).abs() <= bound).all()):
                    return False
        except RuntimeError:
            return False
        return True

    def format_for(self, batch: int) -> str:
        fmt = "int8" if batch < self.batch_from else self.batch_format
        return fmt if self._float32_accumulation(fmt) else "float32"

    def roundoff(self, fmt: str, dim: int) -> float:
        return product_roundoff(fmt, dim)

    def scores(self, queries: np.ndarray, rows: np.ndarray, fmt: str,
               scale: np.ndarray | None = None) -> np.ndarray:
        if fmt == "float32":
            return np.asarray(queries, np.float32) @ np.asarray(rows, np.float32).T
        with torch.no_grad():
            if fmt == "int8":
                return _int8_scores(_tensor(queries, "bfloat16"), torch.from_numpy(np.ascontiguousarray(rows)),
                                    _tensor(scale, "bfloat16")).numpy()
            return (_tensor(queries, fmt) @ _tensor(rows, fmt).T).float().numpy()
