"""Per-position costs keep the content/style balance across sizes; the quality measure of the stopping rule."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from cnnkit.style.loss import PerceptualLoss
from cnnkit.style.quality import content_kept

STARRY = Path(__file__).resolve().parents[2] / "data" / "style" / "starry_night.jpg"
LAYERS = {"content_layers": (("conv2_1", 1.0),), "style_layers": (("conv1_1", 1.0), ("conv2_1", 1.0))}


def _tensor(img: Image.Image, size: int) -> torch.Tensor:
    arr = np.asarray(img.convert("RGB").resize((size, size), Image.Resampling.LANCZOS), np.float32) / 255
    return torch.from_numpy(arr).permute(2, 0, 1)[None].contiguous()


class PointwiseEncoder(nn.Module):
    """1x1 convolutions with VGG-style names, no pooling: each position's features depend on its pixel only, so
    the per-position statistics of a photo are the same at every size and only the costs'
    normalisation can make the balance move (VGG's 3x3 features also change with resolution:
    measured with real VGG19 on coffee + Starry Night, the ratio at 1024 px was 0.91 of 256 px's)."""

    def __init__(self) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.conv1_1, self.conv2_1 = nn.Conv2d(3, 8, 1), nn.Conv2d(8, 8, 1)
        with torch.no_grad():
            for conv in (self.conv1_1, self.conv2_1):
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen))
                conv.bias.copy_(0.1 * torch.randn(conv.bias.shape, generator=gen))
        self.requires_grad_(False)

    def forward_layers(self, img: torch.Tensor, layers) -> dict[str, torch.Tensor]:
        a = torch.relu(self.conv1_1(img))
        b = torch.relu(self.conv2_1(a))
        return {n: {"conv1_1": a, "conv2_1": b}[n] for n in layers}


def test_same_weights_same_balance_at_256_and_1024():
    from skimage import data

    photo, style = Image.fromarray(data.astronaut()), Image.open(STARRY)
    encoder, ratios = PointwiseEncoder(), {}
    for size in (256, 1024):
        loss = PerceptualLoss(encoder, content_weight=1.0, style_weight=1.0, **LAYERS)
        c, s = _tensor(photo, size), _tensor(style, size)
        loss.set_targets(c, [s])
        costs = loss(0.5 * c + 0.5 * s)  # a half-stylised picture
        ratios[size] = float(costs.content) / float(costs.style)
    # summed over positions, the content cost would weigh 16 times more at 1024 px
    assert ratios[1024] == pytest.approx(ratios[256], rel=0.10)


def test_content_kept_is_one_for_the_photo_and_low_for_another():
    rng = np.random.default_rng(0)
    a = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    b = torch.from_numpy(rng.random((1, 3, 64, 64)).astype(np.float32))
    assert content_kept(a, a) == pytest.approx(1.0, abs=1e-6)
    assert content_kept(a, b) < 0.5
