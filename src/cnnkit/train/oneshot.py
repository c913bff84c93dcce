"""One-shot evaluation of an encoder on a folder of identities (``cnnkit face oneshot``).

A photo in which no face is found (or that cannot be read) never stops the evaluation: it is a
failure to acquire (NIST), counted and listed (``no_face``, ``no_face_files``). ``rank1`` is scored
on the probes that were acquired; ``rank1_no_face_as_miss`` counts every faceless probe as a miss.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Sequence

import numpy as np

from cnnkit.core.errors import CnnkitError
from cnnkit.data.folders import scan_identity_folder
from cnnkit.data.image_io import load_image
from cnnkit.eval.identification import dir_at_fpir
from cnnkit.train.metrics import euclidean_matrix, oneshot_split

EncodeFn = Callable[[Sequence[np.ndarray]], np.ndarray]

#: false positive identification rates at which the open-set DIR is reported
FPIRS = (0.01, 0.1)


def model_encode_fn(path: str | os.PathLike[str], *, device: str = "cpu") -> EncodeFn:
    """An encode function (list of uint8 images -> (N, D) float32) for a saved model."""
    from cnnkit.nn.checkpoint import encode_images, load_encoder

    model, config = load_encoder(path, device=device)
    return lambda images: encode_images(model, config, images)


def pipeline_encode_fn(pipeline: Any) -> EncodeFn:
    """An encode function through a face pipeline (detect, align, encode the largest face).

    Raises:
        CnnkitError: from the pipeline, e.g. no face found in an image.
    """
    return lambda images: np.stack([pipeline.encode_one(img, largest=True).embedding for img in images])


def encode_paths(encoder: Any, paths: Sequence[os.PathLike[str]]) -> tuple[np.ndarray, dict[int, str]]:
    """Encode every file; failures are returned, not raised.

    Args:
        encoder: a face pipeline (anything with ``encode_many``: detected, aligned, batched), or an
            :data:`EncodeFn` over whole uint8 images.

    Returns:
        ``(emb, failed)``: emb (N, D) float32 with NaN rows where ``failed[i]`` holds the reason
        (an error message naming the file).
    """
    vecs: list[np.ndarray | None] = [None] * len(paths)
    failed: dict[int, str] = {}
    if hasattr(encoder, "encode_many"):
        position = {os.fspath(p): i for i, p in enumerate(paths)}
        for path, res in encoder.encode_many(list(paths), largest=True):
            i = position[os.fspath(path)]
            if isinstance(res, CnnkitError):
                failed[i] = str(res)
            else:
                vecs[i] = res.embedding
    else:
        images, kept = [], []
        for i, p in enumerate(paths):
            try:
                images.append(load_image(p))
                kept.append(i)
            except CnnkitError as exc:
                failed[i] = str(exc)
        for i, v in zip(kept, np.asarray(encoder(images), dtype=np.float32) if images else []):
            vecs[i] = v
    dim = next((len(v) for v in vecs if v is not None), 1)
    emb = np.full((len(paths), dim), np.nan, dtype=np.float32)
    for i, v in enumerate(vecs):
        if v is not None:
            emb[i] = v
    return emb, failed


def _nearest(emb: np.ndarray, names: Sequence[str], gallery: np.ndarray, probe: np.ndarray,
             use_store: bool) -> tuple[np.ndarray, np.ndarray]:
    """Top candidate of each probe: gallery position (into ``gallery``) and distance."""
    if not len(probe):
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    if use_store:
        from cnnkit.store import open_gallery  # type: ignore[attr-defined]

        store = open_gallery(":memory:")
        try:
            for k, g in enumerate(gallery):
                store.add_faces(f"{k}", emb[g:g + 1].astype(np.float32), tag="oneshot")
            matches = store.search(emb[probe].astype(np.float32), 1)
        finally:
            getattr(store, "close", lambda: None)()
        return (np.array([int(m[0].name) for m in matches], dtype=np.int64),
                np.array([m[0].distance for m in matches], dtype=np.float64))
    dist = euclidean_matrix(emb[probe], emb[gallery])
    pos = dist.argmin(1)
    return pos, dist[np.arange(len(probe)), pos]


def _has_store() -> bool:
    try:
        from cnnkit.store import open_gallery  # type: ignore[attr-defined]  # noqa: F401
    except ImportError:
        return False
    return True


def oneshot_eval(data_dir: str | os.PathLike[str], encoder: Any, *, seeds: int = 10, people: str | None = None,
                 unknown: str | None = None, device: str = "cpu", use_store: bool | None = None) -> dict[str, Any]:
    """For each seed, enrol one random photo (with a face) per person and identify every other photo.

    Args:
        data_dir: one sub-folder per person (byte-identical files are dropped).
        encoder: a saved model (path), a face pipeline, or a function from a list of uint8 images
            to (N, D).
        seeds: number of random galleries (seed 0..seeds-1).
        people: a :func:`~cnnkit.data.folders.select_people` spec (e.g. ``"s31..s40"``) of the
            enrolled people.
        unknown: a spec of people never enrolled: their photos are probes that should find no
            one; adds the open-set DIR at FPIR 0.01 and 0.1 (``dir_at_fpir``).
        use_store: search a fresh in-memory :mod:`cnnkit.store` gallery per seed (default: when
            the store is available), else numpy nearest neighbour; both use Euclidean distance.

    Returns:
        ``{"rank1", "rank1_std", "rank1_no_face_as_miss", "people", "probes", "seeds", "no_face",
        "no_face_files"}`` (probes per seed, acquired ones), plus ``"unknown_people"``,
        ``"unknown_probes"`` and ``"dir_at_fpir"`` with ``unknown``.
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
    encode = model_encode_fn(encoder, device=device) if isinstance(encoder, (str, os.PathLike)) else encoder
    emb, failed = encode_paths(encode, paths)
    acquired = np.ones(len(paths), dtype=bool)
    acquired[list(failed)] = False
    store = _has_store() if use_store is None else use_store
    known = np.flatnonzero(acquired[:n_known])
    scores, misses, dirs = [], [], {f"{f:g}": [] for f in FPIRS}
    n_probe = 0
    for seed in range(seeds):
        gallery, probe = oneshot_split(labels[known], seed)
        gallery, probe = known[gallery], known[probe]
        pos, dist = _nearest(emb, index.people, gallery, probe, store)
        correct = labels[gallery[pos]] == labels[probe]
        n_probe = len(probe)
        faceless = n_known - len(known)  # every faceless photo of an enrolled person is a probe
        scores.append(float(correct.mean()) if len(probe) else float("nan"))
        misses.append(float(correct.sum() / max(len(probe) + faceless, 1)))
        if unknown:
            strange = np.flatnonzero(acquired[n_known:]) + n_known
            _, s_dist = _nearest(emb, index.people, gallery, strange, store)
            mated_d = np.r_[dist, np.full(faceless, np.inf)]
            mated_ok = np.r_[correct, np.zeros(faceless, dtype=bool)]
            for f in FPIRS:
                dirs[f"{f:g}"].append(dir_at_fpir(mated_d, mated_ok, s_dist, f))
    no_face_files = [os.fspath(paths[i]) for i in sorted(failed)]
    out: dict[str, Any] = {
        "rank1": float(np.mean(scores)), "rank1_std": float(np.std(scores)),
        "rank1_no_face_as_miss": float(np.mean(misses)),
        "people": len(index.people), "probes": int(n_probe), "seeds": seeds,
        "no_face": len(failed), "no_face_files": no_face_files,
    }
    if unknown:
        out.update({"unknown_people": len(strangers.people), "unknown_probes": int(acquired[n_known:].sum()),
                    "dir_at_fpir": {k: float(np.mean(v)) for k, v in dirs.items()}})
    return out
