"""How well a clustering recovers the true identities: BCubed precision, recall and F.

For each item, precision is the fraction of its cluster that shares its true identity, recall the
fraction of its identity that shares its cluster; both are averaged over items (Bagga & Baldwin
1998; Amigó et al. 2009). Unlike pairwise scores, one giant cluster cannot hide behind many small
correct ones, and a singleton counts as much as any face of a large cluster.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from cnnkit.core.checks import check_same_shape, check_shape

__all__ = ["BCubed", "bcubed", "singletons_apart"]


@dataclass(frozen=True)
class BCubed:
    precision: float
    recall: float
    f: float
    clusters: int  # predicted clusters, each singleton counted as one


def singletons_apart(labels: Any) -> np.ndarray:
    """Labels where every ``-1`` ("alone") becomes a cluster of its own, int64 (N,)."""
    lab = np.asarray(labels, dtype=np.int64).copy()
    alone = lab < 0
    lab[alone] = lab.max(initial=-1) + 1 + np.arange(int(alone.sum()))
    return lab


def bcubed(truth: Any, predicted: Any) -> BCubed:
    """BCubed precision, recall and F of ``predicted`` (N,) against ``truth`` (N,).

    ``-1`` in ``predicted`` means "alone": each such item is a cluster of its own.
    """
    t = np.asarray(truth)
    p = singletons_apart(predicted)
    check_shape(t, "N", name="truth")
    check_same_shape(t, p, names=("truth", "predicted"))
    if len(t) == 0:
        return BCubed(1.0, 1.0, 1.0, 0)
    _, t = np.unique(t, return_inverse=True)
    _, p = np.unique(p, return_inverse=True)
    # size of every (cluster, identity) cell, of every cluster and of every identity
    cell = np.unique(p.astype(np.int64) * (t.max() + 1) + t, return_inverse=True, return_counts=True)
    both = cell[2][cell[1]]
    precision = float(np.mean(both / np.bincount(p)[p]))
    recall = float(np.mean(both / np.bincount(t)[t]))
    f = 2 * precision * recall / (precision + recall)
    return BCubed(precision, recall, f, int(p.max()) + 1)
