"""Gallery faults (issue 14, items 4-6) on real files: a corrupt page, a full disk, a read-only file
or folder, concurrent enrollments of one photo, and removal while another connection reads. Each
is a StoreError saying what happened; nothing is half-written, duplicated or reported removed
while its bytes remain."""
from __future__ import annotations

import multiprocessing as mp
import os
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from cnnkit.core.errors import RemovalPendingError, StoreError, UnknownNameError
from cnnkit.store import FaceSource, SQLiteGallery
from cnnkit.store.codec import encode_vector

def _vectors(n: int, seed: int = 0, d: int = 128) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def _filled(path: Path, n: int = 60) -> np.ndarray:
    emb = _vectors(n)
    with SQLiteGallery(path) as g:
        for i in range(n):
            g.add_faces(f"p{i:03d}", emb[i:i + 1], tag="t", sources=[FaceSource(f"{i}.jpg", f"{i:064x}")])
    return emb


def _raw(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(path.parent.iterdir()) if p.name.startswith(path.name))


# -- corruption -------------------------------------------------------------------------------

def test_corrupt_page_reads_fail_clearly_and_writes_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "g.sqlite"
    _filled(path)
    with sqlite3.connect(path) as c:
        root = c.execute("SELECT rootpage FROM sqlite_master WHERE name = 'faces'").fetchone()[0]
        page = c.execute("PRAGMA page_size").fetchone()[0]
    data = bytearray(path.read_bytes())
    start = (root - 1) * page  # the faces table's root page
    data[start + 8: start + 2000] = os.urandom(1992)
    path.write_bytes(bytes(data))
    before = path.read_bytes()
    g = SQLiteGallery(path)
    with pytest.raises(StoreError, match="corrupt"):
        g.search(_vectors(1), k=3)
    with pytest.raises(StoreError, match=r"refusing to write: the gallery file is corrupt"):
        g.add_faces("new", _vectors(1, 9), tag="t")
    g.close()
    assert path.read_bytes() == before  # nothing written into the corrupt file


# -- full disk --------------------------------------------------------------------------------

def test_disk_full_is_said_and_nothing_is_half_written(tmp_path: Path) -> None:
    path = tmp_path / "g.sqlite"
    g = SQLiteGallery(path)
    g.add_faces("first", _vectors(1), tag="t")
    pages = g.conn.execute("PRAGMA page_count").fetchone()[0]
    g.conn.execute(f"PRAGMA max_page_count = {pages + 2}")  # SQLite's own 'disk full'
    emb, added = _vectors(400, 1), 0
    with pytest.raises(StoreError, match=r"the disk is full \(database or disk is full\)"):
        for i in range(400):
            g.add_faces(f"p{i}", emb[i:i + 1], tag="t")
            added += 1
    assert len(g) == added + 1 and g.integrity_check() == "ok"
    g.conn.execute("PRAGMA max_page_count = 1073741823")
    g.add_faces("after", _vectors(1, 2), tag="t")  # the connection is still usable
    assert len(g) == added + 2
    g.close()


@pytest.fixture
def tiny_tmpfs() -> Path:
    """A real 600 KiB file system (needs mount permission; skipped elsewhere)."""
    where = Path(tempfile.mkdtemp(prefix="cnnkit-full-"))
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(where)], capture_output=True).returncode:
        os.rmdir(where)
        pytest.skip("cannot mount a tmpfs here")
    yield where
    subprocess.run(["umount", "-l", str(where)], check=True)
    os.rmdir(where)


def test_real_full_disk(tiny_tmpfs: Path) -> None:
    ballast = tiny_tmpfs / "ballast"
    ballast.write_bytes(b"\0" * 100_000)  # freed at the end, so the gallery can be reopened
    path = tiny_tmpfs / "g.sqlite"
    g = SQLiteGallery(path)
    emb, added = _vectors(2000, 3), 0
    with pytest.raises(StoreError, match=r"the disk is full \(database or disk is full\); nothing of this write"):
        for i in range(2000):
            g.add_faces(f"p{i}", emb[i:i + 1], tag="t")
            added += 1
    assert added > 10 and len(g) == added and g.integrity_check() == "ok"
    g.close()
    ballast.unlink()
    with SQLiteGallery(path) as g:
        assert len(g) == added and g.integrity_check() == "ok"


# -- permissions (as an unprivileged user: root ignores permission bits; fixtures in conftest) ---

_ENROL = """
    import sys, numpy as np
    from cnnkit.core.errors import StoreError
    from cnnkit.store import SQLiteGallery
    try:
        g = SQLiteGallery(sys.argv[1])
        g.add_faces("new", np.ones((1, 128), np.float32), tag="t")
        print("ok")
    except StoreError as e:
        print("StoreError:", e)
"""


def test_read_only_gallery_file(shared_dir: Path, as_nobody) -> None:
    path = shared_dir / "g.sqlite"
    _filled(path, 3)
    path.chmod(0o444)
    out = as_nobody(_ENROL, str(path))
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    assert out.stdout.startswith("StoreError:") and "read-only" in out.stdout, out.stdout


