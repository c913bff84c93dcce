"""Encoders trained with ``cnnkit train``, usable wherever an encoder name is accepted
(``cnnkit face enroll --encoder MODEL``...).

A model whose config says ``input.align = false`` was trained on whole, tightly cropped photos
(ORL-style): the pipeline then feeds the whole image and does not detect. Otherwise the pipeline
detects and aligns a chip of the model's input size.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

#: padding of the aligned chip for models trained on aligned faces (dlib's chip convention)
CHIP_PADDING = 0.25


class TrainedFaceEncoder:
    """A :class:`~cnnkit.faces.encoders.FaceEncoder` over a model directory (or ``MODEL.json`` +
    ``MODEL.safetensors``) written by ``cnnkit train``. Weights load on first use."""

    def __init__(self, path: str | os.PathLike[str], *, device: str = "cpu") -> None:
        from cnnkit.nn.checkpoint import model_files

        self.path, self.device = Path(path), device
        _, config_file = model_files(self.path)
        import json

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
        from cnnkit.faces.encoders import encoder_tag

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
