"""Clustering: exact against the naive O(N^3) algorithm, the radius graph against brute force,
determinism, singletons, the threshold rule on real ORL embeddings, BCubed against a loop."""
from __future__ import annotations

import numpy as np
import pytest

from cnnkit.core.errors import CnnkitError, ShapeError
from cnnkit.eval.clustering import bcubed
from cnnkit.faces.cluster import (
    cluster_embeddings,
    impostor_stats,
    merge_rule,
    threshold_from_stats,
    naive_average_linkage,
    radius_graph,
    average_linkage,
    representatives,
)


def blobs(seed: int, n: int, d: int = 8, people: int = 6, spread: float = 0.5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(people, d))
    return centres[rng.integers(0, people, n)] + spread * rng.normal(size=(n, d))


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal as partitions (each -1 its own group)."""
    def groups(lab):
        out = {}
        for i, g in enumerate(lab):
            out.setdefault(("alone", i) if g < 0 else g, []).append(i)
        return sorted(map(tuple, out.values()))
    return groups(a) == groups(b)


@pytest.mark.parametrize("seed", range(12))
def test_average_linkage_equals_naive(seed):
    rng = np.random.default_rng(100 + seed)
    x = blobs(seed, int(rng.integers(8, 50)))
    radius = float(rng.uniform(0.8, 3.0))
    naive = naive_average_linkage(x, radius)
    assert np.array_equal(average_linkage(x, radius, max_neighbors=None), naive)
    graph = radius_graph(x, radius)
    if graph.capped == 0:  # the default cap was not reached: still exact
        assert np.array_equal(average_linkage(x, radius), naive)


def test_naive_is_not_single_linkage():
    # a chain 0 - 1 - 2 with steps of 1: single linkage at 1.0 joins all three, average linkage
    # (mean squared distance of {0, 1} to 2 is (4 + 1) / 2 = 2.5 > 1) keeps 2 apart
    x = np.array([[0.0], [1.0], [2.0]])
    assert list(naive_average_linkage(x, 1.0)) == [0, 0, -1]
    assert list(average_linkage(x, 1.0)) == [0, 0, -1]


def test_radius_graph_is_every_pair_within_the_radius():
    x = blobs(3, 300, d=16, people=10)
    radius = 2.5
    g = radius_graph(x, radius, max_neighbors=None, max_block=5000)  # many blocks
    d2 = ((x[:, None] - x[None]) ** 2).sum(-1)
    i, j = np.nonzero(np.triu(d2 <= radius ** 2, 1))
    assert set(zip(g.rows.tolist(), g.cols.tolist())) == set(zip(i.tolist(), j.tolist()))
    assert np.allclose(g.d2, d2[g.rows, g.cols])
    assert g.capped == 0


def test_radius_graph_far_from_the_origin():
    """float32 cancellation (norms 1000x the distances): the margin still finds every pair, and
    float64 decides the ones at the edge."""
    x = 1000.0 + blobs(6, 300, d=16, people=10)
    radius = 2.5
    g = radius_graph(x, radius, max_neighbors=None, max_block=4096)
    d2 = ((x[:, None] - x[None]) ** 2).sum(-1)
    i, j = np.nonzero(np.triu(d2 <= radius ** 2, 1))
    assert len(i) > 100
    assert set(zip(g.rows.tolist(), g.cols.tolist())) == set(zip(i.tolist(), j.tolist()))


def test_radius_graph_cap_keeps_the_nearest_later_faces():
    x = blobs(4, 200, d=4, people=2, spread=0.3)
    k = 5
    g = radius_graph(x, 10.0, max_neighbors=k, max_block=3000)
    d2 = ((x[:, None] - x[None]) ** 2).sum(-1)
    assert g.capped > 0
    for i in range(0, 200, 17):
        mine = np.sort(g.cols[g.rows == i])
        later = np.arange(i + 1, 200)
        expected = np.sort(later[np.argsort(d2[i, later], kind="stable")[:k]])
        assert np.array_equal(mine, expected)


def test_labels_are_deterministic_and_permutation_invariant():
    x = blobs(5, 400, d=8, people=20, spread=0.4)
    a = cluster_embeddings(x, verification_threshold=2.0, seed=7)
    b = cluster_embeddings(x.copy(), verification_threshold=2.0, seed=7)
    assert np.array_equal(a.labels, b.labels) and a.threshold == b.threshold
    perm = np.random.default_rng(0).permutation(len(x))
    c = cluster_embeddings(x[perm], verification_threshold=2.0, threshold=a.threshold)
    back = np.empty_like(c.labels)
    back[perm] = c.labels
    assert same_partition(back, a.labels)


def test_singletons_are_minus_one_and_clusters_numbered_by_size():
    x = np.array([[0.0, 0], [0.1, 0], [0.05, 0.1], [5, 5], [5.1, 5], [20, 0], [-20, 0]])
    res = cluster_embeddings(x, verification_threshold=1.0, threshold=0.5)
    assert list(res.labels) == [0, 0, 0, 1, 1, -1, -1]
    assert res.n_clusters == 2 and res.alone == 2
    order = representatives(x, res.labels)
    assert set(order) == {0, 1}
    assert sorted(order[0].tolist()) == [0, 1, 2]


def test_representative_is_the_face_nearest_the_mean():
    x = np.array([[0.0], [1.0], [1.2], [3.0]])
    order = representatives(x, np.array([0, 0, 0, 0]))
    # mean 1.3: nearest 1.2, then 1.0, then 0.0 (1.3 away) and 3.0 (1.7 away)
    assert order[0].tolist() == [2, 1, 0, 3]


def test_bad_inputs_are_typed_errors():
    with pytest.raises(ShapeError):
        cluster_embeddings(np.zeros(5), verification_threshold=0.6)
    with pytest.raises(CnnkitError):
        cluster_embeddings(np.array([[0.0, np.nan], [1, 1], [2, 2]]), verification_threshold=0.6)
    few = cluster_embeddings(blobs(0, 20), verification_threshold=0.6)  # too few to estimate from
    assert few.source == "verification" and few.threshold == 0.6
    assert list(cluster_embeddings(np.zeros((1, 3)), verification_threshold=0.6, threshold=0.5).labels) == [-1]


def test_bcubed_against_a_loop():
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 6, 60).tolist()
    pred = rng.integers(-1, 5, 60).tolist()
    key = [("alone", i) if pred[i] < 0 else ("cluster", pred[i]) for i in range(60)]
    p = np.mean([sum(key[j] == key[i] and truth[j] == truth[i] for j in range(60)) / sum(key[j] == key[i] for j in range(60))
                 for i in range(60)])
    r = np.mean([sum(key[j] == key[i] and truth[j] == truth[i] for j in range(60)) / sum(truth[j] == truth[i] for j in range(60))
                 for i in range(60)])
    b = bcubed(truth, pred)
    assert b.precision == pytest.approx(p) and b.recall == pytest.approx(r)
    assert b.f == pytest.approx(2 * p * r / (p + r))
    assert bcubed([0, 0, 1], [-1, -1, -1]).clusters == 3


def test_impostor_stats_ignore_same_person_pairs():
    """A collection dominated by a few people: the same-person share is set aside, so the
    typical distance between different people is found again (labels used only to check)."""
    rng = np.random.default_rng(2)
    people = rng.normal(size=(40, 32))
    who = np.r_[np.zeros(300, int), np.ones(300, int), rng.integers(2, 40, 400)]
    x = people[who] + 0.15 * rng.normal(size=(len(who), 32))
    truth = impostor_stats(x, 2.0, people=who)
    guess = impostor_stats(x, 2.0)
    d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
    between = d[who[:, None] != who[None, :]]
    assert truth.mean == pytest.approx(np.median(between), rel=0.05)
    assert guess.genuine > 0.15  # 2 x 0.3^2 of the pairs are of person 0 or 1
    assert guess.mean == pytest.approx(truth.mean, rel=0.05)
    naive_median = np.median(d[np.triu_indices(len(x), 1)])
    assert abs(naive_median - truth.mean) > 2 * abs(guess.mean - truth.mean)


@pytest.mark.slow
def test_rule_on_real_orl_faces(pipeline, orl_dir):
    """ORL (40 people x 10 photos, never used to choose the rule): the automatic threshold is
    stricter than the verification one and the clustering is mostly right."""
    files = sorted(orl_dir.glob("s*/*.pgm"))[::2]
    emb, truth = [], []
    for f, res in pipeline.encode_many(files, largest=True):
        if not isinstance(res, CnnkitError):
            emb.append(res.embedding)
            truth.append(f.parent.name)
    res = cluster_embeddings(np.stack(emb), verification_threshold=pipeline.default_threshold)
    assert res.source == "collection"
    assert 0.3 < res.threshold < pipeline.default_threshold
    score = bcubed(truth, res.labels)
    assert score.f > 0.85, score


@pytest.mark.parametrize("seed", range(8))
def test_size_dependent_limit_equals_naive(seed):
    """With a limit per pair of group sizes, the graph algorithm still merges exactly as the
    naive one (the graph's radius covers the largest limit)."""
    rng = np.random.default_rng(300 + seed)
    x = blobs(seed, int(rng.integers(10, 45)), spread=0.6)
    lo, hi = sorted(rng.uniform(0.6, 2.5, 2))

    def limit(na, nb):
        return hi ** 2 - (hi ** 2 - lo ** 2) / np.sqrt(na * nb)

    naive = naive_average_linkage(x, hi, limit=limit)
    assert np.array_equal(average_linkage(x, hi, max_neighbors=None, limit=limit), naive)


def test_groups_merge_further_apart_than_single_faces():
    # two tight pairs whose mean squared distance is 1.005, and two single faces 0.9 apart
    x = np.array([[0.0], [0.1], [1.0], [1.1], [10.0], [10.9]])

    def limit(na, nb):
        return 0.25 if na * nb == 1 else 1.1

    assert list(average_linkage(x, 1.1, limit=limit)) == [0, 0, 0, 0, -1, -1]
    assert list(naive_average_linkage(x, 1.1, limit=limit)) == [0, 0, 0, 0, -1, -1]
    assert list(average_linkage(x, 0.5)) == [0, 0, 1, 1, -1, -1]


def people_photos(seed, people=300, photos=6, d=32, s_person=1.0, s_photo=0.35):
    rng = np.random.default_rng(seed)
    who = np.repeat(np.arange(people), photos)
    return rng.normal(0, s_person, (people, d))[who] + rng.normal(0, s_photo, (len(who), d)), who


def variance_shares_from_labels(x, who):
    """The shares MergeRule estimates, computed with the identities: photos 0 and 1 of each person."""
    first, second = x[::6], x[1::6]
    def d2(a, b):
        return ((a[:, None] - b[None]) ** 2).sum(-1)
    iu = np.triu_indices(len(first), 1)
    v, w, z = d2(first, first)[iu], d2(second, second)[iu], d2(first, second)[iu]
    shared = np.cov(v, w)[0, 1] / v.var()
    return shared, np.cov(v, z)[0, 1] / v.var() - shared


def test_merge_rule_finds_the_variance_split_without_labels():
    x, who = people_photos(0)
    stats = impostor_stats(x, 4.0)
    tau = threshold_from_stats(stats)
    rule = merge_rule(x, tau, stats, 10.0)
    shared, per_face = variance_shares_from_labels(x, who)
    assert rule.pairs >= 30
    assert rule.shared == pytest.approx(shared, abs=0.08)
    assert rule.per_face == pytest.approx(per_face, abs=0.05)
    # noisier photos: less of the variance is the people's, groups may merge further apart
    y, _ = people_photos(0, s_photo=0.6)
    sy = impostor_stats(y, 6.0)
    noisy = merge_rule(y, threshold_from_stats(sy), sy, 10.0)
    assert noisy.shared < rule.shared - 0.1


def test_merge_limit_starts_at_the_pair_threshold_and_grows_with_the_groups():
    x, _ = people_photos(1)
    stats = impostor_stats(x, 4.0)
    tau = threshold_from_stats(stats)
    rule = merge_rule(x, tau, stats, 10.0)
    assert rule.limit(1, 1) == pytest.approx(tau ** 2)
    sizes = [(1, 1), (1, 2), (2, 2), (3, 5), (10, 10), (100, 100)]
    limits = [rule.limit(a, b) for a, b in sizes]
    assert all(p < q for p, q in zip(limits, limits[1:]))
    assert rule.group_threshold ** 2 < stats.mean ** 2
    capped = merge_rule(x, tau, stats, tau * 1.01)
    assert capped.group_threshold == pytest.approx(tau * 1.01)
    res = cluster_embeddings(x, verification_threshold=8.0, merge=True)
    assert res.threshold < 8.0 and res.rule is not None and res.rule.pair_threshold == res.threshold
    assert cluster_embeddings(x, verification_threshold=8.0).rule is None  # off by default


def test_each_encoder_brings_its_clustering_false_accept_rate():
    """The fitted fusion declares the rate chosen for it; every other encoder gets CLUSTER_FAR."""
    from cnnkit.faces.cluster import CLUSTER_FAR, encoder_cluster_far
    from cnnkit.faces.encoders import load_face_encoder
    from cnnkit.faces.fused import FITTED_CLUSTER_FAR

    assert encoder_cluster_far(load_face_encoder("dlib_resnet+sface")) == FITTED_CLUSTER_FAR < CLUSTER_FAR
    assert encoder_cluster_far(load_face_encoder("dlib_resnet*1+sface*1")) == CLUSTER_FAR
    assert encoder_cluster_far(load_face_encoder("dlib_resnet")) == CLUSTER_FAR


def test_graph_from_pairs_is_the_radius_graph_from_found_pairs():
    """Pairs as an index returns them (both directions, repeats, a face with itself) make the
    graph radius_graph makes from every pair within the radius, with exact float64 distances."""
    from cnnkit.faces.cluster import graph_from_pairs

    x = blobs(5, 120, d=8, people=5)
    radius = 2.0
    ref = radius_graph(x, radius, max_neighbors=None)
    rows = np.r_[ref.cols, ref.rows, ref.rows, np.arange(10)]  # reversed, repeated, self-pairs
    cols = np.r_[ref.rows, ref.cols, ref.cols, np.arange(10)]
    far = np.array([[i, j] for i in range(40) for j in range(i + 1, 40) if ((x[i] - x[j]) ** 2).sum() > radius ** 2][:5])
    got = graph_from_pairs(x, np.r_[rows, far[:, 0]], np.r_[cols, far[:, 1]], radius)
    assert np.array_equal(got.rows, ref.rows) and np.array_equal(got.cols, ref.cols)
    np.testing.assert_allclose(got.d2, ((x[got.rows] - x[got.cols]) ** 2).sum(1), rtol=1e-12)
    assert np.array_equal(average_linkage(x, radius, graph=got), average_linkage(x, radius, max_neighbors=None))
    assert len(graph_from_pairs(x, far[:, 0], far[:, 1]).rows) == len(far)  # no radius: kept
    with pytest.raises(ShapeError, match="within 0..119"):
        graph_from_pairs(x, [0], [120])
