"""Vectors on disk: little-endian float32 blobs, whatever the machine's byte order."""
from __future__ import annotations

import numpy as np

from cnnkit.core.errors import StoreError

_DTYPE = np.dtype("<f4")


def encode_vector(vec: np.ndarray) -> bytes:
    """(D,) float array -> ``4 * D`` bytes, little-endian float32."""
    arr = np.asarray(vec)
    if arr.ndim != 1:
        raise StoreError(f"a stored vector must be 1-D, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise StoreError("a stored vector must be finite (no NaN or inf)")
    return arr.astype(_DTYPE, copy=False).tobytes()


def decode_vector(blob: bytes, dim: int) -> np.ndarray:
    """``4 * dim`` bytes -> (dim,) native float32."""
    if len(blob) != 4 * dim:
        raise StoreError(f"stored vector has {len(blob)} bytes, expected {4 * dim} (D={dim})")
    return np.frombuffer(blob, dtype=_DTYPE).astype(np.float32)


def decode_matrix(blobs: list[bytes], dim: int) -> np.ndarray:
    """Many blobs -> one contiguous (N, dim) native float32 matrix."""
    if not blobs:
        return np.empty((0, dim), dtype=np.float32)
    joined = b"".join(blobs)
    if len(joined) != 4 * dim * len(blobs):
        raise StoreError(f"stored vectors do not all have {4 * dim} bytes (D={dim})")
    return np.frombuffer(joined, dtype=_DTYPE).reshape(len(blobs), dim).astype(np.float32)
