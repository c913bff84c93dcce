"""Encoder registry, tag stability, encode contract."""
from __future__ import annotations

import hashlib
import re

import numpy as np
import pytest

from cnnkit.core.errors import ShapeError, UnknownNameError, WeightsError
from cnnkit.faces import FaceEncoder, align_face, list_face_encoders, load_face_encoder
from cnnkit.faces.detect import dlib_model_path


def test_registry_lists_dlib_resnet() -> None:
    assert "dlib_resnet" in list_face_encoders()
    with pytest.raises(UnknownNameError, match="known: .*dlib_resnet"):
        load_face_encoder("facenet_9000")
    with pytest.raises(WeightsError, match="no such weights file"):
        load_face_encoder("/nonexistent/model.dat")


def test_tag_is_stable_and_names_the_weights() -> None:
    path = dlib_model_path("dlib_face_recognition_resnet_model_v1.dat")
    with open(path, "rb") as fh:
        sha = hashlib.sha256(fh.read()).hexdigest()
    a, b = load_face_encoder("dlib_resnet"), load_face_encoder(path)
    assert isinstance(a, FaceEncoder)
    assert a.tag == b.tag == f"dlib_resnet:1:{sha[:16]}"
    assert re.fullmatch(r"dlib_resnet:1:[0-9a-f]{16}", a.tag)
    assert a.weights_sha256 == sha and a.dim == 128 and a.default_threshold == 0.6


def test_nothing_loaded_until_used() -> None:
    enc = load_face_encoder("dlib_resnet")
    assert enc._model is None
    enc.encode([])
    assert enc._model is None


def test_encode_shapes(pipeline, astronaut: np.ndarray) -> None:
    det = pipeline.detect(astronaut)[0]
    chip = align_face(astronaut, det.landmarks)
    enc = pipeline.encoder
    out = enc.encode([chip, chip[:, ::-1].copy()])
    assert out.shape == (2, 128) and out.dtype == np.float32
    assert 0.5 < float(np.linalg.norm(out[0])) < 3.0  # dlib embeddings are not normalised (about 1.4 here)
    assert float(np.linalg.norm(out[0] - out[1])) < 0.4  # a mirrored face is still the same person
    assert enc.encode([]).shape == (0, 128)
    np.testing.assert_allclose(enc.encode([chip])[0], out[0], atol=1e-5)  # batch == single


def test_encode_rejects_wrong_chips(pipeline) -> None:
    with pytest.raises(ShapeError, match=r"crops\[0\]"):
        pipeline.encoder.encode([np.zeros((112, 112, 3), np.uint8)])
    with pytest.raises(ShapeError, match="uint8"):
        pipeline.encoder.encode([np.zeros((150, 150, 3), np.float32)])
