"""The face pipeline: image -> detect -> align -> encode, in one object that keeps its models.

>>> pipe = FacePipeline()                        # RetinaFace + dlib ResNet and SFace fused, weights load on first use
>>> face = pipe.encode_one("alice.jpg")          # exactly one face required
>>> [f.box for f in pipe.faces("group.jpg")]     # every face, largest first
"""
from __future__ import annotations

import copy
import os
from collections.abc import Iterable, Iterator
from dataclasses import fields
from typing import Any

import numpy as np

from cnnkit.core.errors import CnnkitError, MultipleFacesError, NoFaceFoundError, UnknownNameError
from cnnkit.data.image_io import load_image
from cnnkit.faces.align import TEMPLATES, align_face, apply_transform, similarity_transform, sp5_box
from cnnkit.faces.detect import FaceDetector, ShapePredictor5, as_rgb_uint8, create_detector
from cnnkit.faces.encoders import FaceEncoder, choose_encoder, embed_chips, load_face_encoder
from cnnkit.faces.illumination import ENHANCERS, enhance
from cnnkit.faces.types import Detection, FaceResult

__all__ = ["FacePipeline", "primary_face", "ALIGNMENTS"]

#: ``"landmarks"``: align the detector's own five points onto their template.
#: ``"sp5"``: run dlib's 5-point shape predictor in a dlib-style box placed from the detection, then
#: align its points onto dlib's template (what dlib's training chips were made from).
#: ``"joint"``: one least-squares fit of both point sets (10 points) onto both templates.
ALIGNMENTS = ("landmarks", "sp5", "joint")

ImageInput = str | os.PathLike[str] | np.ndarray


def primary_face(dets: list[Detection], image_shape: tuple[int, ...], *, min_ratio: float = 0.5) -> Detection:
    """The main face of a photo: among faces at least ``min_ratio`` times as large (by area) as the
    largest, the one whose box centre is closest to the image centre.

    Portraits with bystanders (common in LFW) put the subject in the middle, but a much smaller
    central face should not win over a large off-centre one.
    """
    if not dets:
        raise NoFaceFoundError(None)
    biggest = max(d.area for d in dets)
    cy, cx = image_shape[0] / 2.0, image_shape[1] / 2.0
    large = [d for d in dets if d.area >= min_ratio * biggest]
    return min(large, key=lambda d: (d.center[0] - cx) ** 2 + (d.center[1] - cy) ** 2)


