"""Triplet and contrastive losses: functions and module twins."""
from cnnkit.losses.contrastive import ContrastiveLoss
from cnnkit.losses.functional import (
    REDUCTIONS,
    contrastive_loss,
    reduce_loss,
    triplet_loss_from_distances,
    triplet_loss_from_indices,
    triplet_margin_loss,
)
from cnnkit.losses.triplet import TripletMarginLoss

__all__ = [
    "REDUCTIONS", "ContrastiveLoss", "TripletMarginLoss", "contrastive_loss", "reduce_loss",
    "triplet_loss_from_distances", "triplet_loss_from_indices", "triplet_margin_loss",
]
