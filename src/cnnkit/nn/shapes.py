"""Shape arithmetic for convolutions and pooling in 1D, 2D and 3D, and a model summary table.

Along each axis a conv or pool with kernel ``f``, stride ``s``, padding ``p`` and dilation ``d`` maps
``n`` samples to::

    n_out = floor((n + 2p - d(f - 1) - 1) / s) + 1

(``ceil`` instead of ``floor`` for pools in ``ceil_mode``, dropping a last window that would start in
the right padding, as torch does). A transposed conv inverts it:
``(n - 1)s - 2p + d(f - 1) + output_padding + 1``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from cnnkit.core.errors import ShapeError

IntOrTuple = int | Sequence[int]

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_CONV_TS = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_POOLS = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)
_ADAPTIVE = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
             nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)
_SAME_SHAPE = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.ReLU, nn.LeakyReLU, nn.GELU, nn.SiLU,
               nn.ELU, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.Identity, nn.Sigmoid,
               nn.Tanh, nn.GroupNorm, nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)


def conv_output_size(n: int, kernel_size: int, *, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """Output length of a conv along one axis: floor((n + 2p - d(f - 1) - 1) / s) + 1.

    Raises:
        ShapeError: the (padded) input is shorter than the dilated kernel.
    """
    span = dilation * (kernel_size - 1) + 1
    if n + 2 * padding < span:
        raise ShapeError(f"input of size {n} (+2*{padding} padding) is smaller than the dilated kernel ({span})")
    return (n + 2 * padding - span) // stride + 1


def pool_output_size(n: int, kernel_size: int, *, stride: int | None = None, padding: int = 0,
                     dilation: int = 1, ceil_mode: bool = False) -> int:
    """Output length of a max/avg pool along one axis (stride defaults to the kernel size)."""
    stride = kernel_size if stride is None else stride
    if not ceil_mode:
        return conv_output_size(n, kernel_size, stride=stride, padding=padding, dilation=dilation)
    span = dilation * (kernel_size - 1) + 1
    if n + 2 * padding < span:
        raise ShapeError(f"input of size {n} (+2*{padding} padding) is smaller than the pooling window ({span})")
    out = -(-(n + 2 * padding - span) // stride) + 1
    if (out - 1) * stride >= n + padding:   # the last window would start in the right padding
        out -= 1
    return out


def conv_transpose_output_size(n: int, kernel_size: int, *, stride: int = 1, padding: int = 0,
                               dilation: int = 1, output_padding: int = 0) -> int:
    """Output length of a transposed conv along one axis."""
    return (n - 1) * stride - 2 * padding + dilation * (kernel_size - 1) + output_padding + 1


def _per_axis(value: IntOrTuple, nd: int, what: str) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,) * nd
    value = tuple(int(v) for v in value)
    if len(value) != nd:
        raise ShapeError(f"{what} {value} does not have {nd} entries")
    return value


def conv_output_shape(spatial: Sequence[int], kernel_size: IntOrTuple, *, stride: IntOrTuple = 1,
                      padding: IntOrTuple = 0, dilation: IntOrTuple = 1) -> tuple[int, ...]:
    """:func:`conv_output_size` along each axis of ``spatial`` (L), (H, W) or (D, H, W)."""
    nd = len(spatial)
    ks, ss, ps, ds = (_per_axis(v, nd, w) for v, w in
                      ((kernel_size, "kernel_size"), (stride, "stride"), (padding, "padding"), (dilation, "dilation")))
    return tuple(conv_output_size(n, k, stride=s, padding=p, dilation=d)
                 for n, k, s, p, d in zip(spatial, ks, ss, ps, ds))


def pool_output_shape(spatial: Sequence[int], kernel_size: IntOrTuple, *, stride: IntOrTuple | None = None,
                      padding: IntOrTuple = 0, dilation: IntOrTuple = 1, ceil_mode: bool = False) -> tuple[int, ...]:
    """:func:`pool_output_size` along each axis of ``spatial``."""
    nd = len(spatial)
    ks = _per_axis(kernel_size, nd, "kernel_size")
    ss = ks if stride is None else _per_axis(stride, nd, "stride")
    ps, ds = _per_axis(padding, nd, "padding"), _per_axis(dilation, nd, "dilation")
    return tuple(pool_output_size(n, k, stride=s, padding=p, dilation=d, ceil_mode=ceil_mode)
                 for n, k, s, p, d in zip(spatial, ks, ss, ps, ds))


def layer_output_shape(layer: nn.Module, input_shape: Sequence[int]) -> tuple[int, ...] | None:
    """Output shape of one layer for an input of ``input_shape`` (B, C, *spatial), by arithmetic
    (no forward pass). ``None`` for layer types it does not know."""
    shape = tuple(int(s) for s in input_shape)
    batch, spatial = shape[0], shape[2:]
    if isinstance(layer, _CONVS):
        nd = len(spatial)
        if layer.padding == "same":
            return (batch, layer.out_channels, *spatial)
        padding = (0,) * nd if layer.padding == "valid" else layer.padding
        return (batch, layer.out_channels, *conv_output_shape(
            spatial, layer.kernel_size, stride=layer.stride, padding=padding, dilation=layer.dilation))
    if isinstance(layer, _CONV_TS):
        return (batch, layer.out_channels, *(
            conv_transpose_output_size(n, k, stride=s, padding=p, dilation=d, output_padding=o)
            for n, k, s, p, d, o in zip(spatial, layer.kernel_size, layer.stride, layer.padding,
                                        layer.dilation, layer.output_padding)))
    if isinstance(layer, _POOLS):
        dilation = getattr(layer, "dilation", 1)
        return (shape[0], shape[1], *pool_output_shape(
            spatial, layer.kernel_size, stride=layer.stride, padding=layer.padding, dilation=dilation,
            ceil_mode=layer.ceil_mode))
    if isinstance(layer, _ADAPTIVE):
        return (shape[0], shape[1], *_per_axis(layer.output_size, len(spatial), "output_size"))
    if isinstance(layer, nn.Linear):
        return (*shape[:-1], layer.out_features)
    if isinstance(layer, nn.Flatten):
        end = layer.end_dim % len(shape)
        return (*shape[: layer.start_dim], math.prod(shape[layer.start_dim: end + 1]), *shape[end + 1:])
    if isinstance(layer, _SAME_SHAPE):
        return shape
    return None


def layer_mult_adds(layer: nn.Module, input_shape: Sequence[int], output_shape: Sequence[int]) -> int:
    """Multiply-adds of one forward pass of a conv, transposed conv or linear layer; 0 for others
    (norms, activations and pools cost one operation per element at most)."""
    if isinstance(layer, _CONVS):
        return math.prod(output_shape) * (layer.in_channels // layer.groups) * math.prod(layer.kernel_size)
    if isinstance(layer, _CONV_TS):
        return math.prod(input_shape) * (layer.out_channels // layer.groups) * math.prod(layer.kernel_size)
    if isinstance(layer, nn.Linear):
        return math.prod(output_shape) * layer.in_features
    return 0


@dataclass(frozen=True)
class SummaryRow:
    """One leaf layer of a model summary. Shapes include the batch dimension."""

    name: str
    kind: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    params: int
    mult_adds: int


def model_summary(model: nn.Module, input_shape: Sequence[int], *, dtype: torch.dtype = torch.float32) -> list[SummaryRow]:
    """Every leaf layer, in call order, with its output shape, parameter count and multiply-adds for
    an input of ``input_shape`` (B, C, *spatial).

    Runs one forward pass on zeros in eval mode under ``no_grad`` (the mode is restored) and records
    shapes with forward hooks that are removed afterwards.
    """
    rows: list[SummaryRow] = []
    handles = []

    def hook(name: str):
        def record(layer: nn.Module, inputs: tuple, output: object) -> None:
            if not inputs or not isinstance(inputs[0], torch.Tensor) or not isinstance(output, torch.Tensor):
                return
            in_shape, out_shape = tuple(inputs[0].shape), tuple(output.shape)
            rows.append(SummaryRow(name, type(layer).__name__, in_shape, out_shape,
                                   sum(p.numel() for p in layer.parameters(recurse=False)),
                                   layer_mult_adds(layer, in_shape, out_shape)))
        return record

    for name, layer in model.named_modules():
        if name and not any(True for _ in layer.children()):
            handles.append(layer.register_forward_hook(hook(name)))
    was_training = model.training
    try:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        model.eval()
        with torch.no_grad():
            model(torch.zeros(tuple(input_shape), dtype=dtype, device=device))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return rows


def format_summary(rows: Sequence[SummaryRow]) -> str:
    """A model summary as an aligned text table with a total line."""
    header = ("layer", "type", "output shape", "params", "mult-adds")
    body = [(r.name, r.kind, "x".join(map(str, r.output_shape)), f"{r.params:,}", f"{r.mult_adds:,}") for r in rows]
    body.append(("total", "", "", f"{sum(r.params for r in rows):,}", f"{sum(r.mult_adds for r in rows):,}"))
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip(), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(b, widths)).rstrip() for b in body]
    return "\n".join(lines)


__all__ = ["SummaryRow", "conv_output_shape", "conv_output_size", "conv_transpose_output_size", "format_summary",
           "layer_mult_adds", "layer_output_shape", "model_summary", "pool_output_shape", "pool_output_size"]
