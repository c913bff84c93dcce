"""Data sources for the scan: indexable data sets of fixed-shape float tensors (C, *S) that can also
name each item (``source(i)``) and describe themselves (``description``, used by checkpoints).

- :class:`ImageFolder`: every image under a folder (or one image file), resized so that the shorter
  side is ``size`` and centre-cropped to ``size`` x ``size``; RGB in [0, 1], (3, size, size).
- :class:`TensorSource`: a tensor (N, C, *S), e.g. series (N, 1, L) or volumes (N, 1, D, H, W).
- :func:`series_source`: UCR-format TSV files (label first, tab-separated), z-normalised, (1, L).
- :func:`volume_source`: NIfTI files or the MNI152 template cut into cubes, (1, P, P, P) in [0, 1].
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from cnnkit.core.errors import CnnkitError, ShapeError
from cnnkit.data.folders import IMAGE_SUFFIXES

__all__ = ["ImageFolder", "TensorSource", "series_source", "volume_source", "open_source", "IMAGE_SUFFIXES"]



def _load_rgb(path: Path) -> np.ndarray:
    from cnnkit.data.image_io import load_image

    return load_image(path)


def square_crop(img: np.ndarray, size: int) -> np.ndarray:
    """Resize ``img`` (H, W, 3) uint8 so its shorter side is ``size``, then centre-crop to a square."""
    from PIL import Image

    h, w = img.shape[:2]
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    pil = Image.fromarray(img).resize((nw, nh), Image.Resampling.BICUBIC)
    top, left = (nh - size) // 2, (nw - size) // 2
    return np.asarray(pil.crop((left, top, left + size, top + size)))


class ImageFolder(torch.utils.data.Dataset):
    """Images under ``root`` (recursively, sorted by path) or the listed files, as (3, size, size)
    float tensors in [0, 1], or as ``prepare(image)`` makes them (``prepare_name`` names it)."""

    def __init__(self, root: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], *, size: int = 224,
                 limit: int | None = None, prepare: Callable[[np.ndarray], Tensor] | None = None,
                 prepare_name: str = "") -> None:
        if isinstance(root, (str, os.PathLike)):
            base = Path(root)
            if base.is_file():
                files, self.root = [base], base.parent
            elif base.is_dir():
                files = sorted(p for p in base.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
                self.root = base
            else:
                raise CnnkitError(f"{base}: no such file or folder")
        else:
            files = [Path(p) for p in root]
            self.root = Path(os.path.commonpath([str(p.parent) for p in files])) if files else Path(".")
        self.files = files[:limit] if limit is not None else files
        if not self.files:
            raise CnnkitError(f"{root}: no images found ({', '.join(IMAGE_SUFFIXES)})")
        self.size, self.prepare = int(size), prepare
        self.description = f"images:{self.root}:{len(self.files)}:{prepare_name if prepare else self.size}"

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> Tensor:
        img = _load_rgb(self.files[i])
        if self.prepare is not None:  # the model's own preprocessing, uint8 (H, W, 3) -> (C, H, W)
            return self.prepare(img)
        img = square_crop(img, self.size)
        return torch.from_numpy(img.copy()).permute(2, 0, 1).float().div_(255.0)

    def source(self, i: int) -> str:
        try:
            return str(self.files[i].relative_to(self.root))
        except ValueError:
            return str(self.files[i])


class TensorSource(torch.utils.data.Dataset):
    """Items of a tensor (N, C, *S); ``names`` (one per item) default to ``"{name}[i]"``."""

    def __init__(self, data: Tensor, *, name: str = "tensor", names: Sequence[str] | None = None) -> None:
        if not 3 <= data.ndim <= 5:
            raise ShapeError(f"data must have shape (N, C, *S) with 1 to 3 spatial dims, got {tuple(data.shape)}")
        if names is not None and len(names) != len(data):
            raise CnnkitError(f"{len(names)} names for {len(data)} items")
        self.data, self.name, self.names = data.float(), name, list(names) if names is not None else None
        self.description = f"tensor:{name}:{tuple(data.shape)}"

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> Tensor:
        return self.data[i]

    def source(self, i: int) -> str:
        return self.names[i] if self.names is not None else f"{self.name}[{i}]"


def series_source(*paths: str | os.PathLike[str]) -> TensorSource:
    """UCR TSV files (label in the first column) as z-normalised series (N, 1, L)."""
    from cnnkit.data.ecg import znormalize

    rows, names = [], []
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise CnnkitError(f"{path}: no such series file")
        table = np.loadtxt(path, delimiter="\t", dtype=np.float64, ndmin=2)
        rows.append(znormalize(table[:, 1:].astype(np.float32)))
        names += [f"{path.name}[{i}]" for i in range(len(table))]
    lengths = {r.shape[1] for r in rows}
    if len(lengths) != 1:
        raise CnnkitError(f"series of different lengths {sorted(lengths)}")
    data = torch.from_numpy(np.concatenate(rows))[:, None]
    return TensorSource(data, name="+".join(Path(p).name for p in paths), names=names)


def _cubes(vol: np.ndarray, size: int, stride: int, name: str) -> tuple[list[np.ndarray], list[str]]:
    starts = [list(range(0, max(1, n - size + 1), stride)) for n in vol.shape]
    cubes, names = [], []
    for z in starts[0]:
        for y in starts[1]:
            for x in starts[2]:
                cube = vol[z:z + size, y:y + size, x:x + size]
                if cube.shape != (size,) * 3 or cube.max() <= 0:
                    continue  # incomplete, or empty background
                cubes.append(cube)
                names.append(f"{name}@{z},{y},{x}")
    return cubes, names


def volume_source(*paths: str | os.PathLike[str], size: int = 32, stride: int = 16) -> TensorSource:
    """Volumes cut into cubes of side ``size`` every ``stride`` voxels (empty cubes dropped), each
    volume scaled to [0, 1]: items (1, size, size, size). ``"mni152"`` names the MNI152 2009 T1
    template at 2 mm that nilearn ships; other paths are NIfTI files read with nibabel."""
    cubes: list[np.ndarray] = []
    names: list[str] = []
    for path in paths:
        if str(path).lower() == "mni152":
            from cnnkit.data.volumes import load_mni152_tissues

            vol, label = load_mni152_tissues(2)[0], "mni152"
        else:
            try:
                import nibabel
            except ImportError as exc:  # pragma: no cover - nibabel comes with nilearn
                raise CnnkitError("reading NIfTI volumes needs nibabel (pip install nibabel)") from exc
            if not Path(path).is_file():
                raise CnnkitError(f"{path}: no such volume file")
            vol, label = np.asarray(nibabel.load(str(path)).get_fdata(), dtype=np.float32), Path(path).name
            if vol.ndim == 4:
                vol = vol[..., 0]
        vol = np.clip(vol, 0, None)
        vol = vol / vol.max() if vol.max() > 0 else vol
        got, got_names = _cubes(vol, size, stride, label)
        cubes += got
        names += got_names
    if not cubes:
        raise CnnkitError(f"no non-empty cube of side {size} in {[str(p) for p in paths]}")
    data = torch.from_numpy(np.stack(cubes).astype(np.float32))[:, None]
    return TensorSource(data, name="+".join(str(p) for p in paths), names=names)


def open_source(spec: str | os.PathLike[str], *, size: int = 224, cube: int = 32, limit: int | None = None,
                prepare: Callable[[np.ndarray], Tensor] | None = None, prepare_name: str = ""
                ) -> torch.utils.data.Dataset:
    """A data source from a command-line value: a folder or file of images, a UCR ``.tsv`` file, a
    NIfTI file (``.nii``/``.nii.gz``) or ``mni152``, or a ``.pt`` tensor (N, C, *S) saved with torch."""
    text = str(spec)
    lower = text.lower()
    if lower == "mni152" or lower.endswith((".nii", ".nii.gz")):
        return volume_source(text, size=cube, stride=cube // 2)
    if lower.endswith(".tsv"):
        return series_source(text)
    if lower.endswith(".pt"):
        data = torch.load(text, map_location="cpu", weights_only=True)
        if not isinstance(data, Tensor):
            raise CnnkitError(f"{text}: expected a tensor (N, C, *S), got {type(data).__name__}")
        return TensorSource(data, name=Path(text).name)
    return ImageFolder(text, size=size, limit=limit, prepare=prepare, prepare_name=prepare_name)
