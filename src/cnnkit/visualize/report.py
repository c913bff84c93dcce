"""The output folder of ``cnnkit visualize units``: ``units.json``, one contact sheet per layer, the
first-layer filters, the activation maps of one input, and an ``index.html`` that links them.

``units.json``::

    {"model": NAME,
     "layers": {LAYER: {"receptive_field": [size per dim],
                        "units": [{"unit": CHANNEL,
                                   "top": [{"index", "source", "position", "activation", "box"}]}]}}}

Coordinates are listed x first (the last tensor dimension), then y, then z: ``position`` is the
unit's place in the feature map, ``receptive_field`` the field size per dimension, and ``box`` the
patch in input coordinates, ``[start, end)`` per dimension, clipped at the border, written as all
starts then all ends: ``[x1, y1, x2, y2]`` for images, ``[start, end]`` for series and
``[x1, y1, z1, x2, y2, z2]`` for volumes.
"""
from __future__ import annotations

import html
import json
import os
from pathlib import Path
from typing import Any, Sequence

from torch import nn

from cnnkit.core.errors import CnnkitError

from .activations import capture_activations
from .filters import filter_image, first_conv
from .receptive import unit_box
from .render import MAX_MAPS, activation_grid, contact_sheet
from .scan import ScanResult

__all__ = ["units_json", "write_report", "write_index", "write_activation_maps"]


def _source(dataset: Any, index: int) -> str:
    return dataset.source(index) if hasattr(dataset, "source") else str(index)


def units_json(result: ScanResult, dataset: Any, *, model_name: str) -> dict[str, Any]:
    """The ``units.json`` document of a scan (see the module docstring)."""
    spatial = tuple(result.input_shape[1:])
    layers: dict[str, Any] = {}
    for name, table in result.layers.items():
        rf = table.receptive_field
        units = []
        for u in range(len(table.units)):
            top = []
            for j in range(table.activation.shape[1]):
                pos = [int(p) for p in table.position[u, j]]
                box = unit_box(rf, pos, spatial)
                index = int(table.index[u, j])
                top.append({
                    "index": index,
                    "source": _source(dataset, index),
                    "position": pos[::-1],
                    "activation": float(table.activation[u, j]),
                    "box": [a for a, _ in box][::-1] + [b for _, b in box][::-1],
                })
            units.append({"unit": int(table.units[u]), "top": top})
        layers[name] = {"receptive_field": list(rf.size[::-1]), "units": units}
    return {"model": model_name, "layers": layers}


def layer_file_name(layer: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in layer) or "layer"


def write_report(outdir: str | os.PathLike[str], result: ScanResult, dataset: Any, model: nn.Module, *,
                 model_name: str, activation_index: int = 0, max_units: int | None = None,
                 filters: bool = True, progress: bool = False) -> dict[str, Any]:
    """Write ``units.json``, ``sheets/LAYER.png``, ``filters.png`` (first convolution), the
    activation maps of item ``activation_index`` (``activations/LAYER.png``) and ``index.html``.
    ``progress``: a bar on stderr (on a terminal) counting the sheets and maps drawn.

    Returns the document written to ``units.json`` with a ``files`` entry listing what was written
    (relative paths; not part of ``units.json``).
    """
    out = Path(outdir)
    (out / "sheets").mkdir(parents=True, exist_ok=True)
    (out / "activations").mkdir(exist_ok=True)
    doc = units_json(result, dataset, model_name=model_name)
    (out / "units.json").write_text(json.dumps(doc, indent=1))
    files: dict[str, list[str]] = {"sheets": [], "activations": [], "filters": []}
    from tqdm import tqdm

    bar = tqdm(total=2 * len(result.layers), desc="drawing", unit="sheet", leave=False,
               disable=None if progress else True)
    for name, table in result.layers.items():
        path = f"sheets/{layer_file_name(name)}.png"
        contact_sheet(table, dataset, title=f"{model_name} {name}", max_units=max_units).save(out / path)
        files["sheets"].append(path)
        bar.update(1)
    if filters:
        try:
            conv = first_conv(model)
        except CnnkitError:
            conv = None
        if conv is not None:
            filter_image(model, conv).save(out / "filters.png")
            files["filters"].append("filters.png")
    item = dataset[activation_index]
    item = item[0] if isinstance(item, (tuple, list)) else item
    acts = capture_activations(model, item[None].to(_device(model)), list(result.layers))
    for name, act in acts.items():
        path = f"activations/{layer_file_name(name)}.png"
        activation_grid(act[0], item=item, title=f"{name} of {_source(dataset, activation_index)}").save(out / path)
        files["activations"].append(path)
        bar.update(1)
    bar.close()
    write_index(out, doc, files, seen=result.seen)
    return {**doc, "files": files}


