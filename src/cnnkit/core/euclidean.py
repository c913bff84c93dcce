"""The one numpy Euclidean distance: between paired rows, and between every row of two sets.

Every numpy user (store search, eval metrics, faces, benchmarks) calls these; the torch
counterparts are :mod:`cnnkit.distances`.
"""
from __future__ import annotations

import numpy as np

__all__ = ["euclidean_rows", "euclidean_matrix"]


def euclidean_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance between paired rows, float64: (N, D) and (N, D) -> (N,); (D,) broadcasts against
    (N, D), two (D,) give a 0-d array (``float()`` it)."""
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    return np.sqrt((diff * diff).sum(-1))


def euclidean_matrix(a: np.ndarray, b: np.ndarray, *, b_sq_norms: np.ndarray | None = None,
                     dtype: type = np.float64) -> np.ndarray:
    """Distances between every row of ``a`` (M, D) and every row of ``b`` (N, D) -> (M, N), by one
    matrix product in ``dtype`` (float32 for search over large galleries, where the caller keeps
    ``b_sq_norms`` (N,) of the stored rows). Clipped at 0 before the square root."""
    a = np.ascontiguousarray(a, dtype=dtype)
    b = np.asarray(b, dtype=dtype)
    bb = (b * b).sum(1) if b_sq_norms is None else np.asarray(b_sq_norms, dtype=dtype)
    d2 = (a * a).sum(1)[:, None] + bb[None, :] - 2.0 * (a @ b.T)
    np.maximum(d2, 0.0, out=d2)
    return np.sqrt(d2, out=d2)
