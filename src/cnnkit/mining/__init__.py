"""Triplet and pair miners: index tuples chosen under ``no_grad`` from the batch distance matrix."""
from cnnkit.mining.functional import (
    MINERS,
    all_pairs,
    batch_all,
    batch_hard,
    mine_triplets,
    random_triplets,
    semi_hard,
)
from cnnkit.mining.indices import PairIndices, TripletIndices
from cnnkit.mining.miners import TripletMiner

__all__ = [
    "MINERS", "PairIndices", "TripletIndices", "TripletMiner", "all_pairs", "batch_all", "batch_hard",
    "mine_triplets", "random_triplets", "semi_hard",
]
