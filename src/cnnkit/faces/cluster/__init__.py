"""Who are these people? Group the faces of a photo collection, so that each person is named once.

>>> from cnnkit.faces.cluster import cluster_embeddings
>>> result = cluster_embeddings(embeddings, verification_threshold=0.6)   # (N, D) in
>>> result.labels            # (N,) cluster of each face, numbered from the largest; -1 when alone
>>> result.threshold         # the Euclidean distance used, chosen from the data (see .stats)

- :mod:`~cnnkit.faces.cluster.linkage`: average linkage on squared distances over the graph of
  pairs within the threshold (exact, memory linear in N).
- :mod:`~cnnkit.faces.cluster.threshold`: the threshold rule, from the distances between different
  people (the gallery's enrolled people, or the faces being clustered), and how much further apart
  groups of faces may merge (:class:`MergeRule`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from cnnkit.faces.cluster.linkage import (
    MAX_NEIGHBORS,
    NeighbourGraph,
    average_linkage,
    graph_from_pairs,
    naive_average_linkage,
    radius_graph,
    relabel,
    representatives,
)
from cnnkit.faces.cluster.threshold import (
    CLUSTER_FAR,
    MIN_COLLECTION_FACES,
    MIN_GALLERY_PEOPLE,
    ImpostorStats,
    MergeRule,
    cluster_threshold,
    encoder_cluster_far,
    impostor_stats,
    merge_rule,
    threshold_from_stats,
)

__all__ = [
    "Clustering",
    "cluster_embeddings",
    "cluster_threshold",
    "impostor_stats",
    "threshold_from_stats",
    "ImpostorStats",
    "MergeRule",
    "merge_rule",
    "CLUSTER_FAR",
    "encoder_cluster_far",
    "MIN_GALLERY_PEOPLE",
    "MIN_COLLECTION_FACES",
    "MAX_NEIGHBORS",
    "NeighbourGraph",
    "radius_graph",
    "graph_from_pairs",
    "average_linkage",
    "naive_average_linkage",
    "relabel",
    "representatives",
]


@dataclass(frozen=True)
class Clustering:
    """The outcome of :func:`cluster_embeddings`.

    Attributes:
        labels: int64 (N,), clusters 0, 1, ... from the largest; -1 for a face alone.
        threshold: the Euclidean distance for merging two single faces (average linkage on squared
            distances at tau^2); groups may merge a little further apart, see ``rule``.
        source: where it came from: ``"gallery"``, ``"collection"``, ``"verification"`` (too few
            faces to estimate from) or ``"given"``.
        stats: the impostor statistics it came from (``None`` for the last two).
        capped: faces whose neighbour list was cut at ``max_neighbors`` (0: exact).
        rule: how much further apart groups may merge (``None`` when every merge used
            ``threshold``: a given threshold, or one at the verification ceiling).
    """

    labels: np.ndarray
    threshold: float
    source: str
    stats: ImpostorStats | None
    capped: int
    rule: MergeRule | None = None

    @property
    def n_clusters(self) -> int:
        """Clusters of two faces or more."""
        return int(self.labels.max(initial=-1)) + 1

    @property
    def alone(self) -> int:
        return int((self.labels < 0).sum())


def cluster_embeddings(embeddings: Any, *, verification_threshold: float, gallery: Any = None,
                       threshold: float | None = None, far: float = CLUSTER_FAR, merge: bool = False,
                       max_neighbors: int | None = MAX_NEIGHBORS, seed: int = 0) -> Clustering:
    """Cluster face embeddings (N, D): a label per face, -1 for "alone".

    Args:
        embeddings: (N, D), the faces to group.
        verification_threshold: this encoder's (or the gallery's calibrated) "same person"
            distance; the clustering threshold never exceeds it.
        gallery: a gallery of enrolled people; with at least ``MIN_GALLERY_PEOPLE`` of them, the
            distances between them give the impostor statistics.
        threshold: use this distance instead of the rule (benchmarks and tests).
        far: the rule's false-accept rate for two faces (the encoder's: :func:`encoder_cluster_far`).
        merge: let groups merge further apart than two faces (:class:`MergeRule`). Off by default:
            on the photos the rates were chosen on (LFW pairsDevTrain's 3,443) the pair threshold
            alone clustered better for both encoders (dlib 0.950 against at best 0.946; the fusion
            0.9921 against 0.9914 at its 1e-7), ``benchmarks/cluster_lfw.py --tune``.
        max_neighbors: nearest faces kept per face in the neighbour graph (``None``: all).
        seed: for the faces sampled by the threshold rule; the same seed gives the same result.
    """
    emb = np.asarray(embeddings)
    source, stats = "given", None
    if threshold is None:
        threshold, source, stats = cluster_threshold(emb, verification_threshold, gallery=gallery, far=far, seed=seed)
    if len(emb) < 2:
        return Clustering(np.full(len(emb), -1, dtype=np.int64), float(threshold), source, stats, 0)
    rule = None
    if merge and stats is not None and threshold < verification_threshold:
        rule = merge_rule(emb, threshold, stats, verification_threshold, seed=seed)
    radius = threshold if rule is None else max(threshold, rule.group_threshold)
    graph = radius_graph(emb, radius, max_neighbors=max_neighbors)
    labels = average_linkage(emb, radius, graph=graph, limit=None if rule is None else rule.limit)
    return Clustering(labels, float(threshold), source, stats, graph.capped, rule)
