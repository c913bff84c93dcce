"""Folding frozen per-channel scale-and-shift layers (inference BatchNorm, dlib's ``affine``) into the
linear layer before them, for inference: ``s * (W x + b) + t == (s W) x + (s b + t)``, the same
function up to float rounding with one pass over the activations fewer.

And the pointwise (1x1, stride 1) convolution run by oneDNN on channels-last activations: for
batches under 16 on one thread PyTorch's ``conv2d`` picks its own im2col path for 1x1 kernels,
1.5-3x slower on this machine's CPU.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["batchnorm_scale_shift", "fold_scale_shift", "pointwise_conv"]


def batchnorm_scale_shift(bn: nn.BatchNorm1d | nn.BatchNorm2d) -> tuple[Tensor, Tensor]:
    """The inference-mode BatchNorm as ``y = scale * x + shift``, both (C,) float64."""
    scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
    return scale, bn.bias.double() - bn.running_mean.double() * scale


def fold_scale_shift(weight: Tensor, bias: Tensor | None, scale: Tensor, shift: Tensor) -> tuple[Tensor, Tensor]:
    """The weight and bias of ``scale * layer(x) + shift`` for a linear layer (convolution (O, ...)
    or fully connected (O, I)) with ``weight``, ``bias`` (``None``: zero); computed in float64,
    returned in float32.

    Args:
        scale, shift: (O,), one per output channel.
    """
    w = weight.double() * scale.double().view(-1, *([1] * (weight.dim() - 1)))
    b = shift.double() if bias is None else bias.double() * scale.double() + shift.double()
    return w.float().contiguous(), b.float().contiguous()


def pointwise_conv(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """A 1x1 stride-1 convolution, (B, C, H, W) -> (B, O, H, W) with ``weight`` (O, C, 1, 1): by
    oneDNN for float32 CPU tensors (channels-last in, channels-last out), else ``conv2d``."""
    if x.device.type == "cpu" and x.dtype == torch.float32 and torch.backends.mkldnn.is_available():
        return torch.mkldnn_convolution(x, weight, bias, (0, 0), (1, 1), (1, 1), 1)
    return F.conv2d(x, weight, bias)
