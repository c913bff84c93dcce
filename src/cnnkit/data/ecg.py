"""Heartbeat series from the UCR time-series classification archive (2018 release, TSV files:
one series per line, the class label first, tab-separated).

``ECG200`` ships in the repository (``data/ecg``). ``ECG5000`` (8 MB) is looked up, in order, in the
folder passed as ``root``, in ``$CNNKIT_UCR_DIR``, in ``data/ecg``, and in the cache
(``cache_dir()/ucr/ECG5000``); online users fill the cache with a checksummed download from a mirror
of the archive's TSV layout (``$CNNKIT_UCR_URL/ECG5000/ECG5000_TRAIN.tsv``) by setting
``CNNKIT_UCR_URL`` and ``CNNKIT_OFFLINE=0``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from cnnkit.core.download import fetch
from cnnkit.core.errors import CnnkitError, ShapeError, UnknownNameError
from cnnkit.core.paths import cache_dir, repo_data_dir

Split = Literal["train", "test"]
ARCHIVE_PAGE = "https://www.cs.ucr.edu/~eamonn/time_series_data_2018/"


@dataclass(frozen=True)
class UCRInfo:
    """What is known of one UCR data set: its raw class labels (in class-index order), series length
    and the SHA-256 of its TSV files."""

    labels: tuple[int, ...]
    length: int
    sha256: dict[str, str]


UCR_SETS: dict[str, UCRInfo] = {
    "ECG200": UCRInfo((-1, 1), 96, {
        "train": "bd08b37147ebf205231ad43e02c42dd5c14bc348f4ccc7614f85634c8916bf21",
        "test": "c8ac02caf98be23c47c044fde026219301ceaf0b2f97bc107bd0cd96330b867c"}),
    "ECG5000": UCRInfo((1, 2, 3, 4, 5), 140, {
        "train": "df86ac15d7e283e731db6be7865f5004b65bc639014cb8b9753c26e24a9092a1",
        "test": "0192997dd1793880633bfb34ae3ad5129c09a8e0f210c469225451b92cdd8548"}),
}


def read_ucr_tsv(path: str | os.PathLike[str], labels: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Read one UCR TSV file.

    Returns:
        series float32 (N, L) and class indices int64 (N,), index ``i`` meaning raw label ``labels[i]``.

    Raises:
        CnnkitError: the file is missing, or holds a label not in ``labels``.
    """
    path = Path(path)
    if not path.is_file():
        raise CnnkitError(f"{path}: no such UCR file")
    table = np.loadtxt(path, delimiter="\t", dtype=np.float64, ndmin=2)
    raw = table[:, 0].astype(np.int64).tolist()
    index = {label: i for i, label in enumerate(labels)}
    unknown = sorted(set(raw) - set(index))
    if unknown:
        raise CnnkitError(f"{path}: labels {unknown} are not among {list(labels)}")
    y = np.array([index[v] for v in raw], dtype=np.int64)
    return table[:, 1:].astype(np.float32), y.astype(np.int64)


def _candidates(name: str, root: str | os.PathLike[str] | None) -> list[Path]:
    folders = [Path(root)] if root is not None else []
    if os.environ.get("CNNKIT_UCR_DIR"):
        folders.append(Path(os.environ["CNNKIT_UCR_DIR"]))
    folders.append(repo_data_dir() / "ecg")
    return [f for folder in folders for f in (folder, folder / name)]


def ucr_path(name: str, split: Split, *, root: str | os.PathLike[str] | None = None,
             offline: bool | None = None) -> Path:
    """Where the ``split`` file of UCR set ``name`` is, downloading it into the cache when allowed.

    Raises:
        UnknownNameError: ``name`` is not in :data:`UCR_SETS`.
        CnnkitError: the file is nowhere and cannot be downloaded (the message says how to get it).
    """
    if name not in UCR_SETS:
        raise UnknownNameError(f"unknown UCR data set {name!r}; available: {sorted(UCR_SETS)}")
    filename = f"{name}_{split.upper()}.tsv"
    for folder in _candidates(name, root):
        if (folder / filename).is_file():
            return folder / filename
    cache = cache_dir() / "ucr" / name
    base = os.environ.get("CNNKIT_UCR_URL")
    if (cache / filename).is_file() or base:
        url = f"{(base or ARCHIVE_PAGE).rstrip('/')}/{name}/{filename}"
        return fetch(url, UCR_SETS[name].sha256[split], filename=filename, cache=cache, offline=offline)
    raise CnnkitError(
        f"{filename} not found (looked in {root or 'no --data folder'}, $CNNKIT_UCR_DIR, {repo_data_dir() / 'ecg'} "
        f"and {cache}); pass its folder with --data, or set CNNKIT_UCR_URL to a mirror of the UCR archive "
        f"TSV files ({ARCHIVE_PAGE}) and CNNKIT_OFFLINE=0 to download it")


def load_ucr(name: str, split: Split, *, root: str | os.PathLike[str] | None = None,
             offline: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Series float32 (N, L) and class indices int64 (N,) of one split of UCR set ``name``."""
    x, y = read_ucr_tsv(ucr_path(name, split, root=root, offline=offline), UCR_SETS[name].labels)
    if x.shape[1] != UCR_SETS[name].length:
        raise ShapeError(f"{name} {split}: series of length {x.shape[1]}, expected {UCR_SETS[name].length}")
    return x, y


def znormalize(x: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """Each series to zero mean and unit variance (the UCR convention). Shape (N, L) → (N, L)."""
    if x.ndim != 2:
        raise ShapeError(f"series must have shape (N, L), got {x.shape}")
    mean, std = x.mean(axis=1, keepdims=True), x.std(axis=1, keepdims=True)
    return ((x - mean) / (std + eps)).astype(np.float32)


__all__ = ["UCR_SETS", "UCRInfo", "load_ucr", "read_ucr_tsv", "ucr_path", "znormalize"]
