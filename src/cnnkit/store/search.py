"""Exact k-nearest-people search with a low-precision first pass.

The gallery matrix X (N, D) float32 is kept beside low-precision copies X̂: float16, bfloat16 (held
as its 16 raw bits), or int8 codes times one bfloat16 scale per row (``quantise_int8``). A first
pass scores every row against the queries on a copy, which reads a half or a quarter of the bytes
(int8 for one query: a matrix-vector product is bound by the bytes it reads; bfloat16 for batches,
a matrix product on the CPU's bfloat16 units); a bound on its error says which rows can still be
among the k nearest people, and only those are re-ranked exactly. The answer is the one a
brute-force float64 scan gives, ties included.

**Exact answer (the reference).** Per row, ``d_i = sqrt(sum_j (x_ij - q_j)^2)`` in float64 on the
float32 values; a person's distance is the minimum over their rows; people are ranked by
``(distance, person ordinal)`` (ordinal = rank of the person id), the first k are the answer.

**The bound.** Let q̂, x̂ be the copies of q, x in the first pass's format, ``e_i = ||x_i - x̂_i||``
(stored per row, computed in float64, rounded up) and ``ε = ||q - q̂||``. The kernel returns
``s_i = fl(q̂ · x̂_i)``. Products of two float16 (or bfloat16) numbers are exact in float32, and so
are those of a bfloat16 query value, an int8 code and a bfloat16 scale (at most 8 + 7 + 8 significant
bits; ``core.precision``); the kernel accumulates in float32 then rounds its output to its format
(bfloat16 for int8), so with ``u_acc = D 2^-24 / (1 - D 2^-24)`` (any summation order; D + 1 for
int8, whose kernel may multiply the sum by the scale) and ``u_out`` the output's unit roundoff,
``|s_i - q̂·x̂_i| <= (u_acc + u_out + u_acc u_out) sum_j |q̂_j x̂_ij| <= ρ ||q̂|| ||x̂_i||`` by
Cauchy-Schwarz, ρ = ``kernel.roundoff(fmt)``. And

    q·x_i - q̂·x̂_i = q·(x_i - x̂_i) + (q - q̂)·x̂_i,  so  |q·x_i - q̂·x̂_i| <= ||q|| e_i + ε ||x̂_i||.

Hence ``|q·x_i - s_i| <= δ_i := ||q|| e_i + (ε + ρ ||q̂||) ||x̂_i||``. With ``h_i = ||x_i||² / 2``
and ``w_i = s_i - h_i``, ``d_i² = ||q||² + 2 h_i - 2 q·x_i`` lies in ``[L_i, U_i] = ||q||² - 2 w_i
∓ 2 δ_i``. Within a block of rows δ_i is replaced by its maximum (block maxima of e and ||x̂||),
and three small terms are added: ``τ (||q̂|| max ||x̂|| + max h)``, τ = 2^-20, which dominates the
float32 roundings of converting s and subtracting h (each at most 2^-24 of that quantity);
``2^-48 ||q||²`` for the float64 arithmetic of L and U; and half the format's smallest subnormal,
the absolute error of an output that underflows. The row test ``w_i >= (||q||² - T)/2 - δ``
(equivalent to ``L_i <= T``) is first made with ``h_min`` of the block in place of ``h_i`` and the
cut rounded down to float32, which keeps a superset, then refined in float64. float16 is used only
while ``||q||``, ``max ||x||`` and their product stay below 2^15 (no overflow), int8 while they stay
below 2^100; an int8 scale is at least 2^-126 (normal), and a float32 product or sum that underflows
errs by at most 2^-150, which ``UNDERFLOW["int8"]`` covers for every one of them.

**Why the pruning is exact.** Let U_p be the minimum of U_i over person p's rows and T the k-th
smallest U_p over the rows seen so far (infinite while fewer than k people are known; the first
blocks are small, and their best rows by score give a T at once). k people have a true distance²
of at most T, so the k-th smallest true person distance² d*_k² is at most T at every step, and T
only decreases. A row is kept when ``L_i <= T'`` at its block and again with the final T, where T'
is T widened by 2^-30 relative. A person whose true distance² is at most d*_k² (1 + 2^-30) has a
best row with ``L <= d² <= T'``: it is kept and re-ranked exactly. The float64 distances the
reference ranks by differ from the true ones by less than D 2^-52 relative, far inside the 2^-30,
so every person the reference ranks up to and including the k-th, ties at the k-th distance
included, is kept with the reference's own distance. A person whose best row was dropped has a
distance above the reference's k-th, and so have their kept rows: they rank after it. Sorting the
kept people by (distance, ordinal) therefore gives the reference's first k.

Batches of queries use one matrix product per block (``kernel.scores``). Blocks start at person
boundaries, so a person is never split between two blocks; after the first small ones they hold
``SCORES_PER_BLOCK / M`` rows for M queries (at least ``BLOCK_ROWS``), so that one query pays the
selection's fixed costs a few times, not once per 32,768 rows.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, NamedTuple, Protocol

import numpy as np

from cnnkit.core.errors import StoreError
from cnnkit.core.precision import (
    FLOAT16_SAFE,
    FORMATS,
    INT8_MIN_SCALE,
    INT8_SAFE,
    UNDERFLOW,
    product_roundoff,
)

#: relative slack covering the float32 arithmetic of the selection (see the module docstring)
SELECTION_SLACK = 2.0 ** -20
#: the fewest rows per first-pass block after the first ones
BLOCK_ROWS = 32768
#: scores per block: M queries scan SCORES_PER_BLOCK / M rows at a time (at least BLOCK_ROWS)
SCORES_PER_BLOCK = 262144
#: first blocks are smaller, so that a threshold is known before the big blocks are scanned
FIRST_BLOCKS = (2048, 8192, 32768)
#: an int8 copy's rows are padded with zero codes to a multiple of this many columns (torch's
#: kernels read 8 or 16 codes at a time and do not check D; a multiple of 32 suits both)
INT8_COLUMNS = 32


class Copy(NamedTuple):
    """A first-pass copy of the gallery matrix.

    Args:
        rows: (N, D) in the format (int8: (N, D') codes, D' = D padded to ``INT8_COLUMNS``).
        err: (N,) float64 upper bound of ``||x - x̂||``.
        norm: (N,) float64 upper bound of ``||x̂||``.
        scale: (N,) uint16, the bfloat16 bits of each row's scale (int8 only, else None).
    """

    rows: np.ndarray
    err: np.ndarray
    norm: np.ndarray
    scale: np.ndarray | None = None


def query_format(fmt: str) -> str:
    """The format the queries are rounded to for a copy in ``fmt`` (int8 copies: bfloat16)."""
    return "bfloat16" if fmt == "int8" else fmt


def quantise(x: np.ndarray, fmt: str) -> np.ndarray:
    """(N, D) float32 -> the format's array: float32 itself, float16, or bfloat16 as uint16 bits
    (round to nearest, ties to even). int8 copies: :func:`quantise_int8`."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if fmt == "float32":
        return x
    if fmt == "float16":
        with np.errstate(over="raise"):
            try:
                return x.astype(np.float16)
            except FloatingPointError as exc:
                raise StoreError("a vector has a value beyond float16's range (65504)") from exc
    if fmt == "bfloat16":
        bits = x.view(np.uint32)
        rounded = bits + (np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1)))
        return (rounded >> np.uint32(16)).astype(np.uint16)
    raise StoreError(f"unknown format {fmt!r}; known: {[f for f in FORMATS if f != 'int8']}")


