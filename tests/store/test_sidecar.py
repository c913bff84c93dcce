"""The memory-mapped search sidecar beside an SQLite gallery (store.sidecar): used when current,
detected as stale after any write (by cnnkit, by plain SQL, by a process killed between its commit
and the sidecar's rewrite), and free of a removed person's vectors."""
from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from cnnkit.distances.lowp import TorchScoreKernel
from cnnkit.store import SQLiteGallery
from cnnkit.store.search import dequantise, quantise, quantise_int8
from cnnkit.store.sidecar import sidecar_path


def _unit(rng, n, d=16):
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _header(path):
    with open(sidecar_path(path), "rb") as f:
        return json.loads(f.read(4096))


def _db_generation(path):
    with sqlite3.connect(path) as c:
        return c.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0]


@pytest.fixture
def gallery_file(tmp_path):
    path = tmp_path / "g.sqlite"
    rng = np.random.default_rng(0)
    emb = _unit(rng, 300)
    g = SQLiteGallery(path)
    g.add_faces("ada", emb[:3], tag="t")
    for i in range(3, 300):
        g.add_faces(f"p{i:03d}", emb[i:i + 1], tag="t")
    g.close()
    return path, emb


def test_built_once_then_mapped(gallery_file):
    path, emb = gallery_file
    with SQLiteGallery(path, kernel=TorchScoreKernel()) as g:
        first = g.search(emb[:5], k=3)
    side = sidecar_path(path)
    stat = side.stat()
    assert _header(path)["generation"] == _db_generation(path)
    with SQLiteGallery(path, kernel=TorchScoreKernel()) as g:
        again = g.search(emb[:5], k=3)
    assert again == first
    assert (side.stat().st_ino, side.stat().st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns)  # not rewritten
    assert [m.name for m in first[0]][0] == "ada" and first[0][0].distance == 0.0


def test_stale_after_a_write_by_another_connection_or_plain_sql(gallery_file):
    path, emb = gallery_file
    g = SQLiteGallery(path)
    g.search(emb[:1])
    before = _header(path)["generation"]
    probe = _unit(np.random.default_rng(5), 1)
    with SQLiteGallery(path) as other:
        other.add_faces("zed", probe, tag="t")
    assert g.search(probe, k=1)[0][0].name == "zed"
    after = _header(path)["generation"]
    assert after != before and after == _db_generation(path)
    # a hand-written insert bumps the generation too (triggers), and a fresh process sees it
    with sqlite3.connect(path) as c:
        c.execute("INSERT INTO people(id, name, created_at) VALUES (9999, 'sql', 'now')")
        c.execute("INSERT INTO faces(person_id, encoder_tag, dim, vector, created_at) VALUES (9999, 't', 16, ?, 'now')",
                  ((-probe[0]).astype("<f4").tobytes(),))
    assert _db_generation(path) != after
    with SQLiteGallery(path) as fresh:
        assert fresh.search(-probe, k=1)[0][0].name == "sql"
    g.close()


_COMMIT_THEN_HANG = textwrap.dedent("""
    import sys, time, numpy as np
    from cnnkit.store import SQLiteGallery
    g = SQLiteGallery(sys.argv[1])
    g.search(np.ones((1, 16), np.float32))            # sidecar current
    g.add_faces("late", np.full((1, 16), -0.25, np.float32), tag="t")
    print("committed", flush=True)                    # the DB has it; the sidecar is not rewritten yet
    time.sleep(60)
""")


