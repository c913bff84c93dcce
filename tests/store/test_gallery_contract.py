"""The store contract, run against every backend."""
import numpy as np
import pytest

from cnnkit.core.errors import EncoderMismatchError, StoreError, UnknownNameError
from cnnkit.store import FaceSource, Match


def unit(rng, n, d=128):
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_empty_gallery_search(make_gallery):
    g = make_gallery()
    assert g.search(np.zeros((3, 128), np.float32), k=5) == [[], [], []]
    assert g.people() == []
    assert g.encoder_tag is None


def test_add_search_nearest_people(make_gallery):
    rng = np.random.default_rng(0)
    g = make_gallery()
    e = unit(rng, 6)
    g.add_faces("ada", e[:2], tag="enc:1:abc")
    g.add_faces("bob", e[2:3], tag="enc:1:abc")
    g.add_faces("cy", e[3:4], tag="enc:1:abc")
    res = g.search(e[[1, 2, 5]], k=2)
    assert [m.name for m in res[0]] == ["ada", res[0][1].name] and res[0][0].distance == pytest.approx(0, abs=1e-6)
    assert res[1][0] == Match("bob", pytest.approx(0.0, abs=1e-6))
    brute = {n: min(np.linalg.norm(e[5] - e[i]) for i in idx) for n, idx in {"ada": [0, 1], "bob": [2], "cy": [3]}.items()}
    want = sorted(brute.items(), key=lambda t: t[1])[:2]
    assert [(m.name, round(m.distance, 5)) for m in res[2]] == [(n, round(float(d), 5)) for n, d in want]
    assert [(p.name, p.faces) for p in g.people()] == [("ada", 2), ("bob", 1), ("cy", 1)]


def test_search_matches_brute_force(make_gallery):
    rng = np.random.default_rng(1)
    g = make_gallery()
    gallery = unit(rng, 300, 32)
    owners = rng.integers(0, 100, size=300)
    for person in np.unique(owners):
        g.add_faces(f"p{person:03d}", gallery[owners == person], tag="t")
    queries = unit(rng, 50, 32)
    res = g.search(queries, k=3)
    for q, row in zip(queries, res):
        d = np.linalg.norm(gallery - q, axis=1)
        per = {}
        for dist, o in zip(d, owners):
            per[f"p{o:03d}"] = min(per.get(f"p{o:03d}", 9), dist)
        want = sorted(per.items(), key=lambda t: (t[1], t[0]))[:3]
        assert [m.name for m in row] == [n for n, _ in want]
        np.testing.assert_allclose([m.distance for m in row], [v for _, v in want], atol=1e-6)


def test_mixing_encoders_is_refused(make_gallery):
    g = make_gallery()
    g.add_faces("ada", np.ones((1, 8), np.float32), tag="a:1:x")
    with pytest.raises(EncoderMismatchError, match="a:1:x"):
        g.add_faces("bob", np.ones((1, 8), np.float32), tag="b:1:y")
    assert [p.name for p in g.people()] == ["ada"]


def test_dimension_mismatch_writes_nothing(make_gallery):
    g = make_gallery()
    g.add_faces("ada", np.ones((1, 8), np.float32), tag="t")
    with pytest.raises(StoreError, match="D=8"):
        g.add_faces("bob", np.ones((1, 9), np.float32), tag="t")
    assert [p.name for p in g.people()] == ["ada"]


def test_nan_vector_is_refused_atomically(make_gallery):
    g = make_gallery()
    bad = np.ones((3, 8), np.float32)
    bad[2, 0] = np.nan
    with pytest.raises(StoreError, match="finite"):
        g.add_faces("ada", bad, tag="t")
    assert g.people() == [] and len(g) == 0


def test_remove_person_deletes_encodings(make_gallery):
    g = make_gallery()
    g.add_faces("ada", np.eye(4, dtype=np.float32)[:2], tag="t", sources=[FaceSource("a.jpg", "s1"), FaceSource("b.jpg", "s2")])
    g.add_faces("bob", np.eye(4, dtype=np.float32)[2:3], tag="t")
    assert g.remove_person("ada") == 2
    assert [p.name for p in g.people()] == ["bob"]
    assert not g.has_source("s1")
    assert [m.name for m in g.search(np.eye(4, dtype=np.float32)[:1], k=5)[0]] == ["bob"]
    with pytest.raises(UnknownNameError, match="ada"):
        g.remove_person("ada")


def test_settings_per_encoder_tag(make_gallery):
    g = make_gallery()
    assert g.get_setting("t", "threshold") is None
    g.set_setting("t", "threshold", {"value": 0.55, "method": "calibrate"})
    g.set_setting("t", "threshold", {"value": 0.5, "method": "calibrate"})
    g.set_setting("u", "threshold", 0.7)
    assert g.get_setting("t", "threshold") == {"value": 0.5, "method": "calibrate"}
    assert g.get_setting("u", "threshold") == 0.7


def test_sources_recorded(make_gallery):
    g = make_gallery()
    g.add_faces("ada", np.ones((1, 4), np.float32), tag="t", sources=[FaceSource("ada.jpg", "f" * 64, (1, 2, 3, 4))])
    assert g.has_source("f" * 64) and not g.has_source("0" * 64)
    assert g.people()[0].sources == ("ada.jpg",)


def test_embeddings_roundtrip_float32(make_gallery):
    g = make_gallery()
    e = np.random.default_rng(3).normal(size=(3, 16)).astype(np.float32)
    g.add_faces("ada", e, tag="t")
    m, names = g.embeddings()
    assert m.dtype == np.float32 and m.shape == (3, 16) and names == ["ada"] * 3
    np.testing.assert_array_equal(m, e)


def test_a_photo_knows_its_owner_and_moves_to_another_person(make_gallery):
    g = make_gallery()
    g.add_faces("s1", np.ones((1, 4), np.float32), tag="t", sources=[FaceSource("1.pgm", "a" * 64, None)])
    g.add_faces("s2", np.full((1, 4), 2, np.float32), tag="t", sources=[FaceSource("2.pgm", "b" * 64, None)])
    assert g.source_owner("a" * 64) == "s1" and g.source_owner("0" * 64) is None
    assert g.move_source("a" * 64, "bob") == 1
    assert g.source_owner("a" * 64) == "bob"
    assert sorted(p.name for p in g.people()) == ["bob", "s2"]  # s1 had only that photo
    assert g.search(np.ones((1, 4), np.float32), k=1)[0][0].name == "bob"
    assert g.move_source("0" * 64, "zoe") == 0 and "zoe" not in {p.name for p in g.people()}
