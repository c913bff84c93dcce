"""The clustering threshold, from data: where distances between *different* people begin.

Merging groups compounds false accepts (a chain of look-alikes joins two people), so the clustering
threshold is much stricter than the verification one. The rule:

    tau = min(verification threshold, m + s * Phi^-1(CLUSTER_FAR))

where ``m`` and ``s`` describe the distances between different people as seen from a typical face
(:func:`impostor_stats`): from the gallery's enrolled people when it holds enough of them, else
from the faces being clustered, most of whose pairs are of two different people.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from cnnkit.core.errors import CnnkitError
from cnnkit.core.euclidean import euclidean_matrix
from cnnkit.faces.cluster.linkage import _as_matrix

#: the pairwise false-accept rate the clustering threshold is set at (z = -4.0 standard deviations),
#: chosen on LFW pairsDevTrain's 3,443 photos (benchmarks/cluster_lfw.py --tune); the verification
#: threshold of an encoder sits near 1e-2
CLUSTER_FAR = 3e-5
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
