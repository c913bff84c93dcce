"""The layer order of STYLE.md 2.2, enforced: imports only point downward."""
import ast
from pathlib import Path

import cnnkit

ALLOWED = {
    "core": set(),
    "distances": {"core"},
    "nn": {"core"},
    "data": {"core"},
    "store": {"core"},
    "eval": {"core"},
    "losses": {"core", "distances"},
    "mining": {"core", "distances"},
    "style": {"core", "nn", "data"},
    "visualize": {"core", "data"},
    "faces": {"core", "distances", "nn", "data", "store", "eval"},
    "train": {"core", "distances", "nn", "data", "losses", "mining", "eval"},
    "tasks": {"core", "nn", "data", "eval", "train"},
}
NO_TORCH = {"core", "store", "eval"}


def _imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)


def test_import_direction():
    root = Path(cnnkit.__file__).parent
    checked = 0
    for path in root.rglob("*.py"):
        sub = path.relative_to(root).parts[0]
        if sub not in ALLOWED:
            continue  # cli/ and top-level files may import anything
        for module in _imports(path):
            if module.startswith("cnnkit."):
                target = module.split(".")[1]
                assert target == sub or target in ALLOWED[sub], f"{path}: {sub} must not import {target}"
            if sub in NO_TORCH:
                assert module.split(".")[0] != "torch", f"{path}: {sub} must not import torch"
            checked += 1
    assert checked > 0


def test_subpackages_are_known():
    root = Path(cnnkit.__file__).parent
    subs = {p.name for p in root.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    unknown = subs - set(ALLOWED) - {"cli", "serve"}
    assert not unknown, f"add {unknown} to ALLOWED with its allowed imports"
