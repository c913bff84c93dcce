"""Crash safety and concurrency with real processes.

* kill -9 of an enrolling process at random moments, 20 times, on SQLite and on PostgreSQL: every
  enrollment reported as committed is there, and no person is half-written.
* 4 processes enrolling disjoint shards of one photo collection into one PostgreSQL gallery while 4
  others identify, for CNNKIT_PG_CONCURRENCY_S seconds (default 10; the issue's 60 s run:
  CNNKIT_PG_CONCURRENCY_S=60): no error, no lost or duplicated face, every committed one found.

Children are forked (no interpreter start-up per round), each opening its own connection.
"""
import hashlib
import multiprocessing as mp
import os
import signal
import time

import numpy as np
import pytest

from cnnkit.store import FaceSource, SQLiteGallery
from cnnkit.store.pgvector import PgVectorGallery
from cnnkit.store.sharding import shard_of

FORK = mp.get_context("fork")


@pytest.fixture
def open_backend(request, tmp_path):
    """A function opening (again) one gallery of the parametrised backend."""
    if request.param == "sqlite":
        path = tmp_path / "g.sqlite"
        return lambda: SQLiteGallery(path)
    url, schema = request.getfixturevalue("pg_url"), request.getfixturevalue("pg_schema")
    return lambda: PgVectorGallery(url, schema=schema)


def _enroll_until_killed(open_gallery, fd: int, seed: int) -> None:
    g = open_gallery()
    rng = np.random.default_rng(seed)
    os.write(fd, b"ready\n")
    for i in range(10**9):
        name = f"r{seed}-{i}"
        g.add_faces(name, rng.normal(size=(2, 64)).astype(np.float32), tag="t")
        os.write(fd, f"{name}\n".encode())  # only after the commit returned


@pytest.mark.parametrize("open_backend", ["sqlite", pytest.param("pgvector", marks=pytest.mark.pgvector)],
                         indirect=True)
def test_kill9_during_enrollment_20_rounds(open_backend):
    open_backend().close()  # create the gallery
    acked: set[str] = set()
    rng = np.random.default_rng(7)
    for round_ in range(20):
        r, w = os.pipe()
        proc = FORK.Process(target=_enroll_until_killed, args=(open_backend, w, round_), daemon=True)
        proc.start()
        os.close(w)
        os.set_blocking(r, False)
        buf, deadline = b"", None
        while True:  # wait for 'ready', then let it enroll for a random 0-300 ms
            try:
                chunk = os.read(r, 65536)
            except BlockingIOError:
                chunk = None
            assert chunk != b"", f"round {round_}: the enrolling child died on its own"
            buf += chunk or b""
            if deadline is None and b"ready\n" in buf:
                deadline = time.monotonic() + rng.random() * 0.3
            if deadline is not None and time.monotonic() >= deadline:
                break
            if chunk is None:
                time.sleep(0.002)
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(10)
        os.set_blocking(r, True)
        while chunk := os.read(r, 65536):  # lines written after a commit, before the kill landed
            buf += chunk
        os.close(r)
        acked.update(ln for ln in buf.decode().split("\n")[:-1] if ln and ln != "ready")
        g = open_backend()
        try:
            if isinstance(g, SQLiteGallery):
                assert g.integrity_check() == "ok"
            people = {p.name: p.faces for p in g.people()}
        finally:
            g.close()
        assert acked <= set(people), f"round {round_}: lost {sorted(acked - set(people))[:5]}"
        assert all(n == 2 for n in people.values()), f"round {round_}: a half-written enrollment"
    assert len(acked) >= 20
    print(f"\n{type(g).__name__}: 20 kills, {len(acked)} acknowledged enrollments all kept")


# ---- 4 enrollers + 4 identifiers on one PostgreSQL gallery ------------------------------------------
DIM, SEEDS, WORKERS = 64, 50, 4


