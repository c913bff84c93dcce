"""Plain data passed between the face steps: a detection and a finished (encoded) face."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Detection", "FaceResult", "LANDMARK_FORMATS"]

#: Landmark conventions, each five (x, y) points in image pixels:
#: ``"retinaface"``: image-left eye centre, image-right eye centre, nose tip, image-left and
#: image-right mouth corner. ``"dlib5"``: dlib's 5-point shape predictor order: image-right eye
#: outer and inner corner, image-left eye outer and inner corner, base of the nose.
LANDMARK_FORMATS = ("retinaface", "dlib5", "none")  # "none": no landmarks (a whole-image encoder's face)


@dataclass(frozen=True, eq=False)
class Detection:
    """One face found by a detector.

    Attributes:
        box: ``(x1, y1, x2, y2)`` in image pixels.
        score: detector confidence (RetinaFace: probability in [0, 1]; HOG: SVM margin).
        landmarks: shape (5, 2) float32, image pixels, in the convention named by ``landmark_format``.
        landmark_format: one of :data:`LANDMARK_FORMATS`.
    """

    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray
    landmark_format: str = "retinaface"

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    @property
    def area(self) -> float:
        return max(self.width, 0.0) * max(self.height, 0.0)

    @property
    def center(self) -> tuple[float, float]:
        return (self.box[0] + self.box[2]) / 2.0, (self.box[1] + self.box[3]) / 2.0


@dataclass(frozen=True, eq=False)
class FaceResult:
    """A detected, aligned and encoded face.

    Attributes:
        box: ``(x1, y1, x2, y2)`` in image pixels.
        score: detector confidence.
        landmarks: shape (5, 2) float32 (eyes, nose, mouth corners for RetinaFace; see
            :data:`LANDMARK_FORMATS`).
        embedding: shape (D,) float32; compare two with the Euclidean distance.
    """

    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray
    embedding: np.ndarray
