"""IDX files (the MNIST / Fashion-MNIST format) and the Fashion-MNIST data set.

Fashion-MNIST is looked up in the folder passed as ``root``, then ``$CNNKIT_FASHION_MNIST``, then
``/usr/share/datasets/fashion-mnist`` (Debian's ``dataset-fashion-mnist`` package). Files may be
gzipped (``train-images-idx3-ubyte.gz``) or not.
"""
from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Literal

import numpy as np

from cnnkit.core.errors import CnnkitError, ShapeError

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                   "Bag", "Ankle boot")
_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (optionally gzipped): magic ``0 0 dtype ndim``, ``ndim`` big-endian uint32
    sizes, then the data in C order.

    Raises:
        CnnkitError: missing file, bad magic, unknown dtype or a size that does not match the data.
    """
    path = Path(path)
    if not path.is_file():
        raise CnnkitError(f"{path}: no such IDX file")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise CnnkitError(f"{path}: not an IDX file (magic {raw[:4].hex()})")
    ndim = raw[3]
    shape = tuple(int(v) for v in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_DTYPES[raw[2]])
    offset = 4 + 4 * ndim
    if len(raw) - offset != int(np.prod(shape)) * dtype.itemsize:
        raise CnnkitError(f"{path}: {len(raw) - offset} data bytes do not fit shape {shape}")
    return np.frombuffer(raw, dtype=dtype, offset=offset).reshape(shape).astype(dtype.newbyteorder("="))


def fashion_mnist_dir(root: str | os.PathLike[str] | None = None) -> Path:
    """The folder holding the Fashion-MNIST IDX files.

    Raises:
        CnnkitError: none of the candidate folders holds them (the message names them all).
    """
    folders = [Path(root)] if root is not None else []
    if os.environ.get("CNNKIT_FASHION_MNIST"):
        folders.append(Path(os.environ["CNNKIT_FASHION_MNIST"]))
    folders.append(DEBIAN_DIR)
    for folder in folders:
        if any((folder / f"train-images-idx3-ubyte{ext}").is_file() for ext in (".gz", "")):
            return folder
    raise CnnkitError(f"Fashion-MNIST not found in {', '.join(map(str, folders))}; install Debian's "
                      "dataset-fashion-mnist package or pass the folder of its IDX files with --data")


def load_fashion_mnist(split: Literal["train", "test"], *, root: str | os.PathLike[str] | None = None
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 (N, 28, 28) and labels int64 (N,) of one split (60,000 train / 10,000 test)."""
    folder = fashion_mnist_dir(root)
    prefix = "train" if split == "train" else "t10k"

    def pick(stem: str) -> Path:
        gz = folder / f"{stem}.gz"
        return gz if gz.is_file() else folder / stem

    images = read_idx(pick(f"{prefix}-images-idx3-ubyte"))
    labels = read_idx(pick(f"{prefix}-labels-idx1-ubyte")).astype(np.int64)
    if images.ndim != 3 or images.shape[1:] != (28, 28) or len(images) != len(labels):
        raise ShapeError(f"Fashion-MNIST {split}: images {images.shape} and labels {labels.shape} do not match")
    return images, labels


__all__ = ["DEBIAN_DIR", "FASHION_CLASSES", "fashion_mnist_dir", "load_fashion_mnist", "read_idx"]
