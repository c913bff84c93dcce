"""Gallery stores. Never imports torch; ``store.pgvector`` (PostgreSQL) is imported only for a
``postgresql://`` URL."""
from __future__ import annotations

import os

from cnnkit.store.base import FaceSource, Gallery, Match, Person
from cnnkit.store.search import ScoreKernel
from cnnkit.store.sqlite import SQLiteGallery


def open_gallery(db: str | os.PathLike[str] | None = None, *, create: bool = True,
                 kernel: ScoreKernel | None = None, **kwargs: object) -> Gallery:
    """Open a gallery: a ``postgresql://`` URL or a SQLite path (default: $CNNKIT_DB, else the XDG
    data dir's ``cnnkit/gallery.sqlite``). ``create=False`` refuses to create a missing SQLite file.
    ``kernel`` is the first pass of SQLite's exact search (PostgreSQL searches on the server)."""
    from cnnkit.core.paths import default_gallery

    target = os.fspath(db) if db is not None else default_gallery()
    if target.startswith(("postgresql://", "postgres://")):
        from cnnkit.store.pgvector import PgVectorGallery  # optional extra

        return PgVectorGallery(target, create=create, **kwargs)  # type: ignore[arg-type]
    return SQLiteGallery(target, create=create, kernel=kernel, **kwargs)  # type: ignore[arg-type]


__all__ = ["FaceSource", "Gallery", "Match", "Person", "SQLiteGallery", "open_gallery"]
