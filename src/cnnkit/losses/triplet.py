"""Module twin of :func:`triplet_margin_loss`."""
from __future__ import annotations

from torch import Tensor, nn

from cnnkit.losses.functional import Reduction, triplet_margin_loss


class TripletMarginLoss(nn.Module):
    """``forward(anchor (T, D), positive (T, D), negative (T, D))``; see :func:`triplet_margin_loss`,
    whose docstring explains why the cost has no minus sign."""

    def __init__(self, *, margin: float = 0.2, squared: bool = True, reduction: Reduction = "sum") -> None:
        super().__init__()
        self.margin, self.squared, self.reduction = margin, squared, reduction

    def forward(self, anchor: Tensor, positive: Tensor, negative: Tensor) -> Tensor:
        return triplet_margin_loss(anchor, positive, negative, margin=self.margin, squared=self.squared,
                                   reduction=self.reduction)

    def extra_repr(self) -> str:
        return f"margin={self.margin}, squared={self.squared}, reduction={self.reduction!r}"
