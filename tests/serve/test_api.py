"""Every endpoint, status and problem code of the API, through fastapi.testclient on a real
Service (real weights, real SQLite galleries in a temporary data directory)."""
from __future__ import annotations

import asyncio
import io
import json
import sqlite3
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

PROBLEM_KEYS = {"type", "title", "status", "detail", "code"}
DLIB_DEFAULT_THRESHOLD = 0.6  # the encoder default the README documents


def problem(r, status: int, code: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert set(body) == PROBLEM_KEYS and body["status"] == status and body["code"] == code, body
    assert "Traceback" not in r.text and "/tmp/" not in r.text
    return body


def gallery_file(api, name: str = "demo") -> Path:
    return Path(api.service.config.db) / f"{name}.sqlite"


# -- health, readiness, info, docs -------------------------------------------------------------

def test_health_and_ready(api) -> None:
    assert api.client.get("/healthz").json() == {"status": "ok"}
    assert api.client.get("/readyz").json() == {"status": "ready"}


def test_not_ready_until_models_load(make_service) -> None:
    from cnnkit.serve import Service, ServeConfig, create_app
    from fastapi.testclient import TestClient

    svc = Service(ServeConfig(db=make_service().config.db + "-cold"))  # no pipeline loaded
    try:
        c = TestClient(create_app(svc))
        problem(c.get("/readyz"), 503, "not-ready")
        assert c.get("/healthz").status_code == 200
    finally:
        svc.close()


def test_info_names_encoder_and_decision(api) -> None:
    api.create()
    info = api.get("/v1/info?gallery=demo").json()
    assert info["encoder_tag"].startswith("dlib_resnet:1:") and info["dimension"] == 128
    assert info["metric"] == "euclidean" and info["method"] == "distance"
    assert info["threshold"] == DLIB_DEFAULT_THRESHOLD and info["threshold_source"] in {"gallery", "default"}
    assert info["liveness_check"] is False
    assert api.get("/v1/info").json()["threshold_source"] == "default"
    problem(api.get("/v1/info?gallery=nobody"), 404, "gallery-not-found")


def test_openapi_and_local_docs(api) -> None:
    spec = api.client.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    for path in ("/v1/galleries/{gallery}/identify", "/v1/verify", "/v1/embed", "/v1/galleries/{gallery}/export"):
        assert path in spec["paths"]
    assert "ProblemDetail" in spec["components"]["schemas"]
    docs = api.client.get("/docs")
    assert docs.status_code == 200 and "/static/docs.js" in docs.text
    page = api.client.get("/")
    assert page.status_code == 200 and "/static/app.js" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    static = Path(__import__("cnnkit.serve", fromlist=["x"]).__file__).parent / "static"
    for f in static.iterdir():  # no CDN, nothing loaded from elsewhere
        text = f.read_text()
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, f
        assert api.client.get(f"/static/{f.name}").status_code == 200


def test_unknown_route_and_method(api) -> None:
    problem(api.get("/v1/nothing"), 404, "not-found")
    r = api.client.put("/v1/galleries/demo/identify", headers=api.h())
    problem(r, 405, "method-not-allowed")
    assert r.headers["allow"] == "POST"


# -- galleries ---------------------------------------------------------------------------------

def test_gallery_life_cycle(api) -> None:
    r = api.create("demo")
    assert r.json() == {"name": "demo", "subjects": 0, "faces": 0, "encoder_tag": None, "thumbnails": True}
    assert gallery_file(api).is_file()
    problem(api.post("/v1/galleries", json={"name": "demo"}), 409, "gallery-exists")
    problem(api.post("/v1/galleries", json={"name": "../etc"}), 422, "invalid-request")
    problem(api.post("/v1/galleries", json={"nom": "x"}), 422, "invalid-request")
    api.create("other", thumbnails=False)
    assert api.get("/v1/galleries").json() == {"galleries": ["demo", "other"]}
    assert api.get("/v1/galleries/other").json()["thumbnails"] is False
    assert api.delete("/v1/galleries/demo").status_code == 204
    assert not gallery_file(api).exists() and not Path(f"{gallery_file(api)}-wal").exists()
    problem(api.get("/v1/galleries/demo"), 404, "gallery-not-found")
    problem(api.delete("/v1/galleries/demo"), 404, "gallery-not-found")
    assert api.get("/v1/galleries").json() == {"galleries": ["other"]}


def test_gallery_dropped_and_created_again_is_a_new_gallery(api, img) -> None:
    from cnnkit.store import SQLiteGallery
    from cnnkit.store.sidecar import sidecar_path

    api.create()
    assert api.enroll("demo", "ann", img.orl("s1/1")).status_code == 201
    with SQLiteGallery(gallery_file(api)) as g:  # a search writes the memory-mapped sidecar
        g.search(g.embeddings()[0][:1])
    assert sidecar_path(gallery_file(api)).is_file()
    assert api.delete("/v1/galleries/demo").status_code == 204
    assert not sidecar_path(gallery_file(api)).exists()
    api.create()
    assert api.get("/v1/galleries/demo/subjects").json()["subjects"] == []


# -- enrollment -----------------------------------------------------------------------------------

def test_enroll_one_photo(api, img) -> None:
    api.create()
    r = api.enroll("demo", "ann", img.orl("s1/1"), name="s1_1.pgm")
    assert r.status_code == 201
    body = r.json()
    assert body["subject"] == "ann" and body["enrolled"] is True and len(body["box"]) == 4
    again = api.enroll("demo", "ann", img.orl("s1/1"))
    assert again.status_code == 200 and again.json()["enrolled"] is False
    assert api.get("/v1/galleries/demo/subjects/ann").json()["faces"] == 1
    # the same bytes under another subject: refused, naming the owner and the gallery (not a path)
    other = problem(api.enroll("demo", "bob", img.orl("s1/1")), 409, "photo-enrolled")
    assert other["detail"] == ("this photo: already enrolled as 'ann' in demo; delete that subject's photo first "
                               "to enroll it as 'bob'")
    assert [s["name"] for s in api.get("/v1/galleries/demo/subjects").json()["subjects"]] == ["ann"]


def test_enroll_several_faces(api, img) -> None:
    api.create()
    both = img.side_by_side("s1/1", "s2/1")
    body = problem(api.enroll("demo", "ann", both), 422, "multiple-faces")
    assert "2 faces" in body["detail"]
    assert api.get("/v1/galleries/demo/subjects").json()["subjects"] == []
    assert api.enroll("demo", "ann", both, face="largest").status_code == 201
    problem(api.enroll("demo", "bob", both, face="maybe"), 422, "invalid-request")


def test_enroll_batch_reports_each_item_and_commits_the_good(api, img) -> None:
    api.create()
    files = [("image", ("a.pgm", img.orl("s1/1"))), ("image", ("blue.png", img.blue_png())),
             ("image", ("notes.jpg", b"not a photo\n" * 20)), ("image", ("b.pgm", img.orl("s2/1")))]
    r = api.post("/v1/galleries/demo/faces", files=files, data={"subject": ["ann", "nobody", "text", "bob"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [x["status"] for x in body["results"]] == [201, 422, 415, 201]
    assert [x.get("problem", {}).get("code") for x in body["results"]] == [None, "no-face", "unsupported-image", None]
    assert body["enrolled"] == 2 and body["failed"] == 2
    names = [s["name"] for s in api.get("/v1/galleries/demo/subjects").json()["subjects"]]
    assert names == ["ann", "bob"]
    problem(api.post("/v1/galleries/demo/faces", files=files[:1], data={"subject": ["a", "b"]}), 422, "invalid-request")


# -- identify and verify -----------------------------------------------------------------------

def test_identify(api, img) -> None:
    api.create()
    api.enroll("demo", "ann", img.orl("s1/1"))
    r = api.identify("demo", img.orl("s1/2"))
    assert r.status_code == 200
    face = r.json()["faces"][0]
    assert face["name"] == "ann" and face["distance"] < DLIB_DEFAULT_THRESHOLD
    assert face["candidates"][0] == {"name": "ann", "distance": face["distance"]}
    stranger = api.identify("demo", img.orl("s39/1")).json()["faces"]
    assert len(stranger) == 1 and stranger[0]["name"] is None and stranger[0]["distance"] > DLIB_DEFAULT_THRESHOLD
    assert api.identify("demo", img.blue_png()).json()["faces"] == []
    problem(api.identify("demo", img.orl("s1/2"), top_k=0), 422, "invalid-request")


def test_identify_names_a_subject_at_most_once_per_photo(api, img) -> None:
    api.create()
    api.enroll("demo", "ann", img.orl("s1/1"))
    faces = api.identify("demo", img.side_by_side("s1/2", "s1/3")).json()["faces"]
    assert len(faces) == 2
    names = [f["name"] for f in faces]
    assert names.count("ann") == 1 and names.count(None) == 1
    both_close = [f["candidates"][0]["distance"] <= DLIB_DEFAULT_THRESHOLD for f in faces]
    assert all(both_close)  # both were within the threshold: the rule, not the threshold, left one unnamed
    named = next(f for f in faces if f["name"] == "ann")
    assert named["distance"] == min(f["candidates"][0]["distance"] for f in faces)


def test_verify_against_a_subject(api, img) -> None:
    api.create()
    api.enroll("demo", "ann", img.orl("s1/1"))
    same = api.post("/v1/verify", files={"image": ("q.pgm", img.orl("s1/2"))}, data={"subject": "ann", "gallery": "demo"})
    assert same.status_code == 200, same.text
    body = same.json()
    assert body["match"] is True and body["distance"] <= body["threshold"]
    assert body["threshold_source"] in {"gallery", "default"} and body["method"] == "distance"
    other = api.post("/v1/verify", files={"image": ("q.pgm", img.orl("s39/1"))}, data={"subject": "ann", "gallery": "demo"})
    assert other.json()["match"] is False and other.json()["distance"] > other.json()["threshold"]
    problem(api.post("/v1/verify", files={"image": ("q.pgm", img.orl("s1/2"))}, data={"subject": "zed", "gallery": "demo"}),
            404, "subject-not-found")
    problem(api.post("/v1/verify", files={"image": ("q.png", img.side_by_side("s1/2", "s2/1"))},
                     data={"subject": "ann", "gallery": "demo"}), 422, "multiple-faces")


def test_verify_two_images(api, img) -> None:
    r = api.post("/v1/verify", files={"image_a": ("a", img.orl("s1/1")), "image_b": ("b", img.orl("s1/2"))})
    body = r.json()
    assert r.status_code == 200 and body["match"] is True and body["threshold_source"] == "default"
    far = api.post("/v1/verify", files={"image_a": ("a", img.orl("s1/1")), "image_b": ("b", img.orl("s39/1"))}).json()
    assert far["match"] is False and far["distance"] > DLIB_DEFAULT_THRESHOLD
    problem(api.post("/v1/verify", files={"image_a": ("a", img.orl("s1/1"))}), 422, "invalid-request")
    problem(api.post("/v1/verify", files={"image_a": ("a", img.orl("s1/1")), "image_b": ("b", img.blue_png())}),
            422, "no-face")


def test_embed_matches_the_pipeline(api, img, serve_pipeline) -> None:
    from cnnkit.data.image_io import load_image

    r = api.post("/v1/embed", files={"image": ("a.pgm", img.orl("s1/1"))})
    body = r.json()
    assert body["encoder_tag"] == serve_pipeline.tag and len(body["faces"]) == 1
    expected = serve_pipeline.faces(load_image(img.orl("s1/1")))[0].embedding
    np.testing.assert_allclose(np.asarray(body["faces"][0]["embedding"]), expected, atol=1e-6)
    assert api.post("/v1/embed", files={"image": ("b.png", img.blue_png())}).json()["faces"] == []


# -- subjects, deletion, thumbnails, export ---------------------------------------------------

def _export_line(name: str, vec: np.ndarray) -> str:
    return json.dumps({"name": name, "embedding": [float(v) for v in vec]})


def _import(api, gallery: str, tag: str, rows: list[str], ctype: str = "application/x-ndjson"):
    header = json.dumps({"format": "cnnkit-gallery-export", "version": 1, "encoder_tag": tag, "dimension": 128})
    return api.post(f"/v1/galleries/{gallery}/import", content="\n".join([header, *rows]).encode(),
                    headers={"Content-Type": ctype})


def test_subjects_cursor_pagination(api, serve_pipeline) -> None:
    api.create()
    rng = np.random.default_rng(0)
    names = [f"p{i:02d}" for i in range(7)]
    r = _import(api, "demo", serve_pipeline.tag, [_export_line(n, rng.normal(size=128) / 11) for n in names])
    assert r.json() == {"gallery": "demo", "subjects": 7, "faces": 7}
    seen, cursor, pages = [], None, 0
    while True:
        page = api.get("/v1/galleries/demo/subjects", params={"limit": 3, **({"cursor": cursor} if cursor else {})}).json()
        seen += [s["name"] for s in page["subjects"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == names and pages == 3
    problem(api.get("/v1/galleries/demo/subjects", params={"cursor": "%%%"}), 422, "invalid-request")
    problem(api.get("/v1/galleries/demo/subjects", params={"limit": 0}), 422, "invalid-request")


def test_delete_removes_every_embedding_and_the_thumbnail(api, img) -> None:
    api.create(thumbnails=True)
    api.enroll("demo", "annabel_q", img.orl("s1/1"))
    api.enroll("demo", "annabel_q", img.orl("s1/3"))
    api.enroll("demo", "bob", img.orl("s2/1"))
    thumb = api.get("/v1/galleries/demo/subjects/annabel_q/thumbnail")
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(thumb.content)).size == (112, 112)
    export = [json.loads(x) for x in api.get("/v1/galleries/demo/export").text.splitlines()[1:]]
    ann_vectors = [np.asarray(x["embedding"], "<f4").tobytes() for x in export if x["name"] == "annabel_q"]
    assert len(ann_vectors) == 2
    assert api.delete("/v1/galleries/demo/subjects/annabel_q").status_code == 204
    problem(api.get("/v1/galleries/demo/subjects/annabel_q"), 404, "subject-not-found")
    problem(api.get("/v1/galleries/demo/subjects/annabel_q/thumbnail"), 404, "subject-not-found")
    problem(api.delete("/v1/galleries/demo/subjects/annabel_q"), 404, "subject-not-found")
    assert api.identify("demo", img.orl("s1/2")).json()["faces"][0]["name"] is None
    raw = b"".join(p.read_bytes() for p in gallery_file(api).parent.glob("demo.sqlite*"))
    assert thumb.content[200:400] not in raw  # the JPEG's bytes are gone
    assert not any(v in raw for v in ann_vectors)  # and so are the vectors
    assert b"annabel_q" not in raw  # and the name
    assert api.get("/v1/galleries/demo/subjects/bob/thumbnail").status_code == 200


def test_no_thumbnails_unless_asked(api, img) -> None:
    api.create(thumbnails=False)
    api.enroll("demo", "ann", img.orl("s1/1"))
    problem(api.get("/v1/galleries/demo/subjects/ann/thumbnail"), 404, "not-found")
    assert api.get("/v1/galleries/demo/subjects/ann").json()["thumbnail"] is False


def test_export_and_import(api, img, serve_pipeline) -> None:
    api.create()
    api.enroll("demo", "ann", img.orl("s1/1"))
    lines = api.get("/v1/galleries/demo/export").text.splitlines()
    header = json.loads(lines[0])
    assert header["encoder_tag"] == serve_pipeline.tag and header["faces"] == 1 and len(lines) == 2
    api.create("copy")
    r = api.post("/v1/galleries/copy/import", content="\n".join(lines).encode(), headers={"Content-Type": "application/x-ndjson"})
    assert r.json() == {"gallery": "copy", "subjects": 1, "faces": 1}
    assert api.identify("copy", img.orl("s1/2")).json()["faces"][0]["name"] == "ann"
    other = _import(api, "copy", "small_cnn:1:0123456789abcdef", [_export_line("eve", np.ones(128) / 12)])
    problem(other, 409, "encoder-mismatch")
    problem(api.post("/v1/galleries/copy/import", content=b"{not json", headers={"Content-Type": "application/x-ndjson"}),
            422, "invalid-request")
    problem(_import(api, "copy", serve_pipeline.tag, ['{"name": "x", "embedding": [1, 2]}']), 422, "invalid-request")
    problem(_import(api, "copy", serve_pipeline.tag, [_export_line("x", np.ones(128))], ctype="image/png"),
            415, "unsupported-media-type")
    assert [s["name"] for s in api.get("/v1/galleries/copy/subjects").json()["subjects"]] == ["ann"]


# -- keys ---------------------------------------------------------------------------------------

def test_keys_roles_and_scopes(api, img) -> None:
    api.create("demo")
    api.create("other")
    keys = api.service.keys
    read_demo, _ = keys.add("read", "demo")
    write_demo, _ = keys.add("write", "demo")
    photo = img.orl("s1/1")
    problem(api.identify("demo", photo, key=None), 401, "unauthorized")
    r = api.identify("demo", photo, key="cnk_00000000_" + "0" * 48)
    assert problem(r, 401, "unauthorized") and "invalid_token" in r.headers["www-authenticate"]
    problem(api.identify("demo", photo, key="garbage"), 401, "unauthorized")
    assert api.identify("demo", photo, key=read_demo).status_code == 200
    problem(api.identify("other", photo, key=read_demo), 403, "forbidden")
    problem(api.enroll("demo", "ann", photo, key=read_demo), 403, "forbidden")
    assert api.enroll("demo", "ann", photo, key=write_demo).status_code == 201
    problem(api.post("/v1/galleries", key=write_demo, json={"name": "x"}), 403, "forbidden")
    problem(api.delete("/v1/galleries/demo", key=write_demo), 403, "forbidden")
    assert api.get("/v1/galleries", key=read_demo).json() == {"galleries": ["demo"]}
    keys.revoke(read_demo.split("_")[1])
    problem(api.identify("demo", photo, key=read_demo), 401, "unauthorized")
    problem(api.client.get("/v1/galleries", params={"api_key": api.key}), 400, "bad-request")


def test_keys_are_stored_hashed(api) -> None:
    db = Path(api.service.config.db) / "_keys.sqlite"
    raw = b"".join(p.read_bytes() for p in db.parent.glob("_keys.sqlite*"))
    assert api.key.encode() not in raw and api.key.split("_")[2].encode() not in raw
    assert api.key.split("_")[1].encode() in raw  # the public id is


def test_open_without_any_key(make_service, img) -> None:
    from cnnkit.serve import create_app
    from fastapi.testclient import TestClient

    svc = make_service().load()
    c = TestClient(create_app(svc))
    assert c.post("/v1/galleries", json={"name": "demo"}).status_code == 201
    svc.keys.add("read")
    problem(c.get("/v1/galleries"), 401, "unauthorized")


# -- bad input: a clear problem, nothing lost -------------------------------------------------

def _huge_png(width: int, height: int) -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def _truncated_jpeg(img) -> bytes:
    from cnnkit.data.image_io import load_image

    buf = io.BytesIO()
    Image.fromarray(load_image(img.orl("s1/1"))).save(buf, format="JPEG", quality=90)
    return buf.getvalue()[: len(buf.getvalue()) // 2]


def test_bad_images_over_http(make_service, img) -> None:
    from cnnkit.serve import create_app
    from fastapi.testclient import TestClient

    svc = make_service(max_upload=300_000).load()
    key, _ = svc.keys.add("admin")
    c = TestClient(create_app(svc), raise_server_exceptions=False)
    h = {"Authorization": f"Bearer {key}"}
    assert c.post("/v1/galleries", json={"name": "demo"}, headers=h).status_code == 201
    assert c.post("/v1/galleries/demo/subjects/ann/faces", files={"image": ("a", img.orl("s1/1"))}, headers=h).status_code == 201
    cases = [
        (b"", 415, "unsupported-image"),
        (b"this is not a photo\n" * 10, 415, "unsupported-image"),
        (_truncated_jpeg(img), 422, "invalid-image"),
        (_huge_png(30000, 30000), 413, "image-too-large"),
        (img.blue_png(), 422, "no-face"),
        (img.side_by_side("s1/2", "s2/1"), 422, "multiple-faces"),
        (b"\xff\xd8" + bytes(400_000), 413, "image-too-large"),  # over the upload limit
    ]
    for data, status, code in cases:
        r = c.post("/v1/galleries/demo/subjects/bob/faces", files={"image": ("x.jpg", data)}, headers=h)
        problem(r, status, code)
    problem(c.post("/v1/galleries/demo/subjects/bob/faces", content=img.orl("s1/2"),
                   headers={**h, "Content-Type": "image/x-portable-graymap"}), 415, "unsupported-media-type")
    problem(c.post("/v1/galleries/demo/subjects/bob/faces", files={"photo": ("x.jpg", img.orl("s1/2"))}, headers=h),
            422, "invalid-request")
    problem(c.post("/v1/galleries/demo/subjects/bob/faces", content=b"--x\r\nbroken", headers={
        **h, "Content-Type": "multipart/form-data; boundary=x"}), 422, "invalid-request")
    problem(c.post("/v1/galleries/nowhere/subjects/bob/faces", files={"image": ("a", img.orl("s1/2"))}, headers=h),
            404, "gallery-not-found")
    problem(c.post("/v1/galleries/demo/identify", files={"image": ("x.jpg", b"text")}, headers=h), 415, "unsupported-image")
    # nothing lost, nothing half-written
    names = [s["name"] for s in c.get("/v1/galleries/demo/subjects", headers=h).json()["subjects"]]
    assert names == ["ann"]
    with sqlite3.connect(Path(svc.config.db) / "demo.sqlite") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_full_queue_answers_429_with_retry_after(make_service, img) -> None:
    from cnnkit.serve import create_app
    from fastapi.testclient import TestClient

    svc = make_service(workers=1, queue=0).load()
    c = TestClient(create_app(svc))
    c.post("/v1/galleries", json={"name": "demo"})
    started, release = threading.Event(), threading.Event()

    def block() -> None:
        started.set()
        release.wait(30)

    holder = threading.Thread(target=lambda: asyncio.run(svc.infer(block)))
    holder.start()
    try:
        assert started.wait(30)
        r = c.post("/v1/galleries/demo/identify", files={"image": ("q", img.orl("s1/2"))})
        problem(r, 429, "rate-limited")
        assert int(r.headers["retry-after"]) >= 1
    finally:
        release.set()
        holder.join()
    assert c.post("/v1/galleries/demo/identify", files={"image": ("q", img.orl("s1/2"))}).status_code == 200


def test_form_strings_are_not_truthy(api, img) -> None:
    r = api.post("/v1/galleries", json={"name": "demo", "thumbnails": "false"})
    assert r.status_code == 201 and r.json()["thumbnails"] is False


def test_the_threshold_follows_the_gallery(api, serve_pipeline) -> None:
    """The gallery-estimated threshold is cached, but never past a change of the gallery."""
    api.create()
    rng = np.random.default_rng(1)
    base = rng.normal(size=128) / 11
    close = lambda: base + rng.normal(0, 0.03, 128)  # noqa: E731 - people closer than the default threshold
    _import(api, "demo", serve_pipeline.tag, [_export_line(f"p{i:02d}", close()) for i in range(12)])
    first = api.get("/v1/info?gallery=demo").json()
    assert first["threshold_source"] == "gallery" and first["threshold"] < DLIB_DEFAULT_THRESHOLD
    assert api.get("/v1/info?gallery=demo").json()["threshold"] == first["threshold"]
    _import(api, "demo", serve_pipeline.tag, [_export_line("p99", close())])
    assert api.get("/v1/info?gallery=demo").json()["threshold"] != first["threshold"]
    assert api.delete("/v1/galleries/demo/subjects/p99").status_code == 204
    assert api.get("/v1/info?gallery=demo").json()["threshold"] == first["threshold"]


def test_subject_names_that_are_not_names(api, img) -> None:
    api.create()
    for bad in ("%20%20", "a%0Ab"):
        problem(api.enroll("demo", bad, img.orl("s1/1")), 422, "invalid-request")
    assert api.enroll("demo", "Zoë Brown", img.orl("s1/1")).status_code == 201
    assert [s["name"] for s in api.get("/v1/galleries/demo/subjects").json()["subjects"]] == ["Zoë Brown"]
