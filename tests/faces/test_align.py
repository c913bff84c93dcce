"""Alignment: Umeyama transform, dlib-identical chips, templates that round-trip."""
from __future__ import annotations

import dlib
import numpy as np
import pytest

from cnnkit.core.errors import ShapeError, UnknownNameError
from cnnkit.faces import align_face, similarity_transform
from cnnkit.faces.align import (
    DLIB5_TEMPLATE,
    RETINAFACE_TEMPLATE,
    FaceAligner,
    apply_transform,
    chip_points,
    sp5_box,
)


def _random_similarity(rng: np.random.Generator) -> np.ndarray:
    angle, scale = rng.uniform(-0.5, 0.5), rng.uniform(0.5, 3.0)
    c, s = np.cos(angle) * scale, np.sin(angle) * scale
    return np.array([[c, -s, rng.uniform(-50, 50)], [s, c, rng.uniform(-50, 50)]])


def test_similarity_recovers_exact_transform() -> None:
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 100, (5, 2))
    m = _random_similarity(rng)
    np.testing.assert_allclose(similarity_transform(src, apply_transform(m, src)), m, atol=1e-9)


def test_similarity_is_least_squares_and_has_no_reflection() -> None:
    rng = np.random.default_rng(2)
    src = rng.uniform(0, 100, (5, 2))
    dst = apply_transform(_random_similarity(rng), src) + rng.normal(0, 2, (5, 2))
    m = similarity_transform(src, dst)
    assert np.linalg.det(m[:, :2]) > 0 and abs(m[0, 0] - m[1, 1]) < 1e-9 and abs(m[0, 1] + m[1, 0]) < 1e-9
    err = ((apply_transform(m, src) - dst) ** 2).sum()
    for _ in range(20):  # no nearby similarity fits better
        p = m.copy()
        a, b = rng.normal(0, 1e-3, 2)
        p[:, :2] += np.array([[a, -b], [b, a]])
        p[:, 2] += rng.normal(0, 1e-2, 2)
        assert ((apply_transform(p, src) - dst) ** 2).sum() >= err - 1e-9


def test_similarity_shape_errors() -> None:
    with pytest.raises(ShapeError):
        similarity_transform(np.zeros((5, 3)), np.zeros((5, 3)))
    with pytest.raises(ShapeError):
        similarity_transform(np.zeros((5, 2)), np.zeros((4, 2)))
    with pytest.raises(ShapeError, match="coincide"):
        similarity_transform(np.ones((5, 2)), np.zeros((5, 2)))


def test_chip_equals_dlib_get_face_chip(astronaut: np.ndarray) -> None:
    """From the same 5 dlib points, align_face makes dlib's own chip (what the ResNet was trained on)."""
    predictor = dlib.shape_predictor(
        __import__("cnnkit.faces.detect", fromlist=["x"]).dlib_model_path("shape_predictor_5_face_landmarks.dat")
    )
    shape = predictor(astronaut, dlib.rectangle(175, 76, 265, 166))
    expected = np.asarray(dlib.get_face_chip(astronaut, shape, size=150, padding=0.25))
    points = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)
    chip = align_face(astronaut, points, landmark_format="dlib5")
    assert chip.shape == (150, 150, 3) and chip.dtype == np.uint8
    assert np.abs(chip.astype(int) - expected.astype(int)).max() <= 1


def test_template_round_trip(astronaut: np.ndarray) -> None:
    """Landmarks placed by a known similarity land back on the template's chip points."""
    rng = np.random.default_rng(3)
    for template, fmt in ((DLIB5_TEMPLATE, "dlib5"), (RETINAFACE_TEMPLATE, "retinaface")):
        target = chip_points(template, size=150, padding=0.25)
        m = _random_similarity(rng)
        m[:, 2] += 200
        landmarks = apply_transform(m, target)
        back = similarity_transform(landmarks, target)
        np.testing.assert_allclose(apply_transform(back, landmarks), target, atol=1e-9)
        assert align_face(astronaut, landmarks, landmark_format=fmt).shape == (150, 150, 3)


def test_retinaface_points_land_on_template(pipeline, astronaut: np.ndarray) -> None:
    """Detecting again inside the aligned chip finds the landmarks where the template puts them."""
    det = pipeline.detect(astronaut)[0]
    chip = align_face(astronaut, det.landmarks, landmark_format="retinaface")
    again = pipeline.detect(chip)[0]
    target = chip_points(RETINAFACE_TEMPLATE)
    assert np.abs(again.landmarks - target).mean() < 4.0  # pixels of a 150-pixel chip


def test_sp5_box_is_a_square_around_the_face(pipeline, astronaut: np.ndarray) -> None:
    det = pipeline.detect(astronaut)[0]
    x1, y1, x2, y2 = sp5_box(det.landmarks, det.landmark_format)
    assert abs((x2 - x1) - (y2 - y1)) < 1e-6
    assert x1 < det.landmarks[:, 0].min() and x2 > det.landmarks[:, 0].max()
    assert y1 < det.landmarks[:, 1].min() and y2 > det.landmarks[:, 1].max()


def test_aligner_module_equals_function(astronaut: np.ndarray) -> None:
    pts = chip_points(RETINAFACE_TEMPLATE) + 150
    np.testing.assert_array_equal(FaceAligner()(astronaut, pts), align_face(astronaut, pts))
    assert FaceAligner(size=112, padding=0.1)(astronaut, pts).shape == (112, 112, 3)


def test_align_errors(astronaut: np.ndarray) -> None:
    with pytest.raises(ShapeError):
        align_face(astronaut, np.zeros((68, 2)))
    with pytest.raises(UnknownNameError, match="known: dlib5, retinaface"):
        align_face(astronaut, np.zeros((5, 2)), landmark_format="mtcnn")
