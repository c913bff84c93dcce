"""Open-set DIR at FPIR against a brute-force sweep over thresholds."""
from __future__ import annotations

import numpy as np
import pytest

from cnnkit.eval.identification import dir_at_fpir


def _brute(md, ok, nd, fpir):
    best = 0.0
    for t in np.r_[-np.inf, np.sort(np.r_[md, nd])]:
        if np.mean(nd <= t) <= fpir:
            best = max(best, float(np.mean(ok & (md <= t))))
    return best


@pytest.mark.parametrize("fpir", [0.0, 0.01, 0.1, 0.5, 1.0])
def test_dir_at_fpir_matches_a_threshold_sweep(fpir):
    rng = np.random.default_rng(3)
    md, nd = rng.uniform(0, 1, 200), rng.uniform(0.3, 1.3, 150)
    ok = rng.uniform(size=200) < 0.9
    assert dir_at_fpir(md, ok, nd, fpir) == pytest.approx(_brute(md, ok, nd, fpir))


def test_missed_probes_never_count():
    assert dir_at_fpir([0.1, np.inf], [True, True], [0.5], 0.0) == 0.5
