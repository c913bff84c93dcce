"""Move a gallery between backends (SQLite <-> PostgreSQL, or the same kind), streaming in batches.

The faces are read in one canonical order (person name by bytes, then face id) from a single
snapshot, written in batches (one transaction per batch), and a SHA-256 over every face's name and
float32 little-endian vector, in that order, is computed on both sides and compared at the end,
with the face and people counts. Settings (calibrated thresholds, heads) are copied too, and an
HNSW index of the source is rebuilt on a destination that supports one, after the load.
"""
from __future__ import annotations

import hashlib
import itertools
import time
from typing import Any, Iterator

import numpy as np

from cnnkit.core.errors import StoreError
from cnnkit.store.base import FaceSource, Gallery
from cnnkit.store.codec import decode_vector, encode_vector

FaceRow = tuple[str, np.ndarray, str, FaceSource]


def _iter_sqlite(g: Any, batch: int) -> Iterator[list[FaceRow]]:
    """Faces of a SQLiteGallery in canonical order, from one read snapshot."""
    import json

    dim = g.dim
    g.conn.execute("BEGIN")
    try:
        cur = g.conn.execute(
            "SELECT p.name, f.vector, f.encoder_tag, f.source_name, f.source_sha256, f.box "
            "FROM faces f JOIN people p ON p.id = f.person_id ORDER BY p.name COLLATE BINARY, f.id")
        while rows := cur.fetchmany(batch):
            yield [(n, decode_vector(v, dim), t, FaceSource(fn, sha, None if box is None else tuple(json.loads(box))))
                   for n, v, t, fn, sha, box in rows]
    finally:
        g.conn.execute("COMMIT")


def iter_faces(g: Gallery, batch: int = 1000) -> Iterator[list[FaceRow]]:
    """Every face of ``g`` as (name, vector (D,), encoder_tag, source), in canonical order, in lists."""
    if hasattr(g, "iter_faces"):
        return g.iter_faces(batch)  # type: ignore[attr-defined]
    if hasattr(g, "conn") and type(g).__name__ == "SQLiteGallery":
        return _iter_sqlite(g, batch)
    raise StoreError(f"cannot read faces in batches from a {type(g).__name__}")


def _settings(g: Gallery) -> list[tuple[str, str, Any]]:
    if hasattr(g, "settings"):
        return list(g.settings())  # type: ignore[attr-defined]
    import json

    rows = g.conn.execute("SELECT encoder_tag, key, value FROM settings ORDER BY encoder_tag, key").fetchall()  # type: ignore[attr-defined]
    return [(t, k, json.loads(v)) for t, k, v in rows]


def _write(dst: Gallery, rows: list[FaceRow]) -> None:
    tags = {r[2] for r in rows}
    if len(tags) != 1:
        raise StoreError(f"source faces carry several encoder tags {sorted(tags)}; cannot copy into one gallery")
    tag = tags.pop()
    emb = np.stack([r[1] for r in rows])
    if hasattr(dst, "add_batch"):
        dst.add_batch([r[0] for r in rows], emb, tag=tag, sources=[r[3] for r in rows])  # type: ignore[attr-defined]
        return
    start = 0
    for name, group in itertools.groupby(rows, key=lambda r: r[0]):  # one transaction per person
        n = len(list(group))
        dst.add_faces(name, emb[start:start + n], tag=tag, sources=[r[3] for r in rows[start:start + n]])
        start += n


class _Digest:
    """SHA-256 over (name, NUL, float32 LE vector) of each face, plus counts."""

    def __init__(self) -> None:
        self.sha, self.faces, self.people, self._last = hashlib.sha256(), 0, 0, None

    def update(self, rows: list[FaceRow]) -> None:
        for name, vec, _, _ in rows:
            self.sha.update(name.encode("utf-8") + b"\0" + encode_vector(vec))
            self.faces += 1
            if name != self._last:
                self.people, self._last = self.people + 1, name

    def summary(self) -> tuple[int, int, str]:
        return self.people, self.faces, self.sha.hexdigest()


def gallery_checksum(g: Gallery, *, batch: int = 1000) -> dict[str, Any]:
    """People and face counts and the SHA-256 of names and vectors in canonical order."""
    digest = _Digest()
    for rows in iter_faces(g, batch):
        digest.update(rows)
    people, faces, sha = digest.summary()
    return {"people": people, "faces": faces, "sha256": sha}


def copy_gallery(src: Gallery, dst: Gallery, *, batch: int = 1000, progress: bool = True) -> dict[str, Any]:
    """Copy every person, face (vector, source, box) and setting of ``src`` into the empty ``dst``.

    Returns ``{"people", "faces", "settings", "encoder", "dim", "sha256", "index", "seconds"}``;
    raises :class:`StoreError` if ``dst`` is not empty, the dimensions or tags disagree, or the
    counts or checksum read back from ``dst`` differ from those read from ``src`` (the copy
    committed so far stays in ``dst``: copy again into a fresh one).
    """
    if batch < 1:
        raise StoreError(f"batch must be >= 1, got {batch}")
    if len(dst) > 0:  # type: ignore[arg-type]
        raise StoreError(f"the destination gallery already holds {len(dst)} faces; copy into an empty one")  # type: ignore[arg-type]
    t0 = time.perf_counter()
    total = len(src)  # type: ignore[arg-type]
    bar = None
    if progress and total:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="face", desc="copying", leave=False)
    digest = _Digest()
    try:
        for rows in iter_faces(src, batch):
            digest.update(rows)
            _write(dst, rows)
            if bar is not None:
                bar.update(len(rows))
    finally:
        if bar is not None:
            bar.close()
    settings = _settings(src)
    for tag, key, value in settings:
        dst.set_setting(tag, key, value)
    index = getattr(src, "index", None)
    if index is not None and hasattr(dst, "create_index"):
        dst.create_index(index["kind"], m=index["m"], ef_construction=index["ef_construction"])  # type: ignore[attr-defined]
    people, faces, sha = digest.summary()
    back = gallery_checksum(dst, batch=batch)
    if (back["people"], back["faces"], back["sha256"]) != (people, faces, sha):
        raise StoreError(f"copy verification failed: source {people} people, {faces} faces, sha256 {sha[:16]}..; "
                         f"destination {back['people']} people, {back['faces']} faces, sha256 {back['sha256'][:16]}..")
    if len(_settings(dst)) < len(settings):
        raise StoreError("copy verification failed: settings missing in the destination")
    return {"people": people, "faces": faces, "settings": len(settings), "encoder": src.encoder_tag,
            "dim": src.dim, "sha256": sha, "index": index if hasattr(dst, "create_index") else None,
            "seconds": round(time.perf_counter() - t0, 3)}
