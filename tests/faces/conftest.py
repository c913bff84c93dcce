"""Shared face-test fixtures: one pipeline per session (weights load once)."""
from __future__ import annotations

import numpy as np
import pytest
from skimage import data as skdata

from cnnkit.faces import FacePipeline


@pytest.fixture(scope="session")
def pipeline() -> FacePipeline:
    return FacePipeline(threads=2)


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    return skdata.astronaut()  # (512, 512, 3); one face, centred near (225, 120)
