"""PostgreSQL + pgvector specifics: schema and migrations, HNSW index, deletion, bad input (unreachable
server, wrong credentials, no vector extension, another dimension). The store contract itself runs
against this backend in test_gallery_contract.py."""
import os
from pathlib import Path

import numpy as np
import psycopg
import pytest

from cnnkit.core.errors import RemovalPendingError, StoreError, UnknownNameError
from cnnkit.store import open_gallery
from cnnkit.store.codec import encode_vector
from cnnkit.store.pgvector import LATEST, PgVectorGallery

pytestmark = pytest.mark.pgvector


def unit(rng, n, d=32):
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def admin(url):
    return psycopg.connect(url, autocommit=True)


@pytest.fixture
def gallery(pg_url, pg_schema):
    g = PgVectorGallery(pg_url, schema=pg_schema)
    yield g
    g.close()


def test_open_gallery_dispatches_postgres_urls(pg_url, pg_schema):
    with open_gallery(pg_url, schema=pg_schema) as g:
        assert isinstance(g, PgVectorGallery) and g.schema_version == LATEST


def test_schema_version_table_and_reopen(pg_url, pg_schema):
    g = PgVectorGallery(pg_url, schema=pg_schema)
    g.add_faces("ada", np.ones((1, 4), np.float32), tag="t")
    g.close()
    with PgVectorGallery(pg_url, schema=pg_schema) as g2, admin(pg_url) as c:  # no second migration
        rows = c.execute(f'SELECT version FROM "{pg_schema}".schema_version').fetchall()
        assert rows == [(v,) for v in range(1, LATEST + 1)] and g2.schema_version == LATEST
        assert [p.name for p in g2.people()] == ["ada"]
        col = c.execute("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = %s::regclass "
                        "AND attname = 'vector'", (f'"{pg_schema}".faces',)).fetchone()[0]
        assert col == "vector"  # untyped column; D is checked by a CHECK constraint and in meta


def test_schemas_are_separate_galleries(pg_url, pg_schema):
    other = pg_schema + "_b"
    try:
        with PgVectorGallery(pg_url, schema=pg_schema) as a, PgVectorGallery(pg_url, schema=other) as b:
            a.add_faces("ada", np.ones((1, 4), np.float32), tag="t")
            b.add_faces("bob", np.ones((1, 8), np.float32), tag="u")
            assert [p.name for p in a.people()] == ["ada"] and (a.dim, b.dim) == (4, 8)
    finally:
        with admin(pg_url) as c:
            c.execute(f'DROP SCHEMA IF EXISTS "{other}" CASCADE')


def test_no_such_gallery_and_foreign_schema(pg_url, pg_schema):
    with pytest.raises(StoreError, match="no such gallery"):
        PgVectorGallery(pg_url, schema=pg_schema, create=False)
    with admin(pg_url) as c:
        c.execute(f'CREATE SCHEMA "{pg_schema}"')
        c.execute(f'CREATE TABLE "{pg_schema}".invoices (id int)')
    with pytest.raises(StoreError, match="holds other tables; not a cnnkit gallery"):
        PgVectorGallery(pg_url, schema=pg_schema)
    with admin(pg_url) as c:  # untouched
        assert c.execute("SELECT count(*) FROM pg_tables WHERE schemaname = %s", (pg_schema,)).fetchone()[0] == 1
    with pytest.raises(StoreError, match="schema name"):
        PgVectorGallery(pg_url, schema='x"; DROP TABLE y; --')


def test_other_dimension_writes_nothing(gallery):
    gallery.add_faces("ada", np.ones((2, 8), np.float32), tag="t")
    with pytest.raises(StoreError, match="gallery vectors have D=8, got D=16"):
        gallery.add_batch(["bob", "cy"], np.ones((2, 16), np.float32), tag="t")
    assert [p.name for p in gallery.people()] == ["ada"] and len(gallery) == 2
    with pytest.raises(StoreError, match=r"shape \(M, 8\)"):
        gallery.search(np.ones((1, 16), np.float32))


def test_database_check_constraint_backs_the_dimension(gallery, pg_url):
    gallery.add_faces("ada", np.ones((1, 4), np.float32), tag="t")
    with admin(pg_url) as c, pytest.raises(psycopg.errors.CheckViolation):
        c.execute(f"INSERT INTO \"{gallery.schema}\".faces(person_id, encoder_tag, dim, vector, created_at) "
                  f"SELECT id, 't', 4, '[1,2,3]', now() FROM \"{gallery.schema}\".people")


