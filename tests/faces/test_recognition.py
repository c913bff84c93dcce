"""The Decision (threshold with its source, head, method) and the gallery-estimated threshold
(no model needed: embeddings written straight into real galleries)."""
import numpy as np
import pytest
from statistics import NormalDist

from cnnkit.core.errors import CnnkitError, UnknownNameError
from cnnkit.faces.recognition import (
    AUTO_MIN_PEOPLE,
    GALLERY_THRESHOLD,
    Decision,
    gallery_threshold,
    identify_faces,
    resolve_decision,
    verify_embedding,
)
from cnnkit.store import SQLiteGallery


def gallery_with(emb, names=None):
    g = SQLiteGallery(":memory:")
    for i, e in enumerate(emb):
        g.add_faces(names[i] if names else f"p{i:03d}", e[None], tag="t")
    return g


def test_small_gallery_uses_default():
    g = gallery_with(np.eye(AUTO_MIN_PEOPLE - 1, 16, dtype=np.float32))
    assert gallery_threshold(g, 0.6) == 0.6


def test_gallery_threshold_matches_normal_fit():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(40, 128)).astype(np.float32) * 0.06
    g = gallery_with(emb)
    d = np.linalg.norm(emb[:, None].astype(np.float64) - emb[None], axis=2)[np.triu_indices(40, 1)]
    far = 1 - (1 - 0.01) ** (1 / 40)
    want = NormalDist(d.mean(), d.std()).inv_cdf(far)
    assert gallery_threshold(g, 10.0) == pytest.approx(want, rel=1e-6)
    assert gallery_threshold(g, 0.1) == 0.1  # never above the encoder default


def test_same_person_pairs_do_not_count_as_strangers():
    rng = np.random.default_rng(1)
    base = rng.normal(size=(12, 64)).astype(np.float32)
    g = gallery_with(base)
    t1 = gallery_threshold(g, 100.0)
    g.add_faces("p000", base[0:1] + 1e-3, tag="t")  # a near-duplicate photo of the same person
    assert gallery_threshold(g, 100.0) == pytest.approx(t1, rel=0.05)


def test_bigger_gallery_stricter_threshold():
    rng = np.random.default_rng(2)
    emb = rng.normal(size=(400, 32)).astype(np.float32)
    assert gallery_threshold(gallery_with(emb[:400]), 100.0) < gallery_threshold(gallery_with(emb[:20]), 100.0)


class Enc:
    """What resolve_decision reads of an encoder: its tag and default threshold."""
    tag, default_threshold = "t", 0.6


def test_decision_threshold_order():
    g = gallery_with(np.random.default_rng(3).normal(size=(15, 8)).astype(np.float32))
    assert resolve_decision(g, Enc, threshold=0.42) == Decision("distance", 0.42, "explicit")

    class Loose(Enc):
        default_threshold = 10.0

    # 15 people, distances ~4: the estimate is used when it is below the encoder default...
    auto = resolve_decision(g, Loose)
    assert auto.method == "distance" and auto.threshold_source == "gallery"
    assert 0 < auto.threshold < 10.0 and auto.threshold == pytest.approx(gallery_threshold(g, 10.0))
    # ...and the default is in force (and named so) when the estimate would exceed it
    assert resolve_decision(g, Enc) == Decision("distance", 0.6, "default")
    g.set_setting("t", "threshold", {"value": 0.55})
    assert resolve_decision(g, Enc) == Decision("distance", 0.55, "calibrated")
    assert resolve_decision(None, Enc) == Decision("distance", 0.6, "default")
    g.set_setting("t", "threshold", 0.55)  # not the calibrate schema: a clear error, not a guess
    with pytest.raises(CnnkitError, match="calibrate"):
        resolve_decision(g, Enc)


def test_gallery_estimate_is_kept_until_the_gallery_changes():
    class Loose(Enc):
        default_threshold = 100.0  # never the cap: the estimate itself is what is compared

    rng = np.random.default_rng(4)
    g = gallery_with(rng.normal(size=(15, 8)).astype(np.float32))
    first = resolve_decision(g, Loose).threshold
    r0 = g.revision
    assert first < 100 and g.get_setting("t", GALLERY_THRESHOLD)["revision"] == r0
    g.set_setting("t", GALLERY_THRESHOLD, {"value": 0.123, "revision": g.revision, "default": 100.0})
    assert resolve_decision(g, Loose).threshold == 0.123  # the stored estimate is used, not recomputed
    g.add_faces("new", rng.normal(size=(1, 8)).astype(np.float32), tag="t")
    r1 = g.revision
    second = resolve_decision(g, Loose).threshold
    assert second == pytest.approx(gallery_threshold(g, 100.0)) and second not in (0.123, first)
    g.remove_person("new")
    assert g.revision not in (r0, r1) and len({r0, r1}) == 2
    assert resolve_decision(g, Loose).threshold == pytest.approx(first)


