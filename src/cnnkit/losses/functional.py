"""Metric-learning losses as functions: per-item values, then one reduction.

Reductions: ``"sum"`` (the cost J of the course notes), ``"mean"`` (over all items),
``"mean_active"`` (over the items with a loss > 0, PML's ``AvgNonZeroReducer``) and ``"none"``.
Every reduction of zero items is an exact zero that stays attached to the graph, never NaN.
"""
from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from cnnkit.core.checks import check_same_shape, check_shape
from cnnkit.core.errors import UnknownNameError
from cnnkit.distances.functional import pairwise_distance, row_distance

Reduction = Literal["sum", "mean", "mean_active", "none"]
REDUCTIONS = ("sum", "mean", "mean_active", "none")


def reduce_loss(values: Tensor, reduction: Reduction, *, anchor: Tensor | None = None) -> Tensor:
    """Reduce per-item losses (T,) to a scalar (or return them for ``"none"``).

    ``anchor`` is any tensor of the graph; with T = 0 the result is ``anchor.sum() * 0`` so that
    ``backward`` still works and gives zero gradients.
    """
    if reduction == "none":
        return values
    if reduction not in REDUCTIONS:
        raise UnknownNameError(f"unknown reduction {reduction!r}; available: {list(REDUCTIONS)}")
    zero = (anchor.sum() * 0.0) if anchor is not None else values.sum() * 0.0
    if values.numel() == 0:
        return zero
    if reduction == "sum":
        return values.sum()
    if reduction == "mean":
        return values.mean()
    return values.sum() / max(int((values > 0).sum()), 1)  # all zero when none is active


def triplet_margin_loss(
    anchor: Tensor, positive: Tensor, negative: Tensor, *, margin: float = 0.2, squared: bool = True,
    reduction: Reduction = "sum",
) -> Tensor:
    """Triplet loss ``L(A, P, N) = max(d(A, P) - d(A, N) + margin, 0)`` and the cost ``J = sum L``.

    ``d`` is the squared Euclidean distance (``squared=True``, FaceNet) or the plain one. The cost
    J is the *sum* over triplets and is to be *minimised*. Some course notes write the cost with a
    minus sign in front of the sum, ``J = -sum L``; minimising that would *maximise* the triplet
    loss (pull negatives in and push positives away), so there is no minus sign here.

    Args:
        anchor: embeddings, shape (T, D).
        positive: same person as the anchor, shape (T, D).
        negative: another person, shape (T, D).
        margin: alpha, default 0.2.
        squared: squared Euclidean (default) or plain Euclidean distance.
        reduction: ``"sum"`` (J, default), ``"mean"``, ``"mean_active"`` or ``"none"`` (T,).

    Returns:
        a scalar, or per-triplet values (T,) with ``reduction="none"``.
    """
    check_shape(anchor, "T D", name="anchor")
    check_same_shape(anchor, positive, negative, names=("anchor", "positive", "negative"))
    d_ap = row_distance(anchor, positive, squared=squared)
    d_an = row_distance(anchor, negative, squared=squared)
    return reduce_loss(torch.relu(d_ap - d_an + margin), reduction, anchor=anchor)


def contrastive_loss(
    x1: Tensor, x2: Tensor, same: Tensor, *, margin: float = 1.0, reduction: Reduction = "mean",
) -> Tensor:
    """Contrastive loss (Hadsell, Chopra, LeCun 2006) on pairs, with the Euclidean distance d:
    ``y d^2 + (1 - y) max(margin - d, 0)^2``.

    Args:
        x1: embeddings, shape (T, D).
        x2: embeddings, shape (T, D).
        same: 1 for a same-person pair, 0 otherwise, shape (T,).
        margin: negatives farther than this cost nothing (default 1.0, for unit-length embeddings).
        reduction: as for :func:`triplet_margin_loss` (default ``"mean"``).

    Returns:
        a scalar, or per-pair values (T,).
    """
    check_shape(x1, "T D", name="x1")
    check_same_shape(x1, x2, names=("x1", "x2"))
    check_shape(same, f"{x1.shape[0]}", name="same")
    y = same.to(x1.dtype)
    d = row_distance(x1, x2, squared=False)
    values = y * d.pow(2) + (1 - y) * torch.relu(margin - d).pow(2)
    return reduce_loss(values, reduction, anchor=x1)


def triplet_loss_from_distances(
    dist: Tensor, indices: tuple[Tensor, Tensor, Tensor], *, margin: float = 0.2, reduction: Reduction = "sum",
) -> Tensor:
    """Triplet loss of mined triplets read off a distance matrix: ``max(dist[a, p] - dist[a, n] + margin, 0)``.

    The same values as :func:`triplet_margin_loss` on the gathered rows, without gathering
    (T, D) copies of the embeddings (T can be millions for batch-all mining).

    Args:
        dist: distances with gradients, shape (B, B) (squared or plain Euclidean).
        indices: anchor, positive, negative, each (T,).
    """
    check_shape(dist, "B B", name="dist")
    a, p, n = indices
    return reduce_loss(torch.relu(dist[a, p] - dist[a, n] + margin), reduction, anchor=dist)


def triplet_loss_from_indices(
    emb: Tensor, indices: tuple[Tensor, Tensor, Tensor], *, margin: float = 0.2, squared: bool = True,
    reduction: Reduction = "sum",
) -> Tensor:
    """:func:`triplet_margin_loss` on the triplets ``indices`` (each (T,)) of ``emb`` (B, D), through
    the (B, B) distance matrix (:func:`triplet_loss_from_distances`)."""
    check_shape(emb, "B D", name="emb")
    return triplet_loss_from_distances(pairwise_distance(emb, squared=squared), indices, margin=margin,
                                       reduction=reduction)
