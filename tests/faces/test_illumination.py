"""Illumination normalisation (CLAHE, gamma) and the pipeline's detection retry on an enhanced copy."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnkit.core.errors import UnknownNameError
from cnnkit.faces import FacePipeline
from cnnkit.faces.illumination import auto_gamma, clahe, enhance

ORL = Path(__file__).resolve().parents[2] / "data" / "orl"


def _dark() -> np.ndarray:
    return (np.asarray(Image.open(ORL / "s1" / "1.pgm")) * 0.15).astype(np.uint8)


def test_clahe_stretches_a_dark_face_like_skimage() -> None:
    from skimage import exposure

    dark = _dark()
    out = clahe(dark)
    assert out.shape == (*dark.shape, 3) and out.dtype == np.uint8
    assert out[..., 0].std() > 1.4 * dark.std() and out.mean() > dark.mean()
    ref = exposure.equalize_adapthist(dark, clip_limit=0.01)
    assert np.corrcoef(ref.ravel(), out[..., 0].ravel())[0, 1] > 0.85


def test_clahe_keeps_a_flat_image_flat_and_grey_grey() -> None:
    flat = clahe(np.full((40, 50), 90, np.uint8))
    assert np.unique(flat).size == 1
    rgb = clahe(np.stack([_dark()] * 3, -1))
    assert (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()


def test_auto_gamma_brings_the_mean_to_the_middle() -> None:
    assert auto_gamma(_dark()).mean() == pytest.approx(127, abs=25)


def test_unknown_enhancement() -> None:
    with pytest.raises(UnknownNameError, match="clahe"):
        enhance(_dark(), "retinex")
    with pytest.raises(UnknownNameError):
        FacePipeline(retry_enhance="retinex")


def test_retry_runs_only_when_no_face_is_found(astronaut) -> None:
    calls = []

    class Counting:
        def __init__(self, inner):
            self.inner, self.config, self.name, self.tag = inner, inner.config, inner.name, inner.tag

        def detect(self, image):
            calls.append(float(np.asarray(image).mean()))
            return self.inner.detect(image)

    pipe = FacePipeline(retry_enhance="gamma", threads=1)
    pipe.detector = Counting(pipe.detector)
    assert len(pipe.detect(astronaut)) == 1 and len(calls) == 1  # found: no second pass
    calls.clear()
    black = np.zeros((200, 200, 3), np.uint8)
    assert pipe.detect(black) == [] and len(calls) == 2  # none found: one retry on the enhanced copy


def test_retry_key_reuses_encodings_with_a_face() -> None:
    on, off = FacePipeline(threads=1), FacePipeline(retry_enhance="none", threads=1)
    assert on.config_key != off.config_key
    assert on.config_key_without_retry == off.config_key
