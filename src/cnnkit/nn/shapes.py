"""Output shapes of layers (by arithmetic, no forward pass) and a model summary table; the per-axis
formulas are :mod:`cnnkit.core.shapes`."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from cnnkit.core.shapes import (  # noqa: F401  (the arithmetic's one home; re-exported for nn users)
    IntOrTuple,
    per_axis,
    conv_output_shape,
    conv_output_size,
    conv_transpose_output_size,
    pool_output_shape,
    pool_output_size,
)
from cnnkit.core.table import format_rows

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_CONV_TS = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_POOLS = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)
_ADAPTIVE = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
             nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)
_SAME_SHAPE = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.ReLU, nn.LeakyReLU, nn.GELU, nn.SiLU,
               nn.ELU, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.Identity, nn.Sigmoid,
               nn.Tanh, nn.GroupNorm, nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)


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
        return (shape[0], shape[1], *per_axis(layer.output_size, len(spatial), "output_size"))
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


def summary_table(rows: Sequence[SummaryRow], *, total: bool = True) -> list[dict[str, object]]:
    """A model summary as table rows (layer, type, output_shape, params, mult_adds), with a last
    ``total`` row summing params and multiply-adds unless ``total=False``."""
    out: list[dict[str, object]] = [
        {"layer": r.name, "type": r.kind, "output_shape": "x".join(map(str, r.output_shape)),
         "params": r.params, "mult_adds": r.mult_adds} for r in rows]
    if total:
        out.append({"layer": "total", "params": sum(r.params for r in rows),
                    "mult_adds": sum(r.mult_adds for r in rows)})
    return out


def format_summary(rows: Sequence[SummaryRow]) -> str:
    """A model summary as an aligned text table with a total line (thousands separated)."""
    return format_rows([{k: f"{v:,}" if isinstance(v, int) else v for k, v in row.items()}
                        for row in summary_table(rows)])


__all__ = ["SummaryRow", "conv_output_shape", "conv_output_size", "conv_transpose_output_size", "format_summary",
           "layer_mult_adds", "layer_output_shape", "model_summary", "pool_output_shape", "pool_output_size",
           "summary_table"]
