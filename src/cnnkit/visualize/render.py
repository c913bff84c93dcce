"""Pictures of what units respond to, as Pillow images.

- :func:`contact_sheet`: one layer, units x top-k, each cell the input patch inside the unit's
  receptive field (2D), the signal segment as a small plot (1D), or the three central slices of the
  sub-volume (3D). Parts of the field outside the input are grey and the border is marked in red.
- :func:`filter_grid`: the kernels of a (first) conv layer.
- :func:`activation_grid`: the feature maps of one input for one layer.
"""
from __future__ import annotations

import functools
import math
from typing import Any, Callable, Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from cnnkit.core.errors import CnnkitError, ShapeError

from .receptive import unit_box
from .scan import LayerTop

__all__ = ["MAX_MAPS", "contact_sheet", "filter_grid", "activation_grid", "caption_font", "to_rgb8", "grid"]

OUTSIDE = (128, 128, 128)   # receptive field beyond the input
BORDER = (230, 30, 30)      # the input's border inside a clipped field
BACKGROUND = (255, 255, 255)
INK = (20, 20, 20)
MAX_MAPS = 64               # activation maps drawn per layer by default


def to_rgb8(x: Tensor) -> np.ndarray:
    """(C, H, W) → uint8 (H, W, 3). Three channels are RGB, otherwise the channel mean is grey.
    Values are shown as they are when they lie in [0, 1], else stretched from min to max."""
    x = x.detach().float().cpu()
    x = x if x.shape[0] == 3 else x.mean(0, keepdim=True).expand(3, *x.shape[1:])
    lo, hi = float(x.min()), float(x.max())
    if lo < 0 or hi > 1:
        x = (x - lo) / (hi - lo) if hi > lo else torch.zeros_like(x)
    return (x.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()


@functools.lru_cache(maxsize=1)
def caption_font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's bundled FreeType font at 11 px (the old bitmap default draws spaces 1 px wide, so
    "64 filters 3x3" read as "64filters3x3"); the bitmap font only where Pillow lacks FreeType.
    Cached: loading it once per process is enough (``caption_font.cache_clear()`` resets it)."""
    try:
        return ImageFont.load_default(size=11)
    except (ImportError, TypeError, OSError):
        return ImageFont.load_default()


def _resize(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    smaller = size[0] < img.width or size[1] < img.height
    return img.resize(size, Image.Resampling.LANCZOS if smaller else Image.Resampling.NEAREST)


def grid(tiles: Sequence[Image.Image], cols: int, *, pad: int = 2, labels: Sequence[str] | None = None,
         title: str | None = None, label_width: int = 0) -> Image.Image:
    """Tiles (all the same size) in rows of ``cols``; an optional label left of each row and a title.
    The sheet is widened when the title is longer than the tiles, so it is never cut off."""
    if not tiles:
        raise CnnkitError("nothing to draw")
    tw, th = tiles[0].size
    rows = math.ceil(len(tiles) / cols)
    top = 18 if title else 0
    font = caption_font()
    width = label_width + cols * (tw + pad) + pad
    if title:
        width = max(width, math.ceil(ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength(title, font=font)) + 8)
    sheet = Image.new("RGB", (width, top + rows * (th + pad) + pad), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((4, 3), title, fill=INK, font=font)
    for n, tile in enumerate(tiles):
        r, c = divmod(n, cols)
        sheet.paste(tile, (label_width + pad + c * (tw + pad), top + pad + r * (th + pad)))
    for r, label in enumerate(labels or []):
        draw.text((3, top + pad + r * (th + pad) + th // 2 - 5), label, fill=INK, font=font)
    return sheet


def _mark(draw: ImageDraw.ImageDraw, box: Sequence[tuple[int, int]], full: Sequence[tuple[int, int]],
          scale: Sequence[float], origin: Sequence[int] = (0, 0)) -> None:
    """Red lines where the input ends inside the field (2D, box/full in (y, x) order)."""
    (y1, y2), (x1, x2) = box
    (fy1, _fy2), (fx1, _fx2) = full
    sy, sx = scale
    oy, ox = origin
    top, bottom = oy + (y1 - fy1) * sy, oy + (y2 - fy1) * sy - 1
    left, right = ox + (x1 - fx1) * sx, ox + (x2 - fx1) * sx - 1
    if y1 > full[0][0]:
        draw.line([(left, top), (right, top)], fill=BORDER, width=2)
    if y2 < full[0][1]:
        draw.line([(left, bottom), (right, bottom)], fill=BORDER, width=2)
    if x1 > full[1][0]:
        draw.line([(left, top), (left, bottom)], fill=BORDER, width=2)
    if x2 < full[1][1]:
        draw.line([(right, top), (right, bottom)], fill=BORDER, width=2)


def _canvas(item: Tensor, box: Sequence[tuple[int, int]], full: Sequence[tuple[int, int]]) -> Tensor:
    """The field window of ``item`` (C, *S): the input inside ``box``, NaN outside the input."""
    shape = [b - a for a, b in full]
    out = torch.full((item.shape[0], *shape), float("nan"))
    src = (slice(None), *(slice(a, b) for a, b in box))
    dst = (slice(None), *(slice(a - fa, b - fa) for (a, b), (fa, _) in zip(box, full)))
    out[dst] = item[src].float()
    return out


def _patch2d(item: Tensor, box, full, cell: int, lohi: tuple[float, float] | None) -> Image.Image:
    window = _canvas(item, box, full)
    missing = torch.isnan(window[0])
    rgb = to_rgb8(_fill(window, lohi))
    rgb[missing.numpy()] = OUTSIDE
    h, w = rgb.shape[:2]
    scale = cell / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    img = Image.new("RGB", (cell, cell), BACKGROUND)
    img.paste(_resize(Image.fromarray(rgb), size), (0, 0))
    _mark(ImageDraw.Draw(img), box, full, (size[1] / h, size[0] / w))
    return img


def _fill(window: Tensor, lohi: tuple[float, float] | None) -> Tensor:
    """NaN → a value inside the range, and values mapped to [0, 1] by the item's range ``lohi``."""
    if lohi is not None:
        lo, hi = lohi
        window = (window - lo) / (hi - lo) if hi > lo else window * 0
    return torch.nan_to_num(window, nan=0.0)


