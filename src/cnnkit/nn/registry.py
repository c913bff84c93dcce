"""Encoders registered by decorator and built by name (timm style). Filled when
:mod:`cnnkit.nn.encoders` is imported, which :func:`create_encoder` does on first use."""
from __future__ import annotations

import importlib
from typing import Any, Callable

from torch import nn

from cnnkit.core.errors import UnknownNameError

_ENCODERS: dict[str, Callable[..., nn.Module]] = {}


def register_encoder(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register ``fn`` under its own name. The module it builds must have the attributes
    ``embedding_dim``, ``in_channels`` and ``input_size`` (H, W)."""
    if fn.__name__ in _ENCODERS:
        raise ValueError(f"encoder {fn.__name__!r} is already registered")
    _ENCODERS[fn.__name__] = fn
    return fn


def _load_builtin() -> None:
    importlib.import_module("cnnkit.nn.encoders")


def list_encoders() -> list[str]:
    """Names of the registered encoders, sorted."""
    _load_builtin()
    return sorted(_ENCODERS)


def create_encoder(name: str, **kwargs: Any) -> nn.Module:
    """Build the encoder ``name`` with ``kwargs``.

    Raises:
        UnknownNameError: ``name`` is not registered; the message lists the registered names.
    """
    _load_builtin()
    if name not in _ENCODERS:
        raise UnknownNameError(f"unknown encoder {name!r}; available: {sorted(_ENCODERS)}")
    return _ENCODERS[name](**kwargs)
