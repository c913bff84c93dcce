"""`cnnkit face cluster` and `cnnkit face name` on real ORL photos, the real pipeline and a real
SQLite gallery: bad files reported without stopping the run, every face of a named cluster
enrolled once, reruns that add nothing, merge and split, an interrupted run that resumes."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from cnnkit.cli._app import cli
from cnnkit.faces.cluster.collection import FaceTable, embed_photos
from cnnkit.store import SQLiteGallery

pytestmark = pytest.mark.slow
ORL = Path(__file__).resolve().parents[2] / "data" / "orl"


def run(*args, expect=None):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    if expect is not None:
        assert result.exit_code == expect, result.output
    return result


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Path:
    """A small photo tree: s1 and s2 (5 photos each, in nested folders), 3 of s3, a text file
    named .jpg, a blank image without a face, and a byte-identical copy of one photo."""
    root = tmp_path_factory.mktemp("photos")
    for person, n in (("s1", 5), ("s2", 5), ("s3", 3)):
        d = root / "2024" / person
        d.mkdir(parents=True)
        for i in range(1, n + 1):
            shutil.copy(ORL / person / f"{i}.pgm", d / f"{i}.pgm")
    shutil.copy(ORL / "s1" / "1.pgm", root / "copy-of-s1-1.pgm")
    (root / "broken.jpg").write_text("not an image")
    Image.new("RGB", (120, 120), "grey").save(root / "blank.png")
    return root


@pytest.fixture(scope="module")
def clustered(library, tmp_path_factory) -> tuple[Path, dict, object]:
    out = tmp_path_factory.mktemp("out")
    result = run("face", "cluster", str(library), "-o", str(out), "--format", "json")
    return out, json.loads(result.stdout.strip().splitlines()[-1]), result


def test_cluster_reports_bad_files_and_keeps_going(clustered):
    out, summary, result = clustered
    assert result.exit_code == 2  # some photos had problems...
    assert "broken.jpg" in result.stderr and "blank.png" in result.stderr
    assert summary["faces"] == 13  # ...but every good photo was embedded (the copy once)
    data = json.loads((out / "clusters.json").read_text())
    assert {Path(e["file"]).name for e in data["errors"]} == {"broken.jpg", "blank.png"}


def test_clusters_json_and_index(clustered):
    out, summary, _ = clustered
    data = json.loads((out / "clusters.json").read_text())
    groups = [c for c in data["clusters"] if c["size"] > 1]
    people = [sorted({Path(f["file"]).parent.name for f in c["faces"]}) for c in groups]
    assert people[:3] == [["s1"], ["s2"], ["s3"]]  # largest first, one person each
    sizes = [c["size"] for c in data["clusters"]]
    assert sizes == sorted(sizes, reverse=True)
    for c in data["clusters"]:
        assert c["size"] == len(c["faces"]) and c["representative"] == c["faces"][0]
        assert all(len(f["box"]) == 4 and len(f["sha256"]) == 64 for f in c["faces"])
    html = (out / "index.html").read_text()
    assert "Cluster 0: 5 faces" in html
    with Image.open(out / "sheets" / "cluster-00000.png") as im:
        assert im.size[0] > 5 * 60
    assert data["threshold_source"] == "verification" and summary["threshold"] == data["threshold"]


def test_name_enrols_every_face_once(clustered, tmp_path):
    out, _, _ = clustered
    db = tmp_path / "g.sqlite"
    first = json.loads(run("face", "name", str(out / "clusters.json"), "0", "ada", "--db", str(db),
                           "--format", "json", expect=0).stdout)
    again = json.loads(run("face", "name", str(out / "clusters.json"), "0", "ada", "--db", str(db),
                           "--format", "json", expect=0).stdout)
    other = json.loads(run("face", "name", str(out / "clusters.json"), "0", "bob", "--db", str(db),
                           "--format", "json", expect=0).stdout)
    assert (first["enrolled"], again["enrolled"], again["already_enrolled"]) == (5, 0, 5)
    assert other["enrolled"] == 0 and len(other["enrolled_as_someone_else"]) == 5
    data = json.loads((out / "clusters.json").read_text())
    with SQLiteGallery(db) as g:
        people = {p.name: p for p in g.people()}
        assert set(people) == {"ada"} and people["ada"].faces == 5
        stored, _ = g.embeddings()
        table = FaceTable.load(out / "faces.npz")
        expected = table.embeddings[[f["face"] for f in data["clusters"][0]["faces"]]]
        assert np.allclose(np.sort(stored, axis=0), np.sort(expected, axis=0))
        assert sorted(people["ada"].sources) == sorted(Path(f["file"]).name for f in data["clusters"][0]["faces"])


def test_name_max_takes_the_most_central(clustered, tmp_path):
    out, _, _ = clustered
    db = tmp_path / "g.sqlite"
    res = json.loads(run("face", "name", str(out / "clusters.json"), "1", "cy", "--max", "2", "--db", str(db),
                         "--format", "json", expect=0).stdout)
    assert res["enrolled"] == 2
    data = json.loads((out / "clusters.json").read_text())
    central = {Path(f["file"]).name for f in data["clusters"][1]["faces"][:2]}
    with SQLiteGallery(db) as g:
        assert set(g.people()[0].sources) == central


def test_merge_and_split(clustered, tmp_path):
    out, _, _ = clustered
    work = tmp_path / "o"
    shutil.copytree(out, work)
    cj = str(work / "clusters.json")
    before = json.loads(Path(cj).read_text())
    run("face", "name", cj, "--merge", "0", "1", expect=0)
    merged = json.loads(Path(cj).read_text())
    assert [c["id"] for c in merged["clusters"]].count(1) == 0
    assert merged["clusters"][0]["size"] == before["clusters"][0]["size"] + before["clusters"][1]["size"]
    face = merged["clusters"][0]["faces"][-1]["face"]
    run("face", "name", cj, "--split", str(face), expect=0)
    split = json.loads(Path(cj).read_text())
    alone = [c for c in split["clusters"] if [f["face"] for f in c["faces"]] == [face]]
    assert len(alone) == 1 and alone[0]["id"] not in {c["id"] for c in merged["clusters"]}
    assert run("face", "name", cj, "--split", str(face)).exit_code == 2  # already alone: one-line error
    assert run("face", "name", cj, "99", "x", "--db", str(tmp_path / "g.sqlite")).exit_code == 2


def test_known_people_are_labelled_with_db(clustered, tmp_path):
    """Name two clusters, then cluster other photos of the same people against that gallery."""
    out, _, _ = clustered
    db = tmp_path / "g.sqlite"
    run("face", "name", str(out / "clusters.json"), "0", "ada", "--db", str(db), expect=0)
    run("face", "name", str(out / "clusters.json"), "1", "bob", "--db", str(db), expect=0)
    later = tmp_path / "later"
    for person in ("s1", "s2"):
        (later / person).mkdir(parents=True)
        for i in (6, 7, 8):
            shutil.copy(ORL / person / f"{i}.pgm", later / person / f"{i}.pgm")
    out2 = tmp_path / "o2"
    run("face", "cluster", str(later), "-o", str(out2), "--db", str(db), expect=0)
    data = json.loads((out2 / "clusters.json").read_text())
    named = {k["name"]: {Path(f["file"]).parent.name for f in k["faces"]} for k in data["known"]}
    first = json.loads((out / "clusters.json").read_text())
    ada = {Path(f["file"]).parent.name for f in first["clusters"][0]["faces"]}
    bob = {Path(f["file"]).parent.name for f in first["clusters"][1]["faces"]}
    assert named == {"ada": ada, "bob": bob}
    assert sum(len(k["faces"]) for k in data["known"]) == 6 and data["clusters"] == []


def test_interrupted_embedding_resumes(pipeline, tmp_path):
    photos = [ORL / f"s{p}" / f"{i}.pgm" for p in (4, 5) for i in range(1, 5)]

    def interrupted():
        for k, p in enumerate(photos):
            if k == 5:
                raise KeyboardInterrupt
            yield p

    with pytest.raises(KeyboardInterrupt):
        embed_photos(pipeline, interrupted(), tmp_path, save_every=2)
    saved = FaceTable.load(tmp_path / "faces.npz")
    assert len(saved.photos) == 4  # saved every 2 photos: at most the photos since then are lost
    seen = []
    table = embed_photos(pipeline, photos, tmp_path, on_photo=lambda f, e: seen.append(f))
    assert len(table.photos) == 8 and len(table.vectors) == 8
    assert table.embeddings[:4].tobytes() == saved.embeddings.tobytes()  # kept, not recomputed
    assert len(seen) == 8
