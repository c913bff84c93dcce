"""Validation metrics of an embedding (numpy): verification on all pairs, one-shot rank-1, and a
collapse check."""
from __future__ import annotations

from typing import Any

import numpy as np

from cnnkit.core.checks import check_shape
from cnnkit.core.euclidean import euclidean_matrix
from cnnkit.eval.verification import best_threshold, eer


def oneshot_split(labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(gallery, probe) indices: one random image per person (drawn with ``seed``), and the rest."""
    rng = np.random.default_rng(seed)
    gallery = np.array([rng.choice(np.flatnonzero(labels == y)) for y in np.unique(labels)])
    return gallery, np.setdiff1d(np.arange(len(labels)), gallery)


def oneshot_rank1(emb: np.ndarray, labels: np.ndarray, *, seeds: int = 10) -> dict[str, Any]:
    """One-shot identification: per seed, one random image per person is the gallery and every
    other image a probe; rank-1 = fraction of probes whose nearest gallery image (Euclidean) is
    the same person.

    Args:
        emb: embeddings, shape (N, D).
        labels: person of each embedding, shape (N,).

    Returns:
        ``{"rank1": mean, "rank1_std": std over seeds, "people": P, "probes": probes per seed}``.
    """
    check_shape(emb, "N D", name="emb")
    labels = np.asarray(labels)
    check_shape(labels, f"{emb.shape[0]}", name="labels")
    people = np.unique(labels)
    dist = euclidean_matrix(emb, emb)
    scores, probes = [], 0
    for seed in range(seeds):
        gallery, probe = oneshot_split(labels, seed)
        nearest = gallery[dist[np.ix_(probe, gallery)].argmin(1)]
        scores.append(float((labels[nearest] == labels[probe]).mean()) if len(probe) else float("nan"))
        probes = len(probe)
    return {"rank1": float(np.mean(scores)), "rank1_std": float(np.std(scores)), "people": int(len(people)),
            "probes": int(probes), "seeds": seeds}


def embedding_report(emb: np.ndarray, labels: np.ndarray, *, seeds: int = 10) -> dict[str, float]:
    """Verification accuracy (best threshold) and EER on every pair, one-shot rank-1, mean positive
    and negative distance, and ``collapsed`` (1.0 when all distances are nearly equal).

    Args:
        emb: embeddings, shape (N, D).
        labels: shape (N,).
    """
    labels = np.asarray(labels)
    dist = euclidean_matrix(emb, emb)
    iu = np.triu_indices(len(labels), 1)
    d = dist[iu]
    same = (labels[:, None] == labels[None, :])[iu]
    threshold, acc = best_threshold(d, same)
    spread = float(d.std() / max(d.mean(), 1e-12))
    return {
        "val_accuracy": acc, "val_threshold": threshold, "val_eer": eer(d, same),
        "val_rank1": oneshot_rank1(emb, labels, seeds=seeds)["rank1"],
        "mean_pos_dist": float(d[same].mean()) if same.any() else float("nan"),
        "mean_neg_dist": float(d[~same].mean()) if (~same).any() else float("nan"),
        "collapsed": float(spread < 0.02 or d.mean() < 1e-4),
    }
