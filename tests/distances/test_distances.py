import pytest
import torch

from cnnkit.core.errors import ShapeError
from cnnkit.distances import L2Distance, pairwise_l2, pairwise_squared_l2, row_distance


def test_pairwise_matches_cdist():
    x, y = torch.randn(5, 7, dtype=torch.float64), torch.randn(3, 7, dtype=torch.float64)
    torch.testing.assert_close(pairwise_l2(x, y), torch.cdist(x, y))
    torch.testing.assert_close(pairwise_squared_l2(x, y), torch.cdist(x, y) ** 2)


def test_self_distance_is_zero_and_never_negative():
    x = torch.randn(6, 4, generator=torch.Generator().manual_seed(0)) * 100
    d = pairwise_squared_l2(x)
    assert (d >= 0).all()
    # |x|^2 + |x|^2 - 2 x.x cancels in float32: the error is a few float32 steps of |x|^2
    tol = 8 * torch.finfo(torch.float32).eps * float((x * x).sum(1).max())
    torch.testing.assert_close(d.diagonal(), torch.zeros(6), atol=tol, rtol=0)


def test_row_distance_hand_values():
    x = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    y = torch.tensor([[3.0, 4.0], [1.0, 1.0]])
    assert row_distance(x, y).tolist() == [25.0, 0.0]
    assert row_distance(x, y, squared=False).tolist() == [5.0, 0.0]


def test_row_distance_gradient_finite_at_zero():
    x = torch.ones(2, 3, requires_grad=True)
    row_distance(x, torch.ones(2, 3), squared=False).sum().backward()
    assert torch.isfinite(x.grad).all()


def test_module_equals_function():
    x = torch.randn(4, 3)
    torch.testing.assert_close(L2Distance(squared=False)(x), pairwise_l2(x))


def test_shape_errors():
    with pytest.raises(ShapeError, match="x must have shape"):
        pairwise_l2(torch.randn(3))
    with pytest.raises(ShapeError):
        pairwise_l2(torch.randn(3, 2), torch.randn(3, 4))
