"""Detection: RetinaFace (ONNX + numpy decoding) and dlib HOG on real photos."""
from __future__ import annotations

import numpy as np
import pytest

from cnnkit.core.errors import ShapeError, UnknownNameError
from cnnkit.data.image_io import load_image
from cnnkit.faces import Detection, detect_faces, list_detectors
from cnnkit.faces.detect import RetinaFaceDetector, _anchors, create_detector, nms

# Eye centres and nose tip of the astronaut (Eileen Collins), measured by eye on the 512x512 image.
ASTRONAUT_EYES = np.array([[204.0, 101.0], [246.0, 103.0]])


def test_registry() -> None:
    assert list_detectors() == ["hog", "retinaface"]
    with pytest.raises(UnknownNameError, match="unknown face detector .mtcnn.; available: hog, retinaface"):
        create_detector("mtcnn")
    with pytest.raises(UnknownNameError, match="unknown detector option"):
        create_detector("retinaface", thresholds=(0.5,))


def test_nms_matches_naive_loop() -> None:
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 100, (60, 2))
    boxes = np.hstack([xy, xy + rng.uniform(10, 40, (60, 2))])
    scores = rng.uniform(size=60)

    def iou(a, b):
        w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        inter = w * h
        return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)

    expected: list[int] = []
    for i in np.argsort(-scores):
        if all(iou(boxes[i], boxes[j]) <= 0.4 for j in expected):
            expected.append(int(i))
    assert nms(boxes, scores, 0.4).tolist() == expected


def test_anchor_count_matches_network(astronaut: np.ndarray) -> None:
    det = RetinaFaceDetector()
    net_in, _, _ = det._prepare(astronaut)
    loc, _, _ = det._get_session().run(None, {"input": net_in})
    assert loc.shape[1] == len(_anchors(*net_in.shape[2:]))


def test_astronaut_one_face_where_expected(pipeline, astronaut: np.ndarray) -> None:
    dets = pipeline.detect(astronaut)
    assert len(dets) == 1
    d = dets[0]
    assert isinstance(d, Detection) and d.landmark_format == "retinaface" and d.score > 0.99
    x1, y1, x2, y2 = d.box
    assert 160 < x1 < 200 and 40 < y1 < 80 and 250 < x2 < 290 and 160 < y2 < 200
    assert d.landmarks.shape == (5, 2) and d.landmarks.dtype == np.float32
    assert np.abs(d.landmarks[:2] - ASTRONAUT_EYES).max() < 6


def test_grey_image_detected(pipeline, astronaut: np.ndarray) -> None:
    grey = (astronaut @ np.array([0.299, 0.587, 0.114])).astype(np.uint8)
    dets = pipeline.detect(np.repeat(grey[:, :, None], 3, 2))
    assert len(dets) == 1
    assert np.abs(dets[0].landmarks[:2] - ASTRONAUT_EYES).max() < 6
    assert len(detect_faces(grey)) == 1  # (H, W) grey accepted as well


def test_function_equals_detector(astronaut: np.ndarray) -> None:
    a = detect_faces(astronaut, score_threshold=0.5)
    b = create_detector("retinaface", score_threshold=0.5).detect(astronaut)
    assert [x.box for x in a] == [x.box for x in b]


def test_min_face_size_and_threshold(astronaut: np.ndarray) -> None:
    assert detect_faces(astronaut, min_face_size=200) == []
    assert detect_faces(astronaut, score_threshold=0.99999999) == []


def test_bad_input_shape() -> None:
    with pytest.raises(ShapeError):
        detect_faces(np.zeros((10, 10, 4), np.uint8))
    with pytest.raises(ShapeError, match="uint8"):
        detect_faces(np.zeros((10, 10, 3), np.float32))


def test_hog_baseline_finds_astronaut(astronaut: np.ndarray) -> None:
    dets = create_detector("hog").detect(astronaut)
    assert dets and dets[0].landmark_format == "dlib5"
    x1, y1, x2, y2 = dets[0].box
    assert x1 < 215 < x2 and y1 < 110 < y2


@pytest.mark.parametrize("photo", ["s1/1.pgm", "s7/4.pgm", "s19/10.pgm", "s33/6.pgm", "s40/2.pgm"])
def test_orl_tight_crops_detected(pipeline, orl_dir, photo: str) -> None:
    img = load_image(orl_dir / photo)
    assert img.shape == (112, 92, 3)
    dets = pipeline.detect(img)
    assert len(dets) == 1
    x1, y1, x2, y2 = dets[0].box
    assert x2 - x1 > 40 and y2 - y1 > 50  # the face fills most of the 92x112 photo


def test_upscaling_keeps_boxes_in_image_pixels(orl_dir) -> None:
    img = load_image(orl_dir / "s1" / "1.pgm")
    plain = create_detector("retinaface", upscale_below=0, border=0.0).detect(img)
    scaled = create_detector("retinaface").detect(img)  # enlarged to 320 px and padded by 10%
    assert len(plain) == len(scaled) == 1
    assert np.abs(np.subtract(plain[0].box, scaled[0].box)).max() < 6
    assert np.abs(plain[0].landmarks - scaled[0].landmarks).max() < 4


def test_lfw_people(pipeline, lfw_dir) -> None:
    for name in ("Aaron_Eckhart", "Colin_Powell"):
        img = load_image(lfw_dir / name / f"{name}_0001.jpg")
        dets = pipeline.detect(img)
        assert dets, name
        cx, cy = dets[0].center
        assert abs(cx - 125) < 25 and abs(cy - 125) < 30  # deep-funneled: the subject is centred


def test_large_image_is_shrunk_for_detection_only(astronaut: np.ndarray) -> None:
    big = np.repeat(np.repeat(astronaut, 4, axis=0), 4, axis=1)  # 2048 x 2048
    det = create_detector("retinaface", max_size=640)
    (small,), (large,) = det.detect(astronaut), det.detect(big)
    np.testing.assert_allclose(np.array(large.box) / 4, small.box, atol=4)  # boxes in full-image pixels
    np.testing.assert_allclose(large.landmarks / 4, small.landmarks, atol=3)
