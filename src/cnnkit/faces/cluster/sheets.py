"""What people look at: one contact sheet (PNG) per cluster and an ``index.html`` linking them,
largest cluster first, the faces left alone last."""
from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any

import numpy as np

from cnnkit.core.errors import CnnkitError

__all__ = ["contact_sheet", "write_index"]

THUMB = 72          # pixels per face on a sheet
COLUMNS = 10
MAX_PER_SHEET = 50  # faces shown per cluster (the most central ones)


def _crop(image: np.ndarray, box: list[float], size: int) -> np.ndarray:
    from PIL import Image

    x1, y1, x2, y2 = box
    m = 0.2 * max(x2 - x1, y2 - y1)
    h, w = image.shape[:2]
    x1, y1 = int(max(0, x1 - m)), int(max(0, y1 - m))
    x2, y2 = int(min(w, x2 + m)), int(min(h, y2 + m))
    crop = Image.fromarray(image[y1:max(y2, y1 + 1), x1:max(x2, x1 + 1)])
    return np.asarray(crop.resize((size, size), Image.Resampling.BILINEAR))


def contact_sheet(faces: list[dict[str, Any]], path: str | os.PathLike[str], *, thumb: int = THUMB,
                  columns: int = COLUMNS, limit: int = MAX_PER_SHEET) -> int:
    """Write a grid of face crops (``faces``: dicts with ``file`` and ``box``) as a PNG; returns
    how many faces it shows. A photo that can no longer be read is a grey cell."""
    from PIL import Image

    from cnnkit.data.image_io import load_image

    faces = faces[:limit]
    cols = min(columns, max(len(faces), 1))
    rows = max(1, -(-len(faces) // cols))
    sheet = np.full((rows * (thumb + 2), cols * (thumb + 2), 3), 255, np.uint8)
    cache: dict[str, np.ndarray | None] = {}
    for k, f in enumerate(faces):
        if f["file"] not in cache:
            try:
                cache = {f["file"]: load_image(f["file"])}  # keep one photo in memory
            except (CnnkitError, OSError):
                cache = {f["file"]: None}
        img = cache[f["file"]]
        cell = np.full((thumb, thumb, 3), 160, np.uint8) if img is None else _crop(img, f["box"], thumb)
        r, c = divmod(k, cols)
        sheet[r * (thumb + 2) + 1:r * (thumb + 2) + 1 + thumb, c * (thumb + 2) + 1:c * (thumb + 2) + 1 + thumb] = cell
    Image.fromarray(sheet).save(path, optimize=True)
    return len(faces)


def write_index(data: dict[str, Any], out_dir: str | os.PathLike[str], *, max_alone: int = 200) -> Path:
    """``OUT/index.html`` and ``OUT/sheets/*.png``: every cluster of two faces or more, then one
    sheet of the faces left alone (the first ``max_alone``), then the recognised people."""
    out = Path(out_dir)
    (out / "sheets").mkdir(parents=True, exist_ok=True)
    parts = [f"<!doctype html><meta charset='utf-8'><title>Faces: {data['faces']} in {data['photos']} photos"
             "</title><style>body{font-family:sans-serif;margin:1em}h2{font-size:1em;margin:1.2em 0 .3em}"
             "img{image-rendering:auto;max-width:100%}</style>",
             f"<h1>{data['faces']} faces in {data['photos']} photos</h1>",
             f"<p>Threshold {data['threshold']:.4f} ({html.escape(data['threshold_source'])}; verification "
             f"threshold {data['verification_threshold']:.4f}). Name a cluster with "
             "<code>cnnkit face name clusters.json ID NAME --db GALLERY</code>.</p>"]
    groups = [c for c in data["clusters"] if c["size"] > 1]
    alone = [c for c in data["clusters"] if c["size"] == 1]
    for c in groups:
        name = f"sheets/cluster-{c['id']:05d}.png"
        shown = contact_sheet(c["faces"], out / name)
        more = f" (the {shown} most central shown)" if shown < c["size"] else ""
        parts.append(f"<h2>Cluster {c['id']}: {c['size']} faces{more}</h2><img src='{name}' alt='cluster {c['id']}'>")
    if alone:
        faces = [c["faces"][0] for c in alone]
        shown = contact_sheet(faces, out / "sheets/alone.png", limit=max_alone)
        ids = ", ".join(str(c["id"]) for c in alone[:shown])
        parts.append(f"<h2>Alone: {len(alone)} faces (ids {html.escape(ids)}"
                     f"{', ...' if shown < len(alone) else ''})</h2><img src='sheets/alone.png' alt='alone'>")
    for k, person in enumerate(data.get("known", [])):
        name = f"sheets/known-{k:05d}.png"
        contact_sheet(person["faces"], out / name)
        parts.append(f"<h2>{html.escape(person['name'])} (enrolled): {len(person['faces'])} faces</h2>"
                     f"<img src='{name}' alt='{html.escape(person['name'])}'>")
    if data["errors"]:
        parts.append("<h2>Photos without a usable face</h2><ul>"
                     + "".join(f"<li>{html.escape(e['error'])}</li>" for e in data["errors"]) + "</ul>")
    path = out / "index.html"
    path.write_text("\n".join(parts) + "\n")
    return path
