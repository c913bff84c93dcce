"""Galleries by name over one data store: a directory with one SQLite file per gallery
(``DIR/NAME.sqlite``), or a PostgreSQL database with one schema per gallery (``g_NAME``).

Each thread gets its own connection to each gallery, so concurrent requests never share a
transaction. Nothing here keeps a copy of a gallery's vectors: the store's own cache is checked
against the database on every search (SQLite ``data_version``; PostgreSQL searches in SQL), which is
what lets several servers share one gallery.
"""
from __future__ import annotations

import os
import re
import threading
from pathlib import Path
from typing import Any

from cnnkit.core.errors import CnnkitError
from cnnkit.store import Gallery, open_gallery, sidecar

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_]{0,39}$")
SUFFIX = ".sqlite"
#: the settings namespace (in the gallery's own settings table) of what the server stores per gallery
SERVE_NS = "cnnkit-serve"


class GalleryNotFound(CnnkitError):
    """No gallery of that name."""


class GalleryExists(CnnkitError):
    """A gallery of that name already exists."""


class BadGalleryName(CnnkitError):
    """A gallery name that does not match :data:`NAME_RE`."""


def check_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise BadGalleryName(f"gallery name {name!r} must match {NAME_RE.pattern}")
    return name


class GalleryRegistry:
    """Open, create, list and drop galleries of one data store (a directory or a PostgreSQL URL)."""

    def __init__(self, db: str | os.PathLike[str]) -> None:
        self.target = os.fspath(db)
        self.pg = self.target.startswith(("postgresql://", "postgres://"))
        if not self.pg:
            p = Path(self.target)
            if p.exists() and not p.is_dir():
                raise CnnkitError(f"{self.target}: --db must be a directory (one SQLite file per gallery) "
                                  "or a postgresql:// URL")
            p.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._create_lock = threading.RLock()
        self._opened: list[Gallery] = []  # every connection of every thread, closed by close()

    # -- where a gallery lives ------------------------------------------------------------------
    def _schema(self, name: str) -> str:
        return f"g_{name}"

    def _identity(self, name: str) -> Any:
        """Something that changes when the gallery is dropped and created again; None if it is absent."""
        if self.pg:
            row = self._admin().execute("SELECT oid FROM pg_namespace WHERE nspname = %s",
                                        (self._schema(name),)).fetchone()
            return None if row is None else int(row[0])
        try:
            st = (Path(self.target) / f"{name}{SUFFIX}").stat()
        except FileNotFoundError:
            return None
        return (st.st_dev, st.st_ino)

    def _exists(self, name: str) -> bool:
        return self._identity(name) is not None

    def _open(self, name: str, create: bool) -> Gallery:
        if self.pg:
            g = open_gallery(self.target, create=create, schema=self._schema(name))
        else:
            g = open_gallery(Path(self.target) / f"{name}{SUFFIX}", create=create)
        with self._create_lock:
            self._opened.append(g)
        return g

    def _admin(self) -> Any:
        """This thread's PostgreSQL connection for catalogue queries (schemas), kept open."""
        conn = getattr(self._local, "admin", None)
        if conn is None or conn.closed:
            import psycopg

            conn = self._local.admin = psycopg.connect(self.target, autocommit=True)
            with self._create_lock:
                self._opened.append(conn)
        return conn

    def _cache(self) -> dict[str, tuple[Any, Gallery]]:
        cache = getattr(self._local, "galleries", None)
        if cache is None:
            cache = self._local.galleries = {}
        return cache

    # -- the API ----------------------------------------------------------------------------------
    def get(self, name: str) -> Gallery:
        """This thread's connection to gallery ``name`` (:class:`GalleryNotFound` if there is none)."""
        check_name(name)
        cache = self._cache()
        ident = self._identity(name)
        held = cache.get(name)
        if held is not None and held[0] != ident:  # dropped (and maybe created again), perhaps by another server
            cache.pop(name)[1].close()
            held = None
        if held is None:
            if ident is None:
                raise GalleryNotFound(f"no gallery named {name!r}")
            held = cache[name] = (ident, self._open(name, create=False))
        return held[1]

    def create(self, name: str, *, thumbnails: bool = False) -> dict[str, Any]:
        check_name(name)
        with self._create_lock:
            if self._exists(name):
                raise GalleryExists(f"a gallery named {name!r} already exists")
            g = self._open(name, create=True)
            g.set_setting(SERVE_NS, "options", {"thumbnails": bool(thumbnails)})
            self._cache()[name] = (self._identity(name), g)
        return self.describe(name)

    def options(self, name: str) -> dict[str, Any]:
        return self.get(name).get_setting(SERVE_NS, "options", {}) or {}

    def describe(self, name: str) -> dict[str, Any]:
        g = self.get(name)
        people = g.people()
        return {"name": name, "subjects": len(people), "faces": sum(p.faces for p in people),
                "encoder_tag": g.encoder_tag, "thumbnails": bool(self.options(name).get("thumbnails"))}

    def names(self) -> list[str]:
        if self.pg:
            rows = self._admin().execute("SELECT schema_name FROM information_schema.schemata "
                                         "WHERE schema_name LIKE 'g\\_%' ORDER BY schema_name").fetchall()
            return [r[0][2:] for r in rows if NAME_RE.match(r[0][2:])]
        return sorted(p.name[: -len(SUFFIX)] for p in Path(self.target).glob(f"*{SUFFIX}")
                      if NAME_RE.match(p.name[: -len(SUFFIX)]))

    def drop(self, name: str) -> None:
        """Delete the gallery and everything in it (the SQLite file with its WAL, or the schema)."""
        self.get(name).close()
        self._cache().pop(name, None)
        if self.pg:
            self._admin().execute(f'DROP SCHEMA "{self._schema(name)}" CASCADE')
            return
        base = Path(self.target) / f"{name}{SUFFIX}"
        sidecar.discard(sidecar.sidecar_path(base))  # the search matrix holds every vector too
        for p in (base, Path(f"{base}-wal"), Path(f"{base}-shm")):
            p.unlink(missing_ok=True)

    def reachable(self) -> bool:
        """Can the data store be read and written right now?"""
        try:
            if self.pg:
                self._admin().execute("SELECT 1")
                return True
            return os.access(self.target, os.R_OK | os.W_OK | os.X_OK)
        except Exception:  # noqa: BLE001 - any failure means "not reachable"; /readyz says 503
            return False

    def close(self) -> None:
        """Close every connection opened by any thread."""
        with self._create_lock:
            opened, self._opened = self._opened, []
        for g in opened:
            try:
                g.close()
            except Exception:  # noqa: BLE001 - already closed
                pass
