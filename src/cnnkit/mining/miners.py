"""Module twins of the miners: they hold the distance and the options, and call the functions."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from cnnkit.distances.modules import L2Distance
from cnnkit.mining.functional import mine_triplets
from cnnkit.mining.indices import TripletIndices


class TripletMiner(nn.Module):
    """``forward(emb (B, D), labels (B,)) -> TripletIndices`` with the named strategy.

    Args:
        strategy: ``"all"``, ``"hard"``, ``"semihard"`` or ``"random"``.
        margin: used by ``"all"`` (active triplets only) and ``"semihard"``.
        distance: the distance to mine with; default squared Euclidean.
        seed: seeds the generator of ``"random"``.
    """

    def __init__(self, strategy: str = "semihard", *, margin: float = 0.2,
                 distance: L2Distance | None = None, seed: int = 0) -> None:
        super().__init__()
        self.strategy, self.margin = strategy, margin
        self.distance = distance if distance is not None else L2Distance()
        self.generator = torch.Generator().manual_seed(seed)

    @torch.no_grad()
    def forward(self, emb: Tensor, labels: Tensor) -> TripletIndices:
        dist = self.distance(emb.detach())
        gen = self.generator if emb.device.type == "cpu" else None
        return mine_triplets(self.strategy, dist, labels, margin=self.margin, generator=gen)

    def extra_repr(self) -> str:
        return f"strategy={self.strategy!r}, margin={self.margin}"
