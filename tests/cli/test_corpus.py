"""The hostile corpus of ``tests/assets/make_bad_images.py`` (355 entries) through the CLI: every
entry is in ``enroll --folders``'s output once, with the outcome its kind demands and a reason;
no traceback, no hang; identify and compare on samples of it give one-line errors naming files."""
from __future__ import annotations

import importlib.util
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
BASE = [sys.executable, "-m", "cnnkit.cli._main", "face"]


def _generator():
    spec = importlib.util.spec_from_file_location("make_bad_images", REPO / "tests" / "assets" / "make_bad_images.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict[str, str], dict[str, str]]:
    root = tmp_path_factory.mktemp("corpus")
    manifest = _generator().write_corpus(root / "c")
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "CNNKIT_DB": str(root / "g.sqlite")}
    return root, manifest, env


def _run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    # timeout: a hang guard for the whole run (the old code hung forever on the corpus's FIFO)
    return subprocess.run(BASE + args, env=env, cwd=cwd, capture_output=True, text=True, timeout=1200)


def _stderr_is_one_line_per_file(stderr: str) -> None:
    assert "Traceback" not in stderr
    for line in stderr.splitlines():  # and enroll's "gallery: PATH" (issue 16)
        assert line.startswith(("error: c/", "warning: c/", "gallery: ")), line


def test_corpus_through_enroll_folders(corpus) -> None:
    root, manifest, env = corpus
    assert len(manifest) >= 300
    r = _run(["enroll", "--folders", "c", "--format", "json"], env, root)
    assert r.returncode == 2
    _stderr_is_one_line_per_file(r.stderr)
    out = json.loads(r.stdout.strip().splitlines()[-1])
    rows = [(os.path.relpath(p["image"], "c"), p) for p in out["photos"]]
    assert sorted(k for k, _ in rows) == sorted(manifest)  # every entry, exactly once
    want = {"good": {"enrolled"}, "error": {"error"}, "skip": {"skipped"}, "any": {"enrolled", "error"}}
    wrong = [(k, p["status"]) for k, p in rows if p["status"] not in want[manifest[k]]]
    assert not wrong, wrong[:10]
    assert all(p["error"] for _, p in rows if p["status"] != "enrolled")  # a reason for each
    good = sum(kind == "good" for kind in manifest.values())
    assert out["enrolled"] >= good
    with sqlite3.connect(root / "g.sqlite") as c:
        assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        faces, photos = c.execute("SELECT COUNT(*), COUNT(DISTINCT source_sha256) FROM faces").fetchone()
        assert faces == photos == out["enrolled"]  # no photo twice
        names = [n for (n,) in c.execute("SELECT name FROM people")]
        assert "Jos\u00e9" in names and "Jose\u0301" not in names  # NFC and NFD: one person


def test_corpus_samples_through_identify_and_compare(corpus) -> None:
    root, manifest, env = corpus
    _run(["enroll", "s1", "c/s1/1" + next(Path(k).suffix for k in manifest if k.startswith("s1/1"))], env, root)
    # identify searches directories (odd/x.jpg is one, and empty); names are not checked by identify
    samples = sorted(k for k, kind in manifest.items()
                     if kind == "error" and not k.startswith(("new", "bad")) and k != "odd/x.jpg")
    samples += [k for k, kind in manifest.items() if kind == "good"][:3]
    r = _run(["identify", "--format", "json"] + [f"c/{k}" for k in samples], env, root)
    assert r.returncode == 2
    _stderr_is_one_line_per_file(r.stderr)
    out = json.loads(r.stdout.strip().splitlines()[-1])
    errors = {x["image"] for x in out["results"] if "error" in x}
    assert errors == {f"c/{k}" for k, kind in manifest.items() if k in samples and kind == "error"}
    good = next(k for k, kind in manifest.items() if kind == "good")
    for bad in ("odd/camera.jpg", "odd/zero.jpg", "bombs/gif-screen-9000.gif", "other-formats/dds-flags-1.jpg"):
        r = _run(["compare", f"c/{good}", f"c/{bad}"], env, root)
        assert r.returncode == 2 and r.stderr.startswith(f"error: c/{bad}: ") and len(r.stderr.splitlines()) == 1
