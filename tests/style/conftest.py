"""A stand-in for VGG19 in the style tests: two small convs with VGG-style layer names."""
from __future__ import annotations

from typing import Sequence

import pytest
import torch
from torch import Tensor, nn


class TinyEncoder(nn.Module):
    """conv1_1 (3->4) -> relu1_1 -> pool1 -> conv2_1 (4->6) -> relu2_1, with ``forward_layers``."""

    layer_names = ("conv1_1", "relu1_1", "pool1", "conv2_1", "relu2_1")

    def __init__(self, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.conv1_1 = nn.Conv2d(3, 4, 3, padding=1).to(dtype)
        self.conv2_1 = nn.Conv2d(4, 6, 3, padding=1).to(dtype)
        with torch.no_grad():
            for conv in (self.conv1_1, self.conv2_1):
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen, dtype=dtype) * 0.5)
                conv.bias.copy_(torch.randn(conv.bias.shape, generator=gen, dtype=dtype) * 0.1)
        self.requires_grad_(False)

    def forward_layers(self, img: Tensor, layers: Sequence[str]) -> dict[str, Tensor]:
        out: dict[str, Tensor] = {}
        x = img
        steps = (("conv1_1", self.conv1_1), ("relu1_1", torch.relu), ("pool1", lambda t: nn.functional.max_pool2d(t, 2)),
                 ("conv2_1", self.conv2_1), ("relu2_1", torch.relu))
        deepest = max(self.layer_names.index(n) for n in layers)
        for name, fn in steps[: deepest + 1]:
            x = fn(x)
            out[name] = x
        return {n: out[n] for n in layers}


@pytest.fixture
def tiny_encoder() -> TinyEncoder:
    return TinyEncoder()


