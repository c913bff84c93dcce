"""The embedded gallery: SQLite through the standard library.

WAL mode, foreign keys, ``secure_delete`` (removed embeddings are overwritten, not just unlinked),
a busy timeout so concurrent enrollments wait instead of failing, and every write inside one
``BEGIN IMMEDIATE`` transaction. Search is exact (``store.search``): the embeddings are held as
one contiguous float32 matrix, rebuilt only when the database changed, scanned first in the
kernel's format and re-ranked exactly.
"""
from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from cnnkit.core.errors import RemovalPendingError, StoreError, UnknownNameError, printable
from cnnkit.store.base import (
    FaceSource,
    Match,
    Person,
    check_faces,
    check_tag,
    normalize_name,
    pending_key,
)
from cnnkit.store.codec import decode_matrix, encode_vector
from cnnkit.store import sidecar
from cnnkit.store.migrations import LATEST, migrate
from cnnkit.store.search import ScoreKernel, SearchIndex, search


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# SQLite's primary result codes -> what happened, in words a user can act on
_FAULTS = {
    "SQLITE_CORRUPT": "the gallery file is corrupt (database disk image is malformed); restore it from a backup",
    "SQLITE_NOTADB": "not a cnnkit gallery (not an SQLite database: file is not a database)",
    "SQLITE_FULL": "the disk is full (database or disk is full); nothing of this write was kept",
    "SQLITE_READONLY": "the gallery is read-only (attempt to write a readonly database): check the permissions "
                       "of the file and of its folder",
    "SQLITE_CANTOPEN": "cannot open the gallery file (unable to open database file): check that its folder exists "
                       "and is writable",
    "SQLITE_IOERR": "I/O error while reading or writing the gallery (disk failing or removed?)",
    "SQLITE_BUSY": "the gallery is busy: another process held its lock for longer than the busy timeout",
    "SQLITE_LOCKED": "the gallery is locked by another connection",
    "SQLITE_PERM": "permission denied on the gallery file",
}


def fault(exc: sqlite3.Error) -> str:
    """What an sqlite3 error means, in one line (the result code's meaning, else SQLite's text)."""
    name = getattr(exc, "sqlite_errorname", None) or ""
    for code, words in _FAULTS.items():
        if name == code or name.startswith(code + "_"):
            return words
    return str(exc) or type(exc).__name__


