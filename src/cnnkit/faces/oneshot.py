"""One-shot evaluation of a face encoder on a folder of identities (``cnnkit face oneshot``).

Every photo is embedded once through the pipeline (the whole image for a model trained on whole
photos, with its flip setting), then per seed one random photo (with a face) per person is enrolled
in a fresh in-memory gallery and every other photo identified through it.

A photo in which no face is found (or that cannot be read) never stops the evaluation: it is a
failure to acquire (NIST), counted and listed (``no_face``, ``no_face_files``). ``rank1`` is scored
on the probes that were acquired; ``rank1_no_face_as_miss`` counts every faceless probe as a miss.
"""
from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np

from cnnkit.core.errors import CnnkitError
from cnnkit.data.folders import scan_identity_folder
from cnnkit.eval.embedding import oneshot_split
from cnnkit.eval.identification import dir_at_fpir
from cnnkit.store.sqlite import SQLiteGallery

__all__ = ["oneshot_eval", "embed_folder", "FPIRS"]

#: false positive identification rates at which the open-set DIR is reported
FPIRS = (0.01, 0.1)


def embed_folder(pipeline: Any, paths: Sequence[str | os.PathLike[str]]) -> tuple[np.ndarray, dict[int, str]]:
    """Embeddings of the main face of every file, in order (encoder batched); failures are
    returned, not raised.

    Returns:
        ``(emb, failed)``: emb (N, D) float32 with NaN rows where ``failed[i]`` holds the reason
        (an error message naming the file).
    """
    emb = np.full((len(paths), pipeline.dim), np.nan, dtype=np.float32)
    failed: dict[int, str] = {}
    for i, (_, res) in enumerate(pipeline.encode_many(list(paths), largest=True)):
        if isinstance(res, CnnkitError):
            failed[i] = str(res)
        else:
            emb[i] = res.embedding
    return emb, failed


def _nearest(emb: np.ndarray, gallery: np.ndarray, probe: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Top candidate of each probe through a fresh in-memory gallery: its position in ``gallery``
    and its distance."""
    if not len(probe):
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    with SQLiteGallery(":memory:") as store:
        for k, g in enumerate(gallery):
            store.add_faces(str(k), emb[g:g + 1], tag="oneshot")
        matches = store.search(emb[probe], 1)
    return (np.array([int(m[0].name) for m in matches], dtype=np.int64),
            np.array([m[0].distance for m in matches], dtype=np.float64))


def oneshot_eval(data_dir: str | os.PathLike[str], pipeline: Any, *, seeds: int = 10, people: str | None = None,
                 unknown: str | None = None) -> dict[str, Any]:
    """For each seed, enroll one random photo (with a face) per person and identify every other photo.

    Args:
        data_dir: one sub-folder per person (byte-identical files are dropped).
        pipeline: a :class:`~cnnkit.faces.FacePipeline`.
        seeds: number of random galleries (seed 0..seeds-1).
        people: a :func:`~cnnkit.data.folders.select_people` spec (e.g. ``"s31..s40"``) of the
            enrolled people.
        unknown: a spec of people never enrolled: their photos are probes that should find no
            one; adds the open-set DIR at FPIR 0.01 and 0.1 (``dir_at_fpir``).

    Returns:
        ``{"rank1", "rank1_std", "rank1_no_face_as_miss", "people", "probes", "seeds", "no_face",
        "no_face_files", "encoder"}`` (probes per seed, acquired ones), plus ``"unknown_people"``,
        ``"unknown_probes"`` and ``"dir_at_fpir"`` with ``unknown``.

    Raises:
        CnnkitError: ``unknown`` names people who are also enrolled.
    """
    index = scan_identity_folder(data_dir, people=people, min_images=2)
    paths = list(index.paths)
    labels = np.asarray(index.labels)
    n_known = len(paths)
    if unknown:
        strangers = scan_identity_folder(data_dir, people=unknown)
        overlap = sorted(set(strangers.people) & set(index.people))
        if overlap:
            raise CnnkitError(f"--unknown people are also enrolled: {', '.join(overlap[:5])}")
        paths += list(strangers.paths)
    emb, failed = embed_folder(pipeline, paths)
    acquired = np.ones(len(paths), dtype=bool)
    acquired[list(failed)] = False
    known = np.flatnonzero(acquired[:n_known])
    faceless = n_known - len(known)  # every faceless photo of an enrolled person is a probe
    strange = np.flatnonzero(acquired[n_known:]) + n_known  # the acquired photos of never-enrolled people
    scores, misses, dirs = [], [], {f"{f:g}": [] for f in FPIRS}
    n_probe = 0
    for seed in range(seeds):
        gallery, probe = oneshot_split(labels[known], seed)
        gallery, probe = known[gallery], known[probe]
        pos, dist = _nearest(emb, gallery, np.r_[probe, strange])  # one gallery per seed for both
        pos, dist, s_dist = pos[:len(probe)], dist[:len(probe)], dist[len(probe):]
        correct = labels[gallery[pos]] == labels[probe]
        n_probe = len(probe)
        scores.append(float(correct.mean()) if len(probe) else float("nan"))
        misses.append(float(correct.sum() / max(len(probe) + faceless, 1)))
        if unknown:
            mated_d = np.r_[dist, np.full(faceless, np.inf)]
            mated_ok = np.r_[correct, np.zeros(faceless, dtype=bool)]
            for f in FPIRS:
                dirs[f"{f:g}"].append(dir_at_fpir(mated_d, mated_ok, s_dist, f))
    out: dict[str, Any] = {
        "rank1": float(np.mean(scores)), "rank1_std": float(np.std(scores)),
        "rank1_no_face_as_miss": float(np.mean(misses)),
        "people": len(index.people), "probes": int(n_probe), "seeds": seeds,
        "no_face": len(failed), "no_face_files": [os.fspath(paths[i]) for i in sorted(failed)],
        "encoder": pipeline.tag,
    }
    if unknown:
        out.update({"unknown_people": len(strangers.people), "unknown_probes": int(acquired[n_known:].sum()),
                    "dir_at_fpir": {k: float(np.mean(v)) for k, v in dirs.items()}})
    return out
