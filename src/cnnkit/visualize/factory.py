"""Import a user's model factory named as ``FILE.py:NAME`` or ``package.module:NAME``, checked before it is called."""
from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from typing import Any, Callable

from cnnkit.core.errors import CnnkitError


def load_factory(spec: str) -> tuple[Callable[..., Any], str]:
    """``(the callable, a short name: the file stem or the last module part)``, checked by
    :func:`check_factory` before anything is called.

    Raises:
        CnnkitError: no such file, module or attribute (the message names ``spec``).
    """
    target, _, attr = spec.rpartition(":")
    try:
        if target.endswith(".py"):
            module_spec = importlib.util.spec_from_file_location(Path(target).stem, target)
            if module_spec is None or not Path(target).is_file():
                raise CnnkitError(f"{target}: no such Python file")
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)  # type: ignore[union-attr]
        else:
            module = importlib.import_module(target)
        factory = getattr(module, attr)
    except (ImportError, AttributeError) as exc:
        raise CnnkitError(f"{spec}: cannot import the model factory: {exc}") from exc
    check_factory(spec, factory)
    return factory, Path(target).stem if target.endswith(".py") else target.rsplit(".", 1)[-1]


def check_factory(spec: str, factory: Any) -> None:
    """Before anything is called: the factory must be a Python function (not a builtin such as
    ``os:getpid``, not a class) or an ``nn.Module`` subclass, and a function must be annotated to
    return an ``nn.Module`` (``def build() -> torch.nn.Module``).

    Raises:
        CnnkitError: anything else (the message names ``spec``).
    """
    import inspect
    import typing

    import torch

    if inspect.isclass(factory):
        if issubclass(factory, torch.nn.Module):
            return
        raise CnnkitError(f"{spec}: a class that is not a torch.nn.Module; refusing to call it")
    if not inspect.isfunction(factory):
        raise CnnkitError(f"{spec}: not a Python function ({type(factory).__name__}); refusing to call it")
    try:
        returns = typing.get_type_hints(factory).get("return")
    except Exception:  # noqa: BLE001 - an annotation that cannot be resolved is no annotation
        returns = None
    if not (inspect.isclass(returns) and issubclass(returns, torch.nn.Module)):
        raise CnnkitError(f"{spec}: the factory must be annotated to return a torch.nn.Module "
                          "(def build() -> torch.nn.Module); refusing to call it")
