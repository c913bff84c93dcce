"""Module twins of :mod:`cnnkit.distances.functional`, to pass a distance into a miner or a loss."""
from __future__ import annotations

from torch import Tensor, nn

from cnnkit.distances.functional import pairwise_distance, row_distance


class L2Distance(nn.Module):
    """Euclidean distance, squared by default. ``forward(x (N, D), y (M, D) | None) -> (N, M)``."""

    def __init__(self, *, squared: bool = True) -> None:
        super().__init__()
        self.squared = squared

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return pairwise_distance(x, y, squared=self.squared)

    def rows(self, x: Tensor, y: Tensor) -> Tensor:
        """Distance between matching rows, (T, D), (T, D) -> (T,)."""
        return row_distance(x, y, squared=self.squared)

    def extra_repr(self) -> str:
        return f"squared={self.squared}"
