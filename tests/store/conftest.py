"""Store fixtures. ``make_gallery`` is parametrised over the backends; every test that uses it
runs against each one: SQLite (in memory and in a file) and PostgreSQL + pgvector.

The PostgreSQL server is started once per test session by ``pg_url`` through ``pgserver``
(PostgreSQL 16 + pgvector in a wheel) in a temporary directory, and stopped at the end; set
``CNNKIT_TEST_PG_URL`` to use a server of your own instead. Each test gets its own schema."""
from __future__ import annotations

import os
import uuid
import warnings
from typing import Callable, Iterator

import pytest

from cnnkit.store import SQLiteGallery

BACKENDS = ["sqlite-memory", "sqlite-file", pytest.param("pgvector", marks=pytest.mark.pgvector)]


@pytest.fixture(scope="session")
def pg_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a PostgreSQL superuser connection on a server with pgvector."""
    if os.environ.get("CNNKIT_TEST_PG_URL"):
        yield os.environ["CNNKIT_TEST_PG_URL"]
        return
    try:
        import pgserver
    except ImportError as exc:  # pragma: no cover - pgserver is in the test extra
        pytest.skip(f"pgserver is not installed ({exc}); install cnnkit[test] or set CNNKIT_TEST_PG_URL")
    try:
        with warnings.catch_warnings():  # platformdirs: XDG_RUNTIME_DIR unset -> /tmp/runtime-<uid>
            warnings.simplefilter("ignore")
            server = pgserver.get_server(tmp_path_factory.mktemp("pgdata"), cleanup_mode="delete")
    except Exception as exc:  # noqa: BLE001 - any failure to start means: no server for this session
        pytest.skip(f"pgserver could not start PostgreSQL: {type(exc).__name__}: {exc}")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


def _drop_schema(url: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def pg_schema(pg_url: str) -> Iterator[str]:
    """A fresh schema name, dropped (with everything in it) after the test."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    yield schema
    _drop_schema(pg_url, schema)


@pytest.fixture
def pgvector_gallery_factory(pg_url: str, pg_schema: str) -> Iterator[Callable[..., object]]:
    from cnnkit.store.pgvector import PgVectorGallery

    opened = []

    def factory(**kwargs):
        g = PgVectorGallery(pg_url, schema=pg_schema, **kwargs)
        opened.append(g)
        return g

    yield factory
    for g in opened:
        g.close()


@pytest.fixture(params=BACKENDS)
def make_gallery(request: pytest.FixtureRequest, tmp_path) -> Iterator[Callable[..., object]]:
    opened = []

    def factory(**kwargs):
        if request.param == "sqlite-memory":
            g = SQLiteGallery(":memory:", **kwargs)
        elif request.param == "sqlite-file":
            g = SQLiteGallery(tmp_path / "gallery.sqlite", **kwargs)
        else:  # other backends register a factory fixture named "<backend>_gallery_factory"
            g = request.getfixturevalue(f"{request.param.replace('-', '_')}_gallery_factory")(**kwargs)
        opened.append(g)
        return g

    yield factory
    for g in opened:
        g.close()
