"""Real ``cnnkit serve`` processes on 127.0.0.1: the issue's check sequence as an outside client
would run it, Ctrl-C, the refusal to bind publicly without keys, the keys CLI, concurrent
enrollment, a client that disconnects mid-upload, and two servers sharing one gallery."""
from __future__ import annotations

import signal
import socket
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow


def _problem(r: httpx.Response, status: int | None = None) -> dict:
    assert r.headers["content-type"] == "application/problem+json", r.text
    body = r.json()
    assert "code" in body and body["status"] == r.status_code
    if status is not None:
        assert r.status_code == status, r.text
    return body


def test_the_check_sequence_of_the_issue(tmp_path: Path, start_server, add_key, img) -> None:
    db = str(tmp_path / "galleries")
    key = add_key(db, "admin")
    server = start_server(db)
    seconds = server.wait_ready(60)
    print(f"\ncnnkit serve ready in {seconds:.1f} s")
    h = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=server.url, timeout=60) as c:
        assert c.post("/v1/galleries", json={"name": "demo"}, headers=h).status_code in (200, 201)
        r = c.post("/v1/galleries/demo/subjects/ann/faces", files={"image": ("1.pgm", img.orl("s1/1"))}, headers=h)
        assert r.status_code == 201, r.text
        r = c.post("/v1/galleries/demo/identify", files={"image": ("2.pgm", img.orl("s1/2"))}, headers=h)
        assert r.status_code == 200 and r.json()["faces"][0]["name"] == "ann"
        r = c.post("/v1/galleries/demo/identify", files={"image": ("blue.png", img.blue_png())}, headers=h)
        assert r.status_code == 200 and r.json()["faces"] == []
        text = b"just some text, not a photo\n" * 5
        r = c.post("/v1/galleries/demo/identify", files={"image": ("x.jpg", text)}, headers=h)
        assert 400 <= r.status_code < 500 and _problem(r)["code"]
        r = c.post("/v1/galleries/demo/identify", files={"image": ("x.jpg", text)})
        _problem(r, 401)
        assert c.delete("/v1/galleries/demo/subjects/ann", headers=h).status_code == 204
        r = c.post("/v1/galleries/demo/identify", files={"image": ("2.pgm", img.orl("s1/2"))}, headers=h)
        assert r.json()["faces"][0]["name"] is None
        spec = c.get("/openapi.json")
        assert spec.status_code == 200 and spec.json()["openapi"].startswith("3.")
    assert server.stop(signal.SIGINT) == 0
    out = server.output()
    assert "stopped; galleries closed" in out and "Traceback" not in out
    with sqlite3.connect(Path(db) / "demo.sqlite") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_refuses_a_public_address_without_keys(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "cnnkit.cli._main", "serve", "--db", str(tmp_path / "d"),
                        "--host", "0.0.0.0"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "refusing to listen on 0.0.0.0 without API keys" in lines[0]


def test_keys_cli(tmp_path: Path, add_key) -> None:
    db = str(tmp_path / "d")
    key = add_key(db, "read", "--gallery", "demo", "--note", "door camera")
    assert key.startswith("cnk_") and len(key.split("_")[2]) == 48
    cli = [sys.executable, "-m", "cnnkit.cli._main", "serve", "keys"]
    listing = subprocess.run([*cli, "list", "--db", db], capture_output=True, text=True, check=True).stdout
    kid = key.split("_")[1]
    assert kid in listing and "door camera" in listing and key.split("_")[2] not in listing
    out = subprocess.run([*cli, "revoke", "--db", db, kid], capture_output=True, text=True, check=True).stdout
    assert out.startswith(f"key {kid} revoked at ")
    bad = subprocess.run([*cli, "revoke", "--db", db, "nope"], capture_output=True, text=True)
    assert bad.returncode == 2 and "no key with id 'nope'" in bad.stderr


def test_concurrent_enrollment_disconnects_and_ctrl_c(tmp_path: Path, start_server, add_key, img) -> None:
    """20 clients enroll at once while another client drops its upload half-way; then Ctrl-C while
    enrollments are still arriving. Every acknowledged enrollment is in the gallery, which passes
    integrity_check."""
    db = str(tmp_path / "galleries")
    key = add_key(db, "admin")
    server = start_server(db, "--workers-threads", "2")
    server.wait_ready()
    h = {"Authorization": f"Bearer {key}"}
    httpx.post(server.url + "/v1/galleries", json={"name": "demo"}, headers=h, timeout=60).raise_for_status()

    # a client that disconnects mid-upload
    body = b"--b\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.pgm\"\r\n\r\n" + img.orl("s1/1")
    with socket.create_connection(("127.0.0.1", server.port)) as s:
        s.sendall(b"POST /v1/galleries/demo/subjects/halfway/faces HTTP/1.1\r\nHost: x\r\n"
                  b"Authorization: Bearer " + key.encode() + b"\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                  b"Content-Length: 500000\r\n\r\n" + body[: len(body) // 2])

    acknowledged: list[str] = []
    answers: list[int] = []
    lock = threading.Lock()

    def enroll(person: int, photos: range) -> None:
        with httpx.Client(base_url=server.url, timeout=120) as c:
            for p in photos:
                try:
                    r = c.post(f"/v1/galleries/demo/subjects/s{person}/faces",
                               files={"image": (f"{p}.pgm", img.orl(f"s{person}/{p}"))}, headers=h)
                except httpx.TransportError:
                    return  # the server went away (Ctrl-C below)
                with lock:
                    answers.append(r.status_code)
                    if r.status_code == 201:
                        acknowledged.append(f"s{person}/{p}")

    first = [threading.Thread(target=enroll, args=(i, range(1, 2))) for i in range(1, 21)]
    for t in first:
        t.start()
    for t in first:
        t.join()
    assert answers.count(201) == 20, answers  # 20 clients at once: every one enrolled
    status = httpx.get(server.url + "/v1/galleries/demo/subjects?limit=100", headers=h, timeout=60).json()
    assert sorted(s["name"] for s in status["subjects"]) == sorted(f"s{i}" for i in range(1, 21))  # no "halfway"

    more = [threading.Thread(target=enroll, args=(i, range(2, 11))) for i in range(21, 25)]
    for t in more:
        t.start()
    while len(acknowledged) < 24:  # let a few land, then Ctrl-C mid-stream
        threading.Event().wait(0.05)
    assert server.stop(signal.SIGINT) == 0
    for t in more:
        t.join()
    with sqlite3.connect(Path(db) / "demo.sqlite") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = {f"{n}/{src.split('.')[0]}" for n, src in conn.execute(
            "SELECT p.name, f.source_name FROM faces f JOIN people p ON p.id = f.person_id")}
    missing = set(acknowledged) - stored
    assert not missing, f"acknowledged but not stored: {missing}"
    assert all(s in (201, 503) for s in answers), answers


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.pgvector)])
def test_two_servers_share_one_gallery(backend: str, data_store, start_server, add_key, img) -> None:
    db = data_store(backend)
    key = add_key(db, "admin")
    a, b = start_server(db), start_server(db)
    a.wait_ready()
    b.wait_ready()
    h = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=a.url, timeout=60) as ca, httpx.Client(base_url=b.url, timeout=60) as cb:
        assert ca.post("/v1/galleries", json={"name": "demo"}, headers=h).status_code == 201
        assert cb.get("/v1/galleries", headers=h).json() == {"galleries": ["demo"]}
        assert ca.post("/v1/galleries/demo/subjects/ann/faces", files={"image": ("1", img.orl("s1/1"))},
                       headers=h).status_code == 201
        r = cb.post("/v1/galleries/demo/identify", files={"image": ("2", img.orl("s1/2"))}, headers=h)
        assert r.json()["faces"][0]["name"] == "ann"  # enrolled through a, identified through b
        assert ca.delete("/v1/galleries/demo/subjects/ann", headers=h).status_code == 204
        r = cb.post("/v1/galleries/demo/identify", files={"image": ("2", img.orl("s1/2"))}, headers=h)
        assert r.json()["faces"][0]["name"] is None  # deleted through a: gone from b on the next request
        read_key = add_key(db, "read")  # a key made after both started works on both
        assert cb.get("/v1/galleries", headers={"Authorization": f"Bearer {read_key}"}).status_code == 200
    assert a.stop() == 0 and b.stop() == 0


