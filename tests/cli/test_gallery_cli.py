"""`cnnkit face gallery copy` and the options that only PostgreSQL galleries take (no model needed)."""
import json

import numpy as np
from click.testing import CliRunner

from cnnkit.cli._app import cli
from cnnkit.store import FaceSource, SQLiteGallery


def test_gallery_copy_sqlite_to_sqlite(tmp_path):
    src, dst = tmp_path / "a.sqlite", tmp_path / "b.sqlite"
    rng = np.random.default_rng(0)
    with SQLiteGallery(src) as g:
        for i in range(25):
            g.add_faces(f"p{i}", rng.normal(size=(2, 16)).astype(np.float32), tag="enc:1:x",
                        sources=[FaceSource(f"{i}a.jpg", f"{i:064d}"), FaceSource(f"{i}b.jpg", None)])
        g.set_setting("enc:1:x", "threshold", {"value": 0.5})
    r = CliRunner().invoke(cli, ["face", "gallery", "copy", str(src), str(dst), "--batch", "7", "--format", "json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["people"] == 25 and out["faces"] == 50
    with SQLiteGallery(src) as a, SQLiteGallery(dst) as b:
        def by_person(g):
            m, names = g.embeddings()
            return sorted((n, v.tobytes()) for n, v in zip(names, m))

        assert by_person(a) == by_person(b)
        assert b.get_setting("enc:1:x", "threshold") == {"value": 0.5}
        assert b.has_source(f"{3:064d}")
    again = CliRunner().invoke(cli, ["face", "gallery", "copy", str(src), str(dst)])
    assert again.exit_code == 2 and "empty" in again.stderr


def test_hnsw_options_need_postgres(tmp_path):
    r = CliRunner().invoke(cli, ["face", "enroll", "x", "nothing.jpg", "--index", "hnsw", "--db", str(tmp_path / "g.sqlite")])
    assert r.exit_code == 2 and "PostgreSQL" in r.output
