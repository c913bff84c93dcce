"""Shared fixtures. Tests run on the CPU unless CNNKIT_TEST_DEVICE says otherwise."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"
# Development data outside the repo (LFW etc.); tests that need it skip with a reason when absent.
SHARED = Path(os.environ.get("CNNKIT_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture
def device() -> str:
    return os.environ.get("CNNKIT_TEST_DEVICE", "cpu")


@pytest.fixture(scope="session")
def orl_dir() -> Path:
    from cnnkit.core.assets import orl_dir as packaged

    path = packaged()
    assert path.is_dir(), f"{path} ships inside the cnnkit package and must exist"
    return path


@pytest.fixture(scope="session")
def lfw_dir() -> Path:
    path = SHARED / "faces" / "lfw"
    if not path.is_dir():
        pytest.skip(f"LFW not available at {path} (set CNNKIT_SHARED_DATA)")
    return path


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never write to the user's real data dir; keep one cache per session (weights are cached)."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path_factory.getbasetemp() / "xdg-data"))
    monkeypatch.delenv("CNNKIT_DB", raising=False)
    if "CNNKIT_CACHE" not in os.environ:
        monkeypatch.setenv("CNNKIT_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="session")
def pipeline():
    """One dlib ResNet face pipeline per session (weights load once)."""
    from cnnkit.faces import FacePipeline

    return FacePipeline("dlib_resnet", threads=2)


@pytest.fixture(scope="session")
def astronaut():
    """skimage's astronaut (512, 512, 3): one face, centred near (225, 120)."""
    from skimage import data as skdata

    return skdata.astronaut()


@pytest.fixture
def shared_dir() -> Path:
    """A folder outside pytest's 0700 temp root, so that an unprivileged child can reach it."""
    import shutil
    import tempfile

    where = Path(tempfile.mkdtemp(prefix="cnnkit-perm-"))
    where.chmod(0o777)
    yield where
    for p in where.rglob("*"):
        if p.is_dir() and not p.is_symlink():
            p.chmod(0o777)
    shutil.rmtree(where, ignore_errors=True)


@pytest.fixture
def as_nobody():
    """Run ``python -c CODE ARGS...`` as an unprivileged user (root ignores permission bits):
    through ``setpriv`` when this runs as root, as it is otherwise. Returns the CompletedProcess."""
    import shutil
    import subprocess
    import sys
    import textwrap

    pre: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv to drop privileges")
        pre = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]

    def run(code: str, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(pre + [sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True,
                              text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO / "src")})

    return run
