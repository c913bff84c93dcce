"""Serve fixtures: one face pipeline per session (weights load once), a fresh data directory and
Service per test, photos as bytes, and servers started as real ``cnnkit serve`` processes."""
from __future__ import annotations

import importlib.util
import io
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="cnnkit[serve] is not installed")

from fastapi.testclient import TestClient  # noqa: E402

from cnnkit.data.image_io import load_image  # noqa: E402
from cnnkit.serve import ServeConfig, Service, create_app  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
ORL = REPO / "data" / "orl"

# the PostgreSQL server of the store tests (pgserver), shared rather than copied
_spec = importlib.util.spec_from_file_location("_store_conftest", REPO / "tests" / "store" / "conftest.py")
_store = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_store)
pg_url = _store.pg_url


@pytest.fixture
def data_store(tmp_path: Path, request) -> Callable[[str], str]:
    """``--db`` of a fresh data store: ``"sqlite"`` a new directory, ``"postgresql"`` a new database
    on the test PostgreSQL server."""

    def make(backend: str) -> str:
        if backend == "sqlite":
            return str(tmp_path / "galleries")
        import uuid
        from urllib.parse import urlsplit, urlunsplit

        import psycopg

        base = request.getfixturevalue("pg_url")
        dbname = f"serve_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{dbname}"')
        return urlunsplit(urlsplit(base)._replace(path=f"/{dbname}"))

    return make


@pytest.fixture(scope="session")
def serve_pipeline():
    """The in-process service's pipeline: dlib's ResNet (128-d, threshold 0.6), the encoder these API
    tests' numbers are written for; the default encoder is served in test_server.py."""
    from cnnkit.faces import FacePipeline

    return FacePipeline("dlib_resnet", threads=1)


@pytest.fixture
def make_service(tmp_path: Path, serve_pipeline) -> Iterator[Callable[..., Service]]:
    made: list[Service] = []

    def factory(clock: Callable[[], float] = time.time, **config) -> Service:
        config.setdefault("db", str(tmp_path / "data"))
        svc = Service(ServeConfig(**config), pipeline=serve_pipeline, clock=clock)
        made.append(svc)
        return svc

    yield factory
    for svc in made:
        svc.close()


class Api:
    """A TestClient with an admin key, and helpers that send photos the way any client would."""

    def __init__(self, service: Service, key: str | None) -> None:
        self.service, self.key = service, key
        self.client = TestClient(create_app(service), raise_server_exceptions=False)

    def h(self, key: str | None = "admin") -> dict[str, str]:
        key = self.key if key == "admin" else key
        return {"Authorization": f"Bearer {key}"} if key else {}

    def get(self, path: str, key: str | None = "admin", **kw):
        return self.client.get(path, headers=self.h(key), **kw)

    def delete(self, path: str, key: str | None = "admin"):
        return self.client.delete(path, headers=self.h(key))

    def post(self, path: str, key: str | None = "admin", **kw):
        return self.client.post(path, headers={**self.h(key), **kw.pop("headers", {})}, **kw)

    def create(self, name: str = "demo", thumbnails: bool = True):
        r = self.post("/v1/galleries", json={"name": name, "thumbnails": thumbnails})
        assert r.status_code == 201, r.text
        return r

    def enroll(self, gallery: str, subject: str, data: bytes, name: str = "photo.jpg", key="admin", **form):
        return self.post(f"/v1/galleries/{gallery}/subjects/{subject}/faces", key=key,
                         files={"image": (name, data)}, data=form)

    def identify(self, gallery: str, data: bytes, key="admin", **form):
        return self.post(f"/v1/galleries/{gallery}/identify", key=key, files={"image": ("q.jpg", data)}, data=form)


@pytest.fixture
def make_api(make_service) -> Callable[..., Api]:
    """An Api over a loaded Service of these settings (``clock=`` too), with an admin key
    (``keyless=True``: none)."""

    def factory(*, keyless: bool = False, **config) -> Api:
        svc = make_service(**config).load()
        return Api(svc, None if keyless else svc.keys.add("admin")[0])

    return factory


@pytest.fixture
def api(make_api) -> Api:
    return make_api()


def orl(rel: str) -> bytes:
    return (ORL / f"{rel}.pgm").read_bytes()


def png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def side_by_side(*rels: str) -> bytes:
    """ORL photos next to each other: one image, several faces."""
    return png(np.concatenate([load_image(ORL / f"{r}.pgm") for r in rels], axis=1))


def blue_png() -> bytes:
    return png(np.tile(np.array([0, 0, 255], np.uint8), (200, 200, 1)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A real ``cnnkit serve`` process on 127.0.0.1."""

    def __init__(self, db: str, *args: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db = db
        self.log = open(Path(os.environ.get("TMPDIR", "/tmp")) / f"cnnkit-serve-{self.port}.log", "w+")
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cnnkit.cli._main", "serve", "--db", db, "--port", str(self.port),
             "--no-access-log", *args],
            stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, "CNNKIT_THREADS": "1", **(env or {})},
            start_new_session=True)

    def wait_ready(self, timeout: float = 120.0) -> float:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode}: {self.output()}")
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return time.perf_counter() - self.started
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"not ready within {timeout} s: {self.output()}")

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def stop(self, sig: int = 2, timeout: float = 60.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture
def start_server() -> Iterator[Callable[..., Server]]:
    servers: list[Server] = []

    def factory(db: str, *args: str, **kw) -> Server:
        s = Server(db, *args, **kw)
        servers.append(s)
        return s

    yield factory
    for s in servers:
        s.stop()
        s.log.close()


def add_key(db: str, role: str = "admin", *extra: str) -> str:
    """``cnnkit serve keys add``: the key is the last word of the last line printed."""
    out = subprocess.run([sys.executable, "-m", "cnnkit.cli._main", "serve", "keys", "add", "--db", db, "--role", role,
                          *extra], check=True, capture_output=True, text=True).stdout
    return out.strip().splitlines()[-1].split()[-1]


class Images:
    """Photos as bytes (see the module functions)."""
    orl = staticmethod(orl)
    png = staticmethod(png)
    side_by_side = staticmethod(side_by_side)
    blue_png = staticmethod(blue_png)


@pytest.fixture(scope="session")
def img() -> type[Images]:
    return Images


@pytest.fixture(name="add_key")
def _add_key() -> Callable[..., str]:
    return add_key
