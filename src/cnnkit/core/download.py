"""Checksummed, cached downloads for weights and data sets. Offline by default: a file that is
not in the cache raises :class:`WeightsError` with the URL to fetch, unless ``offline=False``
(or ``CNNKIT_OFFLINE=0``) allows the network."""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
from pathlib import Path

from cnnkit.core.errors import WeightsError
from cnnkit.core.paths import cache_dir


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _offline_default() -> bool:
    return os.environ.get("CNNKIT_OFFLINE", "1") != "0"


def fetch(url: str, sha256: str, *, filename: str | None = None, cache: Path | None = None,
          offline: bool | None = None, missing: WeightsError | None = None) -> Path:
    """Return the cached copy of ``url``, downloading it first when allowed.

    The file is written to a temporary name, its SHA-256 checked, then renamed into place, so an
    interrupted or corrupted download never leaves a file that looks valid.

    Args:
        missing: the error to raise when the file is not cached and downloads are off (for example
            one naming the command that installs it); default: one naming the URL and the cache.

    Raises:
        WeightsError: the file is not cached and the network is not allowed, the download failed,
            or the checksum does not match.
    """
    offline = _offline_default() if offline is None else offline
    folder = Path(cache) if cache is not None else cache_dir() / "downloads"
    target = folder / (filename or url.rsplit("/", 1)[-1])
    if target.exists():
        if sha256_file(target) == sha256:
            return target
        raise WeightsError(f"{target}: checksum mismatch (expected {sha256}); delete it to download again")
    if offline:
        if missing is not None:
            raise missing
        raise WeightsError(
            f"{target}: not in the cache and downloads are off; fetch {url} there yourself "
            "or set CNNKIT_OFFLINE=0"
        )
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=target.name + ".", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as resp:
            shutil.copyfileobj(resp, out)
        got = sha256_file(tmp)
        if got != sha256:
            raise WeightsError(f"{url}: checksum mismatch (expected {sha256}, got {got})")
        os.replace(tmp, target)
    except OSError as exc:
        raise WeightsError(f"{url}: download failed: {exc}") from exc
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target
