"""The gallery contract shared by every backend (SQLite here, PostgreSQL + pgvector in
``store.pgvector``): people, their face encodings tagged by encoder, exact k-nearest-people search,
and per-encoder settings (calibrated threshold, binary head)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Protocol, Sequence

import numpy as np

from cnnkit.core.errors import EncoderMismatchError, StoreError

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class FaceSource:
    """Where an encoding came from: file name, its SHA-256 and the face box (x1, y1, x2, y2)."""
    file_name: str | None = None
    sha256: str | None = None
    box: tuple[float, float, float, float] | None = None


@dataclass(frozen=True)
class Match:
    name: str
    distance: float  # Euclidean distance to this person's closest stored encoding


@dataclass(frozen=True)
class Person:
    name: str
    faces: int
    created_at: str
    sources: tuple[str, ...] = field(default=())


class Gallery(Protocol):
    """What every backend offers. Vectors are (N, D) float32; distances are Euclidean."""

    encoder_tag: str | None
    dim: int | None

    def add_faces(self, name: str, embeddings: np.ndarray, *, tag: str,
                  sources: Sequence[FaceSource] | None = None) -> list[int]: ...
    def remove_person(self, name: str) -> int: ...
    def people(self) -> list[Person]: ...
    def has_source(self, sha256: str) -> bool: ...
    def search(self, queries: np.ndarray, k: int = 5) -> list[list[Match]]: ...
    def embeddings(self) -> tuple[np.ndarray, list[str]]: ...
    def faces_of(self, name: str) -> tuple[np.ndarray, list[FaceSource]]: ...
    def get_setting(self, tag: str, key: str, default: Any = None) -> Any: ...
    def set_setting(self, tag: str, key: str, value: Any) -> None: ...
    def close(self) -> None: ...


def check_tag(current: str | None, new: str) -> None:
    """Refuse to mix encodings of two encoders in one gallery."""
    if current is not None and current != new:
        raise EncoderMismatchError(
            f"this gallery holds encodings of encoder {current!r}; refusing to add or compare "
            f"encodings of {new!r} (use another --db, or re-enrol everyone with one encoder)"
        )


def check_faces(names: Sequence[str], embeddings: np.ndarray,
                sources: Sequence[FaceSource] | None) -> tuple[np.ndarray, list[FaceSource]]:
    """Validate a write of N encodings (``names[i]`` owns row i) before anything is written.

    Returns the embeddings as (N, D) float32 and one source per row."""
    emb = np.asarray(embeddings, dtype=np.float32)
    if emb.ndim != 2 or emb.shape[0] == 0:
        raise StoreError(f"embeddings must have shape (N, D) with N >= 1, got {emb.shape}")
    if len(names) != len(emb):
        raise StoreError(f"{len(names)} names for {len(emb)} embeddings")
    if any(not n or not n.strip() for n in names):
        raise StoreError("a person's name must not be empty")
    if not np.all(np.isfinite(emb)):
        raise StoreError("a stored vector must be finite (no NaN or inf)")
    srcs = list(sources) if sources is not None else [FaceSource()] * len(emb)
    if len(srcs) != len(emb):
        raise StoreError(f"{len(srcs)} sources for {len(emb)} embeddings")
    return emb, srcs


def nearest_people(dist: np.ndarray, owners: np.ndarray, names: Sequence[str], k: int, *,
                   queries: np.ndarray | None = None, matrix: np.ndarray | None = None) -> list[list[Match]]:
    """k nearest people per query from a distance matrix.

    Args:
        dist: (M, N) distances of M queries to N stored encodings.
        owners: (N,) int person index of every encoding, sorted ascending (faces grouped by person).
        names: name of each person index.
        queries, matrix: (M, D) and (N, D); when given, the distances of the k people returned are
            recomputed directly in float64, so they are exact rather than matrix-product estimates.
    """
    m, n = dist.shape
    if n == 0:
        return [[] for _ in range(m)]
    starts = np.flatnonzero(np.r_[True, owners[1:] != owners[:-1]])
    ends = np.r_[starts[1:], n]
    per_person = dist if len(starts) == n else np.minimum.reduceat(dist, starts, axis=1)
    people_idx = owners[starts]
    p = per_person.shape[1]
    k = min(k, p)
    if k < p:
        top = np.argpartition(per_person, k - 1, axis=1)[:, :k]
    else:
        top = np.broadcast_to(np.arange(p), (m, p))
    if queries is not None and matrix is not None and len(starts) == n:
        # one encoding per person (the common one-shot case): exact distances, vectorised
        q = np.asarray(queries, dtype=np.float64)
        exact = np.sqrt(((matrix[top].astype(np.float64) - q[:, None, :]) ** 2).sum(-1))
        order = np.argsort(exact, axis=1, kind="stable")
        top, dists = np.take_along_axis(top, order, 1), np.take_along_axis(exact, order, 1)
        return [[Match(names[people_idx[c]], float(d)) for c, d in zip(cols, row)] for cols, row in zip(top, dists)]
    out = []
    for i, cols in enumerate(top):
        if queries is not None and matrix is not None:
            q = queries[i].astype(np.float64)
            found = [(float(np.sqrt(((matrix[starts[c]:ends[c]] - q) ** 2).sum(1)).min()), c) for c in cols]
        else:
            found = [(float(per_person[i, c]), c) for c in cols]
        found.sort(key=lambda t: t[0])
        out.append([Match(names[people_idx[c]], d) for d, c in found])
    return out


def euclidean(queries: np.ndarray, matrix: np.ndarray, sq_norms: np.ndarray) -> np.ndarray:
    """(M, D) x (N, D) -> (M, N) Euclidean distances with one matrix product."""
    q = np.ascontiguousarray(queries, dtype=np.float32)
    d2 = (q * q).sum(1)[:, None] + sq_norms[None, :] - 2.0 * (q @ matrix.T)
    np.maximum(d2, 0.0, out=d2)
    return np.sqrt(d2, out=d2)


def exact_search(queries: np.ndarray, matrix: np.ndarray, sq_norms: np.ndarray, owners: np.ndarray,
                 names: Sequence[str], k: int, *, max_elements: int = 1 << 24) -> list[list[Match]]:
    """Exact k-nearest-people search of (M, D) queries against an (N, D) matrix.

    Queries are processed in chunks so that the (chunk, N) distance block stays below
    ``max_elements`` floats (64 MB), whatever the gallery size.
    """
    step = max(1, max_elements // max(len(matrix), 1))
    out: list[list[Match]] = []
    for i in range(0, len(queries), step):
        q = queries[i:i + step]
        out += nearest_people(euclidean(q, matrix, sq_norms), owners, names, k, queries=q, matrix=matrix)
    return out


def iter_batches(items: Iterable[Any], size: int) -> Iterable[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
