"""The face encoder adapter: any network (the registered ``dlib_resnet``, a dlib ``.dat`` file, or a
model directory written by ``cnnkit train``) behind one protocol: aligned chips (or whole photos) in,
fixed-length embeddings out, compared by Euclidean distance. The one place that knows the encoder
tag (:func:`encoder_tag`) and flip averaging with re-normalisation (:func:`embed_chips`).

An encoder is built by name from a registry (:func:`load_face_encoder`); each one carries a
``tag`` (name, version, first 16 hex digits of its weights' SHA-256) that every stored embedding
keeps, so that embeddings of different encoders are never mixed.
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from cnnkit.core.checks import check_shape
from cnnkit.core.download import sha256_file
from cnnkit.core.errors import ShapeError, UnknownNameError, WeightsError
from cnnkit.core.registry import Registry
from cnnkit.faces.detect import dlib_model_path

__all__ = [
    "FaceEncoder",
    "encoder_tag",
    "embed_chips",
    "DlibResNetEncoder",
    "TrainedFaceEncoder",
    "SFaceEncoder",
    "register_face_encoder",
    "DEFAULT_ENCODER",
    "choose_encoder",
    "list_face_encoders",
    "load_face_encoder",
]


@runtime_checkable
class FaceEncoder(Protocol):
    """Turns aligned face chips into embeddings.

    Attributes:
        name, version: identify the model; with ``weights_sha256`` they make up ``tag``.
        dim: length D of an embedding.
        default_threshold: Euclidean distance below which two embeddings are the same person.
        chip_size, chip_padding: the chip :func:`~cnnkit.faces.align_face` must produce.
        whole_image: the model was trained on whole, tightly cropped photos: no detection, the
            whole image is the one "chip".
        normalized: embeddings are L2-normalised (also after flip averaging).
        flip: whether flip averaging is on by default for this encoder.

    ``encode`` runs the network once per chip; flip averaging is :func:`embed_chips`'s job.
    """

    name: str
    version: str
    dim: int
    default_threshold: float
    chip_size: int
    chip_padding: float
    whole_image: bool
    normalized: bool
    flip: bool

    @property
    def weights_sha256(self) -> str: ...

    @property
    def tag(self) -> str: ...

    def encode(self, crops: list[np.ndarray]) -> np.ndarray: ...


def encoder_tag(encoder: FaceEncoder) -> str:
    """The tag stored with every embedding and every per-encoder setting (threshold, head):
    ``name:version:<first 16 hex digits of the weights' SHA-256>``. The one place it is computed:
    enroll, verify, identify, head training and calibration all read it from here."""
    return f"{encoder.name}:{encoder.version}:{encoder.weights_sha256[:16]}"


def embed_chips(encoder: FaceEncoder, chips: list[np.ndarray], *, flip: bool) -> np.ndarray:
    """Embeddings of chips (N, D) float32: one encoder pass per chip, or with ``flip`` one pass
    over the chips and their mirror images together (2 per chip), averaged, and L2-normalised
    again when the encoder's embeddings are (``encoder.normalized``)."""
    chips = list(chips)
    if not flip or not chips:
        return np.asarray(encoder.encode(chips), dtype=np.float32)
    both = np.asarray(encoder.encode(chips + [np.ascontiguousarray(c[:, ::-1]) for c in chips]), dtype=np.float32)
    mean = (both[: len(chips)] + both[len(chips):]) / 2
    if encoder.normalized:
        mean /= np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12)
    return mean.astype(np.float32)


FACE_ENCODERS: Registry[Callable[..., FaceEncoder]] = Registry("face encoder")

#: the encoder of a new gallery, and of the commands that use none: dlib's ResNet and SFace fused
#: (LFW View 1 0.994 against 0.990 for dlib alone; 2.5x the face_recognition pipeline's faces per
#: second, ``benchmarks/enroll_throughput.py``)
DEFAULT_ENCODER = "dlib_resnet+sface"


