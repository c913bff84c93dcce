"""Module twin of :func:`contrastive_loss`."""
from __future__ import annotations

from torch import Tensor, nn

from cnnkit.losses.functional import Reduction, contrastive_loss


class ContrastiveLoss(nn.Module):
    """``forward(x1 (T, D), x2 (T, D), same (T,))``; see :func:`contrastive_loss`."""

    def __init__(self, *, margin: float = 1.0, reduction: Reduction = "mean") -> None:
        super().__init__()
        self.margin, self.reduction = margin, reduction

    def forward(self, x1: Tensor, x2: Tensor, same: Tensor) -> Tensor:
        return contrastive_loss(x1, x2, same, margin=self.margin, reduction=self.reduction)

    def extra_repr(self) -> str:
        return f"margin={self.margin}, reduction={self.reduction!r}"
