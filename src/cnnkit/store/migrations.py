"""Ordered schema migrations. ``PRAGMA user_version`` holds the version reached; each migration
runs in the same transaction as the version bump, so a crash leaves the previous version intact."""
from __future__ import annotations

import sqlite3

# (version, SQL). Append only: never edit a migration that has shipped.
MIGRATIONS: list[tuple[int, str]] = [
    (1, """
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE people (
        id         INTEGER PRIMARY KEY,
        name       TEXT NOT NULL UNIQUE,
        created_at TEXT NOT NULL
    );
    CREATE TABLE faces (
        id            INTEGER PRIMARY KEY,
        person_id     INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
        encoder_tag   TEXT NOT NULL,
        dim           INTEGER NOT NULL CHECK (dim > 0),
        vector        BLOB NOT NULL CHECK (length(vector) = 4 * dim),
        source_name   TEXT,
        source_sha256 TEXT,
        box           TEXT,
        created_at    TEXT NOT NULL
    );
    CREATE INDEX faces_person ON faces(person_id);
    CREATE INDEX faces_sha256 ON faces(source_sha256);
    CREATE TABLE settings (
        encoder_tag TEXT NOT NULL,
        key         TEXT NOT NULL,
        value       TEXT NOT NULL,
        updated_at  TEXT NOT NULL,
        PRIMARY KEY (encoder_tag, key)
    );
    INSERT INTO meta(key, value) VALUES ('application', 'cnnkit-gallery');
    """),
]

LATEST = MIGRATIONS[-1][0]


def migrate(conn: sqlite3.Connection) -> int:
    """Bring ``conn`` (autocommit mode) to the latest schema; returns the version reached."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    for target, sql in MIGRATIONS:
        if target <= version:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            # re-read inside the write lock: another process may have migrated meanwhile
            if conn.execute("PRAGMA user_version").fetchone()[0] >= target:
                conn.execute("ROLLBACK")
                continue
            for statement in _split(sql):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {int(target)}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        version = target
    return conn.execute("PRAGMA user_version").fetchone()[0]


def _split(sql: str) -> list[str]:
    return [s.strip() for s in sql.split(";") if s.strip()]
