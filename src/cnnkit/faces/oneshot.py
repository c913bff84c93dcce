"""One-shot evaluation of a face encoder on a folder of identities (``cnnkit face oneshot``).

Every photo is embedded once through the pipeline (the whole image for a model trained on whole
photos, with its flip setting), then per seed one random photo per person is enrolled in a fresh
in-memory gallery and every other photo identified through it.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from cnnkit.core.errors import CnnkitError
from cnnkit.data.folders import scan_identity_folder
from cnnkit.eval.embedding import oneshot_split
from cnnkit.store.sqlite import SQLiteGallery

__all__ = ["oneshot_eval", "embed_folder"]


def embed_folder(pipeline: Any, paths: Any) -> np.ndarray:
    """Embeddings (N, D) of the main face of every file, in order (encoder batched).

    Raises:
        CnnkitError: the first file without a usable face.
    """
    out = []
    for _, res in pipeline.encode_many(paths, largest=True):
        if isinstance(res, CnnkitError):
            raise res
        out.append(res.embedding)
    return np.stack(out).astype(np.float32) if out else np.zeros((0, pipeline.dim), np.float32)


def _rank1(emb: np.ndarray, labels: np.ndarray, names: Any, gallery: np.ndarray, probe: np.ndarray) -> float:
    """Rank-1 through a fresh in-memory gallery."""
    with SQLiteGallery(":memory:") as store:
        for g in gallery:
            store.add_faces(names[labels[g]], emb[g:g + 1], tag="oneshot")
        matches = store.search(emb[probe], 1)
    return float(np.mean([bool(m) and m[0].name == names[labels[p]] for m, p in zip(matches, probe)]))


def oneshot_eval(data_dir: str | os.PathLike[str], pipeline: Any, *, seeds: int = 10,
                 people: str | None = None) -> dict[str, Any]:
    """For each seed, enroll one random photo per person and identify every other photo.

    Args:
        data_dir: one sub-folder per person (byte-identical files are dropped).
        pipeline: a :class:`~cnnkit.faces.FacePipeline`.
        seeds: number of random galleries (seed 0..seeds-1).
        people: a :func:`~cnnkit.data.folders.select_people` spec (e.g. ``"s31..s40"``).

    Returns:
        ``{"rank1", "rank1_std", "people", "probes", "seeds", "encoder"}`` (probes per seed).
    """
    index = scan_identity_folder(data_dir, people=people, min_images=2)
    emb = embed_folder(pipeline, index.paths)
    labels = np.asarray(index.labels)
    scores, probe = [], np.zeros(0)
    for seed in range(seeds):
        gallery, probe = oneshot_split(labels, seed)
        scores.append(_rank1(emb, labels, index.people, gallery, probe))
    return {"rank1": float(np.mean(scores)), "rank1_std": float(np.std(scores)), "people": len(index.people),
            "probes": int(len(probe)), "seeds": seeds, "encoder": pipeline.tag}
