"""Issue 14 through the CLI: one photo of an unsupported format, a FIFO or a device named as a
photo never stops a batch, never hangs and never prints a traceback."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from cnnkit.cli._app import cli

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
ORL = REPO / "data" / "orl"


def _dds(photo: Path) -> bytes:
    """A DDS file with pixel-format flags 1, on which Pillow's DDS reader raises NotImplementedError."""
    buf = io.BytesIO()
    Image.open(photo).convert("RGB").save(buf, format="DDS")
    b = bytearray(buf.getvalue())
    b[80] = 1
    return bytes(b)


def test_unsupported_format_mid_folder_is_reported_and_the_rest_enrolled(tmp_path: Path) -> None:
    people = tmp_path / "people"
    (people / "ada").mkdir(parents=True)
    (people / "bob").mkdir()
    (people / "ada" / "1.pgm").write_bytes((ORL / "s1" / "1.pgm").read_bytes())
    (people / "ada" / "2.jpg").write_bytes(_dds(ORL / "s1" / "2.pgm"))
    (people / "ada" / "3.pgm").write_bytes((ORL / "s1" / "3.pgm").read_bytes())
    (people / "bob" / "1.pgm").write_bytes((ORL / "s2" / "1.pgm").read_bytes())
    db = tmp_path / "g.sqlite"
    for attempt in range(2):  # the rerun must not crash on the same file either
        r = CliRunner().invoke(cli, ["face", "enroll", "--folders", str(people), "--format", "json", "--db", str(db)],
                               catch_exceptions=False)
        out = json.loads(r.stdout.strip().splitlines()[-1])
        assert r.exit_code == 2 and "Traceback" not in r.output
        assert (out["enrolled"], out["skipped"], out["errors"]) == ((3, 0, 1) if attempt == 0 else (0, 3, 1))
        bad = [p for p in out["photos"] if p["status"] == "error"]
        assert bad[0]["image"] == str(people / "ada" / "2.jpg") and "unsupported image format DDS" in bad[0]["error"]


BASE = [sys.executable, "-m", "cnnkit.cli._main", "face"]


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    db = tmp_path_factory.mktemp("g") / "g.sqlite"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "CNNKIT_DB": str(db)}
    subprocess.run(BASE + ["enroll", "ada", str(ORL / "s1" / "1.pgm")], env=env, check=True, capture_output=True,
                   timeout=300)
    return env


@pytest.mark.parametrize("command", ["compare", "identify", "verify"])
@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_fifo_or_device_named_as_photo_gives_one_line_error(tmp_path: Path, env: dict[str, str], command: str,
                                                            kind: str) -> None:
    probe = tmp_path / "probe.jpg"
    if kind == "fifo":
        os.mkfifo(probe)
    else:
        probe.symlink_to("/dev/zero")
    argv = {"compare": [str(probe), str(ORL / "s1" / "2.pgm")], "identify": [str(probe)],
            "verify": ["ada", str(probe)]}[command]
    # timeout: a hang guard (the old code blocked on the FIFO forever, and read /dev/zero to 3.2 GB)
    r = subprocess.run(BASE + [command] + argv, env=env, capture_output=True, text=True, timeout=300)
    what = "a FIFO (named pipe)" if kind == "fifo" else "a character device"
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert f"{probe}: is {what}, not a regular file" in r.stderr
