"""Static checks of the whole package: no unsafe pickle loading, no work at import."""
import ast
import subprocess
import sys
from pathlib import Path

import cnnkit

ROOT = Path(cnnkit.__file__).parent


def test_every_torch_load_is_weights_only():
    offenders = []
    for path in ROOT.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "load" \
                    and getattr(node.func.value, "id", None) == "torch":
                kw = {k.arg: k.value for k in node.keywords}
                if not (isinstance(kw.get("weights_only"), ast.Constant) and kw["weights_only"].value is True):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, f"torch.load without weights_only=True: {offenders}"


def test_no_pickle_loading():
    offenders = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*.py")
                 if "pickle.load" in p.read_text() or "allow_pickle=True" in p.read_text()]
    assert not offenders


def test_importing_every_subpackage_has_no_side_effects(tmp_path):
    """Importing creates no file or directory and loads no model."""
    subs = sorted(p.name for p in ROOT.iterdir() if (p / "__init__.py").exists())
    code = ("import os, sys; os.environ['HOME'] = sys.argv[1]; os.environ['XDG_DATA_HOME'] = sys.argv[1];"
            "os.environ['XDG_CACHE_HOME'] = sys.argv[1];" + "".join(f"import cnnkit.{s};" for s in subs))
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, env={"PATH": "/usr/bin:/bin"})
    assert list(tmp_path.iterdir()) == []
