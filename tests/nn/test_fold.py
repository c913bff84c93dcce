"""Folding a frozen scale-and-shift into the layer before it, and the pointwise convolution, against
the unfolded PyTorch layers."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cnnkit.nn.fold import batchnorm_scale_shift, fold_scale_shift, pointwise_conv


def _random_bn(c: int, gen: torch.Generator) -> nn.BatchNorm2d:
    bn = nn.BatchNorm2d(c, eps=1e-3).eval()
    bn.weight.data = torch.randn(c, generator=gen)
    bn.bias.data = torch.randn(c, generator=gen)
    bn.running_mean = torch.randn(c, generator=gen)
    bn.running_var = torch.rand(c, generator=gen) + 0.1
    return bn


def test_conv_then_batchnorm_equals_the_folded_conv() -> None:
    gen = torch.Generator().manual_seed(0)
    conv = nn.Conv2d(6, 8, 3, padding=1, bias=True)
    bn = _random_bn(8, gen)
    x = torch.randn(2, 6, 9, 9, generator=gen)
    w, b = fold_scale_shift(conv.weight, conv.bias, *batchnorm_scale_shift(bn))
    with torch.no_grad():
        expected = bn(conv(x))
        torch.testing.assert_close(F.conv2d(x, w, b, padding=1), expected, atol=1e-5, rtol=1e-5)
        # no bias: the shift alone
        conv.bias = None
        w, b = fold_scale_shift(conv.weight, None, *batchnorm_scale_shift(bn))
        torch.testing.assert_close(F.conv2d(x, w, b, padding=1), bn(conv(x)), atol=1e-5, rtol=1e-5)


def test_linear_then_batchnorm1d_equals_the_folded_linear() -> None:
    gen = torch.Generator().manual_seed(1)
    fc = nn.Linear(10, 4)
    bn = nn.BatchNorm1d(4).eval()
    bn.running_mean, bn.running_var = torch.randn(4, generator=gen), torch.rand(4, generator=gen) + 0.5
    x = torch.randn(3, 10, generator=gen)
    w, b = fold_scale_shift(fc.weight, fc.bias, *batchnorm_scale_shift(bn))
    with torch.no_grad():
        torch.testing.assert_close(F.linear(x, w, b), bn(fc(x)), atol=1e-5, rtol=1e-5)


def test_pointwise_conv_equals_conv2d_in_either_layout() -> None:
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(3, 16, 7, 5, generator=gen)
    w, b = torch.randn(24, 16, 1, 1, generator=gen), torch.randn(24, generator=gen)
    expected = F.conv2d(x, w, b)
    for layout in (torch.contiguous_format, torch.channels_last):
        out = pointwise_conv(x.contiguous(memory_format=layout), w, b)
        assert out.shape == (3, 24, 7, 5)
        torch.testing.assert_close(out, expected, atol=1e-4, rtol=1e-5)
