"""The gallery contract shared by every backend (SQLite here, PostgreSQL + pgvector in
``store.pgvector``): people, their face embeddings tagged by encoder, exact k-nearest-people search,
and per-encoder settings (calibrated threshold, binary head)."""
from __future__ import annotations

import hashlib
import os
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

import numpy as np

from cnnkit.core.errors import EncoderMismatchError, InvalidNameError, StoreError, printable

@dataclass(frozen=True)
class FaceSource:
    """Where an embedding came from: file name, its SHA-256 and the face box (x1, y1, x2, y2)."""
    file_name: str | None = None
    sha256: str | None = None
    box: tuple[float, float, float, float] | None = None


@dataclass(frozen=True)
class Match:
    name: str
    distance: float  # Euclidean distance to this person's closest stored embedding


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
    revision: str  # changes with every add, move and remove: what cached decisions are keyed on

    def add_faces(self, name: str, embeddings: np.ndarray, *, tag: str,
                  sources: Sequence[FaceSource] | None = None) -> list[int]: ...
    def remove_person(self, name: str) -> int: ...
    def people(self) -> list[Person]: ...
    def has_source(self, sha256: str) -> bool: ...
    def source_owner(self, sha256: str) -> str | None: ...
    def move_source(self, sha256: str, name: str) -> int: ...
    def search(self, queries: np.ndarray, k: int = 5) -> list[list[Match]]: ...
    def embeddings(self) -> tuple[np.ndarray, list[str]]: ...
    def faces_of(self, name: str) -> tuple[np.ndarray, list[FaceSource]]: ...
    def get_setting(self, tag: str, key: str, default: Any = None) -> Any: ...
    def set_setting(self, tag: str, key: str, value: Any) -> None: ...
    def close(self) -> None: ...


def normalize_name(name: str) -> str:
    """The one form in which a person's name is stored, looked up and compared: Unicode NFC, so
    "é" typed as one code point (NFC) or as "e" + combining accent (NFD) is one person. Every
    other character is kept exactly (emoji, right-to-left text, quotes, slashes, leading spaces).

    Raises:
        InvalidNameError: the name is empty or blank, holds a control character (NUL, newline,
            tab, escape, U+2028...), or bytes that are not UTF-8 (a file or folder name decoded by
            ``os.fsdecode`` keeps them as lone surrogates); the message shows the name escaped.
    """
    if not isinstance(name, str):
        raise InvalidNameError(f"a person's name must be text, got {type(name).__name__}")
    if any(0xD800 <= ord(ch) <= 0xDFFF for ch in name):
        raise InvalidNameError(f"name '{printable(name)}' holds bytes that are not UTF-8; rename the folder or file")
    bad = sorted({ch for ch in name if unicodedata.category(ch) in ("Cc", "Zl", "Zp")})
    if bad:
        shown = ", ".join(printable(ch) for ch in bad)
        raise InvalidNameError(f"name '{printable(name)}' holds control characters ({shown}); they are not allowed")
    if not name.strip():
        raise InvalidNameError("a person's name must not be empty")
    return unicodedata.normalize("NFC", name)


def pending_key(name: str) -> str:
    """How a removal still waiting for its bytes to leave the files is remembered: the SHA-256 of
    the (normalised) name, so the gallery never keeps the name of someone it deleted."""
    return hashlib.sha256(name.encode("utf-8")).hexdigest()


def check_tag(current: str | None, new: str, *, model: str | os.PathLike[str] | None = None) -> None:
    """Refuse to mix embeddings of two encoders in one gallery. ``model``: the trained model's path
    the new embeddings come from, named in the message (a model retrained in place changes its tag)."""
    if current is not None and current != new:
        source = f" from the model {printable(os.fspath(model))}" if model is not None else ""
        raise EncoderMismatchError(
            f"this gallery holds embeddings of encoder {current!r}; refusing to add or compare "
            f"embeddings of {new!r}{source} (use another --db, or re-enroll everyone with one encoder)"
        )


def check_faces(names: Sequence[str], embeddings: np.ndarray,
                sources: Sequence[FaceSource] | None) -> tuple[np.ndarray, list[FaceSource]]:
    """Validate a write of N embeddings (``names[i]`` owns row i) before anything is written.

    Returns the embeddings as (N, D) float32 and one source per row."""
    emb = np.asarray(embeddings, dtype=np.float32)
    if emb.ndim != 2 or emb.shape[0] == 0:
        raise StoreError(f"embeddings must have shape (N, D) with N >= 1, got {emb.shape}")
    if len(names) != len(emb):
        raise StoreError(f"{len(names)} names for {len(emb)} embeddings")
    for n in names:
        normalize_name(n)
    if not np.all(np.isfinite(emb)):
        raise StoreError("a stored vector must be finite (no NaN or inf)")
    srcs = [FaceSource(None if s.file_name is None else printable(s.file_name), s.sha256, s.box)
            for s in sources] if sources is not None else [FaceSource()] * len(emb)
    if len(srcs) != len(emb):
        raise StoreError(f"{len(srcs)} sources for {len(emb)} embeddings")
    return emb, srcs
