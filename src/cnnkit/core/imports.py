"""Objects named by the user as ``FILE.py:NAME`` or ``package.module:NAME`` (a model factory on the
command line): imported here, the one place that imports code by a string."""
from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from typing import Any

from cnnkit.core.errors import CnnkitError

__all__ = ["import_attribute"]


def import_attribute(spec: str, *, what: str = "object") -> tuple[Any, str]:
    """``(the object, a short name: the file stem or the last module part)`` for ``spec``.

    Raises:
        CnnkitError: no such file, module or attribute (the message names ``spec`` and ``what``).
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
        obj = getattr(module, attr)
    except (ImportError, AttributeError) as exc:
        raise CnnkitError(f"{spec}: cannot import the {what}: {exc}") from exc
    return obj, Path(target).stem if target.endswith(".py") else target.rsplit(".", 1)[-1]