def _plot1d(item: Tensor, box, full, cell: int, lohi: tuple[float, float]) -> Image.Image:
    w, h = cell, cell // 2
    img = Image.new("RGB", (w, h), BACKGROUND)
    draw = ImageDraw.Draw(img)
    (a, b), (fa, fb) = box[0], full[0]
    span = max(1, fb - fa - 1)
    x_of = lambda j: (j - fa) / span * (w - 1)  # noqa: E731
    if a > fa:
        draw.rectangle([0, 0, x_of(a), h], fill=OUTSIDE)
        draw.line([(x_of(a), 0), (x_of(a), h)], fill=BORDER, width=2)
    if b < fb:
        draw.rectangle([x_of(b - 1), 0, w, h], fill=OUTSIDE)
        draw.line([(x_of(b - 1), 0), (x_of(b - 1), h)], fill=BORDER, width=2)
    lo, hi = lohi
    seg = item.float().mean(0)[a:b].tolist()
    y_of = lambda v: (h - 3) - (v - lo) / (hi - lo if hi > lo else 1.0) * (h - 6)  # noqa: E731
    points = [(x_of(a + j), y_of(v)) for j, v in enumerate(seg)]
    if len(points) == 1:
        points.append(points[0])
    draw.line(points, fill=INK, width=1)
    return img


