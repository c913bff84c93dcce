import itertools

import pytest
import torch

from cnnkit.core.errors import ShapeError, UnknownNameError
from cnnkit.distances import pairwise_squared_l2
from cnnkit.losses import triplet_loss_from_indices
from cnnkit.mining import TripletMiner, all_pairs, batch_all, batch_hard, mine_triplets, random_triplets, semi_hard


def _batch(seed, b=12, d=4, classes=4):
    g = torch.Generator().manual_seed(seed)
    emb = torch.randn(b, d, generator=g, dtype=torch.float64)
    labels = torch.randint(0, classes, (b,), generator=g)
    return emb, labels, pairwise_squared_l2(emb)


def _triplets(t):
    return sorted(zip(t.anchor.tolist(), t.positive.tolist(), t.negative.tolist()))


def _naive_valid(labels):
    lab = labels.tolist()
    return [(a, p, n) for a, p, n in itertools.product(range(len(lab)), repeat=3)
            if a != p and lab[a] == lab[p] and lab[a] != lab[n]]


@pytest.mark.parametrize("seed", range(5))
def test_batch_all_matches_naive_loop(seed):
    emb, labels, dist = _batch(seed)
    assert _triplets(batch_all(labels)) == _naive_valid(labels)
    active = [(a, p, n) for a, p, n in _naive_valid(labels) if dist[a, p] - dist[a, n] + 0.5 > 0]
    assert _triplets(batch_all(labels, dist, margin=0.5)) == active


@pytest.mark.parametrize("seed", range(5))
def test_batch_hard_matches_naive_loop(seed):
    emb, labels, dist = _batch(seed)
    lab, expected = labels.tolist(), []
    for a in range(len(lab)):
        pos = [p for p in range(len(lab)) if p != a and lab[p] == lab[a]]
        neg = [n for n in range(len(lab)) if lab[n] != lab[a]]
        if pos and neg:
            expected.append((a, max(pos, key=lambda p: dist[a, p]), min(neg, key=lambda n: dist[a, n])))
    assert _triplets(batch_hard(dist, labels)) == sorted(expected)


@pytest.mark.parametrize("seed", range(5))
def test_semi_hard_matches_naive_loop(seed):
    emb, labels, dist = _batch(seed)
    margin = float(dist.mean())  # wide enough that both branches occur
    lab, expected, branches = labels.tolist(), [], set()
    for a, p in itertools.permutations(range(len(lab)), 2):
        if lab[a] != lab[p]:
            continue
        neg = [n for n in range(len(lab)) if lab[n] != lab[a]]
        if not neg:
            continue
        semi = [n for n in neg if dist[a, p] < dist[a, n] < dist[a, p] + margin]
        branches.add(bool(semi))
        expected.append((a, p, min(semi or neg, key=lambda n: dist[a, n])))
    assert _triplets(semi_hard(dist, labels, margin=margin)) == sorted(expected)


def test_semi_hard_both_branches_covered():
    # anchor 0, positive 1 at 1.0; negatives at 1.1 (semi-hard) and 0.5 (hard); margin 0.2
    dist = torch.tensor([[0.0, 1.0, 1.1, 0.5], [1.0, 0, 9, 9], [1.1, 9, 0, 9], [0.5, 9, 9, 0]])
    labels = torch.tensor([0, 0, 1, 2])
    t = semi_hard(dist, labels, margin=0.2)
    assert (0, 1, 2) in _triplets(t)  # the semi-hard one, not the harder 3
    t = semi_hard(dist, labels, margin=0.05)  # none inside the margin -> hardest negative
    assert (0, 1, 3) in _triplets(t)


def test_random_triplets_are_valid_and_repeatable():
    emb, labels, dist = _batch(3, b=20)
    t1 = random_triplets(labels, generator=torch.Generator().manual_seed(0))
    t2 = random_triplets(labels, generator=torch.Generator().manual_seed(0))
    assert _triplets(t1) == _triplets(t2)
    valid = set(_naive_valid(labels))
    assert set(_triplets(t1)) <= valid
    ap = {(a, p) for a, p, _ in valid}
    assert {(a, p) for a, p, _ in _triplets(t1)} == ap


def test_no_valid_triplet_gives_empty_indices_and_zero_loss():
    emb = torch.randn(4, 3, requires_grad=True)
    for labels in (torch.tensor([0, 1, 2, 3]), torch.tensor([5, 5, 5, 5])):
        dist = pairwise_squared_l2(emb.detach())
        for strategy in ("all", "hard", "semihard", "random"):
            t = mine_triplets(strategy, dist, labels)
            assert len(t) == 0
            loss = triplet_loss_from_indices(emb, t)
            assert float(loss.detach()) == 0.0 and not torch.isnan(loss)


def test_all_pairs_counts():
    p = all_pairs(torch.tensor([0, 0, 1, 1, 1]))
    assert len(p.a1) == 1 + 3 and len(p.a2) == 10 - 4
    assert bool((p.a1 < p.p).all()) and bool((p.a2 < p.n).all())


def test_miner_module_matches_function_and_has_no_grad():
    emb, labels, dist = _batch(4)
    emb.requires_grad_(True)
    t = TripletMiner("hard")(emb, labels)
    assert _triplets(t) == _triplets(batch_hard(dist, labels))
    assert not t.anchor.requires_grad


def test_errors():
    emb, labels, dist = _batch(0)
    with pytest.raises(UnknownNameError, match="semihard"):
        mine_triplets("hardest", dist, labels)
    with pytest.raises(ShapeError):
        batch_hard(dist[:3], labels)
