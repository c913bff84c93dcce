"""Unknown faces (``cnnkit serve --capture-unknown``) through the HTTP API of a real Service: real
weights, real ORL photos, real SQLite files in a temporary data directory (and PostgreSQL for the
store itself). s39 and s40 are never enrolled: they are the strangers."""
from __future__ import annotations

import io
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnkit.serve.unknown import UNKNOWN_FILE, StaleUnknownFaces, UnknownFaces

DAY = 86400.0
STRANGERS = ["s39/1", "s39/2", "s39/3", "s40/1", "s40/2", "s40/3"]


class Clock:
    """A clock the test moves."""

    def __init__(self, t: float = 1_700_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def expect_problem(r, status: int, code: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == code, r.json()
    return r.json()


def stored_rows(api) -> int:
    with sqlite3.connect(Path(api.service.config.db) / UNKNOWN_FILE) as conn:
        return conn.execute("SELECT COUNT(*) FROM unknown_faces").fetchone()[0]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cap(make_api, clock, img):
    """Capture on (30 days), the test's clock, an admin key; gallery "demo" (thumbnails) holds ann (s1)."""
    api = make_api(clock=clock, capture_unknown=True, capture_retention_days=30)
    api.create("demo", thumbnails=True)
    assert api.enroll("demo", "ann", img.orl("s1/1")).status_code == 201
    return api


def see_strangers(api, img, rels=STRANGERS) -> list[int]:
    """Identify each photo in ``rels``: each face is nobody, and captured."""
    for rel in rels:
        r = api.identify("demo", img.orl(rel))
        assert r.status_code == 200, r.text
        assert [f["name"] for f in r.json()["faces"]] == [None] and r.json()["captured"] == 1
    return [f.id for f in api.service.unknown.faces("demo")]


# -- capture ------------------------------------------------------------------------------------

def test_capture_is_off_by_default(api, img) -> None:
    api.create("demo")
    api.enroll("demo", "ann", img.orl("s1/1"))
    r = api.identify("demo", img.orl("s39/1"))
    assert r.json()["faces"][0]["name"] is None and r.json()["captured"] == 0
    assert stored_rows(api) == 0
    listed = api.get("/v1/galleries/demo/unknown").json()
    assert listed["capture"] is False and listed["faces"] == 0 and listed["clusters"] == []
    info = api.get("/v1/info?gallery=demo").json()
    assert info["capture_unknown"] is False and info["capture_retention_days"] == 30


def test_strangers_are_captured_matches_are_not(cap, img) -> None:
    g = cap.service.galleries.get("demo")
    revision = g.revision
    r = cap.identify("demo", img.side_by_side("s1/2", "s39/1"))  # ann beside a stranger
    faces = r.json()["faces"]
    assert sorted(str(f["name"]) for f in faces) == ["None", "ann"] and r.json()["captured"] == 1
    [kept] = cap.service.unknown.faces("demo")
    stranger = next(f for f in faces if f["name"] is None)
    assert list(kept.box) == stranger["box"]  # the stranger's face, not ann's
    assert kept.embedding.shape == (cap.service.pipeline.dim,) and kept.embedding.dtype == np.float32
    chip = cap.get(f"/v1/galleries/demo/unknown/faces/{kept.id}/chip")
    assert chip.status_code == 200 and chip.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(chip.content)).size == (112, 112)
    # the same photo again: the same face, seen again (one row); identify still names nobody there
    again = cap.identify("demo", img.side_by_side("s1/2", "s39/1")).json()
    assert again["captured"] == 1 and [f.id for f in cap.service.unknown.faces("demo")] == [kept.id]
    assert cap.identify("demo", img.orl("s1/3")).json()["captured"] == 0  # ann: matched, not captured
    assert stored_rows(cap) == 1
    assert g.revision == revision  # captured faces are not gallery faces
    assert [p.name for p in g.people()] == ["ann"] and g.search(kept.embedding[None, :], k=5)[0][0].name == "ann"


# -- clusters and naming ------------------------------------------------------------------------

def test_clusters_are_listed_largest_first(cap, img) -> None:
    see_strangers(cap, img, STRANGERS + ["s39/4"])
    body = cap.get("/v1/galleries/demo/unknown").json()
    assert body["capture"] is True and body["faces"] == 7 and body["retention_days"] == 30
    sizes = [c["size"] for c in body["clusters"]]
    assert sizes == [4, 3]
    ids = [[f["id"] for f in c["faces"]] for c in body["clusters"]]
    by_id = {f.id: f for f in cap.service.unknown.faces("demo")}
    assert sorted(ids[0]) == [1, 2, 3, 7] and sorted(ids[1]) == [4, 5, 6]  # s39 (4 photos), then s40
    assert all(f["seen_at"].endswith("+00:00") for c in body["clusters"] for f in c["faces"])
    assert body["threshold"] <= 0.6 and body["known"] == []
    assert len({c["id"] for c in body["clusters"]}) == 2 and set(by_id) == {i for c in ids for i in c}


def test_naming_a_cluster_enrolls_every_face_once(cap, img) -> None:
    see_strangers(cap, img)
    first = cap.get("/v1/galleries/demo/unknown").json()["clusters"][0]
    ids = [f["id"] for f in first["faces"]]
    r = cap.post("/v1/galleries/demo/unknown/name", json={"name": "bob", "faces": ids})
    assert r.status_code == 201, r.text
    assert r.json() == {"gallery": "demo", "name": "bob", "enrolled": 3, "already_enrolled": 0,
                        "enrolled_as_someone_else": [], "removed": 3}
    assert cap.get("/v1/galleries/demo/subjects/bob").json()["faces"] == 3
    assert cap.get("/v1/galleries/demo/subjects/bob/thumbnail").status_code == 200  # the first chip
    left = cap.get("/v1/galleries/demo/unknown").json()
    assert [c["size"] for c in left["clusters"]] == [3] and not set(ids) & {f["id"] for f in left["clusters"][0]["faces"]}
    # a rerun (a second click, another tab): 409, nothing added
    stale = expect_problem(cap.post("/v1/galleries/demo/unknown/name", json={"name": "bob", "faces": ids}),
                           409, "unknown-changed")
    assert "list them again" in stale["detail"]
    assert cap.get("/v1/galleries/demo/subjects/bob").json()["faces"] == 3
    # the person named is now recognised, and no longer captured
    seen = cap.identify("demo", img.orl("s39/4" if first["faces"][0]["id"] <= 3 else "s40/4")).json()
    assert [f["name"] for f in seen["faces"]] == ["bob"] and seen["captured"] == 0


def test_a_stale_request_enrolls_nothing(cap, img) -> None:
    ids = see_strangers(cap, img, STRANGERS[:3])
    assert cap.delete(f"/v1/galleries/demo/unknown/faces/{ids[0]}").status_code == 204
    expect_problem(cap.post("/v1/galleries/demo/unknown/name", json={"name": "bob", "faces": ids}), 409, "unknown-changed")
    assert "bob" not in [s["name"] for s in cap.get("/v1/galleries/demo/subjects").json()["subjects"]]
    assert [f.id for f in cap.service.unknown.faces("demo")] == ids[1:]  # the others are still there
    expect_problem(cap.delete(f"/v1/galleries/demo/unknown/faces/{ids[0]}"), 404, "not-found")
    expect_problem(cap.get(f"/v1/galleries/demo/unknown/faces/{ids[0]}/chip"), 404, "not-found")


def test_faces_enrolled_before_a_crash_are_not_enrolled_twice(cap, img) -> None:
    """The gallery committed, then the server died before the capture store did: the faces are
    still listed; naming them again stores nothing twice (the rule of `cnnkit face name`)."""
    from cnnkit.faces.cluster.collection import name_faces
    from cnnkit.serve.service import _unknown_table

    ids = see_strangers(cap, img, STRANGERS[:3])
    faces = cap.service.unknown.faces("demo")
    g, tag = cap.service.galleries.get("demo"), cap.service.pipeline.tag
    assert name_faces(_unknown_table(faces, tag, cap.service.pipeline.dim), [0, 1, 2], "bob", g, tag)["enrolled"] == 3
    # a face already stored as someone else is reported, not moved, and taken out of the capture store
    r = cap.post("/v1/galleries/demo/unknown/name", json={"name": "carol", "faces": ids[:1]})
    assert r.status_code == 200, r.text
    assert r.json()["enrolled_as_someone_else"] == [{"id": ids[0], "enrolled_as": "bob"}] and r.json()["removed"] == 1
    r = cap.post("/v1/galleries/demo/unknown/name", json={"name": "bob", "faces": ids[1:]})
    assert r.status_code == 200, r.text
    assert (r.json()["enrolled"], r.json()["already_enrolled"], r.json()["removed"]) == (0, 2, 2)
    assert cap.get("/v1/galleries/demo/subjects/bob").json()["faces"] == 3
    assert "carol" not in [s["name"] for s in cap.get("/v1/galleries/demo/subjects").json()["subjects"]]
    assert cap.service.unknown.faces("demo") == []


def test_faces_that_now_match_are_listed_as_known(cap, img) -> None:
    see_strangers(cap, img, STRANGERS[:3])
    assert cap.enroll("demo", "bob", img.orl("s39/5")).status_code == 201  # enrolled the usual way meanwhile
    body = cap.get("/v1/galleries/demo/unknown").json()
    assert body["clusters"] == [] and [k["name"] for k in body["known"]] == ["bob"]
    assert len(body["known"][0]["faces"]) == 3


# -- retention ----------------------------------------------------------------------------------

def test_retention_purges_old_faces(make_api, clock, img) -> None:
    api = make_api(keyless=True, clock=clock, capture_unknown=True, capture_retention_days=2)
    svc = api.service
    api.create("demo")
    old = api.identify("demo", img.orl("s39/1")).json()
    assert old["captured"] == 1
    [old_face] = svc.unknown.faces("demo")
    clock.t += 1.5 * DAY
    assert api.identify("demo", img.orl("s40/1")).json()["captured"] == 1
    assert len(api.get("/v1/galleries/demo/unknown").json()["clusters"]) == 2
    clock.t += 0.6 * DAY  # s39/1 is now 2.1 days old, s40/1 0.6
    listed = api.get("/v1/galleries/demo/unknown").json()
    assert listed["faces"] == 1 and [f["id"] for c in listed["clusters"] for f in c["faces"]] == [old_face.id + 1]
    expect_problem(api.post("/v1/galleries/demo/unknown/name", json={"name": "x", "faces": [old_face.id]}),
                   409, "unknown-changed")
    assert svc.unknown.purge() == 0  # the lazy purge has deleted it already
    assert stored_rows(api) == 1
    # deleted means deleted: after a checkpoint the old face's vector is nowhere in the file
    with sqlite3.connect(Path(svc.config.db) / UNKNOWN_FILE) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    raw = (Path(svc.config.db) / UNKNOWN_FILE).read_bytes()
    assert old_face.embedding.astype("<f4").tobytes() not in raw
    clock.t += 10 * DAY
    assert svc.unknown.purge() == 1 and stored_rows(api) == 0


def test_a_gallery_deleted_takes_its_unknown_faces_along(cap, img) -> None:
    see_strangers(cap, img, STRANGERS[:2])
    assert cap.delete("/v1/galleries/demo").status_code == 204
    assert stored_rows(cap) == 0
    cap.create("demo")
    assert cap.get("/v1/galleries/demo/unknown").json()["faces"] == 0


# -- keys, roles and problems -------------------------------------------------------------------

def test_roles(cap, img) -> None:
    ids = see_strangers(cap, img, STRANGERS[:3])
    keys = cap.service.keys
    read, _ = keys.add("read", "demo")
    write, _ = keys.add("write", "demo")
    other, _ = keys.add("admin", "elsewhere")
    chip = f"/v1/galleries/demo/unknown/faces/{ids[0]}/chip"
    body = {"name": "bob", "faces": ids}
    assert cap.get("/v1/galleries/demo/unknown", key=read).status_code == 200
    assert cap.get(chip, key=read).status_code == 200
    expect_problem(cap.post("/v1/galleries/demo/unknown/name", key=read, json=body), 403, "forbidden")
    expect_problem(cap.delete(f"/v1/galleries/demo/unknown/faces/{ids[0]}", key=read), 403, "forbidden")
    for path in ("/v1/galleries/demo/unknown", chip):
        expect_problem(cap.get(path, key=other), 403, "forbidden")
        expect_problem(cap.get(path, key=None), 401, "unauthorized")
    expect_problem(cap.post("/v1/galleries/demo/unknown/name", key=None, json=body), 401, "unauthorized")
    assert len(cap.service.unknown.faces("demo")) == 3  # nothing happened
    assert cap.post("/v1/galleries/demo/unknown/name", key=write, json=body).status_code == 201


def test_problems(cap, img) -> None:
    ids = see_strangers(cap, img, STRANGERS[:1])
    expect_problem(cap.get("/v1/galleries/nope/unknown"), 404, "gallery-not-found")
    expect_problem(cap.get("/v1/galleries/nope/unknown/faces/1/chip"), 404, "gallery-not-found")
    expect_problem(cap.get("/v1/galleries/demo/unknown/faces/0/chip"), 422, "invalid-request")
    for bad in ({"name": "bob", "faces": []}, {"name": "", "faces": ids}, {"name": "a/b", "faces": ids},
                {"name": "bob"}, {"name": "bob", "faces": ["x"]}, {"name": "bob", "faces": [2**63]}):
        expect_problem(cap.post("/v1/galleries/demo/unknown/name", json=bad), 422, "invalid-request")
    expect_problem(cap.post("/v1/galleries/demo/unknown/name", json={"name": "bob", "faces": [ids[0] + 100]}),
                   409, "unknown-changed")
    expect_problem(cap.post("/v1/galleries/nope/unknown/name", json={"name": "bob", "faces": ids}),
                   404, "gallery-not-found")


def test_routes_are_in_the_openapi_document(api) -> None:
    paths = api.get("/openapi.json").json()["paths"]
    ops = {(m.upper(), p) for p, item in paths.items() for m in item if p.startswith("/v1/galleries/{gallery}/unknown")}
    assert ops == {("GET", "/v1/galleries/{gallery}/unknown"), ("POST", "/v1/galleries/{gallery}/unknown/name"),
                   ("GET", "/v1/galleries/{gallery}/unknown/faces/{face_id}/chip"),
                   ("DELETE", "/v1/galleries/{gallery}/unknown/faces/{face_id}")}
    name = paths["/v1/galleries/{gallery}/unknown/name"]["post"]
    assert {"201", "200", "403", "404", "409", "422"} <= set(name["responses"])
    assert "application/problem+json" in name["responses"]["409"]["content"]
    assert "unknown-changed" in name["responses"]["409"]["description"]


# -- the store on both backends -----------------------------------------------------------------

@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.pgvector)])
def test_the_store_on_both_backends(backend: str, data_store) -> None:
    db = data_store(backend)
    clock = Clock()
    store = UnknownFaces(db, retention_days=1, clock=clock)
    try:
        rng = np.random.default_rng(0)
        vecs = rng.standard_normal((3, 8)).astype(np.float32)
        ids = store.add("demo", "tag", "a" * 64, [((0, 0, 10, 10), vecs[0], b"chip0"), ((20, 0, 30, 10), vecs[1], b"chip1")])
        assert ids == sorted(ids) and len(set(ids)) == 2
        assert store.add("demo", "tag", "a" * 64, [((0, 0, 10, 10), vecs[0], b"chip0")]) == ids[:1]  # seen again
        clock.t += 0.5 * DAY
        [late] = store.add("other", "tag", "b" * 64, [((0, 0, 10, 10), vecs[2], b"chip2")])
        got = store.faces("demo")
        assert [f.id for f in got] == ids and np.array_equal(got[1].embedding, vecs[1]) and got[1].box == (20, 0, 30, 10)
        assert store.faces("demo", "another-tag") == [] and store.chip("demo", ids[1]) == b"chip1"
        assert store.chip("other", ids[1]) is None  # ids are per store, faces per gallery
        with pytest.raises(StaleUnknownFaces), store.claim("demo", [ids[0], late]):
            pass
        with pytest.raises(RuntimeError), store.claim("demo", ids):  # an error inside the block: nothing deleted
            raise RuntimeError("enrollment failed")
        with store.claim("demo", ids[:1]) as claimed:
            assert [f.id for f in claimed] == ids[:1]
        assert [f.id for f in store.faces("demo")] == ids[1:]
        clock.t += 0.6 * DAY  # "demo"'s are 1.1 days old, "other"'s 0.6
        assert [f.id for f in store.faces("demo")] == [] and store.purge() >= 0 and store.count() == 1
        [again] = store.add("demo", "tag", "c" * 64, [((0, 0, 10, 10), vecs[0], b"chip3")])
        assert again > late  # an id is never reused, so a stale request cannot name a newer face
        assert store.drop_gallery("demo") == 1 and store.count() == 1
    finally:
        store.close()
