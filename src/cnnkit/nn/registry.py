"""Encoders registered by decorator and built by name (timm style). This module knows no model
file: :mod:`cnnkit.nn` imports the modules that register (``nn/__init__.py``)."""
from __future__ import annotations

from typing import Any, Callable

from torch import nn

from cnnkit.core.registry import Registry

#: every encoder module built must have ``embedding_dim``, ``in_channels`` and ``input_size`` (H, W)
ENCODERS: Registry[Callable[..., nn.Module]] = Registry("encoder")


def register_encoder(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register ``fn`` under its own name (duplicates raise)."""
    return ENCODERS.register(fn)


def list_encoders() -> list[str]:
    """Names of the registered encoders, sorted."""
    return ENCODERS.names()


def create_encoder(name: str, **kwargs: Any) -> nn.Module:
    """Build the encoder ``name`` with ``kwargs``.

    Raises:
        UnknownNameError: ``name`` is not registered; the message lists the registered names.
        ConfigError: the encoder rejected a keyword argument.
    """
    return ENCODERS.build(name, **kwargs)