def _seed_vectors() -> np.ndarray:
    x = np.random.default_rng(123).normal(size=(SEEDS, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _photo(j: int) -> tuple[str, str, str]:
    """The j-th photo of a synthetic collection: (person, file key, sha256)."""
    key = f"person{j % 300:03d}/photo{j:06d}.jpg"
    return key.split("/")[0], key, hashlib.sha256(key.encode()).hexdigest()


def _enroller(url: str, schema: str, shard: int, stop, out) -> None:
    acked, skipped, error = [], 0, None
    try:
        g = PgVectorGallery(url, schema=schema)
        rng = np.random.default_rng(1000 + shard)
        j = 0
        while not stop.is_set():
            person, key, sha = _photo(j)
            j += 1
            if shard_of(key, WORKERS) != shard:
                continue
            if g.has_source(sha):
                skipped += 1
                continue
            vec = rng.normal(size=(1, DIM)).astype(np.float32)
            g.add_faces(person, vec / np.linalg.norm(vec), tag="t", sources=[FaceSource(key, sha)])
            acked.append(sha)
        g.close()
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which fails the test
        error = f"{type(exc).__name__}: {exc}"
    out.put(("enroll", shard, acked, skipped, error))


def _identifier(url: str, schema: str, wid: int, stop, out) -> None:
    stats, error = {"exact": 0, "exact_ok": 0, "hnsw": 0, "hnsw_ok": 0}, None
    try:
        g = PgVectorGallery(url, schema=schema)
        seeds = _seed_vectors()
        rng = np.random.default_rng(wid)
        while not stop.is_set():
            i = int(rng.integers(SEEDS))
            exact = bool(rng.integers(2))
            top = g.search(seeds[i], k=3, exact=exact)[0]
            assert len(top) == 3 and [m.distance for m in top] == sorted(m.distance for m in top)
            mode = "exact" if exact else "hnsw"
            stats[mode] += 1
            stats[mode + "_ok"] += top[0].name == f"seed{i:02d}" and top[0].distance < 1e-5
        g.close()
    except Exception as exc:  # noqa: BLE001
        error = f"{type(exc).__name__}: {exc}"
    out.put(("identify", wid, stats, None, error))


@pytest.mark.pgvector
def test_four_enrolling_four_identifying(pg_url, pg_schema):
    seconds = float(os.environ.get("CNNKIT_PG_CONCURRENCY_S", "10"))
    g = PgVectorGallery(pg_url, schema=pg_schema)
    seeds = _seed_vectors()
    g.add_batch([f"seed{i:02d}" for i in range(SEEDS)], seeds, tag="t")
    g.create_index("hnsw", m=16, ef_construction=64)  # inserts maintain it while others search through it
    stop, out = FORK.Event(), FORK.Queue()
    procs = [FORK.Process(target=_enroller, args=(pg_url, pg_schema, s, stop, out)) for s in range(WORKERS)]
    procs += [FORK.Process(target=_identifier, args=(pg_url, pg_schema, w, stop, out)) for w in range(WORKERS)]
    for p in procs:
        p.start()
    time.sleep(seconds)
    stop.set()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(60)
    errors = [r[4] for r in results if r[4]]
    assert not errors, errors
    assert [p.exitcode for p in procs] == [0] * len(procs)

    acked = [sha for r in results if r[0] == "enroll" for sha in r[2]]
    assert len(acked) == len(set(acked)) > 4 * WORKERS
    rows = g.conn.execute(f'SELECT source_sha256, count(*) FROM "{pg_schema}".faces '
                          "WHERE source_sha256 IS NOT NULL GROUP BY 1").fetchall()
    stored = dict(rows)
    assert max(stored.values()) == 1, "a face stored twice"
    assert set(stored) == set(acked), f"lost {len(set(acked) - set(stored))}, unexpected {len(set(stored) - set(acked))}"
    assert len(g) == SEEDS + len(acked)
    assert all(g.has_source(sha) for sha in acked[:: max(1, len(acked) // 200)])
    found = g.search(g.embeddings()[0][-5:], k=1, exact=True)  # the last committed faces are searchable
    assert all(r[0].distance < 1e-5 for r in found)
    stats = {k: sum(r[2][k] for r in results if r[0] == "identify") for k in ("exact", "exact_ok", "hnsw", "hnsw_ok")}
    assert stats["exact"] > 0 and stats["exact_ok"] == stats["exact"], stats
    assert stats["hnsw"] > 0 and stats["hnsw_ok"] >= 0.95 * stats["hnsw"], stats
    print(f"\n{seconds:.0f} s: {len(acked)} faces enrolled by {WORKERS} processes, "
          f"{stats['exact'] + stats['hnsw']} identifications by {WORKERS} processes; {stats}")
    g.close()