def test_batch_insert_is_atomic(gallery):
    e = np.ones((3, 4), np.float32)
    e[2, 1] = np.inf
    with pytest.raises(StoreError, match="finite"):
        gallery.add_batch(["a", "b", "c"], e, tag="t")
    with pytest.raises(StoreError, match="2 names for 3"):
        gallery.add_batch(["a", "b"], np.ones((3, 4), np.float32), tag="t")
    assert len(gallery) == 0 and gallery.people() == [] and gallery.encoder_tag is None


def test_add_batch_ids_and_rows(gallery):
    rng = np.random.default_rng(0)
    e = unit(rng, 5, 8)
    ids = gallery.add_batch(["b", "a", "b", "c", "a"], e, tag="t")
    assert ids == sorted(ids) and len(set(ids)) == 5
    assert [(p.name, p.faces) for p in gallery.people()] == [("a", 2), ("b", 2), ("c", 1)]
    m, names = gallery.embeddings()
    np.testing.assert_array_equal(m[names.index("a")], e[1])


def test_hnsw_index_search(gallery, pg_url):
    rng = np.random.default_rng(1)
    e = unit(rng, 400, 32)
    gallery.add_batch([f"p{i:03d}" for i in range(400)], e, tag="t")
    assert gallery.index is None
    gallery.create_index("hnsw", m=16, ef_construction=64)
    assert gallery.index == {"kind": "hnsw", "m": 16, "ef_construction": 64}
    with admin(pg_url) as c:
        idx = c.execute("SELECT indexdef FROM pg_indexes WHERE schemaname = %s AND indexname = 'faces_hnsw'",
                        (gallery.schema,)).fetchone()[0]
    assert "hnsw" in idx and "vector(32)" in idx and "m='16'" in idx and "ef_construction='64'" in idx
    plan = "\n".join(r[0] for r in gallery.conn.execute(
        "EXPLAIN " + gallery._search_sql(32, use_index=True), (e[0], 10)).fetchall())
    assert "Index Scan using faces_hnsw" in plan
    approx = gallery.search(e[:50], k=3, ef_search=100)
    exact = gallery.search(e[:50], k=3, exact=True)
    assert [r[0].name for r in approx] == [f"p{i:03d}" for i in range(50)]  # each vector finds itself
    overlap = np.mean([len({m.name for m in a} & {m.name for m in x}) / 3 for a, x in zip(approx, exact)])
    assert overlap >= 0.95
    assert gallery.conn.execute("SHOW hnsw.ef_search").fetchone()[0] == "100"
    gallery.search(e[:1], k=3, ef_search=7)
    assert gallery.conn.execute("SHOW hnsw.ef_search").fetchone()[0] == "7"
    oid = gallery.conn.execute("SELECT to_regclass(%s)::oid", (f'"{gallery.schema}".faces_hnsw',)).fetchone()[0]
    gallery.create_index("hnsw", m=16, ef_construction=64)  # the same again: not rebuilt
    assert gallery.conn.execute("SELECT to_regclass(%s)::oid", (f'"{gallery.schema}".faces_hnsw',)).fetchone()[0] == oid
    gallery.ef_search = 55  # the default of later searches (the CLI's --ef-search)
    gallery.search(e[:1], k=3)
    assert gallery.conn.execute("SHOW hnsw.ef_search").fetchone()[0] == "55"
    gallery.create_index("none")
    assert gallery.index is None
    with pytest.raises(StoreError, match="no HNSW index"):
        gallery.search(e[:1], exact=False)


def test_index_requested_before_first_face_and_rebuilt_for_new_dimension(gallery, pg_url):
    gallery.create_index("hnsw", m=8, ef_construction=32)  # D unknown: built at the first enrollment
    gallery.add_faces("ada", np.eye(16, dtype=np.float32)[:2], tag="t")

    def indexdef():
        with admin(pg_url) as c:
            row = c.execute("SELECT indexdef FROM pg_indexes WHERE schemaname = %s AND indexname = 'faces_hnsw'",
                            (gallery.schema,)).fetchone()
        return None if row is None else row[0]

    assert "vector(16)" in indexdef()
    assert gallery.search(np.eye(16, dtype=np.float32)[1], k=1)[0][0].name == "ada"
    gallery.remove_person("ada")  # empty again: D forgotten, index dropped, choice kept
    assert indexdef() is None and gallery.dim is None and gallery.index is not None
    gallery.add_faces("bob", np.eye(8, dtype=np.float32)[:1], tag="u")
    assert "vector(8)" in indexdef()


