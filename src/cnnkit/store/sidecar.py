"""The search matrix beside an SQLite gallery, memory-mapped so that a gallery opens at once.

``gallery.sqlite.vectors`` holds what :class:`cnnkit.store.search.SearchIndex` reads: the float32
matrix, per-row norms and person ordinals, the person ids, and the int8 (one query) and bfloat16
(batches) copies with their per-row rounding errors, as little-endian arrays at 4096-aligned offsets
after a JSON header.

**Never a wrong answer.** The header names the gallery (``gallery_id``, random per gallery) and the
*generation* the arrays were read at. The generation lives in the database (``meta``) and is bumped
by triggers on ``faces`` (``store.migrations``, version 2) in the same transaction as every insert, update or delete of an embedding,
whoever writes it (cnnkit, another process, a hand-written SQL statement). A sidecar whose gallery
or generation differs from the database's is stale and rebuilt, so a crash between a commit and the
sidecar's rewrite leaves a stale file that is detected. Files are written under a temporary name,
fsynced and renamed, so only complete files ever carry the sidecar's name. A removal deletes the
sidecar inside its transaction, before the commit, so no file named as the sidecar keeps a removed
person's vectors, even after a crash; the next search writes a new one.
"""
from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from cnnkit.core.errors import StoreError
from cnnkit.store.codec import decode_matrix
from cnnkit.store.search import INT8_COLUMNS, Copy, SearchIndex, make_copy

MAGIC = "cnnkit-gallery-vectors"
#: 2: an int8 copy (codes + bfloat16 scales) in place of the float16 one
FORMAT_VERSION = 2
#: the copies kept in the file, and their arrays' little-endian types
COPIES = {"int8": "<i1", "bfloat16": "<u2"}
_ALIGN = 4096
_HEADER_BYTES = 4096
#: rows read from the database and written to the sidecar per step: the build's memory beyond the
#: file stays near CHUNK_ROWS x D x 8 bytes x 3 (the float64 rounding errors of one chunk)
CHUNK_ROWS = 8192



def sidecar_path(db_path: str | os.PathLike[str]) -> Path:
    return Path(os.fspath(db_path) + ".vectors")


def generation(conn: sqlite3.Connection) -> tuple[str, str]:
    """(gallery id, generation) as the database holds them now."""
    rows = dict(conn.execute("SELECT key, value FROM meta WHERE key IN ('gallery_id', 'generation')").fetchall())
    if "gallery_id" not in rows or "generation" not in rows:
        raise StoreError("gallery has no generation counter (schema older than version 2)")
    return rows["gallery_id"], rows["generation"]


def iter_rows(conn: sqlite3.Connection, dim: int, chunk: int = CHUNK_ROWS) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(person ids (B,), vectors (B, dim) float32) blocks, ordered by person then face id."""
    cur = conn.execute("SELECT person_id, vector FROM faces ORDER BY person_id, id")
    while True:
        rows = cur.fetchmany(chunk)
        if not rows:
            return
        yield (np.fromiter((r[0] for r in rows), np.int64, len(rows)),
               decode_matrix([r[1] for r in rows], dim))


def _layout(n: int, dim: int, people: int) -> dict[str, tuple[int, str, tuple[int, ...]]]:
    arrays = [("matrix", "<f4", (n, dim)), ("half_sq", "<f8", (n,)), ("owners", "<i8", (n,)),
              ("person_ids", "<i8", (people,))]
    for fmt, dt in COPIES.items():
        width = -(-dim // INT8_COLUMNS) * INT8_COLUMNS if fmt == "int8" else dim
        arrays += [(fmt, dt, (n, width)), (fmt + ".err", "<f8", (n,)), (fmt + ".norm", "<f8", (n,))]
    arrays.append(("int8.scale", "<u2", (n,)))
    out, offset = {}, _HEADER_BYTES
    for name, dt, shape in arrays:
        out[name] = (offset, dt, shape)
        size = int(np.prod(shape)) * np.dtype(dt).itemsize
        offset += -(-size // _ALIGN) * _ALIGN
    return out


def build(conn: sqlite3.Connection, path: Path, dim: int) -> None:
    """Write the sidecar of the database's current state, streaming CHUNK_ROWS rows at a time."""
    conn.execute("BEGIN")  # one read snapshot: the generation and the rows it describes
    try:
        gid, gen = generation(conn)
        n = int(conn.execute("SELECT COUNT(*) FROM faces").fetchone()[0])
        people = int(conn.execute("SELECT COUNT(DISTINCT person_id) FROM faces").fetchone()[0])
        layout = _layout(n, dim, people)
        _remove_dead_temporaries(path)
        tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            small = {k: np.empty(shape, dt) for k, (_, dt, shape) in layout.items() if len(shape) == 1}
            row, ordinal, last_pid, pids = 0, -1, None, []
            for pid, block in iter_rows(conn, dim):
                b = len(block)
                if last_pid is not None and pid[0] < last_pid:
                    raise StoreError("faces are not ordered by person")
                new = np.r_[pid[0] != last_pid, pid[1:] != pid[:-1]]
                pids.append(pid[new])
                small["owners"][row:row + b] = ordinal + np.cumsum(new)
                ordinal += int(new.sum())
                last_pid = int(pid[-1])
                m64 = block.astype(np.float64)
                small["half_sq"][row:row + b] = 0.5 * (m64 * m64).sum(1)
                _pwrite(fd, block.astype("<f4"), layout["matrix"][0] + row * dim * 4)
                for fmt, dt in COPIES.items():
                    copy = make_copy(block, fmt)
                    small[fmt + ".err"][row:row + b], small[fmt + ".norm"][row:row + b] = copy.err, copy.norm
                    if copy.scale is not None:
                        small[fmt + ".scale"][row:row + b] = copy.scale
                    _pwrite(fd, copy.rows.astype(dt), layout[fmt][0] + row * copy.rows.shape[1] * np.dtype(dt).itemsize)
                row += b
            if row != n:
                raise StoreError(f"read {row} faces, expected {n}")
            small["person_ids"][:] = np.concatenate(pids) if pids else np.zeros(0, np.int64)
            for name, arr in small.items():
                _pwrite(fd, arr.astype(layout[name][1]), layout[name][0])
            end = max(off + int(np.prod(shape)) * np.dtype(dt).itemsize for off, dt, shape in layout.values())
            os.ftruncate(fd, end)
            header = json.dumps({"magic": MAGIC, "version": FORMAT_VERSION, "gallery_id": gid, "generation": gen,
                                 "n": n, "dim": dim, "people": people,
                                 "arrays": {k: [o, dt, list(s)] for k, (o, dt, s) in layout.items()}}).encode()
            if len(header) > _HEADER_BYTES:
                raise StoreError("sidecar header too long")
            os.pwrite(fd, header.ljust(_HEADER_BYTES, b" "), 0)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        os.close(fd)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        conn.execute("COMMIT")


