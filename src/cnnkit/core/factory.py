"""Import a user's factory function named as ``FILE.py:NAME`` or ``package.module:NAME``."""
from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from typing import Any, Callable

from cnnkit.core.errors import CnnkitError


def load_factory(spec: str) -> tuple[Callable[..., Any], str]:
    """``(the callable, a short name: the file stem or the last module part)``.

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
    return factory, Path(target).stem if target.endswith(".py") else target.rsplit(".", 1)[-1]
