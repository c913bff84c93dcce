"""Every `cnnkit face` command on real ORL photos, and every bad input the main-job issue lists:
a one-line error naming the file, a non-zero exit, good photos still processed, the gallery
consistent."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
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


def run(*args, db=None, expect=None):
    argv = list(args) + (["--db", str(db)] if db else [])
    result = CliRunner().invoke(cli, argv, catch_exceptions=False)
    if expect is not None:
        assert result.exit_code == expect, result.output
    return result


def last_json(result) -> dict:
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def gallery(tmp_path_factory) -> Path:
    """s1..s12 enrolled from photo 1 each (enough people for the gallery-estimated threshold)."""
    db = tmp_path_factory.mktemp("g") / "gallery.sqlite"
    for s in range(1, 13):
        run("face", "enroll", f"s{s}", str(ORL / f"s{s}" / "1.pgm"), "--format", "json", db=db, expect=0)
    return db


def two_faces(tmp_path: Path) -> Path:
    a = Image.open(ORL / "s1" / "1.pgm").convert("RGB")
    b = Image.open(ORL / "s2" / "1.pgm").convert("RGB").resize((70, 85))
    canvas = Image.new("RGB", (260, 140), "black")
    canvas.paste(a, (10, 14))
    canvas.paste(b, (160, 30))
    path = tmp_path / "two.png"
    canvas.save(path)
    return path


def test_enroll_json_and_rerun_skips(gallery):
    out = last_json(run("face", "enroll", "s1", str(ORL / "s1" / "1.pgm"), "--format", "json", db=gallery, expect=0))
    assert out["enrolled"] == 0 and out["skipped"] == 1 and out["photos"][0]["status"] == "skipped"


def test_people_lists_everyone(gallery):
    out = last_json(run("face", "people", "--format", "json", db=gallery, expect=0))
    assert [p["name"] for p in out["people"]] == sorted(f"s{s}" for s in range(1, 13))
    assert out["encoder"].startswith("dlib_resnet:")
    assert run("face", "people", "--format", "csv", db=gallery).output.splitlines()[0] == "name,faces,enrolled"


def test_verify_match_and_no_match(gallery):
    r = run("face", "verify", "s3", str(ORL / "s3" / "5.pgm"), "--format", "json", db=gallery)
    out = last_json(r)
    assert set(out) == {"name", "image", "distance", "threshold", "match", "method", "threshold_source"}
    assert out["method"] == "distance" and out["threshold_source"] == "gallery"
    assert r.exit_code == 0 and out["match"] is True and out["distance"] < out["threshold"]
    r = run("face", "verify", "s3", str(ORL / "s4" / "5.pgm"), "--format", "json", db=gallery)
    assert r.exit_code == 1 and last_json(r)["match"] is False


def test_verify_unknown_name_exits_2(gallery):
    r = run("face", "verify", "nobody", str(ORL / "s3" / "5.pgm"), db=gallery)
    assert r.exit_code == 2 and "nobody" in r.output and "not enrolled" in r.output


def test_identify_dir_and_files(gallery, tmp_path):
    probes = tmp_path / "probes"
    probes.mkdir()
    for s, i in [(2, 4), (7, 9), (35, 2)]:
        (probes / f"s{s}_{i}.pgm").write_bytes((ORL / f"s{s}" / f"{i}.pgm").read_bytes())
    out = last_json(run("face", "identify", str(probes), "--format", "json", db=gallery, expect=0))
    names = {Path(r["image"]).name: r["faces"][0]["name"] for r in out["results"]}
    assert names == {"s2_4.pgm": "s2", "s35_2.pgm": None, "s7_9.pgm": "s7"}
    face = out["results"][0]["faces"][0]
    assert set(face) == {"box", "name", "distance", "candidates"} and len(face["box"]) == 4
    assert len(face["candidates"]) == 5 and face["candidates"][0]["distance"] == face["distance"]
    assert out["threshold_source"] == "gallery"


def test_identify_every_face_in_a_photo(gallery, tmp_path):
    out = last_json(run("face", "identify", str(two_faces(tmp_path)), "--format", "json", db=gallery, expect=0))
    faces = out["results"][0]["faces"]
    assert sorted(f["name"] for f in faces) == ["s1", "s2"]


def test_compare(tmp_path):
    r = run("face", "compare", str(ORL / "s9" / "1.pgm"), str(ORL / "s9" / "6.pgm"), "--format", "json")
    assert r.exit_code == 0 and last_json(r)["match"] is True
    r = run("face", "compare", str(ORL / "s9" / "1.pgm"), str(ORL / "s10" / "6.pgm"), "--format", "json")
    assert r.exit_code == 1 and last_json(r)["match"] is False


def test_remove_person(tmp_path):
    db = tmp_path / "g.sqlite"
    run("face", "enroll", "s5", str(ORL / "s5" / "1.pgm"), db=db, expect=0)
    out = last_json(run("face", "people", "--remove", "s5", "--format", "json", db=db, expect=0))
    assert out == {"removed": "s5", "embeddings": 1}
    assert last_json(run("face", "people", "--format", "json", db=db))["people"] == []
    r = run("face", "people", "--remove", "s5", db=db)
    assert r.exit_code == 2 and "s5" in r.output


# -- bad input ---------------------------------------------------------------------------------

def bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    tmp = tmp_path / "bad"
    tmp.mkdir()
    (tmp / "empty.jpg").write_bytes(b"")
    (tmp / "text.jpg").write_text("this is not an image\n")
    jpeg = (tmp / "full.jpg")
    Image.open(ORL / "s1" / "2.pgm").convert("RGB").save(jpeg, quality=90)
    (tmp / "truncated.jpg").write_bytes(jpeg.read_bytes()[: len(jpeg.read_bytes()) // 2])
    blank = tmp / "noface.png"
    Image.fromarray(np.full((120, 100, 3), 128, np.uint8)).save(blank)
    (tmp / "adir.jpg").mkdir()
    return {
        "missing": (tmp / "missing.jpg", "missing.jpg"),
        "directory": (tmp / "adir.jpg", "adir.jpg"),
        "empty": (tmp / "empty.jpg", "empty.jpg"),
        "text": (tmp / "text.jpg", "text.jpg"),
        "truncated": (tmp / "truncated.jpg", "truncated.jpg"),
        "noface": (blank, "noface.png"),
    }


def huge_png(path: Path, side: int = 30000) -> Path:
    """A valid PNG header claiming side x side pixels (the decoder must refuse before decoding)."""
    import struct
    import zlib

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    body = zlib.compress(b"\x00" * 1000)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize("kind", ["missing", "directory", "empty", "text", "truncated", "noface"])
def test_enroll_bad_photo_one_line_error_and_good_photos_kept(tmp_path, kind):
    path, shown = bad_files(tmp_path)[kind]
    db = tmp_path / "g.sqlite"
    good = ORL / "s1" / "1.pgm"
    r = run("face", "enroll", "s1", str(good), str(path), "--format", "json", db=db)
    assert r.exit_code == 2
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and shown in errors[0], r.stderr
    g = SQLiteGallery(db)
    assert [(p.name, p.faces) for p in g.people()] == [("s1", 1)] and g.integrity_check() == "ok"


def test_bomb_is_refused_fast_with_the_limit(tmp_path):
    path = huge_png(tmp_path / "huge.png")
    t0 = time.perf_counter()
    r = run("face", "enroll", "x", str(path), db=tmp_path / "g.sqlite")
    assert time.perf_counter() - t0 < 5
    assert r.exit_code == 2 and "huge.png" in r.stderr and "900000000" in r.stderr.replace(",", "").replace("_", "")


def test_several_faces_need_largest(tmp_path):
    photo = two_faces(tmp_path)
    db = tmp_path / "g.sqlite"
    r = run("face", "enroll", "s1", str(photo), db=db)
    assert r.exit_code == 2 and "two.png" in r.stderr and "2 faces" in r.stderr
    assert SQLiteGallery(db).people() == []
    run("face", "enroll", "s1", str(photo), "--largest", db=db, expect=0)
    assert [p.faces for p in SQLiteGallery(db).people()] == [1]


def test_gallery_that_is_not_sqlite(tmp_path):
    db = tmp_path / "notes.txt"
    db.write_text("shopping list\n" * 50)
    r = run("face", "enroll", "s1", str(ORL / "s1" / "1.pgm"), db=db)
    assert r.exit_code == 2 and "notes.txt" in r.stderr and "not a cnnkit gallery" in r.stderr
    assert db.read_text().startswith("shopping list")


def test_gallery_of_another_encoder(tmp_path):
    db = tmp_path / "g.sqlite"
    with SQLiteGallery(db) as g:
        g.add_faces("someone", np.ones((1, 128), np.float32) / np.sqrt(128), tag="other_encoder:2:0123456789abcdef")
    r = run("face", "enroll", "s1", str(ORL / "s1" / "1.pgm"), db=db)  # the gallery's encoder is not registered
    assert r.exit_code == 2 and "other_encoder:2" in r.stderr and "--encoder" in r.stderr
    r = run("face", "enroll", "s1", str(ORL / "s1" / "1.pgm"), "--encoder", "dlib_resnet", db=db)
    assert r.exit_code == 2 and "other_encoder:2" in r.stderr and "dlib_resnet" in r.stderr
    r = run("face", "identify", str(ORL / "s1" / "2.pgm"), db=db)
    assert r.exit_code == 2 and "other_encoder:2" in r.stderr
    assert [p.name for p in SQLiteGallery(db).people()] == ["someone"]


def test_verify_missing_gallery(tmp_path):
    r = run("face", "verify", "s1", str(ORL / "s1" / "2.pgm"), db=tmp_path / "none.sqlite")
    assert r.exit_code == 2 and "none.sqlite" in r.stderr and "no such gallery" in r.stderr


def _folders(tmp_path: Path, people: range, photos: int) -> Path:
    root = tmp_path / "people"
    for s in people:
        (root / f"s{s}").mkdir(parents=True)
        for i in range(1, photos + 1):
            (root / f"s{s}" / f"{i}.pgm").write_bytes((ORL / f"s{s}" / f"{i}.pgm").read_bytes())
    return root


def test_two_processes_enrolling_into_one_gallery(tmp_path):
    db = tmp_path / "g.sqlite"
    cmd = [sys.executable, "-m", "cnnkit.cli._main", "face", "enroll", "--folders"]
    a, b = _folders(tmp_path / "a", range(1, 4), 2), _folders(tmp_path / "b", range(4, 7), 2)
    procs = [subprocess.Popen(cmd + [str(root), "--db", str(db)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for root in (a, b)]
    assert [p.wait(300) for p in procs] == [0, 0], [p.stderr.read() for p in procs]
    g = SQLiteGallery(db)
    assert sorted((p.name, p.faces) for p in g.people()) == [(f"s{s}", 2) for s in range(1, 7)]
    assert g.integrity_check() == "ok"


def test_ctrl_c_during_folder_enrollment_then_resume(tmp_path):
    db = tmp_path / "g.sqlite"
    root = _folders(tmp_path, range(1, 31), 5)  # 150 photos: enrollment runs long enough to be interrupted
    total = 150
    cmd = [sys.executable, "-m", "cnnkit.cli._main", "face", "enroll", "--folders", str(root), "--db", str(db)]
    # a shell's background job (CI under nohup/&) starts with SIGINT ignored, and Python then installs
    # no KeyboardInterrupt handler: give the child the default disposition, as a terminal would
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:  # wait until a few photos are committed
        time.sleep(0.05)
        if db.exists():
            try:
                with sqlite3.connect(db, timeout=5) as c:
                    if c.execute("SELECT COUNT(*) FROM faces").fetchone()[0] >= 3:
                        break
            except sqlite3.OperationalError:
                pass
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "rerun" in err
    g = SQLiteGallery(db)
    done = len(g)
    assert g.integrity_check() == "ok" and 3 <= done < total
    g.close()
    r = subprocess.run(cmd + ["--format", "json"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["skipped"] == done and out["enrolled"] == total - done
    assert len(SQLiteGallery(db)) == total


def _pairs_root(tmp_path: Path) -> tuple[Path, Path, Path]:
    """ORL photos laid out as LFW (ROOT/name/name_%04d.jpg) and View 1 style pairs files."""
    root = tmp_path / "lfwlike"
    for s in range(1, 11):
        (root / f"s{s}").mkdir(parents=True)
        for i in range(1, 5):
            Image.open(ORL / f"s{s}" / f"{i}.pgm").convert("RGB").save(root / f"s{s}" / f"s{s}_{i:04d}.jpg", quality=95)

    def write(path, people):
        matched = [f"s{s}\t1\t{i}" for s in people for i in (2, 3)]
        mism = [f"s{s}\t{1 + s % 4}\ts{t}\t{1 + t % 4}" for s, t in zip(people, people[1:] + people[:1])]
        mism = (mism * 2)[: len(matched)]
        path.write_text("\n".join([str(len(matched))] + matched + mism) + "\n")
        return path

    return root, write(tmp_path / "train.txt", [1, 2, 3, 4, 5]), write(tmp_path / "test.txt", [6, 7, 8, 9, 10])


def test_calibrate_and_evaluate(tmp_path, monkeypatch):
    root, train, test = _pairs_root(tmp_path)
    db = tmp_path / "g.sqlite"
    plot = tmp_path / "roc.png"
    out = last_json(run("face", "calibrate", str(train), "--root", str(root), "--plot", str(plot),
                        "--format", "json", db=db, expect=0))
    assert out["accuracy"] == 1.0 and out["auc"] == 1.0 and out["no_face"] == 0 and out["stored"] is True
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    stored = SQLiteGallery(db).get_setting(out["encoder"], "threshold")
    assert stored["value"] == pytest.approx(out["threshold"])
    ev = last_json(run("face", "evaluate", str(test), "--root", str(root), "--train", str(train),
                       "--format", "json", expect=0))
    assert set(ev) >= {"accuracy", "accuracy_std", "folds", "auc", "eer", "tar_at_far", "threshold", "no_face"}
    assert ev["accuracy"] >= 0.9 and ev["folds"] == 1 and set(ev["tar_at_far"]) == {"0.01", "0.001"}


def test_demo_small(tmp_path):
    data = tmp_path / "orl"
    for s in range(1, 13):
        (data / f"s{s}").mkdir(parents=True)
        for i in range(1, 4):
            (data / f"s{s}" / f"{i}.pgm").write_bytes((ORL / f"s{s}" / f"{i}.pgm").read_bytes())
    out = last_json(run("demo", "--data", str(data), "--enrolled", "10", "-o", str(tmp_path / "out"),
                        "--format", "json", expect=0))
    assert out["enrolled_people"] == 10 and out["probes_enrolled_people"] == 20 and out["probes_strangers"] == 6
    assert out["rank1"] >= 0.9 and out["rejection"] >= 0.5
    html = (tmp_path / "out" / "report.html").read_text()
    assert html.count("<figure") == 10 + 26 and "data:image/jpeg;base64," in html


def _orl_with_faceless(tmp_path: Path, people=("s1", "s2", "s3", "s4")) -> tuple[Path, list[Path]]:
    """ORL people copied, plus one blank and one noise photo (no face) in the first two folders."""
    root = tmp_path / "mixed"
    for s in people:
        (root / s).mkdir(parents=True)
        for i in range(1, 6):
            (root / s / f"{i}.pgm").write_bytes((ORL / s / f"{i}.pgm").read_bytes())
    blank, noise = root / people[0] / "blank.png", root / people[1] / "noise.png"
    Image.fromarray(np.full((112, 92), 128, np.uint8)).save(blank)
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (112, 92), dtype=np.uint8)).save(noise)
    return root, [blank, noise]


def test_oneshot_completes_when_photos_have_no_face(tmp_path):
    root, faceless = _orl_with_faceless(tmp_path)
    r = run("face", "oneshot", str(root), "--people", "s1..s3", "--unknown", "s4", "--seeds", "2",
            "--format", "json", expect=0)
    out = last_json(r)
    assert out["no_face"] == 2 and sorted(out["no_face_files"]) == sorted(map(str, faceless))
    for f in faceless:
        assert f"no face: {f}" in r.stderr
    # 3 people x 5 photos, one enrolled each: 12 probes with a face (the two faceless ones are extra)
    assert out["probes"] == 12 and out["people"] == 3
    assert out["rank1"] == 1.0
    assert out["rank1_no_face_as_miss"] == pytest.approx(12 / 14)
    assert out["unknown_people"] == 1 and out["unknown_probes"] == 5
    assert set(out["dir_at_fpir"]) == {"0.01", "0.1"} and 0 <= out["dir_at_fpir"]["0.01"] <= 12 / 14


def test_evaluate_names_the_image_without_a_face(tmp_path):
    root, train, test = _pairs_root(tmp_path)
    Image.fromarray(np.full((112, 92, 3), 128, np.uint8)).save(root / "s6" / "s6_0002.jpg")
    r = run("face", "evaluate", str(test), "--root", str(root), "--train", str(train), "--format", "json", expect=0)
    ev = last_json(r)
    assert ev["no_face"] == 1 and ev["no_face_files"] == [os.path.join("s6", "s6_0002.jpg")]
    assert "no face: " + os.path.join("s6", "s6_0002.jpg") in r.stderr


def test_gallery_keeps_its_encoder_when_the_default_changes(tmp_path, monkeypatch):
    import cnnkit.faces.encoders as encoders

    db = tmp_path / "old.sqlite"
    monkeypatch.setattr(encoders, "DEFAULT_ENCODER", "dlib_resnet")
    for s in ("s1", "s2"):
        run("face", "enroll", s, str(ORL / s / "1.pgm"), "--format", "json", db=db, expect=0)
    old_tag = SQLiteGallery(db).encoder_tag
    monkeypatch.setattr(encoders, "DEFAULT_ENCODER", "sface")  # an upgrade of the default
    out = last_json(run("face", "verify", "s1", str(ORL / "s1" / "2.pgm"), "--format", "json", db=db, expect=0))
    assert out["match"] is True
    ident = last_json(run("face", "identify", str(ORL / "s2" / "3.pgm"), "--format", "json", db=db, expect=0))
    assert ident["results"][0]["faces"][0]["name"] == "s2"
    assert SQLiteGallery(db).encoder_tag == old_tag and old_tag.startswith("dlib_resnet:")
    # a new gallery gets the new default
    new = tmp_path / "new.sqlite"
    run("face", "enroll", "s1", str(ORL / "s1" / "1.pgm"), "--format", "json", db=new, expect=0)
    assert SQLiteGallery(new).encoder_tag.startswith("sface:")


def test_evaluate_head_on_ten_folds_fits_on_the_other_nine(tmp_path):
    root, _, _ = _pairs_root(tmp_path)
    lines = []
    for k in range(10):  # fold k: 2 matched and 2 mismatched pairs of ORL people
        s, t = 1 + k % 10, 1 + (k + 3) % 10
        lines += [f"s{s}\t1\t2", f"s{t}\t3\t4", f"s{s}\t1\ts{t}\t2", f"s{t}\t3\ts{s}\t4"]
    ordered = []
    for k in range(10):
        ordered += lines[4 * k: 4 * k + 4]
    view2 = tmp_path / "view2.txt"
    view2.write_text("10\t2\n" + "\n".join(ordered) + "\n")
    ev = last_json(run("face", "evaluate", str(view2), "--root", str(root), "--method", "head", "--format", "json",
                       expect=0))
    assert ev["method"] == "head" and ev["folds"] == 10 and ev["accuracy"] >= 0.9