def choose_encoder(explicit: str | None = None, gallery_tag: str | None = None) -> str:
    """The encoder to run: ``explicit`` when given; else the one whose tag the gallery's embeddings
    carry, so that a change of :data:`DEFAULT_ENCODER` never makes a gallery refuse its own people;
    else :data:`DEFAULT_ENCODER`.

    Raises:
        UnknownNameError: the gallery's tag is not a registered encoder (or a fusion of them), e.g.
            a model trained with ``cnnkit train``: it has to be named.
    """
    if explicit:
        return explicit
    if gallery_tag is None:
        return DEFAULT_ENCODER
    from cnnkit.faces.fused import spec_from_tag

    spec = spec_from_tag(gallery_tag)
    names = [part.split("*")[0] for part in (spec or "").split("+")]
    if spec is None or not all(n in FACE_ENCODERS for n in names):
        raise UnknownNameError(f"this gallery's embeddings come from {gallery_tag!r}, which is not a registered "
                               "encoder; name it with --encoder (e.g. the model directory)")
    return spec


def register_face_encoder(name: str) -> Callable[[Callable[..., FaceEncoder]], Callable[..., FaceEncoder]]:
    """Class decorator: make an encoder loadable by ``name``."""
    return FACE_ENCODERS.register(name)


def list_face_encoders() -> list[str]:
    """Names accepted by :func:`load_face_encoder`."""
    return FACE_ENCODERS.names()


def load_face_encoder(name_or_path: str | os.PathLike[str], *, device: str = "cpu", **options: Any) -> FaceEncoder:
    """Build an encoder by registered name, a fusion of registered names (``"dlib_resnet+sface"``,
    see :mod:`cnnkit.faces.fused`), from a dlib ResNet ``.dat`` weights file, or from a model
    directory written by ``cnnkit train``.

    Nothing is read until the first :meth:`FaceEncoder.encode` (or ``tag``) call.

    Args:
        options: passed to the encoder (e.g. ``backend="dlib"`` for ``dlib_resnet``).
    """
    key = os.fspath(name_or_path)
    from cnnkit.faces.fused import FusedEncoder, is_fused_spec

    if is_fused_spec(key) and not os.path.exists(key):
        return FusedEncoder.from_spec(key, device=device)  # type: ignore[return-value]
    if key in FACE_ENCODERS:
        return FACE_ENCODERS.build(key, device=device, **options)
    if key.endswith(".dat"):
        if not os.path.isfile(key):
            raise WeightsError(f"{key}: no such weights file")
        return DlibResNetEncoder(weights=key, device=device, **options)
    from cnnkit.nn.checkpoint import is_model_path

    if is_model_path(key):
        return TrainedFaceEncoder(key, device=device)
    raise UnknownNameError(
        f"unknown face encoder {key!r}; known: {', '.join(list_face_encoders())} "
        "(or a dlib .dat file, or a model trained with `cnnkit train`)"
    )


def _check_crops(crops: list[np.ndarray], size: int) -> None:
    for i, crop in enumerate(crops):
        check_shape(crop, f"{size} {size} 3", name=f"crops[{i}]")
        if crop.dtype != np.uint8:
            raise ShapeError(f"crops[{i}] must be uint8, got {crop.dtype}")


def _run_batches(model: Any, crops: list[np.ndarray], device: str, max_batch: int) -> np.ndarray:
    """A torch network over uint8 (S, S, 3) RGB chips, ``max_batch`` at a time: (N, D) float32.
    The chips go in as float 0-255 (B, 3, S, S), channels-last (the layout they are stored in)."""
    import torch

    out = []
    with torch.inference_mode():
        for i in range(0, len(crops), max_batch):
            x = torch.from_numpy(np.stack(crops[i: i + max_batch])).to(device).permute(0, 3, 1, 2).float()
            out.append(model(x).cpu().numpy())
    return np.concatenate(out).astype(np.float32, copy=False)


class _WeightsFile:
    """``weights_sha256`` and ``tag`` of an encoder whose weights are one file (``_weights_path()``)."""

    name: str
    version: str
    _sha256: str | None = None

    def _weights_path(self) -> str:
        raise NotImplementedError

    @property
    def weights_sha256(self) -> str:
        if self._sha256 is None:
            self._sha256 = sha256_file(self._weights_path())
        return self._sha256

    @property
    def tag(self) -> str:
        return encoder_tag(self)