def test_service_loads_the_default_and_a_fused_encoder(tmp_path: Path) -> None:
    """No --encoder: the library's default encoder (one owner); a fused encoder warms up too (one
    chip per part) instead of failing on a single blank chip."""
    from cnnkit.faces.encoders import DEFAULT_ENCODER, choose_encoder, load_face_encoder
    from cnnkit.serve.service import Service, ServeConfig

    plain = Service(ServeConfig(db=str(tmp_path / "a"))).load()
    assert choose_encoder() == DEFAULT_ENCODER and plain.pipeline.tag == load_face_encoder(DEFAULT_ENCODER).tag
    fused = Service(ServeConfig(db=str(tmp_path / "b"), encoder="dlib_resnet+sface")).load()
    assert [p.name for p in fused.pipeline.encoder.parts] == ["dlib_resnet", "sface"]


def test_each_gallery_is_served_with_its_own_encoder(tmp_path: Path, img) -> None:
    """A gallery enrolled with dlib_resnet keeps working on a server whose default encoder is the
    fusion (no --encoder), as the CLI's choose_encoder does; a new gallery gets the default."""
    from cnnkit.faces.encoders import DEFAULT_ENCODER
    from cnnkit.serve.service import Service, ServeConfig

    assert DEFAULT_ENCODER == "dlib_resnet+sface"
    svc = Service(ServeConfig(db=str(tmp_path / "g"))).load()
    svc.galleries.create("old")
    from cnnkit.faces import FacePipeline

    dlib = FacePipeline("dlib_resnet", threads=1)
    svc.galleries.get("old").add_faces("ann", dlib.encode_one(img.orl("s1/1")).embedding, tag=dlib.tag)
    found = svc.identify("old", img.orl("s1/2"))
    assert [f["name"] for f in found["faces"]] == ["ann"]
    assert svc.info("old")["encoder_tag"] == dlib.tag
    svc.galleries.create("new")
    assert svc.enroll("new", "bob", img.orl("s2/1"))[0] == 201
    assert svc.galleries.get("new").encoder_tag == svc.pipeline.tag