def _slices3d(item: Tensor, box, full, cell: int, lohi: tuple[float, float]) -> Image.Image:
    window = _canvas(item, box, full).mean(0)  # (D, H, W)
    d, h, w = window.shape
    views = [window[d // 2], window[:, h // 2], window[:, :, w // 2]]
    img = Image.new("RGB", (3 * cell, cell), BACKGROUND)
    for n, view in enumerate(views):
        missing = torch.isnan(view)
        rgb = to_rgb8(_fill(view[None], lohi))
        rgb[missing.numpy()] = OUTSIDE
        img.paste(_resize(Image.fromarray(rgb), (cell - 2, cell - 2)), (n * cell + 1, 1))
    return img


def _default_cell(ndim: int, rf_size: Sequence[int]) -> int:
    if ndim == 2:
        return int(min(112, max(48, 2 * max(rf_size))))
    return 96 if ndim == 1 else 40


def contact_sheet(table: LayerTop, dataset: Any, *, title: str = "", cell: int | None = None,
                  max_units: int | None = None) -> Image.Image:
    """Units (rows) x top-k (columns) of one layer, as in Zeiler & Fergus (2014), Fig. 2.

    Args:
        table: the layer's :class:`LayerTop` from :func:`~cnnkit.visualize.scan.scan_top_units`,
            with its receptive field.
        dataset: the data set that was scanned (items (C, *S)).
        cell: side of one cell in pixels (1D: width; 3D: side of each of the three slices).
    """
    rf = table.receptive_field
    if rf is None:
        raise CnnkitError("the table has no receptive field")
    ndim = rf.ndim
    cell = cell or _default_cell(ndim, rf.size)
    draw_cell: Callable[..., Image.Image] = {1: _plot1d, 2: _patch2d, 3: _slices3d}[ndim]
    cache: dict[int, tuple[Tensor, tuple[float, float]]] = {}
    tiles, labels = [], []
    n_units = len(table.units) if max_units is None else min(max_units, len(table.units))
    k = table.activation.shape[1]
    if k == 0:
        raise CnnkitError("the table is empty")
    for u in range(n_units):
        labels.append(str(int(table.units[u])))
        for j in range(k):
            index = int(table.index[u, j])
            if index not in cache:
                item = dataset[index]
                item = item[0] if isinstance(item, (tuple, list)) else item
                cache[index] = (item, (float(item.min()), float(item.max())))
            item, lohi = cache[index]
            pos = [int(p) for p in table.position[u, j]]
            box = unit_box(rf, pos, item.shape[1:])
            full = rf.box(pos)
            if ndim == 2:
                three = item.shape[0] == 3 and lohi[0] >= 0 and lohi[1] <= 1
                tiles.append(_patch2d(item, box, full, cell, None if three else lohi))
            else:
                tiles.append(draw_cell(item, box, full, cell, lohi))
        if len(cache) > 256:
            cache.clear()
    size = "x".join(str(s) for s in rf.size)
    head = f"{title}  receptive field {size}  top {k} of {n_units} units".strip()
    return grid(tiles, k, labels=labels, title=head, label_width=28)


def filter_grid(weight: Tensor, *, cell: int = 36, cols: int | None = None) -> Image.Image:
    """Kernels of a conv layer, one tile each: weight (O, I, *K). 2D kernels with 3 input channels
    are shown in colour, others as the mean over input channels; 1D as plots; 3D as the central slice."""
    if weight.ndim not in (3, 4, 5):
        raise ShapeError(f"weight must have shape (O, I, *K) with 1 to 3 kernel dims, got {tuple(weight.shape)}")
    w = weight.detach().float().cpu()
    tiles = []
    for f in w:
        if f.ndim == 2:  # 1D kernel (I, K)
            lo, hi = float(f.min()), float(f.max())
            tiles.append(_plot1d(f, ((0, f.shape[1]),), ((0, f.shape[1]),), cell * 2, (lo, hi)))
            continue
        if f.ndim == 4:  # 3D kernel: central slice along depth
            f = f[:, f.shape[1] // 2]
        f = f if f.shape[0] == 3 else f.mean(0, keepdim=True)
        lo, hi = float(f.min()), float(f.max())
        rgb = to_rgb8((f - lo) / (hi - lo) if hi > lo else f * 0)
        tiles.append(_resize(Image.fromarray(rgb), (cell, cell)))
    cols = cols or math.ceil(math.sqrt(len(tiles)))
    return grid(tiles, cols, title=f"{w.shape[0]} filters {'x'.join(str(s) for s in w.shape[2:])}")


def _viridis(x: np.ndarray) -> np.ndarray:
    from matplotlib import colormaps

    lut = (colormaps["viridis"](np.linspace(0, 1, 256))[:, :3] * 255).astype(np.uint8)
    return lut[np.clip((x * 255).round(), 0, 255).astype(np.int64)]


def activation_grid(act: Tensor, *, item: Tensor | None = None, cell: int = 64,
                    max_maps: int = MAX_MAPS, title: str = "") -> Image.Image:
    """Feature maps of one input: act (C, *S), each map scaled to its own range (viridis); 1D maps
    as plots, 3D maps as their central slice. ``item`` (C_in, *S_in), if given, comes first."""
    if act.ndim not in (2, 3, 4):
        raise ShapeError(f"activations must have shape (C, *S) with 1 to 3 spatial dims, got {tuple(act.shape)}")
    a = act.detach().float().cpu()[:max_maps]
    tiles = []
    if item is not None:
        tiles.append(_input_tile(item.detach().float().cpu(), cell))
    for m in a:
        lo, hi = float(m.min()), float(m.max())
        if m.ndim == 1:
            tiles.append(_plot1d(m[None], ((0, len(m)),), ((0, len(m)),), cell, (lo, hi)).resize((cell, cell)))
            continue
        m = m[m.shape[0] // 2] if m.ndim == 3 else m
        norm = ((m - lo) / (hi - lo) if hi > lo else m * 0).numpy()
        tiles.append(_resize(Image.fromarray(_viridis(norm)), (cell, cell)))
    shown = f"{len(a)} of {act.shape[0]} maps" if len(a) < act.shape[0] else f"{len(a)} maps"
    head = f"{title}: {shown}" if title else f"{shown} of shape {tuple(a.shape[1:])}"
    return grid(tiles, math.ceil(math.sqrt(len(tiles))), title=head)


def _input_tile(item: Tensor, cell: int) -> Image.Image:
    if item.ndim == 2:
        lo, hi = float(item.min()), float(item.max())
        return _plot1d(item, ((0, item.shape[1]),), ((0, item.shape[1]),), cell, (lo, hi)).resize((cell, cell))
    if item.ndim == 4:
        item = item[:, item.shape[1] // 2]
    return _resize(Image.fromarray(to_rgb8(item)), (cell, cell))
