"""Registered encoders: image batch (B, C, H, W) -> L2-normalised embeddings (B, D).

- ``small_cnn``: a small VGG-like CNN for grey faces of about 100 px (ORL, Yale), input 112 x 92.
- ``resnet18_face``: a ResNet-18-style encoder for aligned RGB faces, input 112 x 112.

Both end in global average pooling and :class:`EmbeddingHead`, so any input size works; the
``input_size`` attribute is the size they are meant for (what preprocessing resizes to).
"""
from __future__ import annotations

from typing import Sequence

from torch import Tensor, nn

from cnnkit.core.checks import check_shape
from cnnkit.nn.heads import EmbeddingHead
from cnnkit.nn.registry import register_encoder


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(min(8, channels), channels)
    raise ValueError(f"norm must be 'batch' or 'group', got {kind!r}")


class _Encoder(nn.Module):
    """Body (B, C, H, W) -> (B, F, h, w), average pool to a ``grid`` (1 x 1: global; larger keeps
    where on the face a feature was, which suits aligned faces), dropout, embedding head -> (B, D)."""

    def __init__(self, body: nn.Module, features: int, *, embedding_dim: int, in_channels: int,
                 input_size: tuple[int, int], norm: str, grid: Sequence[int] = (1, 1), dropout: float = 0.0) -> None:
        super().__init__()
        self.body = body
        self.pool = nn.AdaptiveAvgPool2d(tuple(grid))
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.head = EmbeddingHead(features * int(grid[0]) * int(grid[1]), embedding_dim, batch_norm=norm == "batch")
        self.embedding_dim, self.in_channels, self.input_size = embedding_dim, in_channels, tuple(input_size)

    def forward(self, img: Tensor) -> Tensor:
        check_shape(img, f"B {self.in_channels} H W", name="img")
        return self.head(self.dropout(self.pool(self.body(img)).flatten(1)))


def _conv(in_ch: int, out_ch: int, norm: str, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(in_ch, out_ch, 3, stride, padding=1, bias=False), _norm(norm, out_ch), nn.ReLU(inplace=True)]


@register_encoder
def small_cnn(*, embedding_dim: int = 128, in_channels: int = 1, widths: Sequence[int] = (32, 64, 128, 256),
              norm: str = "batch", dropout: float = 0.0, input_size: Sequence[int] = (112, 92),
              grid: Sequence[int] = (4, 3)) -> nn.Module:
    """Small CNN for ~100 px grey faces: a stride-2 first convolution, then per width a
    conv-norm-ReLU pair and 2x2 max pooling, then average pooling to a 4 x 3 grid (where on the
    face a feature is matters for aligned faces: on ORL the grid beat global pooling by about 5
    points of one-shot rank-1) and the embedding head (about 1.6 M parameters by default).

    (B, in_channels, H, W) -> (B, embedding_dim), unit rows.
    """
    layers: list[nn.Module] = []
    ch = in_channels
    for i, w in enumerate(widths):
        layers += _conv(ch, w, norm, stride=2 if i == 0 else 1) + _conv(w, w, norm)
        if i < len(widths) - 1:
            layers.append(nn.MaxPool2d(2))
        ch = w
    return _Encoder(nn.Sequential(*layers), ch, embedding_dim=embedding_dim, in_channels=in_channels,
                    input_size=tuple(input_size), norm=norm, grid=grid, dropout=dropout)  # type: ignore[arg-type]


class _BasicBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, stride: int, norm: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn1 = _norm(norm, out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.bn2 = _norm(norm, out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), _norm(norm, out_ch))

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


@register_encoder
def resnet18_face(*, embedding_dim: int = 128, in_channels: int = 3, widths: Sequence[int] = (64, 128, 256, 512),
                  blocks: Sequence[int] = (2, 2, 2, 2), norm: str = "batch",
                  input_size: Sequence[int] = (112, 112)) -> nn.Module:
    """ResNet-18-style encoder for aligned RGB faces of 112 px (3x3 stem, no max pooling, as
    face ResNets do at this size). (B, in_channels, H, W) -> (B, embedding_dim), unit rows."""
    stem = nn.Sequential(*_conv(in_channels, widths[0], norm, stride=2))
    stages: list[nn.Module] = []
    ch = widths[0]
    for i, (w, n) in enumerate(zip(widths, blocks)):
        for j in range(n):
            stages.append(_BasicBlock(ch, w, 2 if (j == 0 and i > 0) else 1, norm))
            ch = w
    return _Encoder(nn.Sequential(stem, *stages), ch, embedding_dim=embedding_dim, in_channels=in_channels,
                    input_size=tuple(input_size), norm=norm)  # type: ignore[arg-type]