@pytest.mark.parametrize("kwargs,match", [({"kind": "ivf"}, "unknown index kind"),
                                          ({"m": 1}, "2 <= m"), ({"m": 16, "ef_construction": 16}, "2\\*m"),
                                          ({"maintenance_work_mem": "1GB; DROP"}, "maintenance_work_mem")])
def test_create_index_bad_parameters(gallery, kwargs, match):
    with pytest.raises((StoreError, UnknownNameError), match=match):
        gallery.create_index(**kwargs)


def _relation_bytes(url, schema):
    with admin(url) as c:
        c.execute("CHECKPOINT")
        data = Path(c.execute("SHOW data_directory").fetchone()[0])
        if not os.access(data, os.R_OK):
            pytest.skip(f"the server's data directory {data} is not readable here (a remote CNNKIT_TEST_PG_URL?)")
        rels = [r[0] for r in c.execute(
            "SELECT pg_relation_filepath(c.oid) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind IN ('r', 'i', 't')", (schema,)).fetchall()]
    return b"".join((data / r).read_bytes() for r in rels if r and (data / r).exists())


def test_remove_person_full_vacuum_leaves_no_vector_bytes(gallery, pg_url):
    """Like the SQLite test: 200 people, remove 20; with vacuum='full' none of their vectors stay
    in the table or index files; with the default VACUUM the rows are gone from every query."""
    e = np.random.default_rng(0).normal(size=(200, 128)).astype(np.float32)
    gallery.add_batch([f"p{i:03d}" for i in range(200)], e, tag="t")
    gallery.create_index()
    for i in range(10):
        assert gallery.remove_person(f"p{i:03d}") == 1
    for i in range(10, 20):
        gallery.remove_person(f"p{i:03d}", vacuum="full" if i == 19 else "none")
    raw = _relation_bytes(pg_url, gallery.schema)
    assert sum(encode_vector(e[i]) in raw for i in range(20)) == 0  # stored little-endian, like SQLite
    assert sum(encode_vector(e[i]) in raw for i in range(20, 200)) == 180
    assert len(gallery) == 180 and not any(p.name < "p020" for p in gallery.people())
    with pytest.raises(StoreError, match="vacuum must be"):
        gallery.remove_person("p020", vacuum="yes")


def test_removal_with_an_open_snapshot_reports_pending_then_finishes(gallery, pg_url):
    """A session holding a snapshot that still sees the rows keeps VACUUM from removing them
    ("dead but not yet removable"): the removal says so instead of reporting success."""
    e = np.random.default_rng(1).normal(size=(30, 128)).astype(np.float32)
    gallery.add_batch([f"p{i:02d}" for i in range(30)], e, tag="t")
    with psycopg.connect(pg_url) as reader:  # not autocommit: the SELECT opens a transaction
        reader.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        reader.execute(f'SELECT count(*) FROM "{gallery.schema}".faces').fetchone()
        with pytest.raises(RemovalPendingError, match=r"removal pending: 'p05' is deleted, but 2 dead rows stay "
                                                      r"in the gallery while 1 readers hold the gallery"):
            gallery.remove_person("p05", wait=1.0)
        assert "p05" not in {p.name for p in gallery.people()}
        reader.rollback()
    assert gallery.remove_person("p05") == 1  # the retry finishes the job and reports it
    with pytest.raises(UnknownNameError):
        gallery.remove_person("p05")


# ---- bad input: a one-line StoreError each, nothing written ----------------------------------------
def _one_line(exc_info) -> str:
    msg = str(exc_info.value)
    assert "\n" not in msg, msg
    return msg


@pytest.mark.parametrize("url", ["postgresql://cnnkit@127.0.0.1:9/cnnkit?connect_timeout=3",
                                 "postgresql://cnnkit@/cnnkit?host=/nonexistent/socket/dir"])
def test_unreachable_server(url):
    with pytest.raises(StoreError) as info:
        PgVectorGallery(url)
    msg = _one_line(info)
    assert msg.startswith("postgresql://cnnkit@") and "cannot connect to PostgreSQL" in msg