def test_read_only_folder(shared_dir: Path, as_nobody) -> None:
    folder = shared_dir / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    out = as_nobody(_ENROL, str(folder / "g.sqlite"))
    assert out.stdout.startswith("StoreError:") and "not a cnnkit gallery" not in out.stdout, out.stdout
    assert "writable" in out.stdout or "read-only" in out.stdout


# -- concurrent enrollment of one photo ---------------------------------------------------------

def _enroll_same_photos(path: str, n: int, start: float) -> None:
    g = SQLiteGallery(path)
    emb = _vectors(n, 5)
    while time.time() < start:
        time.sleep(0.001)
    for i in range(n):
        if not g.has_source(f"{i:064x}"):  # the fast check outside the transaction, as enrollment does
            time.sleep(0.01)  # encoding the photo takes time
            g.add_faces(f"p{i}", emb[i:i + 1], tag="t", sources=[FaceSource(f"{i}.jpg", f"{i:064x}")],
                        skip_existing=True)
    g.close()


@pytest.mark.parametrize("workers", [2, 4])
def test_concurrent_enrollments_store_each_photo_once(tmp_path: Path, workers: int) -> None:
    path = str(tmp_path / "g.sqlite")
    SQLiteGallery(path).close()
    ctx = mp.get_context("spawn")
    start = time.time() + 3
    procs = [ctx.Process(target=_enroll_same_photos, args=(path, 40, start)) for _ in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(180)
    assert [p.exitcode for p in procs] == [0] * workers
    with SQLiteGallery(path) as g:
        rows = g.conn.execute("SELECT source_sha256, COUNT(*) FROM faces GROUP BY source_sha256").fetchall()
        assert len(rows) == 40 and {c for _, c in rows} == {1}
        assert len(g.people()) == 40 and g.integrity_check() == "ok"


def test_migration_drops_old_duplicates_and_adds_the_unique_guard(tmp_path: Path) -> None:
    path = tmp_path / "g.sqlite"
    c = sqlite3.connect(path, isolation_level=None)
    from cnnkit.store.migrations import MIGRATIONS

    for statement in MIGRATIONS[0][1].split(";"):
        if statement.strip():
            c.execute(statement)
    c.execute("PRAGMA user_version = 1")
    c.execute("INSERT INTO people(name, created_at) VALUES ('ada', 'x')")
    blob = encode_vector(np.ones(4, np.float32))
    for sha in ("a" * 64, "a" * 64, "b" * 64):  # a version-1 gallery holding one photo twice
        c.execute("INSERT INTO faces(person_id, encoder_tag, dim, vector, source_sha256, created_at) "
                  "VALUES (1, 't', 4, ?, ?, 'x')", (blob, sha))
    c.close()
    with SQLiteGallery(path) as g:
        assert g.schema_version >= 2
        assert sorted(r[0] for r in g.conn.execute("SELECT source_sha256 FROM faces")) == ["a" * 64, "b" * 64]
        assert g.add_faces("ada", np.ones((1, 4), np.float32), tag="t", sources=[FaceSource("x", "a" * 64)]) == []
        assert len(g) == 2


# -- removal with an open reader -------------------------------------------------------------

_READER = """
    import sqlite3, sys, time
    c = sqlite3.connect(sys.argv[1], isolation_level=None)
    c.execute("BEGIN")
    c.execute("SELECT COUNT(*) FROM faces").fetchone()   # a read transaction on the old snapshot
    print("reading", flush=True)
    time.sleep(float(sys.argv[2]))
    c.execute("COMMIT")
"""


def _reader(path: Path, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(_READER), str(path), str(seconds)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "reading"
    return proc


def test_removal_with_open_reader_never_reports_success_while_bytes_remain(tmp_path: Path) -> None:
    path = tmp_path / "g.sqlite"
    emb = _filled(path, 20)
    bob = encode_vector(emb[7])
    g = SQLiteGallery(path)
    reader = _reader(path, 60)
    try:
        t0 = time.monotonic()
        with pytest.raises(RemovalPendingError, match="removal pending: 'p007' is deleted, but its bytes stay in "
                                                      "the gallery files while 1 readers hold the gallery"):
            g.remove_person("p007", wait=1.0)
        assert time.monotonic() - t0 < 30  # bounded: a hang guard, not a benchmark
        assert "p007" not in {p.name for p in g.people()}
    finally:
        reader.kill()
        reader.wait()
    assert g.remove_person("p007", wait=5.0) == 1  # the retry finishes the job and reports it
    assert bob not in _raw(path)
    assert encode_vector(emb[8]) in _raw(path)  # the scan can see a vector that is there
    with pytest.raises(UnknownNameError):
        g.remove_person("p007")
    assert g.conn.execute("SELECT value FROM meta WHERE key = 'removal_pending'").fetchone() is None
    g.close()


def test_removal_waits_for_a_short_reader_then_succeeds_with_the_bytes_gone(tmp_path: Path) -> None:
    path = tmp_path / "g.sqlite"
    emb = _filled(path, 20)
    g = SQLiteGallery(path)
    reader = _reader(path, 1.0)
    assert g.remove_person("p003", wait=30.0) == 1
    reader.wait(30)
    assert encode_vector(emb[3]) not in _raw(path)
    g.close()