def test_kill9_between_commit_and_sidecar_write(gallery_file):
    path, _ = gallery_file
    proc = subprocess.Popen([sys.executable, "-c", _COMMIT_THEN_HANG, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "committed"
    stale = _header(path)["generation"]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert stale != _db_generation(path)  # the crash left a stale sidecar ...
    with SQLiteGallery(path) as g:       # ... that is detected, never used
        assert g.search(np.full((1, 16), -0.25, np.float32), k=1)[0][0].name == "late"
    assert _header(path)["generation"] == _db_generation(path)


_BUILD_FOREVER = textwrap.dedent("""
    import sqlite3, sys
    from cnnkit.store import sidecar
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    print("start", flush=True)
    while True:
        sidecar.build(conn, sidecar.sidecar_path(sys.argv[1]), 16)
""")


def test_kill9_during_a_sidecar_build(tmp_path):
    path = tmp_path / "g.sqlite"
    rng = np.random.default_rng(1)
    emb = _unit(rng, 60_000)
    with SQLiteGallery(path) as g, g.atomic() as c:
        c.execute("INSERT INTO meta(key, value) VALUES ('encoder_tag', 't'), ('dim', '16')")
        c.executemany("INSERT INTO people(id, name, created_at) VALUES (?, ?, 'now')", ((i, f"p{i}") for i in range(60_000)))
        c.executemany("INSERT INTO faces(person_id, encoder_tag, dim, vector, created_at) VALUES (?, 't', 16, ?, 'now')",
                      ((i, emb[i].astype("<f4").tobytes()) for i in range(60_000)))
    proc = subprocess.Popen([sys.executable, "-c", _BUILD_FOREVER, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "start"
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob("g.sqlite.vectors.tmp-*")) and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert list(tmp_path.glob("g.sqlite.vectors.tmp-*")), "the kill did not land during a build"
    with SQLiteGallery(path, kernel=TorchScoreKernel()) as g:
        got = g.search(emb[[7, 59_999]], k=2)
    assert [r[0].name for r in got] == ["p7", "p59999"]
    assert not list(tmp_path.glob("g.sqlite.vectors.tmp-*"))  # the dead builder's file is cleaned up


def test_removal_leaves_no_bytes_of_the_person_in_the_sidecar(gallery_file):
    path, emb = gallery_file
    g = SQLiteGallery(path, kernel=TorchScoreKernel())
    g.search(emb[:1])
    g.search(emb[:16])  # both low-precision copies paged in

    def patterns(rows):
        out = []
        for v in rows:
            out += [v.astype("<f4").tobytes(), quantise_int8(v[None])[0][0, :len(v)].tobytes(),
                    quantise(v[None], "bfloat16")[0].astype("<u2").tobytes()]
        return out

    raw = sidecar_path(path).read_bytes()
    assert all(p in raw for p in patterns(emb[:4]))  # ada (rows 0-2) and p003 are in it
    g.remove_person("ada")
    assert not sidecar_path(path).exists()  # deleted by the removal, rewritten by the next search
    assert [m.name for m in g.search(emb[:1], k=1)[0]] != ["ada"]
    raw = sidecar_path(path).read_bytes()
    assert not any(p in raw for p in patterns(emb[:3]))
    assert all(p in raw for p in patterns(emb[3:4]))
    g.close()


def test_foreign_or_damaged_sidecar_is_rebuilt(gallery_file, tmp_path):
    path, emb = gallery_file
    other = tmp_path / "other.sqlite"
    with SQLiteGallery(other) as o:
        o.add_faces("stranger", emb[:1], tag="t")
        o.search(emb[:1])
    sidecar_path(path).write_bytes(sidecar_path(other).read_bytes())  # another gallery's sidecar
    with SQLiteGallery(path) as g:
        assert g.search(emb[:1], k=1)[0][0].name == "ada"
    data = sidecar_path(path).read_bytes()
    sidecar_path(path).write_bytes(data[: len(data) // 2])  # truncated
    with SQLiteGallery(path) as g:
        assert g.search(emb[299:300], k=1)[0][0].name == "p299"
    assert sidecar_path(path).stat().st_size == len(data)


def test_bfloat16_copy_in_the_sidecar_is_the_rounded_matrix(gallery_file):
    path, emb = gallery_file
    with SQLiteGallery(path) as g:
        g.search(emb[:1])
    h = _header(path)
    off, dt, shape = h["arrays"]["bfloat16"]
    bits = np.fromfile(sidecar_path(path), dtype=dt, count=int(np.prod(shape)), offset=off).reshape(shape)
    np.testing.assert_array_equal(dequantise(bits, "bfloat16"), dequantise(quantise(emb, "bfloat16"), "bfloat16"))
