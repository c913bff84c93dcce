"""The costs of neural style transfer (Gatys et al.), each a function with a module twin.

Notation: a layer's activations ``a`` have shape (B, n_C, n_H, n_W).

* content cost   J_content(C, G) = 1 / (2 n_H n_W) ||a(C) - a(G)||^2   (a mean over positions)
* Gram matrix    G_kk' = sum_i sum_j a_ijk a_ijk'   (sums over the n_H x n_W positions)
* style cost     J_style^[l](S, G) = 1 / (2 n_H n_W n_C)^2 ||G(S) - G(G)||_F^2
* total variation  TV(x) = sum (x[i+1, j] - x[i, j])^2 + (x[i, j+1] - x[i, j])^2

Costs are summed over the batch. Both costs are per position (the Gram matrix's n_H n_W is divided
out of the style cost, and the content cost is divided by n_H n_W), so at fixed alpha / beta the
balance of the two is the same at every image size: a content cost summed over positions would
weigh 16 times more at 1024 px than at 256 px.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from cnnkit.core.checks import check_shape
from cnnkit.core.errors import ShapeError


def _gram_operand(feat: Tensor) -> tuple[Tensor, bool]:
    """``feat`` (B, C, H, W) as a view whose product with its transpose is the Gram matrix: (B, HW, C)
    when it is channels_last (``G = M^T M``, no copy), else (B, C, HW) (``G = M M^T``); and which."""
    b, c, h, w = feat.shape
    if c > 1 and not feat.is_contiguous() and feat.is_contiguous(memory_format=torch.channels_last):
        return feat.permute(0, 2, 3, 1).reshape(b, h * w, c), True
    return feat.reshape(b, c, h * w), False


def gram_matrix(feat: Tensor) -> Tensor:
    """Gram matrix summed over positions: ``G[b, k, k'] = sum_{i,j} feat[b, k, i, j] feat[b, k', i, j]``.

    Args:
        feat: activations, shape (B, C, H, W).

    Returns:
        Gram matrices, shape (B, C, C). Not divided by anything.
    """
    check_shape(feat, "B C H W", name="feat")
    return _gram_of(*_gram_operand(feat))


def _gram_of(m: Tensor, positions_first: bool) -> Tensor:
    return m.transpose(1, 2) @ m if positions_first else m @ m.transpose(1, 2)


class _GramCost(torch.autograd.Function):
    """``||G(M) - T||_F^2 / norm`` with one matrix product in the backward pass: for ``G = M M^T``,
    ``d/dM = 2 (R + R^T) M / norm`` with ``R = G - T`` (autograd through ``M @ M^T`` takes two
    products, their sum and a transposed copy). Measured with ``benchmarks/style_speed.py`` at
    512 px in float32, one thread: 45.6 s to the bar before, 38.9 s with it."""

    @staticmethod
    def forward(ctx, m: Tensor, target: Tensor, norm: float, positions_first: bool) -> Tensor:
        residual = _gram_of(m, positions_first) - target  # a bfloat16 Gram meets a float32 target in float32
        ctx.save_for_backward(m, residual)
        ctx.norm, ctx.positions_first, ctx.target_shape = norm, positions_first, target.shape
        return residual.pow(2).sum() / norm

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:
        m, residual = ctx.saved_tensors
        scale = 2.0 * grad / ctx.norm
        grad_m = grad_target = None
        if ctx.needs_input_grad[0]:
            sym = ((residual + residual.transpose(1, 2)) * scale).to(m.dtype)
            grad_m = m @ sym if ctx.positions_first else sym @ m
        if ctx.needs_input_grad[1]:
            grad_target = (-scale * residual).sum_to_size(ctx.target_shape)
        return grad_m, grad_target, None, None


def content_cost(feat: Tensor, target: Tensor) -> Tensor:
    """``||feat - target||^2 / (2 n_H n_W)`` (a scalar): half the squared error, per position.

    Args:
        feat: activations of the generated image, shape (B, C, H, W).
        target: activations of the content image, same shape.
    """
    check_shape(feat, "B C H W", name="feat")
    if feat.shape != target.shape:
        raise ShapeError(f"target must have the shape of feat {tuple(feat.shape)}, got {tuple(target.shape)}")
    return 0.5 * (feat - target).pow(2).sum() / (feat.shape[-2] * feat.shape[-1])


def style_cost_from_gram(feat: Tensor, target_gram: Tensor) -> Tensor:
    """One layer's style cost ``||target_gram - G(feat)||_F^2 / (2 n_H n_W n_C)^2`` (a scalar).

    Args:
        feat: activations of the generated image, shape (B, C, H, W).
        target_gram: Gram matrix of the style image as if it had the size of ``feat``,
            shape (C, C) or (B, C, C).
    """
    dims = check_shape(feat, "B C H W", name="feat")
    c = dims["C"]
    if tuple(target_gram.shape[-2:]) != (c, c) or target_gram.dim() not in (2, 3):
        raise ShapeError(f"target_gram must have shape ({c}, {c}) or (B, {c}, {c}), got {tuple(target_gram.shape)}")
    norm = (2.0 * dims["H"] * dims["W"] * c) ** 2
    m, positions_first = _gram_operand(feat)
    return _GramCost.apply(m, target_gram, norm, positions_first)


def style_cost(feat: Tensor, style_feat: Tensor) -> Tensor:
    """One layer's style cost between generated activations and style activations.

    ``1 / (2 n_H n_W n_C)^2 ||G(S) - G(G)||_F^2``. When the style activations have a different
    number of positions, ``G(S)`` is rescaled to the positions of ``feat`` (``G(S) * n_G / n_S``), so
    that the cost compares per-position statistics; with equal sizes this is the formula as written.

    Args:
        feat: activations of the generated image, shape (B, C, H, W).
        style_feat: activations of the style image, shape (B or 1, C, H_s, W_s).
    """
    dims = check_shape(feat, "B C H W", name="feat")
    check_shape(style_feat, f"* {dims['C']} H_s W_s", name="style_feat")
    return style_cost_from_gram(feat, style_target_gram(style_feat, positions=dims["H"] * dims["W"]))


def style_target_gram(style_feat: Tensor, *, positions: int) -> Tensor:
    """Gram matrix of ``style_feat`` (B, C, H_s, W_s) rescaled to ``positions`` positions: (B, C, C)."""
    dims = check_shape(style_feat, "B C H W", name="style_feat")
    gram = gram_matrix(style_feat)
    n_s = dims["H"] * dims["W"]
    return gram if n_s == positions else gram * (positions / n_s)


def total_variation(img: Tensor) -> Tensor:
    """Sum of squared differences between vertical and horizontal neighbours (a scalar).

    Args:
        img: images, shape (B, C, H, W).
    """
    check_shape(img, "B C H W", name="img")
    dh = img[:, :, 1:, :] - img[:, :, :-1, :]
    dw = img[:, :, :, 1:] - img[:, :, :, :-1]
    return dh.pow(2).sum() + dw.pow(2).sum()


class GramMatrix(nn.Module):
    """Module twin of :func:`gram_matrix`: (B, C, H, W) -> (B, C, C)."""

    def forward(self, feat: Tensor) -> Tensor:
        return gram_matrix(feat)


class ContentCost(nn.Module):
    """Module twin of :func:`content_cost`: the content activations are stored as a buffer."""

    def __init__(self, target: Tensor) -> None:
        super().__init__()
        self.register_buffer("target", target.detach())

    def forward(self, feat: Tensor) -> Tensor:
        return content_cost(feat, self.target)


class StyleCost(nn.Module):
    """Module twin of :func:`style_cost`: the style Gram matrix is computed once and stored.

    Args:
        style_feat: activations of the style image, shape (1, C, H_s, W_s).
        positions: n_H * n_W of the generated activations the cost will be used with.
    """

    def __init__(self, style_feat: Tensor, *, positions: int) -> None:
        super().__init__()
        self.register_buffer("target_gram", style_target_gram(style_feat.detach(), positions=positions))

    def forward(self, feat: Tensor) -> Tensor:
        return style_cost_from_gram(feat, self.target_gram)


class TotalVariation(nn.Module):
    """Module twin of :func:`total_variation`."""

    def forward(self, img: Tensor) -> Tensor:
        return total_variation(img)


__all__ = [
    "ContentCost",
    "GramMatrix",
    "StyleCost",
    "TotalVariation",
    "content_cost",
    "gram_matrix",
    "style_cost",
    "style_cost_from_gram",
    "style_target_gram",
    "total_variation",
]
