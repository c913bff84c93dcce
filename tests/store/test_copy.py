"""copy_gallery between any two backends: everything arrives, counts and checksum verified, and a
corruption on the way is caught."""
import numpy as np
import psycopg
import pytest

from cnnkit.core.errors import StoreError
from cnnkit.store import FaceSource, SQLiteGallery
from cnnkit.store.copy import copy_gallery, gallery_checksum
from cnnkit.store.pgvector import PgVectorGallery

KINDS = ["sqlite", pytest.param("pgvector", marks=pytest.mark.pgvector)]
NAMES = ["zoë", "Ada", "bob", "Émile", "ada", "p-7", "李"]  # byte order != locale order


@pytest.fixture
def open_kind(request, tmp_path):
    """open_kind(kind, slot) -> a gallery; the same slot gives the same gallery."""
    opened, schemas = [], []

    def factory(kind, slot):
        if kind == "sqlite":
            g = SQLiteGallery(tmp_path / f"{slot}.sqlite")
        else:
            url = request.getfixturevalue("pg_url")
            schema = f"{request.getfixturevalue('pg_schema')}_{slot}"
            schemas.append((url, schema))
            g = PgVectorGallery(url, schema=schema)
        opened.append(g)
        return g

    yield factory
    for g in opened:
        g.close()
    for url, schema in schemas:
        with psycopg.connect(url, autocommit=True) as c:
            c.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def fill(g, rng, d=24):
    """Each name gets 1-4 faces with sources; two settings."""
    expected = {}
    for i, name in enumerate(NAMES * 3):
        n = int(rng.integers(1, 4))
        e = rng.normal(size=(n, d)).astype(np.float32)
        srcs = [FaceSource(f"{name}-{i}-{j}.jpg", f"{i:02d}{j}".ljust(64, "f"), (1.5, 2, 30, 40.25)) for j in range(n)]
        g.add_faces(name, e, tag="enc:1:abc", sources=srcs)
        expected.setdefault(name, []).extend(e)
    g.set_setting("enc:1:abc", "threshold", {"value": 0.61, "method": "calibrate"})
    g.set_setting("enc:1:abc", "head", [1, 2, 3])
    return expected


@pytest.mark.parametrize("dst_kind", KINDS)
@pytest.mark.parametrize("src_kind", KINDS)
def test_copy_between_backends(open_kind, src_kind, dst_kind):
    rng = np.random.default_rng(0)
    src, dst = open_kind(src_kind, "src"), open_kind(dst_kind, "dst")
    expected = fill(src, rng)
    report = copy_gallery(src, dst, batch=5, progress=False)  # persons split across batches
    n_faces = sum(len(v) for v in expected.values())
    assert (report["people"], report["faces"], report["settings"]) == (len(NAMES), n_faces, 2)
    assert (report["encoder"], report["dim"]) == ("enc:1:abc", 24)
    assert report["sha256"] == gallery_checksum(src)["sha256"] == gallery_checksum(dst)["sha256"]
    assert [(p.name, p.faces) for p in dst.people()] == [(p.name, p.faces) for p in src.people()]
    assert dst.encoder_tag == "enc:1:abc" and dst.dim == 24
    assert dst.get_setting("enc:1:abc", "threshold") == {"value": 0.61, "method": "calibrate"}
    assert dst.get_setting("enc:1:abc", "head") == [1, 2, 3]
    m, names = dst.embeddings()
    for name, vecs in expected.items():  # bit-exact float32, every face
        got = m[[i for i, n in enumerate(names) if n == name]]
        np.testing.assert_array_equal(np.sort(got, axis=0), np.sort(np.stack(vecs), axis=0))
    assert dst.has_source("000".ljust(64, "f"))
    q = rng.normal(size=(5, 24)).astype(np.float32)
    assert dst.search(q, k=4) == src.search(q, k=4)


@pytest.mark.pgvector
def test_copy_keeps_the_hnsw_index(open_kind):
    src, dst = open_kind("pgvector", "src"), open_kind("pgvector", "dst")
    fill(src, np.random.default_rng(1))
    src.create_index("hnsw", m=8, ef_construction=40)
    report = copy_gallery(src, dst, progress=False)
    assert report["index"] == dst.index == {"kind": "hnsw", "m": 8, "ef_construction": 40}
    back = open_kind("sqlite", "back")
    assert copy_gallery(dst, back, progress=False)["index"] is None  # SQLite has no index


def test_copy_into_non_empty_gallery_is_refused(open_kind):
    src, dst = open_kind("sqlite", "src"), open_kind("sqlite", "dst")
    fill(src, np.random.default_rng(2))
    dst.add_faces("someone", np.ones((1, 24), np.float32), tag="enc:1:abc")
    with pytest.raises(StoreError, match="already holds 1 faces"):
        copy_gallery(src, dst, progress=False)
    assert [p.name for p in dst.people()] == ["someone"]


def test_checksum_sees_one_changed_value(open_kind):
    g = open_kind("sqlite", "src")
    fill(g, np.random.default_rng(3))
    before = gallery_checksum(g)
    blob = bytearray(g.conn.execute("SELECT vector FROM faces WHERE id = 7").fetchone()[0])
    blob[5] ^= 1
    g.conn.execute("UPDATE faces SET vector = ? WHERE id = 7", (bytes(blob),))
    after = gallery_checksum(g)
    assert (after["people"], after["faces"]) == (before["people"], before["faces"])
    assert after["sha256"] != before["sha256"]


@pytest.mark.pgvector
def test_corruption_on_the_way_is_caught(open_kind, pg_url):
    """A trigger on the destination silently alters one vector on insert: the copy must fail."""
    src, dst = open_kind("sqlite", "src"), open_kind("pgvector", "dst")
    fill(src, np.random.default_rng(4))
    with psycopg.connect(pg_url, autocommit=True) as c:
        c.execute(f"""CREATE FUNCTION "{dst.schema}".flip() RETURNS trigger AS $$
            BEGIN IF NEW.source_name = 'bob-2-0.jpg' THEN NEW.vector := NEW.vector + NEW.vector; END IF;
            RETURN NEW; END $$ LANGUAGE plpgsql""")
        c.execute(f'CREATE TRIGGER flip BEFORE INSERT ON "{dst.schema}".faces FOR EACH ROW '
                  f'EXECUTE FUNCTION "{dst.schema}".flip()')
    with pytest.raises(StoreError, match="copy verification failed: source 7 people, .* faces, sha256"):
        copy_gallery(src, dst, batch=3, progress=False)
