"""A small classifier and a small U-Net for 1D, 2D and 3D inputs, each built by one private factory
(STYLE rule 3) and registered by name, so a saved config (name + keyword arguments) rebuilds it.

Shapes: input (B, C_in, *spatial) with 1, 2 or 3 spatial axes; classifier → logits (B, K);
U-Net → per-position logits (B, K, *spatial).
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor, nn

from cnnkit.core.checks import check_shape
from cnnkit.core.errors import ShapeError
from cnnkit.core.registry import Registry
from cnnkit.nn.blocks import GlobalAvgPool, conv_block, pool, upsample

MODELS: Registry[type[nn.Module]] = Registry("model")
_ADAPTIVE = {1: nn.AdaptiveAvgPool1d, 2: nn.AdaptiveAvgPool2d, 3: nn.AdaptiveAvgPool3d}
_HEAD = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_SPEC = {1: "B C L", 2: "B C H W", 3: "B C D H W"}


def register_model(cls: type[nn.Module]) -> type[nn.Module]:
    """Class decorator: make ``cls`` buildable by :func:`create_model` under its lower-case name."""
    return MODELS.add(cls.__name__.lower(), cls)


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered model by name (``classifier1d``, ``unet3d``...)."""
    return MODELS.build(name, **kwargs)


def list_models() -> list[str]:
    """Names accepted by :func:`create_model`."""
    return MODELS.names()


def _stage(nd: int, in_ch: int, out_ch: int, kernel_size: int, n_blocks: int, residual: bool) -> nn.Sequential:
    return nn.Sequential(*(conv_block(nd, in_ch if i == 0 else out_ch, out_ch, kernel_size, residual=residual)
                           for i in range(n_blocks)))


def _as_tuple(value: int | Sequence[int], n: int, what: str) -> tuple[int, ...]:
    values = (value,) * n if isinstance(value, int) else tuple(int(v) for v in value)
    if len(values) != n:
        raise ValueError(f"{what} must have {n} entries (one per stage), got {values}")
    return values


class _Classifier(nn.Module):
    """Stages of conv blocks with a pool between stages, then global average pooling (to
    ``head_size`` per axis), dropout and a linear layer.

    Keyword args:
        in_channels, num_classes: input channels and number of classes.
        widths: channels of each stage. kernel_sizes: one odd size, or one per stage.
        blocks_per_stage: conv blocks in each stage. downsample: pool ("max"/"avg") between stages,
            or "none" to keep the full length (the FCN of Wang et al. for time series).
        residual: residual shortcuts in the blocks. dropout: before the linear layer.
        head_size: adaptive average pool output size per axis before the linear layer.
    """

    nd = 0

    def __init__(self, *, in_channels: int, num_classes: int, widths: Sequence[int] = (32, 64, 128),
                 kernel_sizes: int | Sequence[int] = 3, blocks_per_stage: int = 1, downsample: str = "max",
                 residual: bool = False, dropout: float = 0.0, head_size: int = 1) -> None:
        super().__init__()
        nd, widths = self.nd, tuple(widths)
        kernels = _as_tuple(kernel_sizes, len(widths), "kernel_sizes")
        layers: list[nn.Module] = []
        ch = in_channels
        for i, (w, k) in enumerate(zip(widths, kernels)):
            if i > 0 and downsample != "none":
                layers.append(pool(nd, downsample, 2))  # type: ignore[arg-type]
            layers.append(_stage(nd, ch, w, k, blocks_per_stage, residual))
            ch = w
        self.features = nn.Sequential(*layers)
        self.pool = GlobalAvgPool() if head_size == 1 else _ADAPTIVE[nd](head_size)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(ch * head_size ** nd, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        check_shape(x, _SPEC[self.nd], name="classifier input")
        return self.head(self.pool(self.features(x)))


class _UNet(nn.Module):
    """Encoder of stages (two conv blocks each) with a pool between, decoder of learned upsampling,
    skip concatenation and two conv blocks, then a 1x1 conv to ``num_classes`` logits per position.
    Each spatial size must be divisible by 2 ** (len(widths) - 1).
    """

    nd = 0

    def __init__(self, *, in_channels: int, num_classes: int, widths: Sequence[int] = (16, 32, 64),
                 kernel_size: int = 3) -> None:
        super().__init__()
        nd, widths = self.nd, tuple(widths)
        self.depth = len(widths)
        self.down = nn.ModuleList()
        ch = in_channels
        for w in widths:
            self.down.append(_stage(nd, ch, w, kernel_size, 2, False))
            ch = w
        self.pool = pool(nd, "max", 2)
        self.up = nn.ModuleList(upsample(nd, widths[i + 1], widths[i]) for i in reversed(range(self.depth - 1)))
        self.dec = nn.ModuleList(_stage(nd, 2 * widths[i], widths[i], kernel_size, 2, False)
                                 for i in reversed(range(self.depth - 1)))
        self.head = _HEAD[nd](widths[0], num_classes, 1)

    def forward(self, x: Tensor) -> Tensor:
        check_shape(x, _SPEC[self.nd], name="U-Net input")
        step = 2 ** (self.depth - 1)
        if any(n % step for n in x.shape[2:]):
            raise ShapeError(f"U-Net input spatial size {tuple(x.shape[2:])} must be divisible by {step}")
        skips = []
        for i, stage in enumerate(self.down):
            x = stage(x if i == 0 else self.pool(x))
            skips.append(x)
        for up, dec, skip in zip(self.up, self.dec, reversed(skips[:-1])):
            x = dec(torch.cat([up(x), skip], dim=1))
        return self.head(x)


@register_model
class Classifier1d(_Classifier):
    """Classifier for signals: (B, C, L) → (B, K)."""

    nd = 1


@register_model
class Classifier2d(_Classifier):
    """Classifier for images: (B, C, H, W) → (B, K)."""

    nd = 2


@register_model
class Classifier3d(_Classifier):
    """Classifier for volumes: (B, C, D, H, W) → (B, K)."""

    nd = 3


@register_model
class UNet1d(_UNet):
    """Segmenter for signals: (B, C, L) → (B, K, L)."""

    nd = 1


@register_model
class UNet2d(_UNet):
    """Segmenter for images: (B, C, H, W) → (B, K, H, W)."""

    nd = 2


@register_model
class UNet3d(_UNet):
    """Segmenter for volumes: (B, C, D, H, W) → (B, K, D, H, W)."""

    nd = 3


__all__ = ["Classifier1d", "Classifier2d", "Classifier3d", "UNet1d", "UNet2d", "UNet3d", "create_model",
           "list_models", "register_model"]
