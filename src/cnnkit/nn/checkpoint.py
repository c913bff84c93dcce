"""Trained models on disk (the one checkpoint module), and the one preprocessing every user of a
face encoder shares. Two kinds of file, each written atomically (temporary file + rename):

- a **face encoder** (``cnnkit train``): :func:`save_encoder` / :func:`load_encoder`;
- a **task model** (``cnnkit conv train``): :func:`save_model` / :func:`load_model`, weights in
  ``NAME.safetensors`` with the config (``task``, ``model``, ``model_kwargs``...) in its metadata
  and in ``NAME.json`` beside it.

:func:`load_model_file` opens either. A face encoder is a directory ``MODEL/`` holding ``model.safetensors`` (weights) and ``model.json``
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
    from cnnkit.core.download import sha256_file

    weights, cfg = model_files(path)
    _write_weights(weights, encoder)
    _write_text(cfg, json.dumps({**config, "weights_sha256": sha256_file(weights)}, indent=2, sort_keys=True))
    return Path(path)


def _write_weights(path: Path, model: nn.Module, metadata: dict[str, str] | None = None) -> None:
    """The state dict as safetensors, atomically."""
    from safetensors.torch import save_file

    path.parent.mkdir(exist_ok=True)  # a model directory; its parent was checked by the caller
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tmp = path.with_name(path.name + ".tmp")
    save_file(state, str(tmp), metadata=metadata)
    os.replace(tmp, path)


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


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


# -- task models (``cnnkit conv train``) -------------------------------------------------------------

_KEY = "cnnkit_config"


def _task_weights(path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    return path if path.suffix == ".safetensors" else path.with_name(path.name + ".safetensors")


def save_model(path: str | os.PathLike[str], model: nn.Module, config: dict[str, Any]) -> Path:
    """Write ``model``'s state dict to ``path`` (``.safetensors`` added when missing) with ``config``
    (must hold ``model`` and ``model_kwargs``) in its metadata and in the same name with ``.json``,
    each atomically. Returns the weights path."""
    if "model" not in config or "model_kwargs" not in config:
        raise WeightsError("config must hold 'model' and 'model_kwargs' to rebuild the model")
    target = _task_weights(path)
    text = json.dumps(config, indent=2, default=list)
    _write_weights(target, model, {_KEY: text})
    _write_text(target.with_suffix(".json"), text + "\n")
    return target


def read_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The config stored in a task model file's metadata."""
    from safetensors import safe_open

    target = _task_weights(path)
    if not target.is_file():
        raise WeightsError(f"{target}: no such model file")
    try:
        with safe_open(str(target), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as exc:  # safetensors raises its own error types for corrupt files
        raise WeightsError(f"{target}: not a safetensors file ({exc})") from exc
    if _KEY not in meta:
        raise WeightsError(f"{target}: no cnnkit config in its metadata (not saved by cnnkit conv train?)")
    return json.loads(meta[_KEY])


def load_model(path: str | os.PathLike[str]) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a task model saved by :func:`save_model`, in eval mode on the CPU.

    Returns:
        the model and its config dict (``task``, ``model``, ``model_kwargs``, ``input_shape``,
        ``classes``, ``metrics``...).

    Raises:
        WeightsError: missing or corrupt file, or weights that do not fit the architecture.
    """
    from safetensors.torch import load_file

    from cnnkit.nn.models import create_model

    config = read_config(path)
    model = create_model(config["model"], **config["model_kwargs"])
    try:
        model.load_state_dict(load_file(str(_task_weights(path))))
    except RuntimeError as exc:
        raise WeightsError(f"{path}: weights do not fit {config['model']}: {exc}") from exc
    return model.eval(), config


def load_model_file(path: str | os.PathLike[str], *, device: str = "cpu") -> tuple[nn.Module, str, dict[str, Any]]:
    """Either kind of model file: ``(model in eval mode, its name, its config)``; the name is the
    encoder's, or the task's (else the file's stem).

    Raises:
        WeightsError: neither a face encoder nor a task model.
    """
    p = Path(path)
    if is_model_path(p):
        try:
            config = json.loads(model_files(p)[1].read_text())
        except (OSError, ValueError):
            config = {}
        if "encoder" in config:
            model, config = load_encoder(p, device=device)
            return model, str(config["encoder"]), config
    if p.suffix in (".safetensors", ".json") and p.with_suffix(".safetensors").is_file():
        model, config = load_model(p.with_suffix(".safetensors"))
        return model.to(device), str(config.get("task") or p.stem), config
    raise WeightsError(f"{path}: not a model saved by `cnnkit train` or `cnnkit conv train`")


def input_transform(config: dict[str, Any]) -> tuple[Any, str]:
    """``(image -> network input (C, H, W), its name)`` for a face encoder's config (its resize,
    grey or RGB, [-1, 1] scaling); ``(None, "")`` for other models."""
    spec = config.get("input")
    if not isinstance(spec, dict) or "size" not in spec:
        return None, ""
    size, channels = tuple(spec["size"]), int(spec.get("channels", 3))
    return (lambda img: prepare_images([img], size=size, channels=channels)[0]), f"encoder-input:{size}:{channels}"
