"""Issue 14 through the CLI: one photo of an unsupported format, a FIFO or a device named as a
photo never stops a batch, never hangs and never prints a traceback."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from cnnkit.cli._app import cli
from cnnkit.store import SQLiteGallery

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


def _photo(path: Path, source: str) -> None:
    path.write_bytes((ORL / source).read_bytes())


def test_hostile_names_and_entries_in_a_folder_run(tmp_path: Path) -> None:
    """Undecodable bytes, NFC/NFD, control characters in names; links, FIFOs and folders named as
    photos: each entry is in the output with its reason, no run stops, no face is duplicated."""
    people = tmp_path / "people"
    raw = os.fsencode(people)
    nfc, nfd = "Jos\u00e9", "Jose\u0301"
    for folder, src in [(nfc, "s1/1.pgm"), (nfd, "s1/2.pgm"), ("line\nbreak", "s2/1.pgm"), ("ok", "s3/1.pgm")]:
        (people / folder).mkdir(parents=True)
        _photo(people / folder / "a.pgm", src)
    os.mkdir(raw + b"/bad\xffname")
    with open(raw + b"/bad\xffname/a.pgm", "wb") as f:
        f.write((ORL / "s4/1.pgm").read_bytes())
    with open(raw + b"/ok/caf\xe9.pgm", "wb") as f:  # a file name that is not UTF-8, in a good folder
        f.write((ORL / "s3/2.pgm").read_bytes())
    os.mkfifo(people / "ok" / "pipe.jpg")
    (people / "ok" / "loop.jpg").symlink_to(people / "ok" / "loop.jpg")
    (people / "ok" / "gone.jpg").symlink_to(people / "ok" / "nothing-here.jpg")
    (people / "ok" / "x.jpg").mkdir()
    (people / "ok" / "notes.txt").write_text("hello")
    (people / "stray.jpg").write_bytes(b"top-level file")
    db = tmp_path / "g.sqlite"
    r = CliRunner().invoke(cli, ["face", "enroll", "--folders", str(people), "--format", "json", "--db", str(db)],
                           catch_exceptions=False)
    assert r.exit_code == 2 and "Traceback" not in r.output
    out = json.loads(r.stdout.strip().splitlines()[-1])
    by_image = {p["image"]: p for p in out["photos"]}
    expected_errors = {
        str(people / "line\nbreak" / "a.pgm"): "control characters",
        os.fsdecode(raw + b"/bad\xffname/a.pgm"): "not UTF-8",
        str(people / "ok" / "pipe.jpg"): "is a FIFO (named pipe), not a regular file",
        str(people / "ok" / "loop.jpg"): "symbolic link loop",
        str(people / "ok" / "gone.jpg"): "dangling symbolic link",
        str(people / "ok" / "x.jpg"): "is a directory, not an image file",
    }
    for image, reason in expected_errors.items():
        assert by_image[image]["status"] == "error" and reason in by_image[image]["error"], (image, by_image[image])
    assert by_image[str(people / "ok" / "notes.txt")]["status"] == "skipped"
    assert by_image[str(people / "stray.jpg")]["status"] == "skipped"
    enrolled = sorted(p["image"] for p in out["photos"] if p["status"] == "enrolled")
    assert enrolled == sorted([str(people / nfc / "a.pgm"), str(people / nfd / "a.pgm"), str(people / "ok" / "a.pgm"),
                               os.fsdecode(raw + b"/ok/caf\xe9.pgm")])
    assert len(out["photos"]) == 4 + len(expected_errors) + 2  # every entry, once
    listing = CliRunner().invoke(cli, ["face", "people", "--db", str(db)], catch_exceptions=False)
    assert listing.exit_code == 0
    rows = listing.stdout.strip().splitlines()[2:]
    assert [row.split()[:2] for row in rows] == [[nfc, "2"], ["ok", "2"]]  # NFC and NFD: one person
    with SQLiteGallery(db) as g:
        assert g.integrity_check() == "ok"
        names = {s for p in g.people() for s in p.sources}
        assert "caf\\xe9.pgm" in names


def test_table_and_csv_cells_escape_control_characters_and_undecodable_bytes() -> None:
    from cnnkit.core.table import format_rows

    rows = [{"image": "line\nbreak.jpg", "name": "caf\udce9"}, {"image": "ok.jpg", "name": "\u05e9\u05dc\u05d5\u05dd 😀"}]
    table = format_rows(rows, "table", ["image", "name"]).splitlines()
    assert len(table) == 4 and table[2].split() == ["line\\nbreak.jpg", "caf\\xe9"]
    assert table[3].split() == ["ok.jpg", "\u05e9\u05dc\u05d5\u05dd", "😀"]  # RTL and emoji kept as they are
    assert format_rows(rows, "csv", ["image", "name"]).splitlines()[1] == "line\\nbreak.jpg,caf\\xe9"


@pytest.mark.parametrize("processes", [2, 4])
def test_concurrent_folder_enrollments_store_each_photo_once(tmp_path: Path, processes: int) -> None:
    """The same folder enrolled by several `cnnkit face enroll --folders` processes at once (the
    old code stored 40 faces for 20 photos with two processes, 75 with four)."""
    people = tmp_path / "people"
    for s in (1, 2, 3):
        (people / f"s{s}").mkdir(parents=True)
        for i in (1, 2, 3):
            _photo(people / f"s{s}" / f"{i}.pgm", f"s{s}/{i}.pgm")
    db = tmp_path / "g.sqlite"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    procs = [subprocess.Popen(BASE + ["enroll", "--folders", str(people), "--db", str(db), "--format", "json"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(processes)]
    outs = [p.communicate(timeout=600) for p in procs]  # a hang guard
    assert [p.returncode for p in procs] == [0] * processes, [e for _, e in outs]
    enrolled = sum(json.loads(o.strip().splitlines()[-1])["enrolled"] for o, _ in outs)
    with SQLiteGallery(db) as g:
        rows = g.conn.execute("SELECT COUNT(*), COUNT(DISTINCT source_sha256) FROM faces").fetchone()
        assert rows == (9, 9) and enrolled == 9 and g.integrity_check() == "ok"
