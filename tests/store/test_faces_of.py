"""A verify reads one person: ``Gallery.faces_of`` on a 10,000-person gallery, counted on each
backend (SQLite: rows the connection returned; PostgreSQL: rows the server read from ``faces``)."""
import sqlite3

import numpy as np
import pytest

from cnnkit.faces.recognition import resolve_decision, verify_embedding
from cnnkit.store import FaceSource, SQLiteGallery

PEOPLE, DIM = 10_000, 16


def _fill(gallery):
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(PEOPLE + 2, DIM)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    names = [f"p{i:05d}" for i in range(PEOPLE)] + ["p00042", "p00042"]  # p00042 has 3 faces
    if hasattr(gallery, "add_batch"):
        gallery.add_batch(names, emb, tag="enc:1:abc")
    else:
        for name, e in zip(names, emb):
            gallery.add_faces(name, e, tag="enc:1:abc", sources=[FaceSource(f"{name}.jpg")])
    return emb


class _Enc:
    tag, default_threshold = "enc:1:abc", 100.0


class _CountingCursor(sqlite3.Cursor):
    def fetchall(self):
        rows = super().fetchall()
        _CountingConnection.rows += len(rows)
        return rows

    def fetchone(self):
        row = super().fetchone()
        _CountingConnection.rows += row is not None
        return row


class _CountingConnection(sqlite3.Connection):
    """A real SQLite connection that counts the rows its cursors hand back."""
    rows = 0

    def cursor(self, factory=_CountingCursor):
        return super().cursor(factory)

    def execute(self, sql, params=()):
        return self.cursor().execute(sql, params)


def _check_one_person(gallery, emb, rows_read):
    own, sources = gallery.faces_of("p00042")
    assert own.shape == (3, DIM) and np.allclose(own, emb[[42, PEOPLE, PEOPLE + 1]])
    assert gallery.faces_of("nobody")[0].shape == (0, DIM)
    decision = resolve_decision(gallery, _Enc)  # the first decision estimates the threshold: reads the gallery
    assert decision.threshold_source == "gallery"
    before = rows_read()
    decision = resolve_decision(gallery, _Enc)
    result = verify_embedding(gallery, "p00042", emb[PEOPLE], decision)
    read = rows_read() - before
    assert result.distance == pytest.approx(0.0, abs=1e-6) and result.match
    return read


def test_sqlite_verify_reads_one_person(tmp_path):
    conn = sqlite3.connect(tmp_path / "g.sqlite", factory=_CountingConnection, isolation_level=None,
                           check_same_thread=False)
    gallery = SQLiteGallery(conn)
    emb = _fill(gallery)
    read = _check_one_person(gallery, emb, lambda: _CountingConnection.rows)
    # 3 face rows + a handful of meta/settings rows (tag, dim, revision, threshold, head, estimate)
    assert 3 <= read <= 12, read
    gallery.close()


@pytest.mark.pgvector
def test_postgres_verify_reads_one_person(pgvector_gallery_factory, pg_url, pg_schema):
    import psycopg

    gallery = pgvector_gallery_factory()
    emb = _fill(gallery)

    def rows_read() -> int:
        """Rows the server read from the faces table (sequential + index fetches), flushed now."""
        gallery.conn.execute("SELECT pg_stat_force_next_flush()")
        with psycopg.connect(pg_url, autocommit=True) as other:
            other.execute("SELECT pg_stat_clear_snapshot()")
            seq, idx = other.execute("SELECT seq_tup_read, coalesce(idx_tup_fetch, 0) FROM pg_stat_user_tables "
                                     "WHERE schemaname = %s AND relname = 'faces'", (pg_schema,)).fetchone()
        return int(seq) + int(idx)

    read = _check_one_person(gallery, emb, rows_read)
    assert read <= 10, read  # the whole table is 10,002 rows
