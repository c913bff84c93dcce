"""One-shot evaluation of an encoder on a folder of identities (``cnnkit face oneshot``)."""
from __future__ import annotations

import os
from typing import Any, Callable, Sequence

import numpy as np

from cnnkit.data.folders import IdentityFolder, scan_identity_folder
from cnnkit.train.metrics import oneshot_rank1, oneshot_split

EncodeFn = Callable[[Sequence[np.ndarray]], np.ndarray]


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


def _rank1_store(emb: np.ndarray, labels: np.ndarray, names: Sequence[str], gallery: np.ndarray,
                 probe: np.ndarray) -> float:
    """Rank-1 through a fresh in-memory gallery of :mod:`cnnkit.store`."""
    from cnnkit.store import open_gallery  # type: ignore[attr-defined]

    store = open_gallery(":memory:")
    try:
        for g in gallery:
            store.add_faces(names[labels[g]], emb[g:g + 1].astype(np.float32), tag="oneshot")
        matches = store.search(emb[probe].astype(np.float32), 1)
    finally:
        getattr(store, "close", lambda: None)()
    return float(np.mean([bool(m) and m[0].name == names[labels[p]] for m, p in zip(matches, probe)]))


def _has_store() -> bool:
    try:
        from cnnkit.store import open_gallery  # type: ignore[attr-defined]  # noqa: F401
    except ImportError:
        return False
    return True


def oneshot_eval(data_dir: str | os.PathLike[str], encoder: str | os.PathLike[str] | EncodeFn, *,
                 seeds: int = 10, people: str | None = None, device: str = "cpu",
                 use_store: bool | None = None) -> dict[str, Any]:
    """For each seed, enrol one random photo per person and identify every other photo.

    Args:
        data_dir: one sub-folder per person (byte-identical files are dropped).
        encoder: a saved model (path), or a function from a list of uint8 images to (N, D).
        seeds: number of random galleries (seed 0..seeds-1).
        people: a :func:`~cnnkit.data.folders.select_people` spec (e.g. ``"s31..s40"``).
        use_store: search a fresh in-memory :mod:`cnnkit.store` gallery per seed (default: when
            the store is available), else numpy nearest neighbour; both use Euclidean distance.

    Returns:
        ``{"rank1", "rank1_std", "people", "probes", "seeds"}`` (probes per seed).
    """
    folder = IdentityFolder(scan_identity_folder(data_dir, people=people, min_images=2))
    encode = model_encode_fn(encoder, device=device) if isinstance(encoder, (str, os.PathLike)) else encoder
    emb = np.asarray(encode(folder.images), dtype=np.float32)
    labels = folder.labels.numpy()
    if not (_has_store() if use_store is None else use_store):
        return oneshot_rank1(emb, labels, seeds=seeds)
    scores = []
    for seed in range(seeds):
        gallery, probe = oneshot_split(labels, seed)
        scores.append(_rank1_store(emb, labels, folder.people, gallery, probe))
    return {"rank1": float(np.mean(scores)), "rank1_std": float(np.std(scores)),
            "people": len(folder.people), "probes": int(len(probe)), "seeds": seeds}
