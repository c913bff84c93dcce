"""Leaf layer: errors, shape checks, paths and downloads. Imports no other cnnkit module."""
from cnnkit.core.errors import (
    CnnkitError,
    EncoderMismatchError,
    InvalidImageError,
    MultipleFacesError,
    NoFaceFoundError,
    ShapeError,
    StoreError,
    UnknownNameError,
    WeightsError,
)

__all__ = [
    "CnnkitError",
    "EncoderMismatchError",
    "InvalidImageError",
    "MultipleFacesError",
    "NoFaceFoundError",
    "ShapeError",
    "StoreError",
    "UnknownNameError",
    "WeightsError",
]
