"""Alignment: a similarity transform from five landmarks to the canonical crop an encoder expects.

The dlib ResNet encoder was trained on dlib's face chips: 150x150 pixels, padding 0.25, made by
``dlib.get_face_chip`` from its 5-point shape predictor. :data:`DLIB5_TEMPLATE` is dlib's own
template for those five points (``get_face_chip_details`` in dlib/image_transforms/interpolation.h).
RetinaFace gives different points (eye centres, nose tip, mouth corners);
:data:`RETINAFACE_TEMPLATE` places them in the same unit square, fitted on LFW as the mean position
of RetinaFace's points in dlib's own chips (the generator is ``tests/assets/fit_retinaface_template.py``).

The pixels are resampled by ``dlib.extract_image_chip`` (bilinear, with dlib's image pyramid when
shrinking), so a chip made from the same transform is the chip dlib would make.

:func:`sp5_box` places a dlib-HOG-style box from any detector's landmarks, so that dlib's own 5-point
shape predictor (trained on HOG boxes) can give dlib's points for RetinaFace's faces: the
pipeline's default alignment, the most accurate on LFW (see ``benchmarks/lfw_view1.py``).
"""
from __future__ import annotations

import numpy as np

from cnnkit.core.checks import check_shape
from cnnkit.core.errors import ShapeError, UnknownNameError
from cnnkit.faces.detect import as_rgb_uint8

__all__ = [
    "DLIB5_TEMPLATE",
    "RETINAFACE_TEMPLATE",
    "TEMPLATES",
    "similarity_transform",
    "apply_transform",
    "chip_points",
    "sp5_box",
    "HOG_BOX_TEMPLATE",
    "align_face",
    "FaceAligner",
]

#: dlib's 5-point template on the unit square (dlib5 landmark order, see ``faces.types``).
DLIB5_TEMPLATE = np.array(
    [
        [0.8595674595992, 0.2134981538014],
        [0.6460604764104, 0.2289674387677],
        [0.1205750620789, 0.2137274526848],
        [0.3340850613712, 0.2290642403242],
        [0.4901123135679, 0.6277975316475],
    ]
)

#: RetinaFace's five points (retinaface order) in the same unit square as DLIB5_TEMPLATE: the median
#: over 471 LFW pairsDevTrain images of RetinaFace's landmarks mapped into dlib's chip frame.
RETINAFACE_TEMPLATE = np.array(
    [
        [0.2255, 0.2100],
        [0.7709, 0.2158],
        [0.4918, 0.5363],
        [0.2658, 0.7858],
        [0.7187, 0.7893],
    ]
)

#: landmark format -> template in the unit square
TEMPLATES = {"dlib5": DLIB5_TEMPLATE, "retinaface": RETINAFACE_TEMPLATE}

