"""Shared-weight Siamese use of one encoder."""
from __future__ import annotations

import torch
from torch import Tensor, nn


class SiameseNetwork(nn.Module):
    """One encoder applied to both inputs (the same weights by construction). Both halves go
    through as one batch, so they see the same normalisation statistics.

    ``forward(a (B, C, H, W), b (B, C, H, W)) -> (emb_a (B, D), emb_b (B, D))``.
    """

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
        emb = self.encoder(torch.cat([a, b], dim=0))
        return emb[: len(a)], emb[len(a):]
