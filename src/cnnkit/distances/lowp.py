"""The gallery search's first pass on the CPU's half-precision units: float16 for one query or a
few (half the bytes of float32 to read), bfloat16 for batches (AMX / AVX512-BF16 matrix products).

The kernel only computes inner products; the bound that makes the search exact, and the re-rank,
are in ``cnnkit.store.search``. Its error bound (:func:`cnnkit.core.precision.product_roundoff`)
assumes products exact in float32 and float32 accumulation; :meth:`TorchScoreKernel.format_for`
checks that on this build of torch once per format, and falls back to float32 where the check fails.
"""
from __future__ import annotations

import numpy as np
import torch

from cnnkit.core.precision import product_roundoff

_TORCH_DTYPE = {"float16": torch.float16, "bfloat16": torch.bfloat16}


def _tensor(a: np.ndarray, fmt: str) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(a))
    return t.view(torch.bfloat16) if fmt == "bfloat16" else t


class TorchScoreKernel:
    """First-pass inner products in float16 (batches below ``batch_from`` queries) or bfloat16.

    Args:
        batch_from: batches of at least this many queries are scanned in bfloat16.
    """

    def __init__(self, *, batch_from: int = 8) -> None:
        self.batch_from = batch_from
        self._accumulates_in_float32: dict[str, bool] = {}

    def _float32_accumulation(self, fmt: str) -> bool:
        """1024 + 127 x 0.25 = 1055.75: summed in float32 it rounds to 1056; summed in the
        format itself every 0.25 is lost next to 1024 and the result is 1024."""
        if fmt not in self._accumulates_in_float32:
            dt = _TORCH_DTYPE[fmt]
            x = torch.full((2, 128), 0.25, dtype=dt)
            x[:, 0] = 1024.0
            q = torch.ones((2, 128), dtype=dt)
            got = (q @ x.T).float()
            self._accumulates_in_float32[fmt] = bool((got == 1056.0).all())
        return self._accumulates_in_float32[fmt]

    def format_for(self, batch: int) -> str:
        fmt = "float16" if batch < self.batch_from else "bfloat16"
        return fmt if self._float32_accumulation(fmt) else "float32"

    def roundoff(self, fmt: str, dim: int) -> float:
        return product_roundoff(fmt, dim)

    def scores(self, queries: np.ndarray, rows: np.ndarray, fmt: str) -> np.ndarray:
        if fmt == "float32":
            return np.asarray(queries, np.float32) @ np.asarray(rows, np.float32).T
        with torch.no_grad():
            return (_tensor(queries, fmt) @ _tensor(rows, fmt).T).float().numpy()
