"""Triplet and pair mining over a batch, vectorised over the (B, B) distance matrix.

Every miner runs under ``torch.no_grad`` and returns a :class:`TripletIndices` (or
:class:`PairIndices`); the loss then recomputes the distances of the chosen triplets with gradients.
A triplet (a, p, n) is *valid* when ``a != p``, ``labels[a] == labels[p]`` and
``labels[a] != labels[n]``. A batch without a valid triplet gives empty indices, and the losses turn
empty indices into a zero loss (never NaN).
"""
from __future__ import annotations

import torch
from torch import Tensor

from cnnkit.core.checks import check_shape
from cnnkit.core.errors import ShapeError, UnknownNameError
from cnnkit.mining.indices import PairIndices, TripletIndices


def _masks(labels: Tensor) -> tuple[Tensor, Tensor]:
    """(positive-pair mask without the diagonal, negative-pair mask), each (B, B) bool."""
    check_shape(labels, "B", name="labels")
    same = labels[:, None] == labels[None, :]
    pos = same & ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    return pos, ~same


def _check_dist(dist: Tensor, labels: Tensor) -> None:
    b = check_shape(dist, "B B", name="dist")["B"]
    if b != labels.shape[0]:
        raise ShapeError(f"dist is ({b}, {b}) but labels has {labels.shape[0]} entries")


@torch.no_grad()
def batch_all(labels: Tensor, dist: Tensor | None = None, *, margin: float | None = None) -> TripletIndices:
    """Every valid triplet of the batch (batch-all).

    Args:
        labels: identity of each embedding, shape (B,).
        dist: distances, shape (B, B); needed only with ``margin``.
        margin: when given, keep only the *active* triplets, ``d(a, p) - d(a, n) + margin > 0``
            (the others add exactly 0 to the loss).

    Returns:
        indices, each (T,), ordered by anchor, then positive, then negative.
    """
    pos, neg = _masks(labels)
    a, p = torch.nonzero(pos, as_tuple=True)
    keep = neg[a]  # (T_ap, B)
    if margin is not None:
        if dist is None:
            raise ValueError("batch_all with a margin needs the distance matrix")
        _check_dist(dist, labels)
        keep = keep & (dist[a, p][:, None] - dist[a] + margin > 0)
    t, n = torch.nonzero(keep, as_tuple=True)
    return TripletIndices(a[t], p[t], n)


@torch.no_grad()
def batch_hard(dist: Tensor, labels: Tensor) -> TripletIndices:
    """Per anchor, the farthest positive and the closest negative (Hermans et al. 2017).

    Args:
        dist: distances, shape (B, B).
        labels: shape (B,).

    Returns:
        one triplet per anchor that has both a positive and a negative, each (T,) with T <= B.
    """
    pos, neg = _masks(labels)
    _check_dist(dist, labels)
    anchor = torch.nonzero(pos.any(1) & neg.any(1)).squeeze(1)
    hardest_pos = dist.masked_fill(~pos, float("-inf")).argmax(1)
    hardest_neg = dist.masked_fill(~neg, float("inf")).argmin(1)
    return TripletIndices(anchor, hardest_pos[anchor], hardest_neg[anchor])


@torch.no_grad()
def semi_hard(dist: Tensor, labels: Tensor, *, margin: float = 0.2) -> TripletIndices:
    """One negative per (anchor, positive) pair, FaceNet style (Schroff et al. 2015).

    Among the negatives farther than the positive but inside the margin,
    ``d(a, p) < d(a, n) < d(a, p) + margin``, take the closest; when there is none, take the hardest
    (closest) negative of the anchor.

    Args:
        dist: distances, shape (B, B).
        labels: shape (B,).

    Returns:
        one triplet per positive pair whose anchor has a negative, each (T,).
    """
    pos, neg = _masks(labels)
    _check_dist(dist, labels)
    a, p = torch.nonzero(pos & neg.any(1, keepdim=True), as_tuple=True)
    d_an = dist[a]  # (T, B)
    d_ap = dist[a, p][:, None]
    neg_a = neg[a]
    semi = neg_a & (d_an > d_ap) & (d_an < d_ap + margin)
    inf = torch.tensor(float("inf"), dtype=dist.dtype, device=dist.device)
    closest_semi = torch.where(semi, d_an, inf).argmin(1)
    hardest = torch.where(neg_a, d_an, inf).argmin(1)
    n = torch.where(semi.any(1), closest_semi, hardest)
    return TripletIndices(a, p, n)


@torch.no_grad()
def random_triplets(labels: Tensor, *, generator: torch.Generator | None = None) -> TripletIndices:
    """One uniformly random negative per (anchor, positive) pair.

    Args:
        labels: shape (B,).
        generator: for repeatable draws.

    Returns:
        one triplet per positive pair whose anchor has a negative, each (T,).
    """
    pos, neg = _masks(labels)
    a, p = torch.nonzero(pos & neg.any(1, keepdim=True), as_tuple=True)
    # the arg-max of i.i.d. uniform scores over the anchor's negatives is a uniform draw among them
    scores = torch.rand(len(a), len(labels), generator=generator).to(labels.device)
    n = scores.masked_fill(~neg[a], -1.0).argmax(1) if len(a) else a.clone()
    return TripletIndices(a, p, n)


@torch.no_grad()
def all_pairs(labels: Tensor) -> PairIndices:
    """Every positive pair (i < j, same label) and every negative pair (i < j, different label)."""
    pos, neg = _masks(labels)
    upper = torch.ones_like(pos).triu(1)
    a1, p = torch.nonzero(pos & upper, as_tuple=True)
    a2, n = torch.nonzero(neg & upper, as_tuple=True)
    return PairIndices(a1, p, a2, n)


MINERS = ("all", "hard", "semihard", "random")


def mine_triplets(
    strategy: str, dist: Tensor, labels: Tensor, *, margin: float = 0.2,
    generator: torch.Generator | None = None,
) -> TripletIndices:
    """Dispatch by name: ``"all"`` (active batch-all triplets), ``"hard"``, ``"semihard"``, ``"random"``.

    Shapes: dist (B, B), labels (B,) -> indices (T,).
    """
    if strategy == "all":
        return batch_all(labels, dist, margin=margin)
    if strategy == "hard":
        return batch_hard(dist, labels)
    if strategy == "semihard":
        return semi_hard(dist, labels, margin=margin)
    if strategy == "random":
        return random_triplets(labels, generator=generator)
    raise UnknownNameError(f"unknown mining strategy {strategy!r}; available: {list(MINERS)}")
