"""A folder of identities: ``ROOT/<person>/<image>``, one sub-folder per person.

:func:`scan_identity_folder` lists the files (optionally only some people, and without
byte-identical duplicates, so a copied file never becomes a "same person" pair);
:class:`IdentityFolder` loads them as uint8 RGB arrays; :func:`augment` applies random flips, crops
and brightness changes to a prepared float batch.
"""
from __future__ import annotations

import fnmatch
import hashlib
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from cnnkit.core.checks import check_shape
from cnnkit.core.errors import CnnkitError, printable
from cnnkit.data.image_io import load_image, not_regular_reason, os_reason

IMAGE_SUFFIXES = (".pgm", ".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm")
_RANGE = re.compile(r"^(\D*)(\d+)\.\.(\D*)(\d+)$")


@dataclass(frozen=True)
class SkippedEntry:
    """An entry of a photo folder that is not used, and why. ``error``: it was meant to be used (a
    person folder, or a photo by its name) but cannot be; otherwise it is merely not a photo."""

    path: str
    person: str | None
    reason: str
    error: bool


@dataclass(frozen=True)
class FolderWalk:
    """``photos``: (person, photo path), person by person in natural order; ``skipped``: every
    other entry met, with its reason."""

    photos: tuple[tuple[str, Path], ...]
    skipped: tuple[SkippedEntry, ...]


def walk_person_folders(root: str | os.PathLike[str]) -> FolderWalk:
    """``ROOT/PERSON/photo``: every photo of every person folder (sub-folders searched too), and
    every entry not used, each with its reason: hidden entries, files at the top level, names
    without an image suffix, symbolic-link loops, dangling links, links to folders (not followed),
    FIFOs, devices and sockets, folders named like photos, folders that cannot be read. Person
    names are the folder names as ``os.fsdecode`` gives them (undecodable bytes kept as lone
    surrogates, for the gallery to refuse per photo).

    Raises:
        CnnkitError: ``root`` is not a readable folder.
    """
    root_path = Path(root)
    try:
        top = _sorted_entries(root_path)
    except OSError as exc:
        raise CnnkitError(f"{printable(str(root_path))}: not a readable folder of person folders "
                          f"({exc.strerror or exc})") from None
    photos: list[tuple[str, Path]] = []
    skipped: list[SkippedEntry] = []
    for entry in top:
        path = root_path / entry.name
        if entry.name.startswith("."):
            skipped.append(SkippedEntry(str(path), None, "hidden entry", False))
            continue
        kind, reason = _kind(path)
        if kind != "dir":
            why = reason or "a file at the top level, not a person folder"
            skipped.append(SkippedEntry(str(path), None, why, reason is not None))
            continue
        if path.is_symlink():
            skipped.append(SkippedEntry(str(path), None, "symbolic link to a folder (not followed)", True))
            continue
        _walk_person(path, entry.name, photos, skipped)
    return FolderWalk(tuple(photos), tuple(skipped))


def _walk_person(folder: Path, person: str, photos: list[tuple[str, Path]], skipped: list[SkippedEntry]) -> None:
    try:
        entries = _sorted_entries(folder)
    except OSError as exc:
        skipped.append(SkippedEntry(str(folder), person, f"cannot read folder: {os_reason(folder, exc)}", True))
        return
    for entry in entries:
        path = folder / entry.name
        looks_like_photo = path.suffix.lower() in IMAGE_SUFFIXES
        if entry.name.startswith("."):
            skipped.append(SkippedEntry(str(path), person, "hidden entry", False))
            continue
        kind, reason = _kind(path)
        if kind == "dir" and path.is_symlink():
            skipped.append(SkippedEntry(str(path), person, "symbolic link to a folder (not followed)", looks_like_photo))
        elif kind == "dir" and looks_like_photo:
            skipped.append(SkippedEntry(str(path), person, "is a directory, not an image file", True))
        elif kind == "dir":
            _walk_person(path, person, photos, skipped)
        elif reason is not None:
            skipped.append(SkippedEntry(str(path), person, reason, looks_like_photo or kind == "broken"))
        elif not looks_like_photo:
            skipped.append(SkippedEntry(str(path), person,
                                        f"not an image file name (expected {', '.join(IMAGE_SUFFIXES)})", False))
        else:
            photos.append((person, path))


def _sorted_entries(folder: Path) -> list[os.DirEntry[str]]:
    with os.scandir(folder) as it:
        return sorted(it, key=lambda e: _natural_key(e.name))


def _kind(path: Path) -> tuple[str, str | None]:
    """("dir" | "file" | "other" | "broken", reason it cannot be used or None), following links."""
    try:
        st = os.stat(path)
    except OSError as exc:
        return "broken", os_reason(path, exc)
    if stat.S_ISDIR(st.st_mode):
        return "dir", None
    return ("file", None) if stat.S_ISREG(st.st_mode) else ("other", not_regular_reason(st))


def _natural_key(name: str) -> list[object]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def select_people(names: Sequence[str], spec: str | None) -> list[str]:
    """The names matching ``spec``: comma-separated items, each a name, a glob (``s3*``) or a numbered
    range (``s1..s30``). ``None`` or ``""`` selects all. Order follows ``names``.

    Raises:
        CnnkitError: an item matches no name.
    """
    if not spec:
        return list(names)
    chosen: set[str] = set()
    for item in (s.strip() for s in spec.split(",") if s.strip()):
        m = _RANGE.match(item)
        if m and m.group(1) == (m.group(3) or m.group(1)):
            width = len(m.group(2)) if m.group(2).startswith("0") else 0  # s01..s10 keeps the padding
            wanted = {f"{m.group(1)}{i:0{width}d}" for i in range(int(m.group(2)), int(m.group(4)) + 1)}
            hits = [n for n in names if n in wanted]
        else:
            hits = fnmatch.filter(names, item)
        if not hits:
            raise CnnkitError(f"--people item {item!r} matches no folder")
        chosen.update(hits)
    return [n for n in names if n in chosen]


