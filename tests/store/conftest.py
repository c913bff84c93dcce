"""Store fixtures. ``make_gallery`` is parametrised over the backends; every test that uses it
runs against each one: SQLite (in memory and in a file) and PostgreSQL + pgvector.

The PostgreSQL server is started once per test session by ``pg_url`` through ``pgserver``
(PostgreSQL 16 + pgvector in a wheel) in a temporary directory, and stopped at the end; set
``CNNKIT_TEST_PG_URL`` to use a server of your own instead. Each test gets its own schema."""
from __future__ import annotations

import os
import shutil
import tempfile
import uuid
import warnings
from pathlib import Path
from typing import Callable, Iterator

import pytest

from cnnkit.store import SQLiteGallery

BACKENDS = ["sqlite-memory", "sqlite-file", pytest.param("pgvector", marks=pytest.mark.pgvector)]


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """URL of a PostgreSQL superuser connection on a server with pgvector."""
    if os.environ.get("CNNKIT_TEST_PG_URL"):
        yield os.environ["CNNKIT_TEST_PG_URL"]
        return
    try:
        with warnings.catch_warnings():  # platformdirs: XDG_RUNTIME_DIR unset -> /tmp/runtime-<uid>
            warnings.simplefilter("ignore")
            import pgserver
    except ImportError as exc:  # pragma: no cover - pgserver is in the test extra
        pytest.skip(f"pgserver is not installed ({exc}); install cnnkit[test] or set CNNKIT_TEST_PG_URL")
    # Not under pytest's basetemp: every pytest session resets /tmp/pytest-of-<user> to 0700, which
    # would lock the server's own user ("pgserver" when run as root) out of a directory in there.
    base = Path(tempfile.mkdtemp(prefix="cnnkit-pgtest-"))
    pgdata = base / "pgdata"
    pgdata.mkdir()
    error: Exception | None = None
    for _ in range(3):  # pg_ctl is given 10 s; on a loaded machine the server may need longer
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                server = pgserver.get_server(pgdata, cleanup_mode="delete")
            break
        except Exception as exc:  # noqa: BLE001 - retried, then reported as the skip reason
            error = exc
            pgserver.PostgresServer._instances.pop(pgdata.resolve(), None)  # forget the failed handle
    else:
        shutil.rmtree(base, ignore_errors=True)
        pytest.skip(f"pgserver could not start PostgreSQL in {pgdata}: {type(error).__name__}: {error}")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(base, ignore_errors=True)


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
