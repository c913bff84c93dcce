"""3D volumes: the MNI152 2009 template with grey/white-matter labels (shipped inside the nilearn
wheel, so it loads offline), half-brain splits and random training patches.

The template (ICBM 2009a *symmetric*) is an exact mirror image across the mid-sagittal plane, so a
left/right split would test on the mirror of the training half. :func:`split_halves` therefore
defaults to the anterior/posterior axis (``axis=1``), which holds different anatomy in each half.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Literal

import numpy as np

from cnnkit.core.errors import CnnkitError, ShapeError

TISSUES = ("background", "grey matter", "white matter")


@lru_cache(maxsize=2)
def load_mni152_tissues(resolution: Literal[1, 2] = 2) -> tuple[np.ndarray, np.ndarray]:
    """The MNI152 2009 T1 template and a label volume from its tissue probability maps.

    The result is cached (``load_mni152_tissues.cache_clear()`` empties it) and read-only: copy it
    before changing it.

    Each voxel is labelled with the most probable of background (1 - p_gm - p_wm), grey matter (p_gm)
    and white matter (p_wm). (nilearn's ``load_mni152_gm_mask``/``wm_mask`` are dilated and overlap,
    so they cannot serve as exclusive labels.)

    Returns:
        t1 float32 (X, Y, Z) in [0, 1] (99 x 117 x 95 at 2 mm) and labels int64 (X, Y, Z) with values
        0 background, 1 grey matter, 2 white matter.

    Raises:
        CnnkitError: nilearn is not installed.
    """
    try:
        from nilearn import datasets
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise CnnkitError("brain3d needs nilearn (pip install nilearn); it ships the MNI152 template") from exc
    t1 = np.asarray(datasets.load_mni152_template(resolution=resolution).get_fdata(), dtype=np.float32)
    gm = np.asarray(datasets.load_mni152_gm_template(resolution=resolution).get_fdata(), dtype=np.float32)
    wm = np.asarray(datasets.load_mni152_wm_template(resolution=resolution).get_fdata(), dtype=np.float32)
    labels = np.argmax(np.stack([1.0 - gm - wm, gm, wm]), axis=0).astype(np.int64)
    t1 = np.clip(t1, 0.0, None)
    t1.flags.writeable = False
    labels.flags.writeable = False
    return t1, labels


def split_halves(vol: np.ndarray, *, axis: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The two halves of ``vol`` (X, Y, Z) along ``axis`` (first half, second half), views, no copy."""
    if vol.ndim != 3:
        raise ShapeError(f"volume must have shape (X, Y, Z), got {vol.shape}")
    mid = vol.shape[axis] // 2
    index_a = [slice(None)] * 3
    index_b = [slice(None)] * 3
    index_a[axis], index_b[axis] = slice(0, mid), slice(mid, None)
    return vol[tuple(index_a)], vol[tuple(index_b)]


def random_patches(vol: np.ndarray, labels: np.ndarray, *, size: int, count: int,
                   rng: np.random.Generator, foreground: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
    """``count`` random cubes of side ``size`` from ``vol`` and ``labels`` (both (X, Y, Z)).

    A fraction ``foreground`` of the cubes is centred on a non-background voxel, so training sees
    brain rather than empty space.

    Returns:
        patches float32 (count, 1, size, size, size) and labels int64 (count, size, size, size).
    """
    if vol.shape != labels.shape or vol.ndim != 3:
        raise ShapeError(f"vol {vol.shape} and labels {labels.shape} must be the same (X, Y, Z) shape")
    if any(n < size for n in vol.shape):
        raise ShapeError(f"volume {vol.shape} is smaller than the patch size {size}")
    fg = np.argwhere(labels > 0)
    high = np.array(vol.shape) - size
    starts = np.empty((count, 3), dtype=np.int64)
    for i in range(count):
        if len(fg) and rng.random() < foreground:
            centre = fg[rng.integers(len(fg))]
            starts[i] = np.clip(centre - size // 2, 0, high)
        else:
            starts[i] = [rng.integers(h + 1) for h in high]
    x = np.stack([vol[a:a + size, b:b + size, c:c + size] for a, b, c in starts])[:, None]
    y = np.stack([labels[a:a + size, b:b + size, c:c + size] for a, b, c in starts])
    return x.astype(np.float32), y.astype(np.int64)


__all__ = ["TISSUES", "load_mni152_tissues", "random_patches", "split_halves"]
