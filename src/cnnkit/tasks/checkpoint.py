"""Trained models on disk: weights as safetensors, with the config (task, model name and keyword
arguments, metrics...) both in the safetensors metadata and in a JSON file beside it.

``model.safetensors`` + ``model.json``; :func:`load_model` needs only the ``.safetensors`` file.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file
from safetensors import safe_open
from torch import nn

from cnnkit.core.errors import WeightsError
from cnnkit.nn.models import create_model

_KEY = "cnnkit_config"


def _weights_path(path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    return path if path.suffix == ".safetensors" else path.with_name(path.name + ".safetensors")


def save_model(path: str | os.PathLike[str], model: nn.Module, config: dict[str, Any]) -> Path:
    """Write ``model``'s state dict to ``path`` (``.safetensors`` added when missing) and ``config``
    (must hold ``model`` and ``model_kwargs``) to the same name with ``.json``. Returns the weights path."""
    if "model" not in config or "model_kwargs" not in config:
        raise WeightsError("config must hold 'model' and 'model_kwargs' to rebuild the model")
    target = _weights_path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(config, indent=2, default=list)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(target), metadata={_KEY: text})
    target.with_suffix(".json").write_text(text + "\n")
    return target


def read_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The config stored in a model file's metadata."""
    target = _weights_path(path)
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
    """Rebuild a model saved by :func:`save_model`, in eval mode on the CPU.

    Returns:
        the model and its config dict (``task``, ``model``, ``model_kwargs``, ``input_shape``,
        ``classes``, ``metrics``...).

    Raises:
        WeightsError: missing or corrupt file, or weights that do not fit the architecture.
    """
    config = read_config(path)
    model = create_model(config["model"], **config["model_kwargs"])
    try:
        model.load_state_dict(load_file(str(_weights_path(path))))
    except RuntimeError as exc:
        raise WeightsError(f"{path}: weights do not fit {config['model']}: {exc}") from exc
    return model.eval(), config