@register_face_encoder("dlib_resnet")
class DlibResNetEncoder(_WeightsFile):
    """dlib's face recognition ResNet (``dlib_face_recognition_resnet_model_v1.dat``), 128-d.

    Takes dlib face chips: 150x150 RGB uint8, padding 0.25. dlib reports 99.38% on LFW with its
    threshold 0.6 on the Euclidean distance.

    Args:
        weights: a ``.dat`` file (default: the one in face-recognition-models).
        device: torch device for the ``"torch"`` backend.
        backend: ``"torch"`` runs the same network, read from the ``.dat`` file, in PyTorch
            (:mod:`cnnkit.nn.dlib_resnet`; same embeddings to about 1e-6, several times faster
            than the BLAS-less dlib wheel); ``"dlib"`` calls dlib itself.
        num_jitters: dlib backend only: dlib's random jitter averaging (0 = none).
    """

    name = "dlib_resnet"
    version = "1"
    #: chips per network pass (torch backend)
    max_batch = 32
    dim = 128
    default_threshold = 0.6
    #: the same threshold for L2-normalised embeddings (fusion): 0.6 / 1.42, their mean norm on LFW
    unit_threshold = 0.6 / 1.42
    chip_size = 150
    chip_padding = 0.25
    whole_image = False
    normalized = False
    flip = True

    def __init__(
        self, *, weights: str | None = None, device: str = "cpu", backend: str = "torch", num_jitters: int = 0
    ) -> None:
        if backend not in ("torch", "dlib"):
            raise UnknownNameError(f"unknown dlib_resnet backend {backend!r}; known: torch, dlib")
        if num_jitters and backend != "dlib":
            raise UnknownNameError("num_jitters needs backend='dlib'")
        self.weights = weights
        self.device = device
        self.backend = backend
        self.num_jitters = int(num_jitters)
        self._model: Any = None
        self._sha256: str | None = None

    def _weights_path(self) -> str:
        return self.weights or dlib_model_path("dlib_face_recognition_resnet_model_v1.dat")

    def _get_model(self) -> Any:
        if self._model is None:
            if self.backend == "torch":
                from cnnkit.nn.dlib_resnet import DlibResNet

                self._model = DlibResNet.from_dat(self._weights_path()).fold().to(self.device)
            else:
                import dlib

                try:
                    self._model = dlib.face_recognition_model_v1(self._weights_path())
                except RuntimeError as exc:
                    raise WeightsError(f"{self._weights_path()}: cannot load dlib ResNet weights: {exc}") from None
        return self._model

    def encode(self, crops: list[np.ndarray]) -> np.ndarray:
        """Encode aligned chips.

        Args:
            crops: N chips, each uint8 of shape (150, 150, 3) RGB.

        Returns:
            embeddings, float32 of shape (N, 128).
        """
        crops = list(crops)
        _check_crops(crops, self.chip_size)
        if not crops:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = self._get_model()
        if self.backend == "torch":
            return _run_batches(model, crops, self.device, self.max_batch)
        chips = [np.ascontiguousarray(c) for c in crops]
        vecs = model.compute_face_descriptor(chips, self.num_jitters)
        return np.asarray([np.asarray(v) for v in vecs], dtype=np.float32).reshape(len(chips), self.dim)

    def __repr__(self) -> str:
        return f"DlibResNetEncoder(weights={self.weights!r}, backend={self.backend!r}, num_jitters={self.num_jitters})"


