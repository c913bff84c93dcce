import math

import pytest
import torch

from cnnkit.core.errors import ShapeError, UnknownNameError
from cnnkit.losses import (
    ContrastiveLoss,
    TripletMarginLoss,
    contrastive_loss,
    triplet_loss_from_indices,
    triplet_margin_loss,
)
from cnnkit.losses.functional import reduce_loss
from cnnkit.mining import TripletIndices


def test_triplet_hand_computed():
    # d(A,P) = 1, d(A,N) = 4 (squared): max(1 - 4 + 0.2, 0) = 0; second: d(A,P) = 4, d(A,N) = 1 -> 3.2
    a = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    p = torch.tensor([[1.0, 0.0], [2.0, 0.0]])
    n = torch.tensor([[2.0, 0.0], [1.0, 0.0]])
    assert triplet_margin_loss(a, p, n, reduction="none").tolist() == pytest.approx([0.0, 3.2])
    assert float(triplet_margin_loss(a, p, n)) == pytest.approx(3.2)  # J = sum
    assert float(triplet_margin_loss(a, p, n, reduction="mean")) == pytest.approx(1.6)
    assert float(triplet_margin_loss(a, p, n, reduction="mean_active")) == pytest.approx(3.2)
    # plain Euclidean: max(2 - 1 + 0.2, 0) = 1.2
    assert float(triplet_margin_loss(a, p, n, squared=False)) == pytest.approx(1.2)


@pytest.mark.parametrize("squared", [True, False])
def test_triplet_matches_naive_loop(squared):
    g = torch.Generator().manual_seed(0)
    a, p, n = (torch.randn(9, 5, generator=g, dtype=torch.float64) for _ in range(3))
    total = 0.0
    for i in range(9):
        dap = sum((a[i, j] - p[i, j]) ** 2 for j in range(5))
        dan = sum((a[i, j] - n[i, j]) ** 2 for j in range(5))
        if not squared:
            dap, dan = math.sqrt(dap), math.sqrt(dan)
        total += max(float(dap - dan) + 0.5, 0.0)
    assert float(triplet_margin_loss(a, p, n, margin=0.5, squared=squared)) == pytest.approx(total)


@pytest.mark.parametrize("squared", [True, False])
def test_loss_from_distance_matrix_equals_gathered_rows(squared):
    g = torch.Generator().manual_seed(3)
    emb = torch.randn(10, 4, generator=g, dtype=torch.float64, requires_grad=True)
    a, p, n = (torch.randint(0, 10, (30,), generator=g) for _ in range(3))
    keep = (a != p) & (a != n)
    idx = TripletIndices(a[keep], p[keep], n[keep])
    got = triplet_loss_from_indices(emb, idx, margin=0.7, squared=squared)
    expected = triplet_margin_loss(emb[idx.anchor], emb[idx.positive], emb[idx.negative], margin=0.7, squared=squared)
    torch.testing.assert_close(got, expected)
    got.backward()
    assert torch.isfinite(emb.grad).all()


def test_triplet_docstring_warns_about_minus_sign():
    assert "minus sign" in triplet_margin_loss.__doc__ and "maximise" in triplet_margin_loss.__doc__


@pytest.mark.parametrize("squared", [True, False])
def test_triplet_gradcheck(squared):
    g = torch.Generator().manual_seed(1)
    a, p, n = (torch.randn(4, 3, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(3))
    assert torch.autograd.gradcheck(
        lambda a, p, n: triplet_margin_loss(a, p, n, margin=3.0, squared=squared), (a, p, n))


def test_contrastive_hand_computed():
    x1 = torch.tensor([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    x2 = torch.tensor([[0.6, 0.8], [0.3, 0.4], [3.0, 4.0]])
    same = torch.tensor([1, 0, 0])
    # same: d^2 = 1; different at d = 0.5: (1 - 0.5)^2 = 0.25; different at d = 5: 0
    assert contrastive_loss(x1, x2, same, reduction="none").tolist() == pytest.approx([1.0, 0.25, 0.0])
    assert float(ContrastiveLoss()(x1, x2, same)) == pytest.approx(1.25 / 3)


def test_contrastive_gradcheck():
    g = torch.Generator().manual_seed(2)
    x1, x2 = (torch.randn(5, 3, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(2))
    same = torch.tensor([1, 0, 1, 0, 0])
    assert torch.autograd.gradcheck(lambda a, b: contrastive_loss(a, b, same, margin=4.0), (x1, x2))


def test_module_equals_function():
    a, p, n = (torch.randn(6, 4) for _ in range(3))
    torch.testing.assert_close(TripletMarginLoss(margin=0.3, squared=False)(a, p, n),
                               triplet_margin_loss(a, p, n, margin=0.3, squared=False))
    assert "margin=0.3" in repr(TripletMarginLoss(margin=0.3))


@pytest.mark.parametrize("reduction", ["sum", "mean", "mean_active"])
def test_no_triplets_gives_zero_not_nan(reduction):
    emb = torch.randn(4, 3, requires_grad=True)
    loss = triplet_loss_from_indices(emb, TripletIndices.empty(), reduction=reduction)
    assert float(loss.detach()) == 0.0
    loss.backward()
    assert torch.equal(emb.grad, torch.zeros(4, 3))


def test_all_inactive_mean_active_is_zero():
    a = torch.zeros(3, 2)
    loss = triplet_margin_loss(a, a, a + 10, reduction="mean_active")
    assert float(loss) == 0.0 and not torch.isnan(loss)


def test_errors():
    with pytest.raises(ShapeError):
        triplet_margin_loss(torch.randn(3, 2), torch.randn(3, 2), torch.randn(2, 2))
    with pytest.raises(UnknownNameError, match="reduction"):
        reduce_loss(torch.ones(2), "median")  # type: ignore[arg-type]
