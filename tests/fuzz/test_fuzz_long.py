"""The long fuzz run of ``load_image`` (issue 14): 50,000 Hypothesis examples, only cnnkit's typed
errors may escape. Not part of the normal suite: ``python -m pytest -m fuzz tests/fuzz``
(about 10 minutes on one core). ``CNNKIT_FUZZ_EXAMPLES`` changes the count."""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, seed, settings

_spec = importlib.util.spec_from_file_location("fuzz_short", Path(__file__).parents[1] / "test_fuzz_short.py")
_short = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_short)  # the same strategy and check as the short run
check_load_image, image_bytes = _short.check_load_image, _short.image_bytes

pytestmark = pytest.mark.fuzz


@seed(2026)
@settings(max_examples=int(os.environ.get("CNNKIT_FUZZ_EXAMPLES", "50000")), deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(image_bytes())
def test_load_image_50k(data: bytes) -> None:
    check_load_image(data)