def write_activation_maps(outdir: str | os.PathLike[str], model: nn.Module, item: Any, layers: Sequence[str], *,
                          device: str = "cpu") -> list[tuple[Path, str, int, tuple[int, ...]]]:
    """``OUTDIR/LAYER.png`` for each of ``layers``: the activation maps of one input ``item``
    (C, *S), at most :data:`~cnnkit.visualize.render.MAX_MAPS` of them. ``outdir`` must exist.

    Returns:
        per layer, ``(path, layer, maps drawn, activation shape (C', *S'))``.
    """
    written = []
    for layer, act in capture_activations(model, item[None].to(device), list(layers)).items():
        path = Path(outdir) / f"{layer_file_name(layer)}.png"
        activation_grid(act[0], item=item, title=layer, max_maps=MAX_MAPS).save(path)
        written.append((path, layer, min(act.shape[1], MAX_MAPS), tuple(act.shape[1:])))
    return written


def _device(model: nn.Module):
    for p in model.parameters():
        return p.device
    return "cpu"


def write_index(out: Path, doc: dict[str, Any], files: dict[str, Sequence[str]], *, seen: int) -> Path:
    """``index.html``: every layer with its receptive field, contact sheet and activation maps."""
    esc = html.escape
    parts = [f"<!doctype html><meta charset='utf-8'><title>{esc(doc['model'])}: what units respond to</title>",
             "<style>body{font-family:sans-serif;margin:2em}img{max-width:100%;image-rendering:pixelated}"
             "h2{margin-top:2em}</style>",
             f"<h1>{esc(doc['model'])}: the inputs that excite each unit most</h1>",
             f"<p>{seen} inputs scanned. Each row of a sheet is one unit (channel), with its top "
             "patches cropped to the unit's receptive field; grey is outside the input, red marks the "
             "input border. <a href='units.json'>units.json</a> lists every patch.</p>"]
    if files.get("filters"):
        parts.append(f"<h2>First-layer filters</h2><img src='{files['filters'][0]}'>")
    sheets = dict(zip(doc["layers"], files.get("sheets", [])))
    maps = dict(zip(doc["layers"], files.get("activations", [])))
    parts.append("<ul>" + "".join(f"<li><a href='#{esc(layer_file_name(n))}'>{esc(n)}</a> (receptive field "
                                  f"{'x'.join(map(str, v['receptive_field']))})</li>"
                                  for n, v in doc["layers"].items()) + "</ul>")
    for name, layer in doc["layers"].items():
        rf = "x".join(map(str, layer["receptive_field"]))
        parts.append(f"<h2 id='{esc(layer_file_name(name))}'>{esc(name)}: receptive field {rf}</h2>")
        if name in sheets:
            parts.append(f"<p><a href='{sheets[name]}'><img src='{sheets[name]}'></a></p>")
        if name in maps:
            parts.append(f"<p>Activation maps of one input: <a href='{maps[name]}'>{maps[name]}</a></p>")
    path = out / "index.html"
    path.write_text("\n".join(parts))
    return path