@register_face_encoder("sface")
class SFaceEncoder(_WeightsFile):
    """OpenCV Zoo's SFace (MobileFaceNet-style, 128-d, Apache-2.0 weights shipped in
    ``cnnkit/assets/sface``), run in PyTorch with float32 weights de-quantised once from the int8 file
    (:mod:`cnnkit.nn.sface`). OpenCV Zoo reports 99.40% on LFW.

    Takes 112x112 RGB uint8 chips aligned by their five points onto OpenCV's template
    (:attr:`chip_template`, no padding); embeddings are L2-normalised, compared by Euclidean
    distance (OpenCV's threshold 1.128).
    """

    name = "sface"
    version = "1"
    #: chips per network pass: on one CPU thread the time per chip grows past about 8 (the
    #: 112x112 activations leave the cache; ``benchmarks/enroll_throughput.py``)
    max_batch = 8
    dim = 128
    default_threshold = 1.128
    chip_size = 112
    chip_padding = 0.0
    normalized = True
    whole_image = False
    flip = True

    def __init__(self, *, weights: str | None = None, device: str = "cpu") -> None:
        self.weights = weights
        self.device = device
        self._model: Any = None
        self._sha256: str | None = None

    @property
    def chip_template(self) -> np.ndarray:
        """The five RetinaFace-order points of the chip, on the unit square (pixels / 112)."""
        from cnnkit.nn.sface import SFACE_TEMPLATE

        return SFACE_TEMPLATE / self.chip_size

    def _weights_path(self) -> str:
        from cnnkit.nn.sface import sface_weights_path

        return self.weights or str(sface_weights_path())

    def encode(self, crops: list[np.ndarray]) -> np.ndarray:
        """Encode aligned chips.

        Args:
            crops: N chips, each uint8 of shape (112, 112, 3) RGB.

        Returns:
            embeddings, float32 of shape (N, 128), unit rows.
        """
        crops = list(crops)
        _check_crops(crops, self.chip_size)
        if not crops:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self._model is None:
            from cnnkit.nn.sface import load_sface

            self._model = load_sface(self._weights_path(), device=self.device).fold()
        emb = _run_batches(self._model, crops, self.device, self.max_batch)
        return emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)

    def __repr__(self) -> str:
        return f"SFaceEncoder(weights={self.weights!r})"


#: padding of the aligned chip for models trained on aligned faces (dlib's chip convention)
CHIP_PADDING = 0.25


class TrainedFaceEncoder:
    """A :class:`FaceEncoder` over a model directory (or ``MODEL.json`` + ``MODEL.safetensors``)
    written by ``cnnkit train``. Weights load on first use.

    A model whose config says ``input.align = false`` was trained on whole, tightly cropped photos
    (ORL-style): ``whole_image`` is then true and the pipeline feeds the whole image without
    detecting; otherwise it detects and aligns a chip of the model's input size."""

    def __init__(self, path: str | os.PathLike[str], *, device: str = "cpu") -> None:
        from cnnkit.nn.checkpoint import model_files

        self.path, self.device = Path(path), device
        _, config_file = model_files(self.path)
        self.config: dict[str, Any] = json.loads(config_file.read_text())
        self.name = str(self.config["encoder"])
        self.version = str(self.config.get("version", "0"))
        self.dim = int(self.config.get("kwargs", {}).get("embedding_dim", 128))
        metrics = self.config.get("metrics", {})
        self.default_threshold = float(metrics.get("val_threshold") or 1.0)
        size = self.config["input"]["size"]
        self.chip_size = int(max(size))
        self.chip_padding = CHIP_PADDING
        self.whole_image = not bool(self.config["input"].get("align", False))
        self.normalized = True
        self.flip = bool(self.config["input"].get("flip_tta", False))
        self._model: Any = None

    @property
    def weights_sha256(self) -> str:
        return str(self.config.get("weights_sha256", ""))

    @property
    def tag(self) -> str:
        return encoder_tag(self)

    @property
    def model(self) -> Any:
        """The network (loaded on first use, eval mode)."""
        if self._model is None:
            from cnnkit.nn.checkpoint import load_encoder

            self._model, self.config = load_encoder(self.path, device=self.device)
        return self._model

    def encode(self, crops: list[np.ndarray]) -> np.ndarray:
        """Images (whole photos or aligned chips, uint8) -> (N, D) float32, unit rows; one network
        pass per image (flip averaging is :func:`~cnnkit.faces.encoders.embed_chips`'s)."""
        from cnnkit.nn.checkpoint import encode_images

        return encode_images(self.model, self.config, crops)

    def __repr__(self) -> str:
        return f"TrainedFaceEncoder({str(self.path)!r}, tag={self.tag!r})"