def test_identify_faces_unknown_above_threshold():
    g = gallery_with(np.eye(3, 4, dtype=np.float32), names=["a", "b", "c"])
    q = np.array([[1, 0, 0, 0], [0, 0, 0, 1]], np.float32)
    res = identify_faces(q, [(0, 0, 1, 1), (1, 1, 2, 2)], g, Decision("distance", 0.5, "explicit"), k=2)
    assert res[0].name == "a" and res[0].distance == pytest.approx(0.0)
    assert res[1].name is None and res[1].distance == pytest.approx(np.sqrt(2))
    assert [c.name for c in res[1].candidates] == ["a", "b"]


def _head(dim: int, *, scale: float = 10.0, bias: float = 2.0) -> dict:
    """P(same) = sigmoid(bias - scale * sum|a - b|): close pairs are 'same'."""
    return {"features": ["abs"], "dim": dim, "weights": [-scale] * dim, "bias": bias}


def test_identify_with_binary_head():
    g = gallery_with(np.eye(3, 4, dtype=np.float32), names=["a", "b", "c"])
    q = np.array([[1, 0.05, 0, 0], [0, 0, 0, 1]], np.float32)
    res = identify_faces(q, [(0, 0, 1, 1), (1, 1, 2, 2)], g, Decision("head", 0.0, "explicit", _head(4)), k=3)
    assert res[0].name == "a"  # the head accepts it although the distance threshold (0) would not
    assert res[1].name is None  # far from everyone: P(same) < 0.5 for all candidates


def test_decision_method_selection():
    g = gallery_with(np.eye(3, 4, dtype=np.float32), names=["a", "b", "c"])
    with pytest.raises(UnknownNameError, match="head train"):
        resolve_decision(g, Enc, method="head")
    assert resolve_decision(g, Enc).method == "distance"
    g.set_setting("t", "head", _head(4))
    assert resolve_decision(g, Enc).method == "distance"  # stored, but not found better
    g.set_setting("t", "method", "head")
    chosen = resolve_decision(g, Enc)
    assert chosen.method == "head" and chosen.head["dim"] == 4
    assert resolve_decision(g, Enc, method="distance").head is None
    assert resolve_decision(g, Enc, threshold=0.3).method == "distance"  # an explicit threshold decides by distance
    with pytest.raises(UnknownNameError, match="--method"):
        resolve_decision(g, Enc, method="vote")


def test_verify_embedding_by_distance_and_by_head():
    g = gallery_with(np.eye(3, 4, dtype=np.float32), names=["a", "b", "c"])
    q = np.array([1, 0.05, 0, 0], np.float32)
    by_distance = verify_embedding(g, "a", q, Decision("distance", 0.01, "explicit"))
    assert by_distance.distance == pytest.approx(0.05) and not by_distance.match
    by_head = verify_embedding(g, "a", q, Decision("head", 0.01, "explicit", _head(4)))
    assert by_head.match and by_head.probability == pytest.approx(1 / (1 + np.exp(-(2 - 10 * 0.05))), abs=1e-5)
    with pytest.raises(UnknownNameError, match="'zed' is not enrolled"):
        verify_embedding(g, "zed", q, Decision("distance", 0.5, "explicit"))


def test_head_rescoring_reads_only_the_candidates(tmp_path):
    """k candidates of m embeddings each: their rows are read, not the other people's."""
    rng = np.random.default_rng(4)
    g = SQLiteGallery(tmp_path / "g.sqlite")
    faces = rng.normal(size=(200, 3, 4)).astype(np.float32)
    for i in range(200):
        g.add_faces(f"p{i:03d}", faces[i], tag="t")
    q = rng.normal(size=(1, 4)).astype(np.float32)
    g.search(q, k=3)  # the search index is built (and mapped) before we watch
    statements = []
    g.conn.set_trace_callback(statements.append)
    res = identify_faces(q, [(0, 0, 1, 1)], g, Decision("head", 0.0, "explicit", _head(4, scale=0.1)), k=3)
    g.conn.set_trace_callback(None)
    reads = [s for s in statements if "FROM faces" in s]
    assert len(reads) == 3 and all("WHERE p.name = " in s for s in reads)  # one indexed read per candidate
    assert not any("FROM people" in s and "WHERE" not in s for s in statements)  # no full listing
    # the head's pick: the candidate with the smallest L1 distance over its own three embeddings
    l1 = {c.name: np.abs(faces[int(c.name[1:])] - q).sum(1).min() for c in res[0].candidates}
    assert res[0].name == min(l1, key=l1.get)
