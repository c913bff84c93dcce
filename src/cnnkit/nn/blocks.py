"""Convolution building blocks for 1D signals, 2D images and 3D volumes, built from one private
factory per concept (STYLE rule 3).

Shapes: ``seq`` (B, C, L), ``img`` (B, C, H, W), ``vol`` (B, C, D, H, W). An RGB image is 2D
convolution with 3 input channels, not 3D: the dimensionality counts the axes the filter slides
along, never the channels.
"""
from __future__ import annotations

from typing import Literal

import torch.nn.functional as F
from torch import Tensor, nn

from cnnkit.core.checks import check_shape
from cnnkit.core.errors import ShapeError, UnknownNameError

PoolKind = Literal["max", "avg"]

_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_CONV_T = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}
_NORM = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
_POOL = {("max", 1): nn.MaxPool1d, ("max", 2): nn.MaxPool2d, ("max", 3): nn.MaxPool3d,
         ("avg", 1): nn.AvgPool1d, ("avg", 2): nn.AvgPool2d, ("avg", 3): nn.AvgPool3d}
_CORR = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_SPEC = {1: "B C L", 2: "B C H W", 3: "B C D H W"}


def _check_nd(nd: int) -> int:
    if nd not in (1, 2, 3):
        raise UnknownNameError(f"dimensionality must be 1, 2 or 3, got {nd!r}")
    return nd


def cross_correlate(x: Tensor, kernel: Tensor, *, stride: int = 1, padding: int = 0,
                    dilation: int = 1) -> Tensor:
    """The raw operation behind every conv layer: slide ``kernel`` over ``x`` and take dot products
    (no flip, so it is a cross-correlation, as in torch and ``scipy.signal.correlate``).

    The dimensionality follows ``kernel``: shape (f,) slides along (B, L) or (L,) inputs, (f, f) along
    (H, W), (f, f, f) along (D, H, W). ``x`` may carry any number of leading batch dims; each is
    correlated on its own.

    Args:
        x: signal, image or volume, shape (*, N1[, N2[, N3]]).
        kernel: filter, shape (F1[, F2[, F3]]), same dimensionality as the trailing dims of ``x``.

    Returns:
        shape (*, M1, ...), with M = floor((N + 2p - d(F - 1) - 1) / s) + 1 per axis.
    """
    nd = _check_nd(kernel.dim())
    if x.dim() < nd:
        raise ShapeError(f"x must have at least {nd} dims for a {nd}D kernel, got {tuple(x.shape)}")
    lead = x.shape[: x.dim() - nd]
    flat = x.reshape(-1, 1, *x.shape[x.dim() - nd:])
    out = _CORR[nd](flat, kernel[None, None].to(x.dtype), stride=stride, padding=padding, dilation=dilation)
    return out.reshape(*lead, *out.shape[2:])


class _ConvBlock(nn.Module):
    """conv → norm → activation, with an optional residual shortcut (``act(norm(conv(x)) + short(x))``,
    the shortcut a 1x1 conv + norm when channels or stride change)."""

    nd: int = 0

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, *, stride: int = 1,
                 dilation: int = 1, padding: int | None = None, residual: bool = False,
                 norm: bool = True, activation: type[nn.Module] = nn.ReLU) -> None:
        super().__init__()
        nd = _check_nd(self.nd)
        if padding is None:
            padding = dilation * (kernel_size - 1) // 2   # "same" size for odd kernels at stride 1
        self.conv = _CONV[nd](in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                              dilation=dilation, bias=not norm)
        self.norm = _NORM[nd](out_channels) if norm else nn.Identity()
        self.act = activation()
        self.residual = residual
        self.shortcut: nn.Module | None = None
        if residual and (in_channels != out_channels or stride != 1):
            self.shortcut = nn.Sequential(
                _CONV[nd](in_channels, out_channels, 1, stride=stride, bias=False), _NORM[nd](out_channels))

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != self.nd + 2:
            check_shape(x, _SPEC[self.nd], name=f"{type(self).__name__} input")
        y = self.norm(self.conv(x))
        if self.residual:
            short = x if self.shortcut is None else self.shortcut(x)
            if short.shape != y.shape:
                raise ShapeError(f"residual shapes differ: {tuple(short.shape)} vs {tuple(y.shape)}; "
                                 "use an odd kernel with the default padding")
            y = y + short
        return self.act(y)

    def extra_repr(self) -> str:
        return f"residual={self.residual}"


class ConvBlock1d(_ConvBlock):
    """Conv1d → BatchNorm1d → ReLU (optional residual). Shape (B, C_in, L) → (B, C_out, L_out)."""

    nd = 1


class ConvBlock2d(_ConvBlock):
    """Conv2d → BatchNorm2d → ReLU (optional residual). Shape (B, C_in, H, W) → (B, C_out, H', W')."""

    nd = 2


class ConvBlock3d(_ConvBlock):
    """Conv3d → BatchNorm3d → ReLU (optional residual). Shape (B, C_in, D, H, W) → (B, C_out, D', H', W')."""

    nd = 3


CONV_BLOCKS: dict[int, type[_ConvBlock]] = {1: ConvBlock1d, 2: ConvBlock2d, 3: ConvBlock3d}


def conv_block(nd: int, in_channels: int, out_channels: int, kernel_size: int = 3, **kwargs: object) -> _ConvBlock:
    """Build ``ConvBlock{nd}d``; keyword arguments as for the block."""
    return CONV_BLOCKS[_check_nd(nd)](in_channels, out_channels, kernel_size, **kwargs)  # type: ignore[arg-type]


def pool(nd: int, kind: PoolKind = "max", kernel_size: int = 2, stride: int | None = None) -> nn.Module:
    """``MaxPool{nd}d`` or ``AvgPool{nd}d`` (stride defaults to the kernel size)."""
    if (kind, _check_nd(nd)) not in _POOL:
        raise UnknownNameError(f"unknown pool kind {kind!r}; available: ['avg', 'max']")
    return _POOL[(kind, nd)](kernel_size, stride=stride)


def upsample(nd: int, in_channels: int, out_channels: int, factor: int = 2) -> nn.Module:
    """Learned upsampling by ``factor``: ``ConvTranspose{nd}d`` with kernel = stride = factor."""
    return _CONV_T[_check_nd(nd)](in_channels, out_channels, factor, stride=factor)


def global_avg_pool(x: Tensor) -> Tensor:
    """Mean over every spatial axis. Shape (B, C, *spatial) → (B, C)."""
    if x.dim() < 3:
        raise ShapeError(f"global_avg_pool needs (B, C, *spatial), got {tuple(x.shape)}")
    return x.flatten(2).mean(dim=2)


class GlobalAvgPool(nn.Module):
    """Module twin of :func:`global_avg_pool`: (B, C, *spatial) → (B, C)."""

    def forward(self, x: Tensor) -> Tensor:
        return global_avg_pool(x)


def plain_conv_block(nd: int, in_channels: int, out_channels: int, kernel_size: int = 3) -> nn.Sequential:
    """The same layers as ``ConvBlock{nd}d`` as a bare ``nn.Sequential``: the torch baseline of
    ``benchmarks/conv_nd.py``."""
    nd = _check_nd(nd)
    return nn.Sequential(_CONV[nd](in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
                         _NORM[nd](out_channels), nn.ReLU())


__all__ = ["CONV_BLOCKS", "ConvBlock1d", "ConvBlock2d", "ConvBlock3d", "GlobalAvgPool", "conv_block",
           "cross_correlate", "global_avg_pool", "plain_conv_block", "pool", "upsample"]

