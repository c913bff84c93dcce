"""SQLite-specific guarantees: file format, WAL, migrations, deletion on disk, crash safety,
concurrency."""
import multiprocessing as mp
import sqlite3

import numpy as np
import pytest

from cnnkit.core.errors import StoreError
from cnnkit.store import SQLiteGallery
from cnnkit.store.codec import decode_vector, encode_vector
from cnnkit.store.migrations import LATEST


def test_codec_is_little_endian_float32():
    blob = encode_vector(np.array([1.0, -2.5], dtype=np.float64))
    assert blob == b"\x00\x00\x80\x3f\x00\x00\x20\xc0"
    np.testing.assert_array_equal(decode_vector(blob, 2), [1.0, -2.5])
    with pytest.raises(StoreError, match="8 bytes, expected 12"):
        decode_vector(blob, 3)


def test_file_pragmas_and_schema(tmp_path):
    g = SQLiteGallery(tmp_path / "g.sqlite")
    assert g.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert g.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert g.conn.execute("PRAGMA secure_delete").fetchone()[0] == 1
    assert g.schema_version == LATEST
    g.close()
    g2 = SQLiteGallery(tmp_path / "g.sqlite")  # reopening does not migrate again
    assert g2.schema_version == LATEST and g2.integrity_check() == "ok"


def test_not_a_database(tmp_path):
    p = tmp_path / "notes.sqlite"
    p.write_text("hello, this is text\n" * 100)
    with pytest.raises(StoreError, match="not a cnnkit gallery"):
        SQLiteGallery(p)
    assert p.read_text().startswith("hello")  # untouched


def test_foreign_sqlite_database(tmp_path):
    p = tmp_path / "other.sqlite"
    c = sqlite3.connect(p)
    c.execute("CREATE TABLE t(x)")
    c.execute("PRAGMA user_version = 7")
    c.commit()
    c.close()
    with pytest.raises(StoreError, match="newer than this cnnkit|not a cnnkit gallery"):
        SQLiteGallery(p)


def test_directory_and_missing(tmp_path):
    with pytest.raises(StoreError, match="is a directory"):
        SQLiteGallery(tmp_path)
    with pytest.raises(StoreError, match="no such gallery"):
        SQLiteGallery(tmp_path / "nope.sqlite", create=False)


def test_deleted_vectors_leave_no_bytes_on_disk(tmp_path):
    """Enroll 200 people, delete 20: none of their float32 vectors remain in the file or WAL."""
    path = tmp_path / "g.sqlite"
    g = SQLiteGallery(path)
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(200, 128)).astype(np.float32)
    for i in range(200):
        g.add_faces(f"p{i:03d}", emb[i:i + 1], tag="t")
    for i in range(20):
        g.remove_person(f"p{i:03d}")
    g.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("g.sqlite"))
    leaked = sum(encode_vector(emb[i]) in raw for i in range(20))
    kept = sum(encode_vector(emb[i]) in raw for i in range(20, 200))
    assert leaked == 0
    assert kept == 180


def _enroll_worker(path: str, wid: int, n: int) -> None:
    g = SQLiteGallery(path)
    rng = np.random.default_rng(wid)
    for i in range(n):
        g.add_faces(f"w{wid}-{i}", rng.normal(size=(1, 16)).astype(np.float32), tag="t")
    g.close()


def test_two_processes_enrolling_at_once(tmp_path):
    path = str(tmp_path / "g.sqlite")
    SQLiteGallery(path).close()
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_enroll_worker, args=(path, w, 60)) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    g = SQLiteGallery(path)
    assert len(g.people()) == 120 and len(g) == 120 and g.integrity_check() == "ok"


def test_matrix_cache_sees_other_connections(tmp_path):
    path = tmp_path / "g.sqlite"
    a, b = SQLiteGallery(path), SQLiteGallery(path)
    a.add_faces("ada", np.eye(4, dtype=np.float32)[:1], tag="t")
    assert [m.name for m in b.search(np.eye(4, dtype=np.float32)[:1])[0]] == ["ada"]
    a.add_faces("bob", np.eye(4, dtype=np.float32)[1:2], tag="t")
    assert b.search(np.eye(4, dtype=np.float32)[1:2])[0][0].name == "bob"
