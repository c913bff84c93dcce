"""The ``sface`` face encoder: registered, tagged by its weights, its own 112x112 template, unit
embeddings that tell ORL people apart at OpenCV's threshold."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from cnnkit.faces import FacePipeline, list_face_encoders, load_face_encoder
from cnnkit.faces.pipeline import retinaface_points
from cnnkit.nn.sface import sface_weights_path

ORL = Path(__file__).resolve().parents[2] / "data" / "orl"


@pytest.fixture(scope="module")
def sface_pipeline() -> FacePipeline:
    return FacePipeline("sface", threads=2)


def test_registered_and_tagged_by_its_weights() -> None:
    assert "sface" in list_face_encoders()
    digest = hashlib.sha256(sface_weights_path().read_bytes()).hexdigest()
    assert load_face_encoder("sface").tag == f"sface:1:{digest[:16]}"


def test_orl_same_person_closer_than_threshold_than_others(sface_pipeline) -> None:
    a, b, c = (sface_pipeline.encode_one(ORL / s / f"{i}.pgm").embedding for s, i in (("s1", 1), ("s1", 2), ("s2", 1)))
    for e in (a, b, c):
        assert e.shape == (128,) and e.dtype == np.float32
        assert np.linalg.norm(e) == pytest.approx(1.0, abs=1e-5)  # renormalised after flip averaging
    same, other = np.linalg.norm(a - b), np.linalg.norm(a - c)
    thr = sface_pipeline.default_threshold
    assert same < thr < other, (same, other)


def test_chip_puts_the_eyes_on_opencvs_template(sface_pipeline, astronaut) -> None:
    det = sface_pipeline.detect(astronaut)[0]
    chip = sface_pipeline.align(astronaut, det)
    assert chip.shape == (112, 112, 3)
    # the detector's own points, detected again in the chip, land on OpenCV's template
    again = sface_pipeline.detector.detect(chip)
    assert again, "no face found in the aligned chip"
    np.testing.assert_allclose(again[0].landmarks[:2], [[38.29, 51.70], [73.53, 51.50]], atol=4)


def test_dlib_points_mapped_to_retinaface_order(astronaut) -> None:
    rf = FacePipeline("sface", threads=2).detect(astronaut)[0]
    hog = FacePipeline("sface", detector="hog").detect(astronaut)[0]
    mapped = retinaface_points(hog)
    # eyes and nose within 2 px of RetinaFace's own points; dlib's five points have no mouth, so the
    # corners come from the template (10 px off on this wide smile, the face being ~90 px wide)
    assert np.abs(mapped[:3] - rf.landmarks[:3]).max() < 2, (mapped, rf.landmarks)
    assert np.abs(mapped[3:] - rf.landmarks[3:]).max() < 12, (mapped, rf.landmarks)
