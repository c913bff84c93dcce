"""Pairwise distances between rows of two embedding matrices. Smaller means closer."""
from __future__ import annotations

import torch
from torch import Tensor

from cnnkit.core.checks import check_shape


def pairwise_squared_l2(x: Tensor, y: Tensor | None = None) -> Tensor:
    """Squared Euclidean distance ``||x_i - y_j||^2`` between every row of ``x`` and of ``y``.

    Args:
        x: embeddings, shape (N, D).
        y: embeddings, shape (M, D). Defaults to ``x``.

    Returns:
        distances, shape (N, M), clamped at 0 (the expansion ``|x|^2 + |y|^2 - 2 x.y`` can dip below).
    """
    check_shape(x, "N D", name="x")
    y = x if y is None else y
    check_shape(y, "M D", name="y")
    if x.shape[1] != y.shape[1]:
        check_shape(y, f"M {x.shape[1]}", name="y")
    xx = x.pow(2).sum(1, keepdim=True)
    yy = y.pow(2).sum(1, keepdim=True)
    return (xx + yy.T - 2.0 * x @ y.T).clamp_min(0.0)


def pairwise_l2(x: Tensor, y: Tensor | None = None) -> Tensor:
    """Euclidean distance between every row of ``x`` (N, D) and every row of ``y`` (M, D) -> (N, M).

    The squared distance is clamped at 1e-12 under the root, so that the gradient stays finite
    where two rows coincide (the diagonal); such distances read 1e-6 instead of 0.
    """
    return pairwise_squared_l2(x, y).clamp_min(1e-12).sqrt()


def pairwise_distance(x: Tensor, y: Tensor | None = None, *, squared: bool = True) -> Tensor:
    """:func:`pairwise_squared_l2` when ``squared`` else :func:`pairwise_l2`; shapes (N, D), (M, D) -> (N, M)."""
    return pairwise_squared_l2(x, y) if squared else pairwise_l2(x, y)


def row_distance(x: Tensor, y: Tensor, *, squared: bool = True) -> Tensor:
    """Distance between matching rows: ``x`` (T, D), ``y`` (T, D) -> (T,).

    Computed from the differences (not the expansion), so it is exact and differentiable; the
    Euclidean form adds nothing under the square root, and ``torch`` gives 0 as the gradient at 0.
    """
    check_shape(x, "T D", name="x")
    check_shape(y, "T D", name="y")
    sq = (x - y).pow(2).sum(1)
    if squared:
        return sq
    return torch.where(sq > 0, sq, torch.ones_like(sq)).sqrt() * (sq > 0)