def test_missing_database(pg_url):
    url = psycopg.conninfo.make_conninfo(pg_url, dbname="no_such_db")
    with pytest.raises(StoreError) as info:
        PgVectorGallery(url)
    assert 'database "no_such_db" does not exist' in _one_line(info)


@pytest.fixture(scope="module")
def password_role(pg_url):
    """A role that must log in with a password (scram-sha-256), prepended to pg_hba.conf."""
    with admin(pg_url) as c:
        hba = Path(c.execute("SHOW hba_file").fetchone()[0])
        if not os.access(hba, os.W_OK):
            pytest.skip(f"cannot edit {hba} to require a password (server not started by this session)")
        c.execute("DROP ROLE IF EXISTS cnnkit_pw")
        c.execute("CREATE ROLE cnnkit_pw LOGIN PASSWORD 'right-password'")
        original = hba.read_text()
        hba.write_text("local all cnnkit_pw scram-sha-256\nhost all cnnkit_pw 127.0.0.1/32 scram-sha-256\n" + original)
        c.execute("SELECT pg_reload_conf()")
    yield "cnnkit_pw"
    hba.write_text(original)
    with admin(pg_url) as c:
        c.execute("SELECT pg_reload_conf()")


def test_wrong_credentials(pg_url, password_role, pg_schema):
    wrong = psycopg.conninfo.make_conninfo(pg_url, user=password_role, password="wrong-password")
    with pytest.raises(StoreError) as info:
        PgVectorGallery(wrong, schema=pg_schema)
    msg = _one_line(info)
    assert f'password authentication failed for user "{password_role}"' in msg and "wrong-password" not in msg
    right = psycopg.conninfo.make_conninfo(pg_url, user=password_role, password="right-password")
    with psycopg.connect(right) as c:  # the right password works: the failure was the credentials
        assert c.execute("SELECT current_user").fetchone()[0] == password_role


@pytest.fixture(scope="module")
def database_without_vector(pg_url):
    """A fresh database without the vector extension, and a plain role allowed to create schemas in it."""
    with admin(pg_url) as c:
        c.execute("DROP DATABASE IF EXISTS cnnkit_noext")
        c.execute("DROP ROLE IF EXISTS cnnkit_plain")
        c.execute("CREATE ROLE cnnkit_plain LOGIN")
        c.execute("CREATE DATABASE cnnkit_noext OWNER cnnkit_plain")
    yield psycopg.conninfo.make_conninfo(pg_url, dbname="cnnkit_noext")
    with admin(pg_url) as c:
        c.execute("DROP DATABASE IF EXISTS cnnkit_noext WITH (FORCE)")
        c.execute("DROP ROLE IF EXISTS cnnkit_plain")


def test_database_without_vector_extension(database_without_vector):
    plain = psycopg.conninfo.make_conninfo(database_without_vector, user="cnnkit_plain")
    with pytest.raises(StoreError) as info:
        PgVectorGallery(plain)
    msg = _one_line(info)
    assert "no 'vector' extension and this user may not create it" in msg and "CREATE EXTENSION vector" in msg
    with pytest.raises(StoreError, match="no cnnkit gallery here"):
        PgVectorGallery(database_without_vector, create=False)
    with psycopg.connect(database_without_vector) as c:  # nothing written
        assert c.execute("SELECT count(*) FROM pg_extension WHERE extname = 'vector'").fetchone()[0] == 0
        assert c.execute("SELECT count(*) FROM pg_namespace WHERE nspname = 'cnnkit'").fetchone()[0] == 0
    with PgVectorGallery(database_without_vector) as g:  # a superuser may create it
        assert g.schema_version == LATEST


def test_lost_connection_is_a_one_line_store_error(gallery, pg_url):
    gallery.add_faces("ada", np.ones((1, 4), np.float32), tag="t")
    pid = gallery.conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    with admin(pg_url) as c:
        c.execute("SELECT pg_terminate_backend(%s)", (pid,))
    for call in (lambda: gallery.search(np.ones(4, np.float32)), lambda: gallery.people(),
                 lambda: gallery.add_faces("bob", np.ones((1, 4), np.float32), tag="t")):
        with pytest.raises(StoreError) as info:
            call()
        assert _one_line(info).startswith("postgresql://")
