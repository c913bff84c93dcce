"""FacePipeline on real photos: ORL (grey 92x112), the astronaut, LFW people."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnkit.core.errors import InvalidImageError, MultipleFacesError, NoFaceFoundError
from cnnkit.faces import FacePipeline, FaceResult, primary_face
from cnnkit.faces.types import Detection


def _dist(a: FaceResult, b: FaceResult) -> float:
    return float(np.linalg.norm(a.embedding - b.embedding))


def test_import_loads_no_model_or_opencv() -> None:
    code = ("import sys, cnnkit.faces as f; p = f.FacePipeline(); "
            "print(sorted(m for m in ('cv2', 'dlib', 'onnxruntime', 'torch') if m in sys.modules), "
            "p.detector._session is None, all(e._model is None for e in getattr(p.encoder, 'parts', [p.encoder])))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[] True True"


def test_interface(pipeline) -> None:
    assert pipeline.dim == 128 and pipeline.default_threshold == 0.6
    assert pipeline.tag.startswith("dlib_resnet:1:")
    assert pipeline.tag in pipeline.config_key and "retinaface" in pipeline.config_key


def test_orl_same_person_closer_than_different(pipeline, orl_dir: Path) -> None:
    people = ["s1", "s2", "s3", "s4", "s5", "s6"]
    first = [pipeline.encode_one(orl_dir / p / "1.pgm") for p in people]
    second = [pipeline.encode_one(orl_dir / p / "2.pgm") for p in people]
    d = np.array([[_dist(a, b) for b in second] for a in first])
    assert (np.diag(d) < 0.5).all(), np.diag(d)  # the dlib encoder's tau for these grey crops
    off = d[~np.eye(len(people), dtype=bool)]
    assert np.diag(d).max() < off.min(), (np.diag(d), off.min())


def test_faces_largest_first_and_multiple(pipeline, astronaut: np.ndarray, tmp_path: Path) -> None:
    small = np.asarray(Image.fromarray(astronaut).resize((256, 256)))
    canvas = np.full((512, 768, 3), 255, np.uint8)
    canvas[:, :512] = astronaut
    canvas[128:384, 512:] = small
    p = tmp_path / "two.png"
    Image.fromarray(canvas).save(p)
    faces = pipeline.faces(p)
    assert len(faces) == 2 and faces[0].box[0] < 512 <= faces[1].box[0]
    assert faces[0].embedding.shape == (128,) and faces[0].landmarks.shape == (5, 2)
    assert _dist(faces[0], faces[1]) < 0.4  # the same woman at two sizes
    with pytest.raises(MultipleFacesError, match=rf"{p}: 2 faces found"):
        pipeline.encode_one(p)
    assert pipeline.encode_one(p, largest=True).box == faces[0].box


def test_no_face_names_the_file(pipeline, tmp_path: Path) -> None:
    p = tmp_path / "wall.png"
    Image.fromarray(np.full((200, 300, 3), 128, np.uint8)).save(p)
    with pytest.raises(NoFaceFoundError, match=rf"{p}: no face found"):
        pipeline.encode_one(p)
    assert pipeline.faces(p) == []


def test_encode_many_keeps_order_and_reports_errors(pipeline, orl_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    blank = tmp_path / "blank.png"
    Image.fromarray(np.zeros((100, 100), np.uint8)).save(blank)
    paths = [orl_dir / "s1/1.pgm", bad, orl_dir / "s2/1.pgm", blank, orl_dir / "s3/1.pgm"]
    small = FacePipeline("dlib_resnet", batch_size=2)
    out = list(small.encode_many(paths))
    assert [p for p, _ in out] == paths
    kinds = [type(r).__name__ for _, r in out]
    assert kinds == ["FaceResult", "UnsupportedImageError", "FaceResult", "NoFaceFoundError", "FaceResult"]
    single = pipeline.encode_one(orl_dir / "s2/1.pgm")
    np.testing.assert_allclose(out[2][1].embedding, single.embedding, atol=1e-6)
    assert isinstance(out[1][1], InvalidImageError) and str(bad) in str(out[1][1])


def test_primary_face_prefers_central_among_large() -> None:
    lm = np.zeros((5, 2), np.float32)
    big_edge = Detection((0, 0, 100, 100), 0.9, lm)
    central = Detection((160, 160, 240, 240), 0.9, lm)  # 64% of the area, at the centre
    tiny_centre = Detection((190, 190, 210, 210), 0.9, lm)
    assert primary_face([big_edge, central, tiny_centre], (400, 400, 3)) is central
    assert primary_face([big_edge, tiny_centre], (400, 400, 3)) is big_edge


def test_hog_pipeline_runs(orl_dir: Path) -> None:
    hog = FacePipeline("dlib_resnet", detector="hog")
    assert hog.alignment == "sp5"
    assert hog.tag == FacePipeline("dlib_resnet").tag  # same encoder, same tag
    res = hog.faces(orl_dir / "s1/1.pgm")
    assert len(res) <= 1  # HOG often misses ORL's tight crops: the reason RetinaFace is the default


def test_lfw_same_and_different_people(pipeline, lfw_dir: Path) -> None:
    a1 = pipeline.encode_one(lfw_dir / "Colin_Powell/Colin_Powell_0001.jpg", largest=True)
    a2 = pipeline.encode_one(lfw_dir / "Colin_Powell/Colin_Powell_0002.jpg", largest=True)
    b = pipeline.encode_one(lfw_dir / "Aaron_Eckhart/Aaron_Eckhart_0001.jpg", largest=True)
    assert _dist(a1, a2) < 0.5 < 0.7 < min(_dist(a1, b), _dist(a2, b))


def test_alignments_and_flip(astronaut: np.ndarray) -> None:
    base = FacePipeline("dlib_resnet", flip=False)
    det = base.detect(astronaut)[0]
    chips = {a: FacePipeline("dlib_resnet", alignment=a).align(astronaut, det) for a in ("landmarks", "sp5", "joint")}
    e = base.encode(list(chips.values()))
    assert e.shape == (3, 128)
    assert max(np.linalg.norm(e[0] - e[1]), np.linalg.norm(e[0] - e[2])) < 0.25  # same face, slightly moved
    flip = FacePipeline("dlib_resnet", flip=True)
    chip = chips["landmarks"]
    expected = (base.encode([chip])[0] + base.encode([chip[:, ::-1].copy()])[0]) / 2
    np.testing.assert_allclose(flip.encode([chip])[0], expected, atol=1e-5)
    assert flip.config_key != base.config_key and flip.tag == base.tag