class FacePipeline:
    """Detect, align and encode faces.

    Args:
        encoder: a registered encoder name (see ``list_face_encoders()``), a fusion
            (``"dlib_resnet+sface"``), a dlib ``.dat`` file, or an encoder object; ``None``: the
            default (:func:`~cnnkit.faces.encoders.choose_encoder`).
        detector: ``"retinaface"`` (default) or ``"hog"`` (dlib HOG + 5-point predictor, the
            face_recognition pipeline).
        score_threshold: detector score threshold (``None``: the detector's default).
        min_face_size: smallest face side in pixels (``None``: the detector's default).
        device: ``"cpu"`` (``"cuda"`` lets onnxruntime use CUDA for detection where available).
        alignment: one of :data:`ALIGNMENTS`; ``"sp5"`` is always used with ``"hog"``.
        flip: encode each chip and its mirror image and average the two embeddings (twice the
            encoder time); ``None``: the encoder's own default (``encoder.flip``: on for dlib
            ResNet, the ``input.flip_tta`` of a trained model; a fused encoder's ``part_flips``).

    For dlib's ResNet, the defaults (``"sp5"`` alignment, ``flip=True``) had the best accuracy on
    LFW's pairsDevTrain among the variants in ``benchmarks/lfw_view1.py`` (0.9923; 0.990 on
    pairsDevTest with the threshold 0.599 chosen on pairsDevTrain).
        batch_size: chips per encoder call in :meth:`encode_many`.
        retry_enhance: when the photo gives no face, detect again on a copy enhanced by this
            (``"gamma_clahe"``: gamma to a mid-grey mean, then CLAHE; ``"clahe"``, ``"gamma"`` or
            ``"none"``; see :mod:`cnnkit.faces.illumination`). Boxes and landmarks are in the
            original's pixels; the chip is cut from the original. Photos in which a face is found
            are never affected. gamma_clahe found the most faces in dark photos
            (``benchmarks/illumination.py``).
        chip_enhance: ``"retried"``: when only the retry found the face, cut its chip from the
            enhanced copy; an enhancer name: enhance every chip; ``"none"``: never (measured in
            ``benchmarks/illumination.py``).
        detector_options: further :class:`~cnnkit.faces.detect.DetectorConfig` fields.

    Attributes:
        tag: the encoder's tag (stored with every embedding).
        dim: embedding length.
        default_threshold: the encoder's Euclidean distance threshold.
    """

    def __init__(
        self,
        encoder: str | os.PathLike[str] | FaceEncoder | None = None,
        *,
        detector: str = "retinaface",
        score_threshold: float | None = None,
        min_face_size: int | None = None,
        device: str = "cpu",
        alignment: str = "sp5",
        flip: bool | None = None,
        retry_enhance: str = "gamma_clahe",
        chip_enhance: str = "retried",
        batch_size: int = 32,
        **detector_options: Any,
    ) -> None:
        if alignment not in ALIGNMENTS:
            raise UnknownNameError(f"unknown alignment {alignment!r}; known: {', '.join(ALIGNMENTS)}")
        if encoder is None:
            encoder = choose_encoder()
        self.encoder: FaceEncoder = (
            load_face_encoder(encoder, device=device) if isinstance(encoder, (str, os.PathLike)) else encoder
        )
        self.detector: FaceDetector = create_detector(
            detector,
            device=device,
            score_threshold=score_threshold,
            min_face_size=min_face_size,
            **detector_options,
        )
        self.alignment = "sp5" if detector == "hog" else alignment
        self.flip = bool(self.encoder.flip if flip is None else flip)
        #: a fused encoder's mirror averaging per part: ``flip`` when given, else the encoder's own
        self.part_flips: tuple[bool, ...] = tuple(
            self.flip if flip is not None else bool(f)
            for f in getattr(self.encoder, "part_flips", [True] * len(getattr(self.encoder, "parts", ()))))
        for value, known in ((retry_enhance, ENHANCERS), (chip_enhance, ENHANCERS + ("retried",))):
            if value not in known:
                raise UnknownNameError(f"unknown illumination enhancement {value!r}; known: {', '.join(known)}")
        self.retry_enhance, self.chip_enhance = retry_enhance, chip_enhance
        self.batch_size = int(batch_size)
        self.device = device
        self._sp5 = ShapePredictor5()

    # -- identity ---------------------------------------------------------------------------
    @property
    def tag(self) -> str:
        return self.encoder.tag

    @property
    def dim(self) -> int:
        return self.encoder.dim

    @property
    def default_threshold(self) -> float:
        return self.encoder.default_threshold

    @property
    def config_key(self) -> str:
        """Everything that changes an embedding: encoder tag, detector, its settings, alignment, flip,
        illumination settings."""
        retry = f"|retry={self.retry_enhance}" if self.retry_enhance != "none" else ""
        retried_chip = "|chip=retried" if retry and self.chip_enhance == "retried" else ""
        return self.config_key_without_retry + retry + retried_chip

    @property
    def config_key_without_retry(self) -> str:
        """:attr:`config_key` without the detection retry: an embedding made with the retry off is
        the same with it on when a face was found (the retry runs only when none is)."""
        cfg = self.detector.config
        settings = ",".join(f"{f.name}={getattr(cfg, f.name)}" for f in fields(cfg) if f.name != "threads")
        chip = f"|chip={self.chip_enhance}" if self.chip_enhance not in ("none", "retried") else ""
        flips = self.part_flips or (self.flip,)
        flip = "|flip" if all(flips) else "" if not any(flips) else "|flip=" + "".join("01"[f] for f in flips)
        return f"{self.tag}|{self.detector.tag}|{settings}{chip}|align={self.alignment}{flip}"

    def part_pipelines(self) -> list["FacePipeline"]:
        """For a fused encoder, one pipeline per part, sharing this one's detector and settings
        (their ``config_key`` is the part's own, so cached embeddings of the part are reused)."""
        out = []
        for part, flip in zip(getattr(self.encoder, "parts", ()), self.part_flips):
            other = copy.copy(self)
            other.encoder, other.flip, other.part_flips = part, flip, ()
            out.append(other)
        return out

    def __repr__(self) -> str:
        return (
            f"FacePipeline(encoder={self.encoder.name!r}, detector={self.detector.name!r}, "
            f"alignment={self.alignment!r}, flip={self.flip}, config={self.detector.config})"
        )

    # -- steps ------------------------------------------------------------------------------
    def load(self, image: ImageInput) -> tuple[np.ndarray, str | None]:
        """An RGB uint8 (H, W, 3) array and the file name (``None`` for arrays)."""
        if isinstance(image, np.ndarray):
            return as_rgb_uint8(image), None
        return load_image(image), os.fspath(image)

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        """Every face in an RGB uint8 image, largest first (retried on an enhanced copy when none
        is found, see ``retry_enhance``). For an encoder trained on whole, tightly cropped photos
        (``whole_image``), the whole image is the one face."""
        return self._located(rgb)[0]

    def _located(self, rgb: np.ndarray) -> tuple[list[Detection], np.ndarray]:
        """The detections and the image to cut their chips from: the photo itself, or with
        ``chip_enhance="retried"`` the enhanced copy when only that copy showed the faces."""
        if self.encoder.whole_image:
            h, w = rgb.shape[:2]
            return [Detection(box=(0.0, 0.0, float(w), float(h)), score=1.0,
                              landmarks=np.zeros((5, 2), np.float32), landmark_format="none")], rgb
        dets = self.detector.detect(rgb)
        if dets or self.retry_enhance == "none":
            return dets, rgb
        copy = enhance(rgb, self.retry_enhance)
        return self.detector.detect(copy), (copy if self.chip_enhance == "retried" else rgb)

    def align(self, rgb: np.ndarray, det: Detection) -> Any:
        """The encoder's chip for one detection, uint8 (S, S, 3) (the whole image for ``whole_image``;
        for a fused encoder, a tuple with each part's chip)."""
        parts = getattr(self.encoder, "parts", None)
        if parts is not None:
            return tuple(self._align_for(part, rgb, det) for part in parts)
        return self._align_for(self.encoder, rgb, det)

    def _align_for(self, encoder: FaceEncoder, rgb: np.ndarray, det: Detection) -> np.ndarray:
        if encoder.whole_image:
            return rgb
        chip = self._chip(encoder, rgb, det)
        return chip if self.chip_enhance in ("none", "retried") else enhance(chip, self.chip_enhance)

    def _chip(self, encoder: FaceEncoder, rgb: np.ndarray, det: Detection) -> np.ndarray:
        size, padding = encoder.chip_size, encoder.chip_padding
        template = getattr(encoder, "chip_template", None)
        if template is not None:  # the encoder's own five-point template (RetinaFace point order)
            return align_face(rgb, retinaface_points(det), template=template, size=size, padding=padding)
        if self.alignment in ("sp5", "joint") and det.landmark_format != "dlib5":
            dlib_points = self._sp5(rgb, sp5_box(det.landmarks, det.landmark_format))
            if self.alignment == "sp5":
                return align_face(rgb, dlib_points, landmark_format="dlib5", size=size, padding=padding)
            points = np.vstack([det.landmarks, dlib_points])
            template = np.vstack([TEMPLATES[det.landmark_format], TEMPLATES["dlib5"]])
            return align_face(rgb, points, template=template, size=size, padding=padding)
        return align_face(rgb, det.landmarks, landmark_format=det.landmark_format, size=size, padding=padding)

    def encode(self, chips: list[Any]) -> np.ndarray:
        """Embeddings of aligned chips (as :meth:`align` makes them), float32 (N, D)
        (:func:`~cnnkit.faces.encoders.embed_chips`; a fused encoder's parts each on their own chips)."""
        parts = getattr(self.encoder, "parts", None)
        if parts is not None:
            return self.encoder.combine([embed_chips(p, [c[k] for c in chips], flip=f)
                                         for k, (p, f) in enumerate(zip(parts, self.part_flips))])
        return embed_chips(self.encoder, chips, flip=self.flip)

    # -- whole pipeline ---------------------------------------------------------------------
    def faces(self, image: ImageInput) -> list[FaceResult]:
        """Every face in the image (a path or an RGB/grey uint8 array), largest first."""
        rgb, _ = self.load(image)
        dets, source = self._located(rgb)
        if not dets:
            return []
        emb = self.encode([self.align(source, d) for d in dets])
        return [_result(d, e) for d, e in zip(dets, emb)]

    def encode_one(self, image: ImageInput, *, largest: bool = False) -> FaceResult:
        """The one face of an image.

        Args:
            largest: when several faces are found, take the main one (see :func:`primary_face`)
                instead of raising.

        Raises:
            NoFaceFoundError, MultipleFacesError: naming the file.
            InvalidImageError: the file is not a usable image.
        """
        rgb, name = self.load(image)
        dets, source = self._located(rgb)
        det = self._select(dets, rgb.shape, name, largest)
        return _result(det, self.encode([self.align(source, det)])[0])

    def encode_many(
        self, paths: Iterable[str | os.PathLike[str]], *, largest: bool = False
    ) -> Iterator[tuple[str | os.PathLike[str], FaceResult | CnnkitError]]:
        """Encode one face per file, in order, batching the encoder.

        Yields:
            ``(path, FaceResult)`` for good files and ``(path, error)`` for bad ones (the error is a
            :class:`~cnnkit.core.errors.CnnkitError` naming the file; nothing is raised).
        """
        pending: list[tuple[Any, Detection | None, np.ndarray | CnnkitError]] = []
        n_chips = 0
        for path in paths:
            try:
                rgb, name = self.load(path)
                dets, source = self._located(rgb)
                det = self._select(dets, rgb.shape, name, largest)
                pending.append((path, det, self.align(source, det)))
                n_chips += 1
            except CnnkitError as exc:
                pending.append((path, None, exc))
            if n_chips >= self.batch_size:
                yield from self._flush(pending)
                pending, n_chips = [], 0
        yield from self._flush(pending)

    def _flush(self, pending: list[tuple[Any, Detection | None, Any]]) -> Iterator[tuple[Any, Any]]:
        chips = [c for _, det, c in pending if det is not None]
        emb = iter(self.encode(chips)) if chips else iter(())
        for path, det, item in pending:
            yield (path, item) if det is None else (path, _result(det, next(emb)))

    def _select(self, dets: list[Detection], shape: tuple[int, ...], name: str | None, largest: bool) -> Detection:
        if not dets:
            raise NoFaceFoundError(name)
        if len(dets) > 1 and not largest:
            raise MultipleFacesError(name, len(dets))
        return primary_face(dets, shape)


def retinaface_points(det: Detection) -> np.ndarray:
    """The detection's five points in RetinaFace's convention (eye centres, nose tip, mouth
    corners), shape (5, 2): RetinaFace's own, or for dlib's five points (eye corners, nose base)
    the RetinaFace template carried through the similarity that fits dlib's template onto them."""
    if det.landmark_format == "retinaface":
        return np.asarray(det.landmarks, dtype=np.float64)
    m = similarity_transform(TEMPLATES[det.landmark_format], np.asarray(det.landmarks, dtype=np.float64))
    return apply_transform(m, TEMPLATES["retinaface"])


def _result(det: Detection, embedding: np.ndarray) -> FaceResult:
    return FaceResult(
        box=det.box,
        score=det.score,
        landmarks=np.asarray(det.landmarks, dtype=np.float32),
        embedding=np.asarray(embedding, dtype=np.float32),
    )