#: Where dlib's HOG detector puts its box, in the same unit square: (centre x, centre y, side).
#: Fitted with the template (mean over LFW pairsDevTrain); used to run dlib's shape predictor,
#: which was trained on HOG boxes, from another detector's landmarks.
HOG_BOX_TEMPLATE = (0.4401, 0.469, 1.363)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transform (rotation, uniform scale, translation) mapping src to dst.

    Umeyama's closed form without reflection.

    Args:
        src: points, shape (N, 2), N >= 2.
        dst: points, shape (N, 2).

    Returns:
        matrix ``M`` of shape (2, 3) with ``dst ~= src @ M[:, :2].T + M[:, 2]``.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    n = check_shape(src, "N 2", name="src")["N"]
    check_shape(dst, f"{n} 2", name="dst")
    if n < 2:
        raise ShapeError(f"a similarity transform needs at least 2 points, got {n}")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s_c, d_c = src - mu_s, dst - mu_d
    var_s = (s_c**2).sum() / n
    if var_s <= 0:
        raise ShapeError("src points coincide; no transform is defined")
    cov = d_c.T @ s_c / n
    u, sing, vt = np.linalg.svd(cov)
    fix = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        fix[1, 1] = -1.0
    rot = u @ fix @ vt
    scale = float((sing * np.diag(fix)).sum() / var_s)
    m = np.empty((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - m[:, :2] @ mu_s
    return m


def apply_transform(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) affine matrix to points of shape (N, 2)."""
    check_shape(m, "2 3", name="m")
    check_shape(points, "N 2", name="points")
    return np.asarray(points, dtype=np.float64) @ np.asarray(m)[:, :2].T + np.asarray(m)[:, 2]


def chip_points(template: np.ndarray, *, size: int = 150, padding: float = 0.25) -> np.ndarray:
    """Template points in chip pixels, as dlib places them: ``(padding + t) / (1 + 2 padding) * size``."""
    return (padding + np.asarray(template, dtype=np.float64)) / (2 * padding + 1) * size


def sp5_box(landmarks: np.ndarray, landmark_format: str = "retinaface") -> tuple[float, float, float, float]:
    """A dlib-HOG-style square box (x1, y1, x2, y2) for the face with these (5, 2) landmarks."""
    check_shape(landmarks, "5 2", name="landmarks")
    m = similarity_transform(TEMPLATES[landmark_format], np.asarray(landmarks, dtype=np.float64))
    cx, cy, side = HOG_BOX_TEMPLATE
    centre = apply_transform(m, np.array([[cx, cy]]))[0]
    half = side * float(np.hypot(m[0, 0], m[1, 0])) / 2.0
    return centre[0] - half, centre[1] - half, centre[0] + half, centre[1] + half


def align_face(
    image: np.ndarray,
    landmarks: np.ndarray,
    *,
    landmark_format: str = "retinaface",
    size: int = 150,
    padding: float = 0.25,
    template: np.ndarray | None = None,
) -> np.ndarray:
    """Cut out the face given by ``landmarks``, rotated and scaled onto the template.

    Args:
        image: uint8, shape (H, W, 3) RGB or (H, W) grey.
        landmarks: shape (5, 2) in image pixels, in the convention ``landmark_format`` (or (N, 2) matching
            ``template``).
        landmark_format: landmark convention, a key of :data:`TEMPLATES` (ignored when ``template`` is given).
        size: side of the square chip in pixels.
        padding: border around the template, as a fraction of its size (dlib's 0.25 by default).
        template: unit-square template of shape (N, 2) overriding ``landmark_format``.

    Returns:
        the chip, uint8, shape (size, size, 3).
    """
    rgb = as_rgb_uint8(image)
    lm = np.asarray(landmarks, dtype=np.float64)
    if template is None:
        if landmark_format not in TEMPLATES:
            raise UnknownNameError(f"unknown landmark_format {landmark_format!r}; known: {', '.join(TEMPLATES)}")
        template = TEMPLATES[landmark_format]
    n = check_shape(template, "N 2", name="template")["N"]
    check_shape(lm, f"{n} 2", name="landmarks")
    dst = chip_points(template, size=size, padding=padding)
    m = similarity_transform(dst, lm)  # chip pixels -> image pixels
    return _extract_chip(rgb, m, size)


def _extract_chip(rgb: np.ndarray, m: np.ndarray, size: int) -> np.ndarray:
    """Resample the chip whose pixel (u, v) comes from image point ``M @ (u, v, 1)``, with dlib."""
    import dlib

    corners = np.array([[0.0, 0.0], [size - 1.0, 0.0], [0.0, size - 1.0], [size - 1.0, size - 1.0]])
    img_pts = apply_transform(m, corners)
    chip = dlib.chip_details(
        dlib.dpoints([dlib.dpoint(float(x), float(y)) for x, y in corners]),
        dlib.dpoints([dlib.dpoint(float(x), float(y)) for x, y in img_pts]),
        dlib.chip_dims(size, size),
    )
    return np.asarray(dlib.extract_image_chip(rgb, chip), dtype=np.uint8)


class FaceAligner:
    """Module twin of :func:`align_face` holding the chip settings."""

    def __init__(self, *, size: int = 150, padding: float = 0.25) -> None:
        self.size, self.padding = size, padding

    def __call__(self, image: np.ndarray, landmarks: np.ndarray, *, landmark_format: str = "retinaface") -> np.ndarray:
        return align_face(image, landmarks, landmark_format=landmark_format, size=self.size, padding=self.padding)

    def __repr__(self) -> str:
        return f"FaceAligner(size={self.size}, padding={self.padding})"
