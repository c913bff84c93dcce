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
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from cnnkit.core.checks import check_shape
from cnnkit.core.errors import CnnkitError
from cnnkit.data.image_io import load_image

IMAGE_SUFFIXES = (".pgm", ".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm")
_RANGE = re.compile(r"^(\D*)(\d+)\.\.(\D*)(\d+)$")


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
    """``root/NAME/*.jpg`` (recursively) -> [(NAME, [photos...])], sorted by name; folders without
    images are skipped.

    Raises:
        CnnkitError: ``root`` is not a folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise CnnkitError(f"{root}: not a folder of person folders")
    people = []
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        photos = list_images([d])
        if photos:
            people.append((d.name, photos))
    return people


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
