"""Sharded enrollment: n machines (or processes) enroll disjoint parts of one photo collection into
one gallery. A photo's shard depends only on its key (``person/file name`` by default), never on
where the collection is mounted, the machine, the Python hash seed or the order of the listing;
so every machine computes the same partition, and a rerun of a shard picks the same photos
(already enrolled ones are then skipped by SHA-256 through ``Gallery.has_source``)."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Iterable, Sequence, TypeVar

from cnnkit.core.errors import CnnkitError

T = TypeVar("T")


def shard_of(key: str, n: int) -> int:
    """The shard (0 <= shard < n) of ``key``: the first 8 bytes of SHA-256(key, UTF-8) modulo n."""
    if n < 1:
        raise CnnkitError(f"the number of shards must be >= 1, got {n}")
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") % n


def parse_shard(spec: str) -> tuple[int, int]:
    """``"i/n"`` -> (i, n) with 0 <= i < n."""
    try:
        i_text, n_text = spec.split("/")
        i, n = int(i_text), int(n_text)
    except ValueError:
        raise CnnkitError(f"--shard {spec!r}: expected I/N, e.g. 0/4 (shards are numbered from 0)") from None
    if not 0 <= i < n:
        raise CnnkitError(f"--shard {spec!r}: expected 0 <= I < N (shards are numbered from 0)")
    return i, n


def photo_key(person: str, path: str | os.PathLike[str]) -> str:
    """The shard key of one photo of an enrollment folder: ``person/file name``."""
    return f"{person}/{Path(path).name}"


def select_shard(items: Iterable[tuple[str, T]], spec: str | tuple[int, int]) -> list[tuple[str, T]]:
    """The (person, photo path) items of shard ``spec`` (``"i/n"`` or ``(i, n)``), order kept."""
    i, n = parse_shard(spec) if isinstance(spec, str) else spec
    return [(person, path) for person, path in items if shard_of(photo_key(person, path), n) == i]  # type: ignore[arg-type]


def shard_sizes(keys: Sequence[str], n: int) -> list[int]:
    """How many of ``keys`` fall into each of the n shards."""
    sizes = [0] * n
    for key in keys:
        sizes[shard_of(key, n)] += 1
    return sizes
