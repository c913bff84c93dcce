"""The faces that ``identify`` answered "nobody" for, kept so that a person seen again and again is
named once: opt-in (``cnnkit serve --capture-unknown``), and deleted after a retention period
(``--capture-retention-days``, 30 by default).

:class:`UnknownFaces` is the one owner of this store. Each row is one face of one gallery: its
112 px JPEG chip, its embedding (float32 little-endian, :mod:`cnnkit.store.codec`), the encoder tag,
the box, the SHA-256 of the photo and when it was last seen. They live apart from the galleries
(``DIR/_unknown.sqlite``, or table ``cnnkit_serve.unknown_faces`` of a PostgreSQL store), so identify
never searches them and a gallery's revision moves only when faces are enrolled from them.
The same face of the same photo sent again is one row, seen again.
"""
from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from cnnkit.core.errors import CnnkitError
from cnnkit.serve.database import ServerTables
from cnnkit.store.codec import decode_vector, encode_vector

UNKNOWN_FILE = "_unknown.sqlite"
RETENTION_DAYS = 30.0
#: the longest a lazy purge waits before it runs again, seconds
PURGE_EVERY = 3600.0

_ID = {"sqlite": "INTEGER PRIMARY KEY AUTOINCREMENT",  # ids are never reused: a stale request cannot hit a newer face
       "pg": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"}
_BLOB = {"sqlite": "BLOB", "pg": "BYTEA"}
_SCHEMA = """
CREATE TABLE IF NOT EXISTS {t} (
    id {id},
    gallery TEXT NOT NULL,
    encoder_tag TEXT NOT NULL,
    dim INTEGER NOT NULL,
    embedding {blob} NOT NULL,
    chip {blob} NOT NULL,
    photo_sha256 TEXT NOT NULL,
    box TEXT NOT NULL,
    seen_at DOUBLE PRECISION NOT NULL,
    UNIQUE (gallery, photo_sha256, box)
)"""


class StaleUnknownFaces(CnnkitError):
    """Some of the faces asked for are no longer captured (named, discarded or purged since listed)."""


@dataclass(frozen=True)
class UnknownFace:
    """One captured face. ``seen_at``: seconds since the epoch (UTC)."""
    id: int
    gallery: str
    encoder_tag: str
    embedding: np.ndarray
    photo_sha256: str
    box: tuple[float, float, float, float]
    seen_at: float

    @property
    def seen(self) -> str:
        """``seen_at`` as ISO 8601 (UTC, seconds)."""
        return datetime.fromtimestamp(self.seen_at, UTC).isoformat(timespec="seconds")


class UnknownFaces:
    """Captured unknown faces of every gallery of one data store (a directory or a PostgreSQL URL).

    Args:
        db: the server's data store (``--db``).
        retention_days: faces last seen longer ago than this are deleted, by :meth:`purge`, which
            every other method also runs when it has not run for :data:`PURGE_EVERY` seconds (or a
            tenth of the retention period, if shorter).
        clock: seconds since the epoch (tests pass a fake one).
    """

    def __init__(self, db: str | os.PathLike[str], *, retention_days: float = RETENTION_DAYS,
                 clock: Callable[[], float] = time.time) -> None:
        if not retention_days > 0:
            raise CnnkitError(f"the retention period must be positive, got {retention_days} days")
        self.db = ServerTables(db, UNKNOWN_FILE)
        self.retention_s = float(retention_days) * 86400.0
        self.clock = clock
        self._t = self.db.table("unknown_faces")
        kind = "pg" if self.db.pg else "sqlite"
        self.db.execute(_SCHEMA.format(t=self._t, id=_ID[kind], blob=_BLOB[kind]))
        self.db.execute(f"CREATE INDEX IF NOT EXISTS unknown_faces_seen ON {self._t}(seen_at)")
        self.db.execute(f"CREATE INDEX IF NOT EXISTS unknown_faces_gallery ON {self._t}(gallery, id)")
        self._purged_at = float("-inf")
        self._purge_lock = threading.Lock()

    # -- retention -------------------------------------------------------------------------------
    def purge(self) -> int:
        """Delete every face last seen before the retention period; returns how many."""
        now = self.clock()
        with self._purge_lock:
            self._purged_at = now
        return self.db.execute(f"DELETE FROM {self._t} WHERE seen_at < ?", (now - self.retention_s,)).rowcount

    def _lazy_purge(self) -> None:
        if self.clock() - self._purged_at >= min(PURGE_EVERY, self.retention_s / 10):
            self.purge()

    # -- writing -----------------------------------------------------------------------------------
    def add(self, gallery: str, tag: str, photo_sha256: str,
            faces: Sequence[tuple[Sequence[float], np.ndarray, bytes]]) -> list[int]:
        """Store the faces ``(box, embedding (D,), chip JPEG)`` of one photo, in one transaction;
        returns their ids (a face of this photo already stored is seen again, and keeps its id)."""
        self._lazy_purge()
        now, ids = self.clock(), []
        with self.db.transaction():
            for box, emb, chip in faces:
                vec = np.asarray(emb, np.float32).reshape(-1)
                where = json.dumps([round(float(v), 1) for v in box])
                row = self.db.execute(
                    f"INSERT INTO {self._t}(gallery, encoder_tag, dim, embedding, chip, photo_sha256, box, seen_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (gallery, photo_sha256, box) "
                    "DO UPDATE SET seen_at = excluded.seen_at RETURNING id",
                    (gallery, tag, int(vec.size), encode_vector(vec), bytes(chip), photo_sha256, where, now)).fetchone()
                ids.append(int(row[0]))
        return ids

    def discard(self, gallery: str, face_id: int) -> bool:
        """Delete one face (not a person: nothing is enrolled); False when there is no such face."""
        self._lazy_purge()
        return self.db.execute(f"DELETE FROM {self._t} WHERE gallery = ? AND id = ?", (gallery, face_id)).rowcount > 0

    def drop_gallery(self, gallery: str) -> int:
        """Delete every face of ``gallery`` (when it is deleted, or created again)."""
        return self.db.execute(f"DELETE FROM {self._t} WHERE gallery = ?", (gallery,)).rowcount

    @contextmanager
    def claim(self, gallery: str, ids: Sequence[int]) -> Iterator[list[UnknownFace]]:
        """The faces ``ids`` of ``gallery``, locked for the block, then deleted when it ends without
        an error (nothing is deleted if it raises). :class:`StaleUnknownFaces` when any of them is
        no longer stored. Two servers claiming the same faces run one after the other, so only the
        first gets them."""
        self._lazy_purge()
        want = sorted({int(i) for i in ids})
        marks = ", ".join("?" * len(want))
        lock = " FOR UPDATE" if self.db.pg else ""
        with self.db.transaction():
            found = self._rows(f"WHERE gallery = ? AND id IN ({marks}) AND seen_at >= ? ORDER BY id{lock}",
                               (gallery, *want, self.clock() - self.retention_s))
            missing = sorted(set(want) - {f.id for f in found})
            if missing:
                raise StaleUnknownFaces(f"unknown faces {', '.join(map(str, missing[:10]))} of gallery {gallery!r} "
                                        "were named, discarded or purged since they were listed; list them again")
            yield found
            self.db.execute(f"DELETE FROM {self._t} WHERE gallery = ? AND id IN ({marks})", (gallery, *want))

    # -- reading -----------------------------------------------------------------------------------
    def faces(self, gallery: str, tag: str | None = None) -> list[UnknownFace]:
        """Every face of ``gallery`` (of encoder ``tag`` only, if given), oldest first."""
        self._lazy_purge()
        live = self.clock() - self.retention_s  # not yet purged is not kept either
        if tag is None:
            return self._rows("WHERE gallery = ? AND seen_at >= ? ORDER BY id", (gallery, live))
        return self._rows("WHERE gallery = ? AND encoder_tag = ? AND seen_at >= ? ORDER BY id", (gallery, tag, live))

    def chip(self, gallery: str, face_id: int) -> bytes | None:
        """The face's JPEG chip, or None."""
        self._lazy_purge()
        row = self.db.execute(f"SELECT chip FROM {self._t} WHERE gallery = ? AND id = ? AND seen_at >= ?",
                              (gallery, face_id, self.clock() - self.retention_s)).fetchone()
        return None if row is None else bytes(row[0])

    def count(self, gallery: str | None = None) -> int:
        if gallery is None:
            return int(self.db.execute(f"SELECT COUNT(*) FROM {self._t}").fetchone()[0])
        return int(self.db.execute(f"SELECT COUNT(*) FROM {self._t} WHERE gallery = ?", (gallery,)).fetchone()[0])

    def _rows(self, where: str, params: tuple[Any, ...]) -> list[UnknownFace]:
        rows = self.db.execute(f"SELECT id, gallery, encoder_tag, dim, embedding, photo_sha256, box, seen_at "
                               f"FROM {self._t} {where}", params).fetchall()
        return [UnknownFace(int(r[0]), r[1], r[2], decode_vector(bytes(r[4]), int(r[3])), r[5],
                            tuple(json.loads(r[6])), float(r[7])) for r in rows]

    def close(self) -> None:
        self.db.close()


__all__ = ["RETENTION_DAYS", "UNKNOWN_FILE", "StaleUnknownFaces", "UnknownFace", "UnknownFaces"]
