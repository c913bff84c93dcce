"""The memory estimate: monotone in size and history, counts kept conv outputs, fits budgets."""
from __future__ import annotations

import pytest

from cnnkit.core.errors import CnnkitError
from cnnkit.style.memory import estimate_bytes, lbfgs_history_for_budget, parse_bytes


def test_estimate_grows_with_size_history_and_requested_layers():
    small = estimate_bytes(256, 256, last_layer="conv5_1")
    assert estimate_bytes(512, 512, last_layer="conv5_1") > small
    assert estimate_bytes(256, 256, last_layer="conv5_1", history_size=10) < small
    assert estimate_bytes(256, 256, last_layer="conv5_1", requested=["conv1_1"]) - small == 64 * 256 * 256 * 4
    # the history term: 2 vectors per entry, each 3 x 256 x 256 float32
    diff = small - estimate_bytes(256, 256, last_layer="conv5_1", history_size=99)
    assert diff == 2 * 3 * 256 * 256 * 4


def test_history_shrinks_to_fit_budget():
    full = estimate_bytes(1024, 1024, last_layer="conv5_1")
    hist = lbfgs_history_for_budget(1024, 1024, last_layer="conv5_1", budget=full - 2**28)
    assert hist is not None and 5 <= hist < 100
    assert estimate_bytes(1024, 1024, last_layer="conv5_1", history_size=hist) <= full - 2**28
    assert lbfgs_history_for_budget(1024, 1024, last_layer="conv5_1", budget=2**20) is None


def test_parse_bytes():
    assert parse_bytes("8G") == 8 * 2**30 and parse_bytes("512MiB") == 512 * 2**20 and parse_bytes("1000") == 1000
    with pytest.raises(CnnkitError, match="cannot read memory size"):
        parse_bytes("lots")
