"""API keys: ``cnk_<id>_<secret>``, stored as the SHA-256 of the whole key, scoped to one gallery
(or ``*``) with a role. Roles are ordered: ``read`` (verify, identify, embed, list) < ``write``
(enroll, delete subjects, import) < ``admin`` (create and delete galleries).

The store is one of the server's own tables (:class:`~cnnkit.serve.database.ServerTables`): a small
SQLite file beside the galleries (``DIR/_keys.sqlite``) or the PostgreSQL schema ``cnnkit_serve`` of
a ``postgresql://`` data store, so that every server on one database sees a new or revoked key on
its next request.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone

from cnnkit.core.errors import CnnkitError
from cnnkit.serve.database import ServerTables

ROLES = ("read", "write", "admin")
KEYS_FILE = "_keys.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS {t} (
    id TEXT PRIMARY KEY,
    hash TEXT NOT NULL,
    role TEXT NOT NULL,
    gallery TEXT NOT NULL,
    note TEXT,
    created_at TEXT NOT NULL,
    revoked_at TEXT
)"""


class KeyStoreError(CnnkitError):
    """A key cannot be created or revoked (unknown id, bad role)."""


@dataclass(frozen=True)
class ApiKey:
    id: str
    role: str
    gallery: str  # a gallery name, or "*" for every gallery
    created_at: str
    revoked_at: str | None = None
    note: str | None = None

    def allows(self, role: str, gallery: str | None) -> bool:
        """May this key act with ``role`` on ``gallery`` (``None``: no gallery involved)?"""
        if ROLES.index(self.role) < ROLES.index(role):
            return False
        if gallery is None:
            return role != "admin" or self.gallery == "*"
        return self.gallery in ("*", gallery)


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class KeyStore:
    """Keys in SQLite (a data directory) or PostgreSQL (a URL). One connection per thread."""

    def __init__(self, db: str | os.PathLike[str]) -> None:
        self.db = ServerTables(db, KEYS_FILE)
        self.target, self.pg = self.db.target, self.db.pg
        self._table = self.db.table("api_keys")
        self._ever = False
        self.db.execute(_SCHEMA.format(t=self._table))

    def close(self) -> None:
        self.db.close()

    # -- management (the CLI) --------------------------------------------------------------------
    def add(self, role: str, gallery: str = "*", note: str | None = None) -> tuple[str, ApiKey]:
        """Create a key; returns the key itself (shown once, never stored) and its record."""
        if role not in ROLES:
            raise KeyStoreError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
        kid, secret = secrets.token_hex(4), secrets.token_hex(24)
        key = f"cnk_{kid}_{secret}"
        rec = ApiKey(kid, role, gallery, _now(), None, note)
        self.db.execute(f"INSERT INTO {self._table}(id, hash, role, gallery, note, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                        (kid, _digest(key), role, gallery, note, rec.created_at))
        return key, rec

    def list(self) -> list[ApiKey]:
        rows = self.db.execute(f"SELECT id, role, gallery, created_at, revoked_at, note FROM {self._table} "
                               "ORDER BY created_at, id").fetchall()
        return [ApiKey(*r) for r in rows]

    def revoke(self, kid: str) -> ApiKey:
        n = self.db.execute(f"UPDATE {self._table} SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                            (_now(), kid)).rowcount
        found = [k for k in self.list() if k.id == kid]
        if not found:
            raise KeyStoreError(f"no key with id {kid!r} (see `cnnkit serve keys list`)")
        if n == 0 and found[0].revoked_at is None:  # pragma: no cover - a concurrent revoke
            raise KeyStoreError(f"key {kid!r} could not be revoked")
        return found[0]

    # -- checks (the server) ---------------------------------------------------------------------
    def any(self) -> bool:
        """Has any key ever been created? (Revoked keys count, so revoking the last key never opens
        the server.)"""
        if not self._ever:
            self._ever = self.db.execute(f"SELECT 1 FROM {self._table} LIMIT 1").fetchone() is not None
        return self._ever

    def check(self, key: str) -> ApiKey | None:
        """The live record of ``key``, or None (wrong, malformed or revoked). The hash is compared
        with :func:`hmac.compare_digest`."""
        parts = key.split("_")
        if len(parts) != 3 or parts[0] != "cnk" or len(parts[1]) != 8:
            return None
        row = self.db.execute(f"SELECT hash, id, role, gallery, created_at, revoked_at, note FROM {self._table} "
                              "WHERE id = ?", (parts[1],)).fetchone()
        if row is None:
            hmac.compare_digest(_digest(key), _digest(key))  # same work whether or not the id exists
            return None
        if not hmac.compare_digest(row[0], _digest(key)) or row[5] is not None:
            return None
        return ApiKey(*row[1:])