def load(path: Path, gallery_id: str, gen: str) -> SearchIndex | None:
    """The sidecar as a memory-mapped :class:`SearchIndex`, or None when it is missing, damaged,
    of another gallery or of another generation."""
    try:
        f = open(path, "rb")  # one open file: header, maps and row reads all see the same inode
    except OSError:
        return None
    try:
        head = json.loads(f.read(_HEADER_BYTES).decode())
        size = os.fstat(f.fileno()).st_size
    except (OSError, ValueError, UnicodeDecodeError):
        f.close()
        return None
    if (not isinstance(head, dict) or head.get("magic") != MAGIC or head.get("version") != FORMAT_VERSION
            or head.get("gallery_id") != gallery_id or head.get("generation") != gen):
        f.close()
        return None
    arrays = {}
    for name, (offset, dt, shape) in head["arrays"].items():
        nbytes = int(np.prod(shape)) * np.dtype(dt).itemsize
        if offset + nbytes > size:
            f.close()
            return None
        # copy-on-write: the arrays are writable numpy views (torch wants that) that never write back
        arrays[name] = (np.memmap(f, dtype=dt, mode="c", offset=offset, shape=tuple(shape))
                        if nbytes else np.zeros(shape, dt))
    copies = {fmt: Copy(arrays[fmt], arrays[fmt + ".err"], arrays[fmt + ".norm"], arrays.get(fmt + ".scale"))
              for fmt in COPIES}
    offset, dim = head["arrays"]["matrix"][0], int(head["dim"])
    return SearchIndex(arrays["matrix"], arrays["owners"], arrays["person_ids"], arrays["half_sq"], copies,
                       row_reader=lambda idx: _read_rows(f, offset, dim, idx))


def _read_rows(f: Any, offset: int, dim: int, idx: np.ndarray) -> np.ndarray:
    """Rows ``idx`` of the float32 matrix, read with pread from the file the index was loaded from
    (its inode, even if a rebuild has since renamed another file over the name)."""
    uniq, back = np.unique(np.asarray(idx, np.int64), return_inverse=True)
    out = np.empty((len(uniq), dim), "<f4")
    size = dim * 4
    for j, r in enumerate(uniq.tolist()):
        out[j] = np.frombuffer(os.pread(f.fileno(), size, offset + r * size), "<f4")
    return out.astype(np.float32, copy=False)[back]


def discard(path: Path) -> None:
    """Delete the sidecar and any half-written temporary copy of it."""
    for p in [path, *path.parent.glob(path.name + ".tmp-*")]:
        p.unlink(missing_ok=True)


def in_memory(conn: sqlite3.Connection, dim: int) -> SearchIndex:
    """The index built in memory, block by block (galleries without a file)."""
    n = int(conn.execute("SELECT COUNT(*) FROM faces").fetchone()[0])
    matrix, pids, row = np.empty((n, dim), np.float32), np.empty(n, np.int64), 0
    for pid, block in iter_rows(conn, dim):
        matrix[row:row + len(block)], pids[row:row + len(block)] = block, pid
        row += len(block)
    return SearchIndex.build(matrix[:row], pids[:row])


def _remove_dead_temporaries(path: Path) -> None:
    """Half-written copies left by builders that were killed (their process no longer exists)."""
    for p in path.parent.glob(path.name + ".tmp-*"):
        try:
            os.kill(int(p.name.rsplit("-", 1)[1]), 0)
        except ProcessLookupError:
            p.unlink(missing_ok=True)
        except (ValueError, PermissionError):
            pass


def _pwrite(fd: int, arr: np.ndarray, offset: int) -> None:
    data = memoryview(np.ascontiguousarray(arr)).cast("B")
    while data:
        done = os.pwrite(fd, data, offset)
        data, offset = data[done:], offset + done


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