class SQLiteGallery:
    """A face gallery in one SQLite file (or ``":memory:"``, or an open connection).

    Args:
        path: file path, ``":memory:"`` or a ``sqlite3.Connection`` opened with ``isolation_level=None``.
        create: create the file when it does not exist (otherwise :class:`StoreError`).
        synchronous: ``"NORMAL"`` (default; durable across application crashes) or ``"FULL"``
            (also across power loss).
        kernel: the search's first pass (``store.search.ScoreKernel``); default float32 numpy.
            ``cnnkit.distances.lowp.TorchScoreKernel`` scans int8 / bfloat16 copies instead.
    """

    def __init__(self, path: str | os.PathLike[str] | sqlite3.Connection = ":memory:", *,
                 create: bool = True, synchronous: str = "NORMAL", timeout: float = 60.0,
                 kernel: ScoreKernel | None = None) -> None:
        self._lock = threading.RLock()
        self._cache: tuple[int, SearchIndex] | None = None
        self.kernel = kernel
        self._writes = 0
        self._timeout = float(timeout)
        if isinstance(path, sqlite3.Connection):
            self.path, self.conn = "<connection>", path
        else:
            self.path = os.fspath(path)
            if self.path != ":memory:":
                p = Path(self.path)
                if p.is_dir():
                    raise StoreError(f"{self.path}: is a directory, not a gallery file")
                if not p.exists() and not create:
                    raise StoreError(f"{self.path}: no such gallery; nobody is enrolled yet "
                                 "(`cnnkit face enroll NAME PHOTO` creates it)")
                if not p.parent.exists():
                    p.parent.mkdir(parents=True, exist_ok=True)
            try:
                self.conn = sqlite3.connect(self.path, timeout=timeout, isolation_level=None,
                                            check_same_thread=False)
            except sqlite3.Error as exc:
                raise StoreError(f"{self.path}: cannot open gallery: {fault(exc)}") from exc
        self._checked = False  # quick_check passed on this connection (run before the first write)
        try:
            self._configure(synchronous, timeout)
            migrate(self.conn)
            self._check_application()
        except sqlite3.Error as exc:
            self.conn.close()
            raise StoreError(f"{self.path}: cannot open gallery: {fault(exc)}") from exc
        except StoreError:
            self.conn.close()
            raise

    # -- setup -------------------------------------------------------------------------------
    def _configure(self, synchronous: str, timeout: float) -> None:
        c = self.conn
        c.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        if self.path != ":memory:":
            mode = c.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise StoreError(f"{self.path}: cannot switch the gallery to WAL mode (got {mode})")
        c.execute("PRAGMA foreign_keys = ON")
        c.execute("PRAGMA secure_delete = ON")
        if synchronous.upper() not in {"NORMAL", "FULL"}:
            raise StoreError(f"synchronous must be NORMAL or FULL, got {synchronous!r}")
        c.execute(f"PRAGMA synchronous = {synchronous.upper()}")

    def _check_application(self) -> None:
        version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        if version > LATEST:
            raise StoreError(f"{self.path}: gallery schema version {version} is newer than this cnnkit ({LATEST})")
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'application'").fetchone()
        if row is None or row[0] != "cnnkit-gallery":
            raise StoreError(f"{self.path}: an SQLite database, but not a cnnkit gallery")

    @property
    def schema_version(self) -> int:
        with self._reading() as c:
            return int(c.execute("PRAGMA user_version").fetchone()[0])

    # -- transactions ------------------------------------------------------------------------
    @contextlib.contextmanager
    def atomic(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE``): all of it is committed, or none of it."""
        with self._lock:
            self._check_before_writing()
            try:
                self.conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreError(f"{self.path}: cannot write: {fault(exc)}") from exc
            try:
                yield self.conn
                self.conn.execute("COMMIT")
            except BaseException as exc:
                self._rollback()
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(f"{self.path}: write failed, nothing written: {fault(exc)}") from exc
                raise
            finally:
                self._writes += 1

    def _rollback(self) -> None:
        # After SQLITE_FULL or an I/O error SQLite may have rolled back already; a second
        # ROLLBACK would raise and hide the error that matters.
        if self.conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self.conn.execute("ROLLBACK")

    def _check_before_writing(self) -> None:
        """``PRAGMA quick_check`` once per connection before its first write: refuse to write into
        a corrupt file (reads of it fail with a StoreError saying it is corrupt)."""
        if self._checked or self.path == ":memory:":
            return
        try:
            result = [r[0] for r in self.conn.execute("PRAGMA quick_check").fetchall()]
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: refusing to write: {fault(exc)}") from exc
        if result != ["ok"]:
            raise StoreError(f"{self.path}: refusing to write: the gallery file is corrupt (quick_check: "
                             f"{'; '.join(map(str, result[:3]))}); restore it from a backup")
        self._checked = True

    @contextlib.contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """Serialise use of the connection; a failed read is a StoreError saying what happened."""
        with self._lock:
            try:
                yield self.conn
            except sqlite3.Error as exc:
                raise StoreError(f"{self.path}: cannot read the gallery: {fault(exc)}") from exc

    # -- encoder tag ---------------------------------------------------------------------------
    @property
    def encoder_tag(self) -> str | None:
        with self._reading() as c:
            row = c.execute("SELECT value FROM meta WHERE key = 'encoder_tag'").fetchone()
        return None if row is None else row[0]

    @property
    def dim(self) -> int | None:
        with self._reading() as c:
            row = c.execute("SELECT value FROM meta WHERE key = 'dim'").fetchone()
        return None if row is None else int(row[0])

    @property
    def revision(self) -> str:
        """The gallery's generation (``"<counter>:<random>"``): migration 2's triggers move it on
        with every insert, update and delete of a face, so it is what the search sidecar and
        cached decisions are both keyed on."""
        with self._reading() as c:
            row = c.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
        return "0" if row is None else str(row[0])

    # -- writes ------------------------------------------------------------------------------
    def add_faces(self, name: str, embeddings: np.ndarray, *, tag: str,
                  sources: Sequence[FaceSource] | None = None, skip_existing: bool = False) -> list[int]:
        """Add embeddings (N, D) of one person (created if new) in one transaction; returns face ids.

        With ``skip_existing``, rows whose source SHA-256 is already in the gallery (for anyone) are
        left out, checked inside the same write transaction, so concurrent enrollments of one photo
        store it once; their ids are missing from the result. Whatever the flag, the same photo
        is stored at most once per person (a unique index)."""
        emb = np.asarray(embeddings, dtype=np.float32)
        if emb.ndim == 1:
            emb = emb[None, :]
        name = normalize_name(name)
        emb, srcs = check_faces([name] * (len(emb) if emb.ndim == 2 else 1), emb, sources)
        blobs = [encode_vector(v) for v in emb]
        now = _now()
        with self.atomic() as c:
            check_tag(self.encoder_tag, tag)
            dim = self.dim
            if dim is not None and dim != emb.shape[1]:
                raise StoreError(f"gallery vectors have D={dim}, got D={emb.shape[1]}")
            if self.encoder_tag is None:
                c.execute("INSERT INTO meta(key, value) VALUES ('encoder_tag', ?)", (tag,))
                c.execute("INSERT INTO meta(key, value) VALUES ('dim', ?)", (str(emb.shape[1]),))
            c.execute("INSERT OR IGNORE INTO people(name, created_at) VALUES (?, ?)", (name, now))
            pid = c.execute("SELECT id FROM people WHERE name = ?", (name,)).fetchone()[0]
            ids = []
            for blob, src in zip(blobs, srcs):
                if skip_existing and src.sha256 is not None and c.execute(
                        "SELECT 1 FROM faces WHERE source_sha256 = ? LIMIT 1", (src.sha256,)).fetchone():
                    continue
                cur = c.execute(
                    "INSERT INTO faces(person_id, encoder_tag, dim, vector, source_name, source_sha256, box, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(person_id, source_sha256) DO NOTHING",
                    (pid, tag, emb.shape[1], blob, src.file_name, src.sha256,
                     None if src.box is None else json.dumps([round(float(v), 2) for v in src.box]), now),
                )
                if cur.rowcount:
                    ids.append(int(cur.lastrowid))
            if not ids and not c.execute("SELECT 1 FROM faces WHERE person_id = ? LIMIT 1", (pid,)).fetchone():
                c.execute("DELETE FROM people WHERE id = ?", (pid,))  # nothing added: no empty person left
        return ids

    def remove_person(self, name: str, *, wait: float = 10.0) -> int:
        """Delete a person and every embedding of theirs; returns how many embeddings were removed.

        With ``secure_delete`` the deleted cells and freed pages are zeroed in the new page
        versions; a ``wal_checkpoint(TRUNCATE)`` then copies them over the old pages in the file
        and empties the WAL. Another connection inside a read transaction pins the old pages, so
        the checkpoint waits for readers up to ``wait`` seconds and its result is checked: if it
        could not complete, :class:`RemovalPendingError` is raised (the rows are deleted, their
        bytes not yet). Calling ``remove_person`` again with the same name finishes the job (the
        gallery keeps only a SHA-256 of a pending name, never the name itself). The search sidecar
        is deleted before the commit and rewritten by the next search.

        Raises:
            UnknownNameError: no such person, and no removal pending.
            RemovalPendingError: readers still hold the gallery; retry when they close.
        """
        name = normalize_name(name)
        key = pending_key(name)
        with self.atomic() as c:
            row = c.execute("SELECT id FROM people WHERE name = ?", (name,)).fetchone()
            got = c.execute("SELECT value FROM meta WHERE key = 'removal_pending'").fetchone()
            pending = json.loads(got[0]) if got else {}
            if row is None and key not in pending:
                raise UnknownNameError(f"no person named {printable(name)!r} in {self.path}")
            if row is not None:
                n = c.execute("DELETE FROM faces WHERE person_id = ?", (row[0],)).rowcount
                c.execute("DELETE FROM people WHERE id = ?", (row[0],))
                if c.execute("SELECT COUNT(*) FROM faces").fetchone()[0] == 0:
                    c.execute("DELETE FROM meta WHERE key IN ('encoder_tag', 'dim')")
                pending[key] = pending.get(key, 0) + n
                c.execute("INSERT INTO meta(key, value) VALUES ('removal_pending', ?) "
                          "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (json.dumps(pending),))
                if self.path not in (":memory:", "<connection>"):
                    # before the commit: no file keeps the removed vectors, even after a crash
                    self._cache = None
                    sidecar.discard(sidecar.sidecar_path(self.path))
        self.purge(wait=wait, what=f"{printable(name)!r} is deleted, but")
        with self.atomic() as c:  # the bytes are gone: the removal is done
            got = c.execute("SELECT value FROM meta WHERE key = 'removal_pending'").fetchone()
            pending = json.loads(got[0]) if got else {}
            n = pending.pop(key, 0)
            if pending:
                c.execute("UPDATE meta SET value = ? WHERE key = 'removal_pending'", (json.dumps(pending),))
            else:
                c.execute("DELETE FROM meta WHERE key = 'removal_pending'")
        return int(n)

    def purge(self, *, wait: float = 10.0, what: str = "deleted rows are gone from the tables, but") -> None:
        """Make deleted bytes leave the files: checkpoint the WAL into the database and truncate it,
        waiting up to ``wait`` seconds for readers; :class:`RemovalPendingError` if they stay."""
        if self.path == ":memory:":
            return
        with self._lock:
            try:
                self.conn.execute(f"PRAGMA busy_timeout = {int(wait * 1000)}")
                busy, log, done = self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            except sqlite3.Error as exc:
                raise StoreError(f"{self.path}: cannot checkpoint the gallery: {fault(exc)}") from exc
            finally:
                with contextlib.suppress(sqlite3.Error):
                    self.conn.execute(f"PRAGMA busy_timeout = {int(self._timeout * 1000)}")
        if busy or log not in (0, -1) or done not in (0, -1):
            readers = self._readers()
            who = "other connections hold" if readers is None else f"{readers} readers hold"
            raise RemovalPendingError(
                f"{self.path}: removal pending: {what} its bytes stay in the gallery files while {who} the "
                f"gallery (waited {wait:g} s); rerun the removal when they close", readers=readers)

    def _readers(self) -> int | None:
        """How many other processes hold a WAL read mark (bytes 123-127 of the ``-shm`` file, see
        SQLite's wal.c), from ``/proc/locks``; None where that cannot be read (not Linux)."""
        try:
            st = os.stat(self.path + "-shm")
            with open("/proc/locks") as f:
                lines = f.read().splitlines()
        except OSError:
            return None
        inode = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
        pids = set()
        for line in lines:
            parts = line.replace("->", "").split()
            if len(parts) >= 8 and parts[1] == "POSIX" and parts[5] == inode and parts[6].isdigit() \
                    and 123 <= int(parts[6]) <= 127 and parts[4] != str(os.getpid()):
                pids.add(parts[4])
        return len(pids)

    def move_source(self, sha256: str, name: str) -> int:
        """Give every face enrolled from the photo with this SHA-256 to ``name`` (created if new), in
        one transaction; a person left with no face is removed. Returns how many faces moved."""
        name = normalize_name(name)
        with self.atomic() as c:
            old = [r[0] for r in c.execute("SELECT DISTINCT person_id FROM faces WHERE source_sha256 = ?", (sha256,))]
            if not old:
                return 0
            c.execute("INSERT OR IGNORE INTO people(name, created_at) VALUES (?, ?)", (name, _now()))
            pid = c.execute("SELECT id FROM people WHERE name = ?", (name,)).fetchone()[0]
            if pid in old:  # the photo once per person (migration 3's unique index): others' copies go
                c.execute("DELETE FROM faces WHERE source_sha256 = ? AND person_id <> ?", (sha256, pid))
            n = c.execute("UPDATE faces SET person_id = ? WHERE source_sha256 = ?", (pid, sha256)).rowcount
            for person in old:
                if person != pid and c.execute("SELECT 1 FROM faces WHERE person_id = ?", (person,)).fetchone() is None:
                    c.execute("DELETE FROM people WHERE id = ?", (person,))
        return int(n)

    def set_setting(self, tag: str, key: str, value: Any) -> None:
        """Store a JSON value for an encoder tag (e.g. ``"threshold"``, ``"head"``)."""
        with self.atomic() as c:
            c.execute(
                "INSERT INTO settings(encoder_tag, key, value, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(encoder_tag, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                (tag, key, json.dumps(value), _now()),
            )

    # -- reads -------------------------------------------------------------------------------
    def get_setting(self, tag: str, key: str, default: Any = None) -> Any:
        with self._reading() as c:
            row = c.execute("SELECT value FROM settings WHERE encoder_tag = ? AND key = ?", (tag, key)).fetchone()
        return default if row is None else json.loads(row[0])

    def people(self) -> list[Person]:
        with self._reading() as c:
            rows = c.execute(
                "SELECT p.name, COUNT(f.id), p.created_at, group_concat(f.source_name, char(31)) "
                "FROM people p LEFT JOIN faces f ON f.person_id = p.id GROUP BY p.id ORDER BY p.name"
            ).fetchall()
        return [Person(n, int(c), t, tuple(s.split("\x1f")) if s else ()) for n, c, t, s in rows]

    def has_source(self, sha256: str) -> bool:
        with self._reading() as c:
            return c.execute("SELECT 1 FROM faces WHERE source_sha256 = ? LIMIT 1", (sha256,)).fetchone() is not None

    def source_owner(self, sha256: str) -> str | None:
        """The person a face enrolled from the photo with this SHA-256 belongs to, or None."""
        with self._reading() as c:
            row = c.execute("SELECT p.name FROM faces f JOIN people p ON p.id = f.person_id "
                            "WHERE f.source_sha256 = ? ORDER BY f.id LIMIT 1", (sha256,)).fetchone()
        return None if row is None else str(row[0])

    def __len__(self) -> int:
        with self._reading() as c:
            return int(c.execute("SELECT COUNT(*) FROM faces").fetchone()[0])

    def _version(self) -> int:
        # data_version changes when another connection commits; _writes when this one does
        return self.conn.execute("PRAGMA data_version").fetchone()[0] * 1_000_003 + self._writes

    def _index(self) -> SearchIndex:
        with self._reading():
            version = self._version()
            if self._cache is None or self._cache[0] != version:
                self._cache = None  # drop the old maps before a rebuild replaces the file
                self._cache = (version, self._load_index())
            return self._cache[1]

    def _load_index(self) -> SearchIndex:
        """The sidecar beside a gallery file (rebuilt when missing or stale), else built in memory."""
        dim = self.dim or 0
        if self.path in (":memory:", "<connection>") or dim == 0:
            return sidecar.in_memory(self.conn, dim)
        path = sidecar.sidecar_path(self.path)
        for _ in range(3):  # another writer may commit between our build and our load
            index = sidecar.load(path, *sidecar.generation(self.conn))
            if index is not None:
                return index
            try:
                sidecar.build(self.conn, path, dim)
            except OSError:  # a read-only folder: search from memory
                break
        return sidecar.in_memory(self.conn, dim)

    def _names(self, person_ids: Sequence[int]) -> dict[int, str]:
        wanted = sorted(set(int(p) for p in person_ids))
        out: dict[int, str] = {}
        for i in range(0, len(wanted), 900):  # below SQLite's bound-parameter limit
            chunk = wanted[i:i + 900]
            marks = ",".join("?" * len(chunk))
            out.update(self.conn.execute(f"SELECT id, name FROM people WHERE id IN ({marks})", chunk).fetchall())
        return out

    def embeddings(self) -> tuple[np.ndarray, list[str]]:
        """Every stored embedding (N, D) float32 and its person's name."""
        index = self._index()
        names = dict(self.conn.execute("SELECT id, name FROM people").fetchall())
        return np.asarray(index.matrix), [names[int(p)] for p in index.person_ids[index.owners]]

    def faces_of(self, name: str) -> tuple[np.ndarray, list[FaceSource]]:
        """One person's embeddings (N, D) float32 and where each came from, in enrollment order;
        ``(0, D)`` when ``name`` is not enrolled. One indexed query: only their rows are read."""
        with self._reading() as c:
            rows = c.execute(
                "SELECT f.vector, f.source_name, f.source_sha256, f.box FROM faces f "
                "JOIN people p ON p.id = f.person_id WHERE p.name = ? ORDER BY f.id", (name,)).fetchall()
        matrix = decode_matrix([r[0] for r in rows], self.dim or 0)
        return matrix, [FaceSource(fn, sha, None if box is None else tuple(json.loads(box))) for _, fn, sha, box in rows]

    def search(self, queries: np.ndarray, k: int = 5) -> list[list[Match]]:
        """The ``k`` nearest people of each query (M, D), by their closest embedding, nearest first;
        exactly brute force's answer (``store.search``), ties broken by person id."""
        q = np.asarray(queries, dtype=np.float32)
        if q.ndim == 1:
            q = q[None, :]
        index = self._index()
        if len(index) == 0:
            return [[] for _ in range(len(q))]
        found = search(index, q, k, self.kernel)
        names = self._names([index.person_ids[o] for row in found for o, _ in row])
        return [[Match(names[int(index.person_ids[o])], d) for o, d in row] for row in found]

    def integrity_check(self) -> str:
        """``"ok"``, or SQLite's first complaint (a corrupt file gives its complaint, not an error)."""
        try:
            with self._lock:
                return str(self.conn.execute("PRAGMA integrity_check").fetchone()[0])
        except sqlite3.Error as exc:
            return fault(exc)

    def clear_cache(self) -> None:
        """Drop the in-memory matrix (it is rebuilt on the next search)."""
        with self._lock:
            self._cache = None

    def close(self) -> None:
        self._cache = None
        self.conn.close()

    def __enter__(self) -> "SQLiteGallery":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
