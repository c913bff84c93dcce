import json

import numpy as np
import pytest
import torch

from cnnkit.core.errors import ShapeError
from cnnkit.nn.heads import EmbeddingHead, PairClassifierHead, fit_pair_head, head_probability, pair_features


def test_embedding_head_unit_rows():
    out = EmbeddingHead(6, 4)(torch.randn(5, 6))
    torch.testing.assert_close(out.norm(dim=1), torch.ones(5))


def test_pair_features_hand_values():
    a = torch.tensor([[1.0, 3.0]])
    b = torch.tensor([[3.0, 1.0]])
    f = pair_features(a, b, ("abs", "chi2"))
    torch.testing.assert_close(f, torch.tensor([[2.0, 2.0, 1.0, 1.0]]))
    with pytest.raises(ShapeError, match="non-negative"):
        pair_features(-a, b, ("chi2",))


def test_head_probability_matches_module():
    torch.manual_seed(0)
    head = PairClassifierHead(4, features=("abs", "chi2"))
    a, b = torch.rand(3, 4), torch.rand(5, 4)
    prob = head_probability(head.to_json(), a.numpy(), b.numpy())
    assert prob.shape == (3, 5)
    for i in range(3):
        for j in range(5):
            expected = torch.sigmoid(head(a[i:i + 1], b[j:j + 1]))
            assert prob[i, j] == pytest.approx(float(expected), abs=1e-6)
    again = PairClassifierHead.from_json(head.to_json())
    torch.testing.assert_close(again(a[:2], b[:2]), head(a[:2], b[:2]))


def test_fit_pair_head_separates_pairs():
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(10, 8, generator=g)
    people = torch.randint(0, 10, (400,), generator=g)
    emb = centres[people] + 0.3 * torch.randn(400, 8, generator=g)
    i, j = torch.randint(0, 400, (2, 600), generator=g)
    same = (people[i] == people[j]).float()
    head = fit_pair_head(emb[i], emb[j], same)
    acc = ((torch.sigmoid(head(emb[i], emb[j])) > 0.5).float() == same).float().mean()
    assert acc > 0.9
    spec = json.loads(head.to_json(encoder="x"))
    assert spec["encoder"] == "x" and len(spec["weights"]) == 8
    assert np.isfinite(head_probability(spec, emb[:2].numpy(), emb[:3].numpy())).all()


def test_block_sq_is_the_squared_distance_of_each_block():
    a, b = torch.tensor([[1.0, 0.0, 2.0, 2.0, 0.0]]), torch.tensor([[0.0, 0.0, 0.0, 0.0, 3.0]])
    f = pair_features(a, b, ("block_sq",), blocks=(2, 3))
    assert f.tolist() == [[1.0, 4.0 + 4.0 + 9.0]]
    with pytest.raises(ShapeError, match="add up"):
        pair_features(a, b, ("block_sq",), blocks=(2, 2))


def test_block_sq_head_probability_matches_module():
    torch.manual_seed(0)
    head = PairClassifierHead(6, features=("block_sq", "abs"), blocks=(4, 2))
    a, b = torch.randn(3, 6), torch.randn(3, 6)
    expected = torch.sigmoid(head(a, b)).detach().numpy()
    prob = head_probability(head.to_json(), a.numpy(), b.numpy())
    np.testing.assert_allclose(np.diag(prob), expected, rtol=1e-5)
    again = PairClassifierHead.from_json(head.to_json())
    assert again.blocks == (4, 2)
