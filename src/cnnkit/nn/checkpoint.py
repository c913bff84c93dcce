"""A trained model on disk, and the one preprocessing every user of it shares.

A model is a directory ``MODEL/`` holding ``model.safetensors`` (weights) and ``model.json``
(config), or the two files ``MODEL.safetensors`` + ``MODEL.json``. The config is::

    {"encoder": "small_cnn", "kwargs": {...}, "input": {"size": [H, W], "channels": 1, "align": false},
     "metrics": {...}, "version": "...", "train": {...}}

``input.align = false`` means: feed the whole image, resized (tightly cropped photos such as ORL);
``true`` means: feed aligned face crops. ``input.flip_tta = true`` (optional) asks the face
adapter (:func:`cnnkit.faces.encoders.embed_chips`) to average each image's embedding with its
mirror image's. :func:`encode_images` applies exactly the preprocessing the training used
(:func:`prepare_images`).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from cnnkit.core.errors import WeightsError
from cnnkit.nn.registry import create_encoder

WEIGHTS, CONFIG = "model.safetensors", "model.json"


def model_files(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """(weights, config) paths of a model given as a directory or as ``MODEL`` / ``MODEL.json`` /
    ``MODEL.safetensors``."""
    p = Path(path)
    if p.is_dir() or not p.suffix and not p.with_suffix(".json").exists():
        return p / WEIGHTS, p / CONFIG
    stem = p.with_suffix("") if p.suffix in (".json", ".safetensors") else p
    return stem.with_suffix(".safetensors"), stem.with_suffix(".json")


def is_model_path(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` names a saved model (directory or file pair) rather than an encoder name."""
    weights, config = model_files(path)
    return weights.is_file() and config.is_file()


def save_encoder(path: str | os.PathLike[str], encoder: nn.Module, config: dict[str, Any]) -> Path:
    """Write the weights and the JSON config (atomically, each via a temporary file).

    Returns the directory (or file stem) written. ``config`` must hold ``encoder``, ``kwargs`` and
    ``input``; the weights' SHA-256 is added as ``weights_sha256``.
    """
    from safetensors.torch import save_file

    from cnnkit.core.download import sha256_file

    weights, cfg = model_files(path)
    weights.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in encoder.state_dict().items()}
    tmp = weights.with_name(weights.name + ".tmp")
    save_file(state, str(tmp))
    os.replace(tmp, weights)
    full = {**config, "weights_sha256": sha256_file(weights)}
    tmp = cfg.with_name(cfg.name + ".tmp")
    tmp.write_text(json.dumps(full, indent=2, sort_keys=True))
    os.replace(tmp, cfg)
    return Path(path)


def load_encoder(path: str | os.PathLike[str], *, device: str = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Load a saved model: ``(encoder in eval mode, config dict)``.

    Raises:
        WeightsError: a file is missing, the config is unreadable, or the weights do not fit.
    """
    from safetensors.torch import load_file

    weights, cfg = model_files(path)
    if not weights.is_file() or not cfg.is_file():
        raise WeightsError(f"{path}: not a cnnkit model (need {weights.name} and {cfg.name})")
    try:
        config = json.loads(cfg.read_text())
        encoder = create_encoder(config["encoder"], **config.get("kwargs", {}))
        encoder.load_state_dict(load_file(str(weights), device=device))
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise WeightsError(f"{path}: cannot load model: {exc}") from exc
    return encoder.to(device).eval(), config


def prepare_images(images: Sequence[np.ndarray], *, size: Sequence[int], channels: int) -> Tensor:
    """uint8 images, each (H, W) or (H, W, 3), to the network input (N, channels, size[0], size[1]).

    Grey or RGB conversion, bilinear resize of the whole image, scaling to [-1, 1].
    """
    h, w = int(size[0]), int(size[1])
    mode = "L" if channels == 1 else "RGB"
    out = np.empty((len(images), h, w, channels), dtype=np.float32)
    for i, img in enumerate(images):
        pil = Image.fromarray(np.asarray(img, dtype=np.uint8)).convert(mode)
        if pil.size != (w, h):
            pil = pil.resize((w, h), Image.BILINEAR)
        out[i] = np.asarray(pil, dtype=np.float32).reshape(h, w, channels)
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous() / 127.5 - 1.0


@torch.no_grad()
def encode_images(model: nn.Module, config: dict[str, Any], images: Sequence[np.ndarray], *,
                  batch_size: int = 64) -> np.ndarray:
    """Encode uint8 images (each (H, W) or (H, W, 3)) with a loaded model -> (N, D) float32: one
    network pass per image (flip averaging, ``input.flip_tta``, is the face adapter's job:
    :func:`cnnkit.faces.encoders.embed_chips`)."""
    inp = config["input"]
    model.eval()
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(images), batch_size):
        x = prepare_images(images[start:start + batch_size], size=inp["size"], channels=int(inp["channels"])).to(device)
        emb = model(x)
        out.append(emb.float().cpu().numpy())
    dim = int(getattr(model, "embedding_dim", 0)) or (out[0].shape[1] if out else 0)
    return np.concatenate(out, axis=0) if out else np.zeros((0, dim), dtype=np.float32)
