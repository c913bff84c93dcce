"""What a new user does in the first minutes on a fresh clone, in a temporary HOME: the README's
PATH line, then enroll, identify a photo with no face and one with a face, list, verify, remove. Each
step asserts on what the user reads. Runs the installed ``cnnkit`` command in subprocesses."""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
ORL = REPO / "src" / "cnnkit" / "assets" / "orl"
pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _path_line() -> str:
    setup = (REPO / "README.md").read_text().split("## Set-up on a fresh machine", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", setup, flags=re.S)[1].strip()


@pytest.fixture(scope="module")
def user(tmp_path_factory):
    if not (REPO / ".venv" / "bin" / "cnnkit").exists():
        pytest.skip(f"{REPO / '.venv'} does not exist: `make demo` or `make test` creates it (the README's PATH line "
                    "points there)")
    home = tmp_path_factory.mktemp("home")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CNNKIT_", "XDG_"))}
    env.update(HOME=str(home), PATH="/usr/local/bin:/usr/bin:/bin", COLUMNS="200")

    def sh(command: str) -> subprocess.CompletedProcess:
        # every step runs in a fresh shell that first does what the README says
        return subprocess.run(["bash", "-c", f"{_path_line()}\n{command}"], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=600)

    return sh, home


def test_the_readme_path_line_reaches_cnnkit(user):
    sh, _ = user
    before = subprocess.run(["bash", "-c", "command -v cnnkit"], cwd=REPO, capture_output=True, text=True,
                            env={"PATH": "/usr/local/bin:/usr/bin:/bin"})
    assert before.returncode != 0  # not reachable without the line
    done = sh("command -v cnnkit && cnnkit --version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == str(REPO / ".venv" / "bin" / "cnnkit")
    assert done.stdout.splitlines()[1].startswith("cnnkit, version ")


def test_first_session(user):
    sh, home = user
    gallery = home / ".local" / "share" / "cnnkit" / "gallery.sqlite"
    nobody = home / "nobody.png"
    x = np.linspace(0, 255, 160, dtype=np.uint8)
    Image.fromarray(np.tile(x, (120, 1))).save(nobody)  # a smooth gradient: no face in it

    done = sh("cnnkit face people")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip() == (f"error: {gallery}: no such gallery; nobody is enrolled yet "
                                   "(`cnnkit face enroll NAME PHOTO` creates it)")

    done = sh(f"cnnkit face enroll s1 {ORL}/s1/1.pgm && cnnkit face enroll s2 {ORL}/s2/1.pgm")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("enrolled") == 2
    assert f"gallery: {gallery}" in done.stderr

    done = sh(f"cnnkit face enroll bob {ORL}/s1/1.pgm")
    assert done.returncode == 2
    assert f"already enrolled as 's1' in {gallery}; use --force to move it to 'bob'" in done.stdout + done.stderr

    done = sh(f"cnnkit face identify {nobody} {ORL}/s1/2.pgm")
    assert done.returncode == 0, done.stderr
    rows = [line.split() for line in done.stdout.splitlines()[2:]]
    assert [r[0] for r in rows] == [str(nobody), f"{ORL}/s1/2.pgm"]
    assert rows[0][1:] == ["(no", "face)"] and rows[1][-2] == "s1"

    done = sh("cnnkit face people --format csv")
    assert done.returncode == 0 and [line.split(",")[0] for line in done.stdout.splitlines()] == ["name", "s1", "s2"]

    done = sh(f"cnnkit face verify s1 {ORL}/s1/3.pgm --format json")
    assert done.returncode == 0 and '"match": true' in done.stdout
    done = sh(f"cnnkit face verify zoe {ORL}/s1/3.pgm")
    assert done.returncode == 2
    assert done.stderr.strip().startswith(f"error: 'zoe' is not enrolled in {gallery}")

    done = sh("cnnkit face people --remove s2 --format json && cnnkit face people --format csv")
    assert done.returncode == 0, done.stderr
    removed, *table = done.stdout.splitlines()
    assert removed == '{"removed": "s2", "embeddings": 1}'
    assert table[0] == "name,faces,enrolled" and len(table) == 2 and table[1].startswith("s1,1,")

    for command in ("enroll ada nope.jpg", "verify s1 nope.jpg", "identify nope.jpg", "compare nope.jpg nope.jpg"):
        done = sh(f"cnnkit face {command}")
        assert done.returncode == 2 and "error: nope.jpg: no such file" in done.stderr, command
