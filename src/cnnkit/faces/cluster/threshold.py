"""The clustering threshold, from data: where distances between *different* people begin.

Merging groups compounds false accepts (a chain of look-alikes joins two people), so the clustering
threshold is much stricter than the verification one. The rule:

    tau = min(verification threshold, m + s * Phi^-1(CLUSTER_FAR))

where ``m`` and ``s`` describe the distances between different people as seen from a typical face
(:func:`impostor_stats`): from the gallery's enrolled people when it holds enough of them, else
from the faces being clustered, most of whose pairs are of two different people.

That is the threshold for merging two single faces. Two groups may merge a little further apart
(:class:`MergeRule`, :func:`merge_rule`): their mean distance averages many pairs, so it is less
likely to fall that low by chance between two different people; how much less follows from how the
impostor variance splits between the people and their photos, estimated from the collection's
likely same-person pairs (mutual nearest neighbours). Same false-accept rate, no new constant.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from cnnkit.core.errors import CnnkitError
from cnnkit.core.euclidean import euclidean_matrix
from cnnkit.faces.cluster.linkage import _as_matrix

#: the pairwise false-accept rate the clustering threshold is set at (z = -4.0 standard deviations),
#: chosen on LFW pairsDevTrain's 3,443 photos (benchmarks/cluster_lfw.py --tune), so a score on all
#: of LFW is not independent of it (``--outside-view1`` is); the verification threshold of an
#: encoder sits near 1e-2. :class:`MergeRule` adds no constant to it.
CLUSTER_FAR = 3e-5


def encoder_cluster_far(encoder: Any) -> float:
    """The false-accept rate the threshold rule uses for this encoder's embeddings: its own
    ``cluster_far`` when it declares one (chosen like :data:`CLUSTER_FAR`, on LFW pairsDevTrain's
    photos: the fitted fusion's is 1e-7), else :data:`CLUSTER_FAR` (chosen for dlib's ResNet)."""
    return float(getattr(encoder, "cluster_far", CLUSTER_FAR))
#: faces sampled (each side) to estimate the impostor statistics: the cost is this squared
IMPOSTOR_SAMPLE = 2000


@dataclass(frozen=True)
class ImpostorStats:
    """Distances between different people, as seen from a typical face: the median over sampled
    faces of each face's own median distance to the others (``mean``) and of its spread
    (84th percentile minus median, ``std``), after setting aside the share of each face's
    distances that are below the verification threshold (mostly the same person: ``genuine``)."""

    mean: float
    std: float
    genuine: float
    faces: int
    source: str  # "gallery" (between different enrolled people) | "collection" (the faces clustered)


def impostor_stats(embeddings: Any, verification_threshold: float, *, people: Any = None,
                   sample: int = IMPOSTOR_SAMPLE, seed: int = 0) -> ImpostorStats:
    """Estimate the distance distribution between *different* people from unlabelled faces.

    Each sampled face is compared with other sampled faces. Most pairs of a collection are of two
    different people; the few of the same person sit below the verification threshold. For a face
    whose distances include a share ``g`` below that threshold, the impostor median and 84th
    percentile are read at the levels ``g + (1 - g) * 0.5`` and ``g + (1 - g) * 0.8413`` of its
    distances, so that a collection dominated by a few people is not mistaken for a tight one.

    Args:
        embeddings: (N, D), N >= 3.
        verification_threshold: the encoder's (or the gallery's calibrated) "same person" distance.
        people: (N,) labels when known (a gallery): then same-person pairs are left out exactly.
    """
    emb = _as_matrix(embeddings).astype(np.float64, copy=False)
    n = len(emb)
    if n < 3:
        raise CnnkitError(f"at least 3 faces are needed to estimate a clustering threshold, got {n}")
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(n, min(n, sample), replace=False))
    cols = np.sort(rng.choice(n, min(n, sample), replace=False))
    a, b = emb[rows], emb[cols]
    d = euclidean_matrix(a, b)
    d[rows[:, None] == cols[None, :]] = np.nan
    if people is not None:
        lab = np.asarray(people)
        d[lab[rows][:, None] == lab[cols][None, :]] = np.nan
        genuine = np.zeros(len(rows))
    else:
        valid = np.isfinite(d).sum(1)
        genuine = (d < verification_threshold).sum(1) / np.maximum(valid, 1)
    d = np.sort(np.where(np.isfinite(d), d, np.inf), axis=1)
    count = np.isfinite(d).sum(1)
    usable = count >= 2
    if not usable.any():
        raise CnnkitError("no pair of different people to estimate a clustering threshold from")
    d, count, g = d[usable], count[usable], genuine[usable]

    def level(q: np.ndarray) -> np.ndarray:
        pos = np.clip(q * (count - 1), 0, count - 1)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, count - 1)
        idx = np.arange(len(d))
        return d[idx, lo] + (pos - lo) * (d[idx, hi] - d[idx, lo])

    med = level(g + (1 - g) * 0.5)
    upper = level(g + (1 - g) * 0.8413)
    source = "gallery" if people is not None else "collection"
    return ImpostorStats(float(np.median(med)), float(np.median(upper - med)), float(np.mean(g)),
                         int(usable.sum()), source)


def threshold_from_stats(stats: ImpostorStats, far: float = CLUSTER_FAR) -> float:
    """The clustering threshold: the distance below which two different people fall with
    probability ``far`` under a normal model of :class:`ImpostorStats`."""
    from statistics import NormalDist

    return float(stats.mean + stats.std * NormalDist().inv_cdf(far))


#: a gallery gives the impostor statistics when it holds at least this many people (else the faces
#: being clustered do)
MIN_GALLERY_PEOPLE = 10
#: fewer faces than this (and no such gallery): too few pairs of different people to estimate
#: from, and few merges to compound errors; the verification threshold is used as it is
MIN_COLLECTION_FACES = 50


def cluster_threshold(embeddings: Any, verification_threshold: float, *, gallery: Any = None,
                      far: float = CLUSTER_FAR, seed: int = 0) -> tuple[float, str, ImpostorStats | None]:
    """The clustering threshold for these faces, where it came from, and the statistics used.

    ``tau = min(verification_threshold, m + s * Phi^-1(far))`` with ``(m, s)`` from
    :func:`impostor_stats` of the gallery's enrolled people when ``gallery`` holds at least
    ``MIN_GALLERY_PEOPLE`` people (source ``"gallery"``), else of the faces themselves when there
    are at least ``MIN_COLLECTION_FACES`` (``"collection"``), else the verification threshold
    (``"verification"``).
    """
    if gallery is not None and gallery.encoder_tag is not None:
        matrix, names = gallery.embeddings()
        if len(set(names)) >= MIN_GALLERY_PEOPLE:
            stats = impostor_stats(matrix, verification_threshold, people=names, seed=seed)
            return min(float(verification_threshold), threshold_from_stats(stats, far)), "gallery", stats
    if len(embeddings) < MIN_COLLECTION_FACES:
        return float(verification_threshold), "verification", None
    stats = impostor_stats(embeddings, verification_threshold, seed=seed)
    return min(float(verification_threshold), threshold_from_stats(stats, far)), "collection", stats


#: faces sampled to find likely same-person pairs for :func:`merge_rule` (each costs one row of
#: distances to the whole collection)
PAIR_SAMPLE = 2000
#: fewer likely same-person pairs than this: the variance split is not estimated, every merge
#: uses the pair threshold
MIN_PAIRS = 30


@dataclass(frozen=True)
class MergeRule:
    """How far apart two *groups* may be and still merge, at the false-accept rate of two faces.

    A group's mean squared distance to another averages many pairs, so it wanders less than one
    pair's: between two different people it is ``C + u + w + e`` (the two people, A's photos, B's
    photos, the rest), with variances in the shares ``shared``, ``per_face``, ``pairwise`` of one
    pair's variance. Averaged over ``n_a x n_b`` pairs its spread is ``sqrt(r)`` of a pair's, with
    ``r = shared + per_face (1/n_a + 1/n_b) + pairwise / (n_a n_b)``: the limit moves from the pair
    threshold towards the impostor median in that proportion, so that each merge is as unlikely to
    join two people as the merge of two single faces is. Never above the verification threshold.

    Attributes:
        pair_threshold: Euclidean distance for two single faces (:func:`cluster_threshold`).
        median_d2: the impostor median squared distance (:class:`ImpostorStats` ``mean ** 2``).
        shared, per_face, pairwise: the variance shares (sum 1); ``shared = 1`` means no change.
        ceiling: the verification threshold.
        pairs: the likely same-person pairs they were estimated from.
    """

    pair_threshold: float
    median_d2: float
    shared: float
    per_face: float
    pairwise: float
    ceiling: float
    pairs: int

    def limit(self, n_a: int, n_b: int) -> float:
        """The squared-distance limit for merging groups of ``n_a`` and ``n_b`` faces."""
        t2 = self.pair_threshold ** 2
        if self.median_d2 <= t2:
            return t2
        r = self.shared + self.per_face * (1.0 / n_a + 1.0 / n_b) + self.pairwise / (n_a * n_b)
        return min(self.ceiling ** 2, self.median_d2 - (self.median_d2 - t2) * float(np.sqrt(max(r, 0.0))))

    @property
    def group_threshold(self) -> float:
        """The Euclidean limit for two very large groups (the radius the neighbour graph needs)."""
        return float(np.sqrt(self.limit(1 << 30, 1 << 30)))


def merge_rule(embeddings: Any, pair_threshold: float, stats: ImpostorStats, ceiling: float, *,
               sample: int = PAIR_SAMPLE, seed: int = 0) -> MergeRule:
    """Estimate the variance split of :class:`MergeRule` from the faces themselves, no labels.

    Likely same-person pairs are mutual nearest neighbours within ``pair_threshold`` (among
    ``sample`` faces and their nearest neighbours in the whole collection). For two such pairs
    ``(i, i')`` and ``(j, j')`` of different people (squared distance above the threshold), with
    ``d`` the squared distance: ``Var d(i, j)`` is one pair's variance, ``Cov(d(i, j), d(i', j'))``
    its share from the two people (``shared``) and ``Cov(d(i, j), d(i, j'))`` that plus one side's
    photos (``shared + per_face``).
    """
    emb = _as_matrix(embeddings).astype(np.float64, copy=False)
    n = len(emb)
    flat = MergeRule(float(pair_threshold), float(stats.mean) ** 2, 1.0, 0.0, 0.0, float(ceiling), 0)
    if n < 4:
        return flat
    sq = (emb * emb).sum(1)
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(n, min(n, sample), replace=False))
    nearest, nd2 = _nearest(emb, sq, rows)
    back, _ = _nearest(emb, sq, nearest)
    t2 = float(pair_threshold) ** 2
    ok = (back == rows) & (nd2 <= t2)
    pairs = np.unique(np.sort(np.stack([rows[ok], nearest[ok]], 1), axis=1), axis=0)
    if len(pairs) < MIN_PAIRS:
        return flat
    a, b = emb[pairs[:, 0]], emb[pairs[:, 1]]
    d_ij, d_ipjp, d_ijp = euclidean_matrix(a, a) ** 2, euclidean_matrix(b, b) ** 2, euclidean_matrix(a, b) ** 2
    apart = np.triu(d_ij > t2, 1) & np.triu(d_ipjp > t2, 1)
    if apart.sum() < MIN_PAIRS:
        return flat
    x, y, z = d_ij[apart], d_ipjp[apart], d_ijp[apart]
    var = float(x.var())
    if not var > 0:
        return flat
    shared = float(np.clip(np.cov(x, y)[0, 1] / var, 0.0, 1.0))
    per_face = float(np.clip(np.cov(x, z)[0, 1] / var - shared, 0.0, (1.0 - shared) / 2))
    return MergeRule(float(pair_threshold), float(stats.mean) ** 2, shared, per_face,
                     1.0 - shared - 2.0 * per_face, float(ceiling), int(len(pairs)))


def _nearest(emb: np.ndarray, sq: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each of ``rows``' nearest other face in ``emb`` and its squared distance (exact, float64,
    in blocks of 32 MB)."""
    block = max(1, (1 << 22) // len(emb))
    idx = np.empty(len(rows), np.int64)
    dist = np.empty(len(rows))
    for lo in range(0, len(rows), block):
        r = rows[lo:lo + block]
        d = euclidean_matrix(emb[r], emb, b_sq_norms=sq)
        d[np.arange(len(r)), r] = np.inf
        idx[lo:lo + block] = d.argmin(1)
        dist[lo:lo + block] = d[np.arange(len(r)), idx[lo:lo + block]] ** 2
    return idx, dist
