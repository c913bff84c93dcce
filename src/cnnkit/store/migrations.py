"""Ordered schema migrations. ``PRAGMA user_version`` holds the version reached; each migration
runs in the same transaction as the version bump, so a crash leaves the previous version intact."""
from __future__ import annotations

import sqlite3

# The one statement that moves the generation on (migration 2's triggers run it): counter + 1 and a
# fresh random tag, so two histories that diverge from a restored backup never share a generation.
_BUMP = ("UPDATE meta SET value = (CAST(value AS INTEGER) + 1) || ':' || lower(hex(randomblob(8))) "
         "WHERE key = 'generation'")

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
    # the generation that validates the memory-mapped search sidecar (store.sidecar): bumped in the
    # transaction of every change to faces, by whoever makes it
    (2, f"""
    INSERT INTO meta(key, value) VALUES ('gallery_id', lower(hex(randomblob(16))));
    INSERT INTO meta(key, value) VALUES ('generation', '0');
    CREATE TRIGGER faces_generation_insert AFTER INSERT ON faces BEGIN {_BUMP}; END;
    CREATE TRIGGER faces_generation_update AFTER UPDATE ON faces BEGIN {_BUMP}; END;
    CREATE TRIGGER faces_generation_delete AFTER DELETE ON faces BEGIN {_BUMP}; END;
    """),
    # The same photo (SHA-256) at most once per person: the last guard behind the duplicate check
    # that enrolment makes inside its write transaction. Copies left by concurrent enrolments of
    # older versions are dropped first (the earliest row of each person and photo is kept).
    (3, """
    DELETE FROM faces WHERE source_sha256 IS NOT NULL AND id NOT IN
        (SELECT min(id) FROM faces WHERE source_sha256 IS NOT NULL GROUP BY person_id, source_sha256);
    CREATE UNIQUE INDEX faces_person_sha256 ON faces(person_id, source_sha256);
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
    """Statements of a script; a trigger's body (``BEGIN ...; END``) stays in one statement."""
    out, current = [], ""
    for piece in sql.split(";"):
        current += piece + ";"
        if sqlite3.complete_statement(current):
            if current.strip(" \n;"):
                out.append(current.strip())
            current = ""
    return out
