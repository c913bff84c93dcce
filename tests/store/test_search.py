"""The low-precision first pass + exact re-rank gives exactly brute force's answer (store.search),
on random and adversarial galleries: duplicates, exact ties, near-ties one float32 step apart,
values that round badly in float16/bfloat16, mixed norms, people with many encodings."""
from __future__ import annotations

import numpy as np
import pytest

from cnnkit.core.errors import ConfigError, StoreError
from cnnkit.distances.lowp import TorchScoreKernel
from cnnkit.store.search import (
    INT8_COLUMNS,
    NumpyKernel,
    SearchIndex,
    dequantise,
    dequantise_int8,
    quantise,
    quantise_int8,
    search,
)


class Float16Kernel(TorchScoreKernel):
    """The float16 first pass for small batches (the format the search still proves and accepts)."""

    def format_for(self, batch: int) -> str:
        return "float16" if batch < self.batch_from else super().format_for(batch)


def brute(matrix: np.ndarray, pid: np.ndarray, queries: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
    """Plain scan: float64 distance of every row, a person's minimum, ranked by (distance, ordinal)."""
    ordinal = {p: i for i, p in enumerate(sorted(set(pid.tolist())))}
    out = []
    for q in queries:
        d = np.sqrt(((matrix.astype(np.float64) - q.astype(np.float64)) ** 2).sum(1))
        best: dict[int, float] = {}
        for p, di in zip(pid.tolist(), d.tolist()):
            o = ordinal[p]
            best[o] = min(best.get(o, np.inf), di)
        out.append(sorted(best.items(), key=lambda t: (t[1], t[0]))[:k])
    return out


def adversarial(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    kind = int(rng.integers(6))
    n, d = int(rng.integers(1, 120)), int(rng.choice([1, 2, 3, 8, 16, 33]))
    if kind == 0:    # small integer grid: many exact ties, duplicates
        x = rng.integers(-2, 3, (n, d)).astype(np.float32)
        q = rng.integers(-2, 3, (4, d)).astype(np.float32)
    elif kind == 1:  # duplicates of a few rows, queries on the rows
        base = rng.standard_normal((max(1, n // 8), d)).astype(np.float32)
        x = base[rng.integers(len(base), size=n)]
        q = np.concatenate([base[:2], rng.standard_normal((2, d)).astype(np.float32)])
    elif kind == 2:  # near-ties: rows one or two float32 steps apart
        b = rng.standard_normal(d).astype(np.float32)
        steps = rng.integers(-2, 3, (n, d))
        x = (b + steps * np.spacing(np.abs(b))).astype(np.float32)
        q = np.stack([b, b + np.spacing(np.abs(b)), -b, np.zeros(d, np.float32)])
    elif kind == 3:  # values on bfloat16 / float16 rounding midpoints, mixed magnitudes
        mid = np.float32(1.0 + 2.0 ** -8)
        x = (rng.choice([mid, -mid, 1.0, 2.0 ** -14, 3e-5, 100.0], (n, d))
             * rng.choice([1, -1], (n, d))).astype(np.float32)
        q = x[rng.integers(n, size=4)] + rng.choice([0.0, 2.0 ** -9], (4, d)).astype(np.float32)
    elif kind == 4:  # unit vectors as encoders give, queries perturbed copies
        x = rng.standard_normal((n, d)).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True) + 1e-12
        q = x[rng.integers(n, size=4)] + 1e-3 * rng.standard_normal((4, d)).astype(np.float32)
    else:            # mixed norms
        x = (rng.standard_normal((n, d)) * rng.choice([1e-3, 1.0, 30.0], (n, 1))).astype(np.float32)
        q = (rng.standard_normal((4, d)) * 3).astype(np.float32)
    pid = np.sort(rng.integers(1, max(2, n // int(rng.choice([1, 1, 3]))) + 1, size=n))
    return x, pid, q


@pytest.mark.parametrize("kernel, trials, formats", [
    (NumpyKernel(), 2_000, {"float32"}),
    (TorchScoreKernel(batch_from=3, batch_format="bfloat16"), 10_000, {"int8", "bfloat16"}),
    (Float16Kernel(batch_from=3, batch_format="int8"), 2_000, {"float16", "int8"}),
], ids=["float32", "lowp", "float16"])
def test_equals_brute_force_on_10000_galleries(kernel, trials, formats):
    rng = np.random.default_rng(13)
    seen = set()
    for trial in range(trials):
        x, pid, q = adversarial(rng)
        k = int(rng.integers(1, 7))
        index = SearchIndex.build(x, pid)
        batch = q[: int(rng.choice([1, 2, 4]))]  # 1-2 queries: int8 (or float16), 4: bfloat16
        seen.add(kernel.format_for(len(batch)))
        got = search(index, batch, k, kernel)
        want = brute(x, pid, batch, k)
        assert [[o for o, _ in r] for r in got] == [[o for o, _ in r] for r in want], trial
        assert [[d for _, d in r] for r in got] == [[d for _, d in r] for r in want], trial
    assert seen == formats


def test_many_blocks_and_people_with_many_faces():
    # more rows than the first blocks, people straddling block boundaries, ties across blocks
    rng = np.random.default_rng(1)
    x = rng.integers(-3, 4, (50_000, 8)).astype(np.float32)
    pid = np.sort(rng.integers(0, 9_000, 50_000))
    q = rng.integers(-3, 4, (9, 8)).astype(np.float32)
    index = SearchIndex.build(x, pid)
    kernels = [(NumpyKernel(), q), (TorchScoreKernel(), q[:1])]
    kernels += [(TorchScoreKernel(batch_format=fmt), q) for fmt in ("bfloat16", "int8")]
    for kern, batch in kernels:
        assert search(index, batch, 10, kern) == brute(x, pid, batch, 10)


def test_bfloat16_rounds_to_nearest_even():
    x = np.array([[1.0 + 2.0 ** -8, 1.0 + 3 * 2.0 ** -8, 1.0 + 2.0 ** -9, -(1.0 + 2.0 ** -8)]], np.float32)
    # halfway cases go to the even neighbour; below halfway rounds down
    assert dequantise(quantise(x, "bfloat16"), "bfloat16").tolist() == [[1.0, 1.0 + 2.0 ** -6, 1.0, -1.0]]


def test_int8_copy_holds_codes_times_a_bfloat16_scale():
    x = np.array([[1.0, -0.5, 0.25], [0.0, 0.0, 0.0], [3e-39, -1e-40, 0.0], [1e30, 2.0, -1e30]], np.float32)
    codes, scale = quantise_int8(x)
    assert codes.shape == (4, INT8_COLUMNS) and not codes[:, 3:].any()  # padded with zero codes
    s = dequantise(scale, "bfloat16").astype(np.float64)
    assert np.all(s >= np.abs(x).max(1) / 127) and np.all(s >= 2.0 ** -126)
    assert np.all(np.abs(codes) <= 127)
    assert dequantise(quantise(s.astype(np.float32)[None], "bfloat16"), "bfloat16")[0].tolist() == s.tolist()
    values = dequantise_int8(codes, scale, 3).astype(np.float64)
    assert np.all(np.abs(values - x) <= s[:, None] / 2)  # round to nearest
    assert values[0].tolist() == [codes[0, 0] * s[0], codes[0, 1] * s[0], codes[0, 2] * s[0]]


def test_int8_kernel_passes_its_own_check():
    kernel = TorchScoreKernel(batch_format="bfloat16")
    assert kernel.format_for(1) == "int8" and kernel.format_for(8) == "bfloat16"
    assert TorchScoreKernel(batch_format="int8").format_for(8) == "int8"
    with pytest.raises(ConfigError, match="batch_format"):
        TorchScoreKernel(batch_format="float16")


def test_float16_overflow_is_refused():
    with pytest.raises(StoreError, match="float16"):
        quantise(np.array([[7e4]], np.float32), "float16")


def test_empty_gallery_and_shape_errors():
    index = SearchIndex.build(np.zeros((0, 4), np.float32), np.zeros(0, np.int64))
    assert search(index, np.zeros((2, 4), np.float32), 3) == [[], []]
    index = SearchIndex.build(np.eye(4, dtype=np.float32), np.arange(4))
    with pytest.raises(StoreError, match=r"\(M, 4\)"):
        search(index, np.zeros((2, 5), np.float32), 3)
    with pytest.raises(StoreError, match="sorted by person"):
        SearchIndex.build(np.eye(2, dtype=np.float32), np.array([2, 1]))
