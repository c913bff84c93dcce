"""Leaf layer: errors, shape checks, paths and downloads. Imports no other cnnkit module."""
from cnnkit.core.errors import (
    CnnkitError,
    EncoderMismatchError,
    ImageDecodeWarning,
    ImageTooLargeError,
    InvalidImageError,
    MultipleFacesError,
    NoFaceFoundError,
    ShapeError,
    StoreError,
    UnknownNameError,
    UnsupportedImageError,
    WeightsError,
    printable,
)

__all__ = [
    "CnnkitError",
    "EncoderMismatchError",
    "ImageDecodeWarning",
    "ImageTooLargeError",
    "InvalidImageError",
    "MultipleFacesError",
    "NoFaceFoundError",
    "ShapeError",
    "StoreError",
    "UnknownNameError",
    "UnsupportedImageError",
    "WeightsError",
    "printable",
]