def dequantise(a: np.ndarray, fmt: str) -> np.ndarray:
    """The format's array -> the float32 values it holds (exactly)."""
    if fmt == "bfloat16":
        return (a.astype(np.uint32) << np.uint32(16)).view(np.float32)
    return np.asarray(a, dtype=np.float32)


def quantise_int8(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) float32 -> ((N, D') int8 codes, (N,) uint16 bfloat16 bits of each row's scale).

    The scale is the smallest bfloat16 at or above ``max_j |x_ij| / 127`` (at least 2^-126), the
    codes ``round(x / scale)`` (to nearest, ties to even), so ``|code| <= 127``; D' is D padded with
    zero codes to a multiple of ``INT8_COLUMNS``."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    n, d = x.shape
    want = np.maximum(np.abs(x).max(1, initial=0.0).astype(np.float64) / 127.0, INT8_MIN_SCALE)
    s32 = want.astype(np.float32)
    s32 = np.where(s32.astype(np.float64) < want, np.nextafter(s32, np.float32(np.inf)), s32)
    bits = s32.view(np.uint32)
    up = (bits & np.uint32(0xFFFF)) != 0  # not a bfloat16: round up to the next one
    scale = ((bits >> np.uint32(16)) + up.astype(np.uint32)).astype(np.uint16)
    s = dequantise(scale, "bfloat16").astype(np.float64)
    codes = np.zeros((n, -(-d // INT8_COLUMNS) * INT8_COLUMNS), np.int8)
    codes[:, :d] = np.clip(np.rint(x / s[:, None]), -127, 127)
    return codes, scale


def dequantise_int8(codes: np.ndarray, scale: np.ndarray, dim: int) -> np.ndarray:
    """Codes and bfloat16 scale bits -> the (N, dim) float32 values they hold (exactly: a code times
    a scale has at most 15 significant bits)."""
    return codes[:, :dim].astype(np.float32) * dequantise(scale, "bfloat16")[:, None]


def make_copy(x: np.ndarray, fmt: str) -> Copy:
    """The copy of (N, D) float32 rows in ``fmt``, with its per-row error and norm bounds."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if fmt == "int8":
        codes, scale = quantise_int8(x)
        return Copy(codes, *quantisation_error(x, dequantise_int8(codes, scale, x.shape[1])), scale)
    c = quantise(x, fmt)
    return Copy(c, *quantisation_error(x, dequantise(c, fmt)))


def quantisation_error(x: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: ``||x - x̂||`` and ``||x̂||`` for the float32 values x̂ a copy holds, float64, rounded
    up by 2^-40 relative (float64 norms of D terms err by far less), so both are upper bounds."""
    xh = np.asarray(values, np.float64)
    err = np.sqrt(((x.astype(np.float64) - xh) ** 2).sum(1))
    norm = np.sqrt((xh * xh).sum(1))
    up = 1.0 + 2.0 ** -40
    return err * up, norm * up


class ScoreKernel(Protocol):
    """The first pass: scores of queries against a block of rows in a low-precision format."""

    def format_for(self, batch: int) -> str:
        """The format to scan in for a batch of this many queries (one of ``core.precision.FORMATS``)."""

    def roundoff(self, fmt: str, dim: int) -> float:
        """ρ: ``|scores - q̂·x̂| <= ρ ||q̂|| ||x̂||`` for every entry (see the module docstring)."""

    def scores(self, queries: np.ndarray, rows: np.ndarray, fmt: str,
               scale: np.ndarray | None = None) -> np.ndarray:
        """(M, D) queries in ``query_format(fmt)`` and (B, D) rows in ``fmt`` -> (M, B) float32
        inner products; int8 rows are (B, D') codes with ``scale`` (B,) their bfloat16 bits."""


class NumpyKernel:
    """The default first pass: float32 BLAS on the float32 matrix itself (then only float32
    rounding is bounded, and the re-rank touches a handful of rows)."""

    def format_for(self, batch: int) -> str:
        return "float32"

    def roundoff(self, fmt: str, dim: int) -> float:
        return product_roundoff(fmt, dim)

    def scores(self, queries: np.ndarray, rows: np.ndarray, fmt: str,
               scale: np.ndarray | None = None) -> np.ndarray:
        return queries @ rows.T


@dataclass
class SearchIndex:
    """What a search reads: the float32 matrix, per-row facts and the low-precision copies.

    Args:
        matrix: (N, D) float32, rows grouped by person (``owners`` ascending).
        owners: (N,) int64 person ordinal of each row.
        person_ids: (P,) int64 the gallery's id of each ordinal, ascending.
        half_sq: (N,) float64 ``||x||² / 2``.
        copies: format -> :class:`Copy`; missing formats are built on demand.
        row_reader: reads float32 rows by index for the re-rank; default: indexing ``matrix``.
            A memory-mapped matrix passes one that reads the file, so that the few rows re-ranked
            are not mapped into the process with the pages around them.
    """

    matrix: np.ndarray
    owners: np.ndarray
    person_ids: np.ndarray
    half_sq: np.ndarray
    copies: dict[str, Copy] = field(default_factory=dict)
    row_reader: Callable[[np.ndarray], np.ndarray] | None = None
    _stats: dict = field(default_factory=dict, repr=False)

    def rows(self, idx: np.ndarray) -> np.ndarray:
        """(len(idx), D) float32 rows of the matrix."""
        return self.row_reader(idx) if self.row_reader is not None else self.matrix[idx]

    @classmethod
    def build(cls, matrix: np.ndarray, person_of_row: np.ndarray) -> "SearchIndex":
        """From (N, D) float32 rows and their person ids (rows must be grouped by person)."""
        matrix = np.ascontiguousarray(matrix, dtype=np.float32)
        pid = np.asarray(person_of_row, dtype=np.int64)
        if len(pid) and np.any(pid[1:] < pid[:-1]):
            raise StoreError("rows must be sorted by person id")
        person_ids, owners = np.unique(pid, return_inverse=True)
        m64 = matrix.astype(np.float64)
        return cls(matrix, owners.astype(np.int64), person_ids, 0.5 * (m64 * m64).sum(1))

    def __len__(self) -> int:
        return len(self.matrix)

    def copy(self, fmt: str) -> Copy:
        if fmt not in self.copies:
            if fmt == "float32":
                z = np.zeros(len(self.matrix))
                self.copies[fmt] = Copy(self.matrix, z, np.sqrt(2.0 * self.half_sq) * (1.0 + 2.0 ** -40))
            else:
                self.copies[fmt] = make_copy(self.matrix, fmt)
        return self.copies[fmt]

    def blocks(self, rows: int = BLOCK_ROWS) -> list[tuple[int, int]]:
        """Row ranges of the first pass, each starting at a person boundary: ``FIRST_BLOCKS``, then
        ``rows`` rows at a time."""
        key = f"blocks:{rows}"
        if key not in self._stats:
            self._stats[key] = self._blocks(rows)
        return self._stats[key]

    def block_stats(self, fmt: str, rows: int = BLOCK_ROWS) -> list[tuple[float, float, float, float]]:
        """Per block of :meth:`blocks`: max ``||x - x̂||``, max ``||x̂||``, min and max of ``||x||² / 2``."""
        key = f"stats:{fmt}:{rows}"
        if key not in self._stats:
            _, err, norm, _ = self.copy(fmt)
            self._stats[key] = [(float(err[s:e].max()), float(norm[s:e].max()), float(self.half_sq[s:e].min()),
                                 float(self.half_sq[s:e].max())) for s, e in self.blocks(rows)]
        return self._stats[key]

    @property
    def max_norm(self) -> float:
        if "max_norm" not in self._stats:
            self._stats["max_norm"] = float(np.sqrt(2.0 * self.half_sq.max())) if len(self) else 0.0
        return self._stats["max_norm"]

    def _blocks(self, rows: int) -> list[tuple[int, int]]:
        n, out, start = len(self.matrix), [], 0
        sizes = list(FIRST_BLOCKS)
        while start < n:
            want = sizes.pop(0) if sizes else rows
            end = min(n, start + want)
            while end < n and self.owners[end] == self.owners[end - 1]:
                end += 1
            out.append((start, end))
            start = end
        return out


def exact_row_distances(queries: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The reference distance: float64 ``sqrt(sum((x - q)^2))`` of (M, D) queries to their (M, D) rows."""
    diff = rows.astype(np.float64) - queries.astype(np.float64)
    return np.sqrt((diff * diff).sum(-1))


def _kth_distinct(q_idx: np.ndarray, owner: np.ndarray, upper: np.ndarray, m: int, k: int) -> np.ndarray:
    """Per query, the k-th smallest per-person minimum of ``upper`` (inf with fewer than k people)."""
    out = np.full(m, np.inf)
    if len(q_idx) == 0:
        return out
    order = np.lexsort((upper, owner, q_idx))
    qs, os_, us = q_idx[order], owner[order], upper[order]
    first = np.r_[True, (qs[1:] != qs[:-1]) | (os_[1:] != os_[:-1])]
    qs, us = qs[first], us[first]
    order = np.lexsort((us, qs))
    qs, us = qs[order], us[order]
    starts = np.flatnonzero(np.r_[True, qs[1:] != qs[:-1]])
    rank = np.arange(len(qs)) - np.repeat(starts, np.diff(np.r_[starts, len(qs)]))
    hit = rank == k - 1
    out[qs[hit]] = us[hit]
    return out


def search(index: SearchIndex, queries: np.ndarray, k: int,
           kernel: ScoreKernel | None = None) -> list[list[tuple[int, float]]]:
    """The k nearest people of each query, exactly as brute force ranks them.

    Args:
        index: the gallery's :class:`SearchIndex`.
        queries: (M, D) float32.
        k: people per query.
        kernel: the first pass; default :class:`NumpyKernel` (float32).

    Returns:
        per query, up to k ``(person ordinal, distance)`` pairs, nearest first.
    """
    kernel = kernel if kernel is not None else NumpyKernel()
    q = np.ascontiguousarray(queries, dtype=np.float32)
    m = len(q)
    n = len(index)
    if n == 0 or m == 0 or k <= 0:
        return [[] for _ in range(m)]
    if q.ndim != 2 or q.shape[1] != index.matrix.shape[1]:
        raise StoreError(f"queries must have shape (M, {index.matrix.shape[1]}), got {q.shape}")
    dim = q.shape[1]
    fmt = kernel.format_for(m)
    q_max = float(np.sqrt((q.astype(np.float64) ** 2).sum(1)).max())
    x_max = index.max_norm
    safe = {"float16": FLOAT16_SAFE, "int8": INT8_SAFE}.get(fmt, np.inf)
    if max(q_max, x_max, q_max * x_max) >= safe:
        fmt = "float32"  # products or values could overflow the format
    copy = index.copy(fmt)
    qq = quantise(q, query_format(fmt))
    q64 = q.astype(np.float64)
    qh = dequantise(qq, query_format(fmt)).astype(np.float64)
    q_norm = np.sqrt((q64 * q64).sum(1)) * (1.0 + 2.0 ** -40)
    q_sq = (q64 * q64).sum(1)
    eps = np.sqrt(((q64 - qh) ** 2).sum(1)) * (1.0 + 2.0 ** -40)
    qh_norm = np.sqrt((qh * qh).sum(1)) * (1.0 + 2.0 ** -40)
    rho = kernel.roundoff(fmt, dim)

    thr = np.full(m, np.inf)  # T per query (squared distance)
    cand_q, cand_r = np.zeros(0, np.int64), np.zeros(0, np.int64)
    cand_lo, cand_hi = np.zeros(0), np.zeros(0)
    block_rows = max(BLOCK_ROWS, SCORES_PER_BLOCK // m)
    for (s, e), (e_max, n_max, h_min, h_max) in zip(index.blocks(block_rows), index.block_stats(fmt, block_rows)):
        h_blk = index.half_sq[s:e]
        delta = (q_norm * e_max + (eps + rho * qh_norm) * n_max
                 + SELECTION_SLACK * (qh_norm * n_max + h_max) + 2.0 ** -48 * q_sq + UNDERFLOW[fmt])
        scores = kernel.scores(qq, copy.rows[s:e], fmt, None if copy.scale is None else copy.scale[s:e])
        open_ = np.flatnonzero(~np.isfinite(thr))
        if len(open_):
            # no threshold yet: the best rows of this block give one (any k people bound d*_k)
            top = min(e - s, 4 * k)
            ri = np.argpartition(-scores[open_], top - 1, axis=1)[:, :top] if top < e - s else \
                np.broadcast_to(np.arange(e - s), (len(open_), e - s))
            qi = np.repeat(open_, ri.shape[1])
            ri = ri.reshape(-1)
            hi = q_sq[qi] - 2.0 * (scores[qi, ri].astype(np.float64) - h_blk[ri]) + 2.0 * delta[qi]
            thr = np.minimum(thr, _kth_distinct(qi, index.owners[ri + s], hi, m, k))
        # kept when L = |q|² - 2(s - h) - 2δ <= T, i.e. s - h >= (|q|² - T)/2 - δ =: cut. Since
        # h >= h_min, s >= cut + h_min keeps a superset (the same set when all norms are equal);
        # the cut is rounded down to float32 so that the comparison keeps at least that set.
        cut = (q_sq - _widen(thr)) / 2.0 - delta + h_min
        cut32 = np.nextafter(cut.astype(np.float32), np.float32(-np.inf))
        cut32[~np.isfinite(thr)] = -np.inf  # still no threshold (fewer than k people so far)
        qi, ri = np.divmod(np.flatnonzero(scores >= cut32[:, None]), e - s)  # one pass, not nonzero's two
        base = q_sq[qi] - 2.0 * (scores[qi, ri].astype(np.float64) - h_blk[ri])
        cand_q = np.concatenate([cand_q, qi])
        cand_r = np.concatenate([cand_r, ri + s])
        cand_lo = np.concatenate([cand_lo, base - 2.0 * delta[qi]])
        cand_hi = np.concatenate([cand_hi, base + 2.0 * delta[qi]])
        thr = np.minimum(thr, _kth_distinct(cand_q, index.owners[cand_r], cand_hi, m, k))
        keep = cand_lo <= _widen(thr)[cand_q]
        cand_q, cand_r, cand_lo, cand_hi = cand_q[keep], cand_r[keep], cand_lo[keep], cand_hi[keep]

    dist = exact_row_distances(q[cand_q], index.rows(cand_r))
    owner = index.owners[cand_r]
    # per (query, person): the minimum exact distance; then rank by (distance, ordinal)
    order = np.lexsort((dist, owner, cand_q))
    qs, os_, ds = cand_q[order], owner[order], dist[order]
    first = np.r_[True, (qs[1:] != qs[:-1]) | (os_[1:] != os_[:-1])] if len(qs) else np.zeros(0, bool)
    qs, os_, ds = qs[first], os_[first], ds[first]
    order = np.lexsort((os_, ds, qs))
    qs, os_, ds = qs[order], os_[order], ds[order]
    out: list[list[tuple[int, float]]] = [[] for _ in range(m)]
    for qi_, o, d in zip(qs.tolist(), os_.tolist(), ds.tolist()):
        if len(out[qi_]) < k:
            out[qi_].append((o, d))
    return out


def _widen(thr: np.ndarray) -> np.ndarray:
    """T widened by 2^-30 of its size: keeps near-ties whose float64 square roots are equal."""
    return thr + np.abs(thr) * 2.0 ** -30
