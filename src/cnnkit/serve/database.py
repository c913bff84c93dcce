"""The server's own tables (API keys, captured unknown faces), beside the galleries: one small SQLite
file each in a data directory (``DIR/_keys.sqlite``, ``DIR/_unknown.sqlite``), or tables in the
PostgreSQL schema ``cnnkit_serve`` of a ``postgresql://`` data store, so that every server on one
database shares them.

One connection per thread; SQL is written with ``?`` placeholders for both drivers.
"""
from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

PG_SCHEMA = "cnnkit_serve"


def is_pg(target: str) -> bool:
    return target.startswith(("postgresql://", "postgres://"))


class ServerTables:
    """Connections to the server's tables in ``target`` (a data directory: the SQLite file ``file``
    in it; or a PostgreSQL URL: schema :data:`PG_SCHEMA`)."""

    def __init__(self, target: str | os.PathLike[str], file: str) -> None:
        self.target = os.fspath(target)
        self.file = file
        self.pg = is_pg(self.target)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._opened: list[Any] = []
        if self.pg:
            self.execute(f"CREATE SCHEMA IF NOT EXISTS {PG_SCHEMA}")

    def table(self, name: str) -> str:
        """The table's name as SQL spells it on this backend."""
        return f"{PG_SCHEMA}.{name}" if self.pg else name

    def _connect(self) -> Any:
        if self.pg:
            import psycopg

            return psycopg.connect(self.target, autocommit=True)
        path = Path(self.target)
        path.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path / self.file, timeout=30, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA secure_delete = ON")  # deleted rows are overwritten, not just unlinked
        return conn

    def conn(self) -> Any:
        """This thread's connection (autocommit: each statement is its own transaction)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
            with self._lock:
                self._opened.append(conn)
        return conn

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        return self.conn().execute(sql.replace("?", "%s") if self.pg else sql, params)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One write transaction on this thread's connection: every statement in it commits, or none.
        It takes the write lock at once (SQLite ``BEGIN IMMEDIATE``), so two servers run it one after
        the other; on PostgreSQL lock the rows with ``SELECT ... FOR UPDATE``."""
        conn = self.conn()
        if self.pg:
            with conn.transaction():
                yield
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        """Close every connection opened by any thread."""
        with self._lock:
            opened, self._opened = self._opened, []
        self._local = threading.local()
        for conn in opened:
            with suppress(Exception):  # already closed
                conn.close()
