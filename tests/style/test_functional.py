"""Costs against naive loops, gradcheck in float64, module == function, shape errors."""
from __future__ import annotations

import pytest
import torch

from cnnkit.core.errors import ShapeError
from cnnkit.style.functional import (
    ContentCost,
    GramMatrix,
    StyleCost,
    TotalVariation,
    content_cost,
    gram_matrix,
    style_cost,
    style_cost_from_gram,
    total_variation,
)

D = torch.float64


def _feat(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=D)


def test_gram_sums_over_positions_naive_loop():
    a = _feat(2, 3, 4, 5)
    g = gram_matrix(a)
    assert g.shape == (2, 3, 3)
    for b in range(2):
        for k in range(3):
            for k2 in range(3):
                expected = sum(a[b, k, i, j] * a[b, k2, i, j] for i in range(4) for j in range(5))
                assert abs(float(g[b, k, k2]) - float(expected)) < 1e-10


def test_content_cost_naive_loop():
    a, c = _feat(1, 2, 3, 3, seed=1), _feat(1, 2, 3, 3, seed=2)
    # half the squared error summed over channels, averaged over the 3 x 3 positions
    expected = 0.5 * sum(float(a[0, k, i, j] - c[0, k, i, j]) ** 2 for k in range(2) for i in range(3) for j in range(3)) / 9
    assert float(content_cost(a, c)) == pytest.approx(expected, rel=1e-12)


def test_style_cost_is_the_course_formula_naive_loop():
    n_c, n_h, n_w = 3, 4, 2
    s, g = _feat(1, n_c, n_h, n_w, seed=3), _feat(1, n_c, n_h, n_w, seed=4)

    def gram(a):
        return [[sum(float(a[0, k, i, j] * a[0, k2, i, j]) for i in range(n_h) for j in range(n_w))
                 for k2 in range(n_c)] for k in range(n_c)]

    gs, gg = gram(s), gram(g)
    frob = sum((gs[k][k2] - gg[k][k2]) ** 2 for k in range(n_c) for k2 in range(n_c))
    expected = frob / (2 * n_h * n_w * n_c) ** 2
    assert float(style_cost(g, s)) == pytest.approx(expected, rel=1e-12)
    assert float(style_cost_from_gram(g, gram_matrix(s)[0])) == pytest.approx(expected, rel=1e-12)


def test_style_cost_of_larger_style_image_compares_per_position_statistics():
    g = _feat(1, 3, 4, 4, seed=5)
    tiled = g.repeat(1, 1, 2, 2)  # same statistics, four times the positions
    assert float(style_cost(g, tiled)) == pytest.approx(0.0, abs=1e-12)
    assert float(style_cost(g, g)) == 0.0


def test_total_variation_naive_loop():
    x = _feat(1, 2, 3, 4, seed=6)
    expected = 0.0
    for c in range(2):
        for i in range(3):
            for j in range(4):
                if i + 1 < 3:
                    expected += float(x[0, c, i + 1, j] - x[0, c, i, j]) ** 2
                if j + 1 < 4:
                    expected += float(x[0, c, i, j + 1] - x[0, c, i, j]) ** 2
    assert float(total_variation(x)) == pytest.approx(expected, rel=1e-12)
    assert float(total_variation(torch.ones(1, 3, 5, 5))) == 0.0


def test_gradcheck_float64():
    g = _feat(1, 2, 3, 3, seed=7).requires_grad_(True)
    s, c = _feat(1, 2, 4, 3, seed=8), _feat(1, 2, 3, 3, seed=9)
    assert torch.autograd.gradcheck(gram_matrix, (g,))
    assert torch.autograd.gradcheck(lambda x: content_cost(x, c), (g,))
    assert torch.autograd.gradcheck(lambda x: style_cost(x, s), (g,))
    assert torch.autograd.gradcheck(total_variation, (g,))


def test_modules_equal_functions():
    g, s, c = _feat(1, 3, 4, 4, seed=10), _feat(1, 3, 6, 5, seed=11), _feat(1, 3, 4, 4, seed=12)
    torch.testing.assert_close(GramMatrix()(g), gram_matrix(g))
    torch.testing.assert_close(ContentCost(c)(g), content_cost(g, c))
    torch.testing.assert_close(StyleCost(s, positions=16)(g), style_cost(g, s))
    torch.testing.assert_close(TotalVariation()(g), total_variation(g))
    assert "target_gram" in dict(StyleCost(s, positions=16).named_buffers())


def test_shapes_are_checked():
    with pytest.raises(ShapeError, match=r"feat must have shape \(B, C, H, W\)"):
        gram_matrix(torch.zeros(3, 4, 4))
    with pytest.raises(ShapeError, match="target must have the shape"):
        content_cost(torch.zeros(1, 2, 3, 3), torch.zeros(1, 2, 3, 4))
    with pytest.raises(ShapeError, match="style_feat"):
        style_cost(torch.zeros(1, 2, 3, 3), torch.zeros(1, 5, 3, 3))
    with pytest.raises(ShapeError, match="target_gram"):
        style_cost_from_gram(torch.zeros(1, 2, 3, 3), torch.zeros(3, 3))


def test_gram_of_channels_last_equals_the_plain_one():
    a = torch.randn(2, 5, 7, 6, generator=torch.Generator().manual_seed(3))
    cl = a.contiguous(memory_format=torch.channels_last)
    assert not cl.is_contiguous()
    torch.testing.assert_close(gram_matrix(cl), gram_matrix(a), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("batched_target", [False, True])
def test_style_cost_gradient_is_autograds_through_the_plain_formula(channels_last, batched_target):
    """The one-product backward of style_cost_from_gram equals autograd through
    ||M M^T - T||^2 / norm, for the feature map and for a target that needs a gradient too."""
    gen = torch.Generator().manual_seed(5)
    feat = torch.randn(2, 4, 5, 3, dtype=torch.float64, generator=gen)
    if channels_last:
        feat = feat.contiguous(memory_format=torch.channels_last)
    target = torch.randn(2 if batched_target else 1, 4, 4, dtype=torch.float64, generator=gen)
    target = target + target.transpose(1, 2)  # symmetric, as a Gram target is
    target = target if batched_target else target[0]
    feat.requires_grad_(True)
    target.requires_grad_(True)
    ours = style_cost_from_gram(feat, target)
    ours.backward()
    got = (feat.grad.clone(), target.grad.clone())
    feat.grad, target.grad = None, None
    flat = feat.reshape(2, 4, 15)
    plain = (flat @ flat.transpose(1, 2) - target).pow(2).sum() / (2.0 * 15 * 4) ** 2
    plain.backward()
    assert float(ours.detach()) == pytest.approx(float(plain.detach()), rel=1e-12)
    torch.testing.assert_close(got[0], feat.grad, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(got[1], target.grad, rtol=1e-10, atol=1e-12)
    if channels_last:  # the gradient comes back in the features' own layout, no transposed copy
        assert got[0].is_contiguous(memory_format=torch.channels_last)
    assert torch.autograd.gradcheck(lambda f, t: style_cost_from_gram(f, t), (feat.detach().requires_grad_(True),
                                                                              target.detach().requires_grad_(True)))
