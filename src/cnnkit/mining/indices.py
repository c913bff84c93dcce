"""What miners return: index tuples into the batch, never copies of embeddings."""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor


class TripletIndices(NamedTuple):
    """Triplets (anchor[t], positive[t], negative[t]); each (T,) int64."""

    anchor: Tensor
    positive: Tensor
    negative: Tensor

    @classmethod
    def empty(cls, device: torch.device | str = "cpu") -> "TripletIndices":
        e = torch.empty(0, dtype=torch.long, device=device)
        return cls(e, e.clone(), e.clone())

    def __len__(self) -> int:  # type: ignore[override]
        return int(self.anchor.numel())


class PairIndices(NamedTuple):
    """Positive pairs (a1[i], p[i]) and negative pairs (a2[j], n[j]); each (·,) int64."""

    a1: Tensor
    p: Tensor
    a2: Tensor
    n: Tensor