@dataclass(frozen=True)
class FolderIndex:
    """Files of an identity folder: ``paths[i]`` shows person ``people[labels[i]]``."""

    root: Path
    paths: tuple[Path, ...]
    labels: tuple[int, ...]
    people: tuple[str, ...]
    duplicates_dropped: int = 0


def scan_identity_folder(root: str | os.PathLike[str], *, people: str | None = None,
                         dedupe: bool = True, min_images: int = 1) -> FolderIndex:
    """List the images of ``root``, one sub-folder per person, in natural order.

    Args:
        root: the folder.
        people: a :func:`select_people` spec.
        dedupe: drop files whose bytes equal an earlier file (SHA-256), in any person.
        min_images: skip people with fewer images (after deduplication).

    Raises:
        CnnkitError: ``root`` is not a folder or holds no images.
    """
    root = Path(root)
    if not root.is_dir():
        raise CnnkitError(f"{root}: not a folder (expected one sub-folder per person)")
    names = sorted((p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")), key=_natural_key)
    names = select_people(names, people)
    seen: set[str] = set()
    paths: list[Path] = []
    labels: list[int] = []
    kept: list[str] = []
    dropped = 0
    for name in names:
        files = sorted((f for f in (root / name).iterdir() if is_image_file(f)),
                       key=lambda f: _natural_key(f.name))
        mine = []
        for f in files:
            if dedupe:
                digest = hashlib.sha256(f.read_bytes()).hexdigest()
                if digest in seen:
                    dropped += 1
                    continue
                seen.add(digest)
            mine.append(f)
        if len(mine) < min_images:
            continue
        labels += [len(kept)] * len(mine)
        paths += mine
        kept.append(name)
    if not paths:
        raise CnnkitError(f"{root}: no images found in person sub-folders")
    return FolderIndex(root, tuple(paths), tuple(labels), tuple(kept), dropped)


def is_image_file(path: Path) -> bool:
    """A file with one of :data:`IMAGE_SUFFIXES` (case-insensitive)."""
    return path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()


def list_images(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Expand directories (recursively, sorted) into image files; plain files are kept as given."""
    out: list[Path] = []
    for p in map(Path, paths):
        out += sorted(f for f in p.rglob("*") if is_image_file(f)) if p.is_dir() else [p]
    return out


def person_folders(root: str | os.PathLike[str]) -> list[tuple[str, list[Path]]]:
    """``root/NAME/*.jpg`` -> [(NAME, [photos...])], in natural order: the photos of
    :func:`walk_person_folders`, which also says what it did not use and why."""
    grouped: dict[str, list[Path]] = {}
    for person, photo in walk_person_folders(root).photos:
        grouped.setdefault(person, []).append(photo)
    return list(grouped.items())


class IdentityFolder:
    """The images of a :class:`FolderIndex`, loaded once as uint8 RGB arrays (H, W, 3).

    ``images[i]``, ``labels[i]`` (int64 tensor, shape (N,)), ``people[labels[i]]``.
    """

    def __init__(self, index: FolderIndex) -> None:
        self.index = index
        self.images = [load_image(p) for p in index.paths]
        self.labels = torch.tensor(index.labels, dtype=torch.long)
        self.people = index.people

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, people: Sequence[int]) -> tuple[list[np.ndarray], Tensor]:
        """Images and labels of the given person indices (labels kept as in the full folder)."""
        keep = set(int(p) for p in people)
        idx = [i for i, y in enumerate(self.index.labels) if y in keep]
        return [self.images[i] for i in idx], self.labels[idx]


def augment(img: Tensor, *, generator: torch.Generator | None = None, flip: float = 0.5, crop: float = 0.1,
            rotate: float = 0.0, brightness: float = 0.2) -> Tensor:
    """Random horizontal flip, random crop (of up to ``crop`` of each side, resized back), rotation
    by up to ``rotate`` degrees and brightness/contrast jitter, per image.

    Args:
        img: prepared images in [-1, 1], shape (B, C, H, W).

    Returns:
        augmented images, shape (B, C, H, W).
    """
    check_shape(img, "B C H W", name="img")
    b, _, h, w = img.shape
    out = img.clone()
    if flip:
        mask = torch.rand(b, generator=generator) < flip
        out[mask] = out[mask].flip(-1)
    if crop or rotate:
        # an affine grid per image: scale in [1 - crop, 1], shift within the margin left over
        scale = 1 - crop * torch.rand(b, generator=generator)
        shift = (1 - scale)[:, None] * (2 * torch.rand(b, 2, generator=generator) - 1)
        angle = torch.deg2rad(rotate * (2 * torch.rand(b, generator=generator) - 1))
        theta = torch.zeros(b, 2, 3)
        theta[:, 0, 0] = scale * torch.cos(angle)
        theta[:, 0, 1] = -scale * torch.sin(angle)
        theta[:, 1, 0] = scale * torch.sin(angle)
        theta[:, 1, 1] = scale * torch.cos(angle)
        theta[:, :, 2] = shift
        grid = torch.nn.functional.affine_grid(theta.to(img.dtype), [b, img.shape[1], h, w], align_corners=False)
        out = torch.nn.functional.grid_sample(out, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if brightness:
        gain = 1 + brightness * (2 * torch.rand(b, 1, 1, 1, generator=generator) - 1)
        bias = brightness * (2 * torch.rand(b, 1, 1, 1, generator=generator) - 1)
        out = (out * gain + bias).clamp(-1.0, 1.0)
    return out
