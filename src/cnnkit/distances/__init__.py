"""Pairwise distances (smaller is closer): functions and module twins."""
from cnnkit.distances.functional import pairwise_distance, pairwise_l2, pairwise_squared_l2, row_distance
from cnnkit.distances.modules import L2Distance

__all__ = ["L2Distance", "pairwise_distance", "pairwise_l2", "pairwise_squared_l2", "row_distance"]
