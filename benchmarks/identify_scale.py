"""Exact top-5 identification at gallery sizes 1e3, 1e5, 1e6 (synthetic unit vectors, D=128).

Side by side in one process:
- cnnkit: ``SQLiteGallery.search`` (contiguous float32 matrix, one matrix product, k nearest people
  by their closest encoding, exact float64 distances for the k returned);
- numpy floor: one matrix product + ``argpartition`` top-5 on a prebuilt matrix (no people, no names);
- face_recognition style: ``face_distance`` (``np.linalg.norm(encodings - q, axis=1)``) over a Python
  list of per-face arrays, as its users keep their galleries, converted with ``np.array`` per query.

Usage: python benchmarks/identify_scale.py [--sizes 1000,100000,1000000] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from cnnkit.store import SQLiteGallery


def unit(rng: np.random.Generator, n: int, d: int = 128) -> np.ndarray:
    x = rng.standard_normal((n, d), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def timeit(fn, repeat: int) -> tuple[float, float]:
    """Median and p99-ish (max of repeats) wall time in ms."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return float(np.median(times)), float(np.max(times))


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build(path: Path, emb: np.ndarray) -> float:
    g = SQLiteGallery(path)
    t0 = time.perf_counter()
    # bulk load through the same table layout the gallery uses: one transaction per 10k people
    with g.atomic() as c:
        c.execute("INSERT INTO meta(key, value) VALUES ('encoder_tag', 'synthetic:1:0'), ('dim', ?)", (str(emb.shape[1]),))
    now = "2026-01-01T00:00:00+00:00"
    for start in range(0, len(emb), 10000):
        block = emb[start:start + 10000]
        with g.atomic() as c:
            c.executemany("INSERT INTO people(id, name, created_at) VALUES (?, ?, ?)",
                          ((start + i + 1, f"p{start + i:07d}", now) for i in range(len(block))))
            c.executemany("INSERT INTO faces(person_id, encoder_tag, dim, vector, created_at) VALUES (?, 'synthetic:1:0', ?, ?, ?)",
                          ((start + i + 1, emb.shape[1], v.astype("<f4").tobytes(), now) for i, v in enumerate(block)))
    g.close()
    return time.perf_counter() - t0


def bench(n: int, rng: np.random.Generator, tmp: Path) -> list[dict]:
    emb = unit(rng, n)
    queries = unit(rng, 64)
    path = tmp / f"g{n}.sqlite"
    insert_s = build(path, emb)
    g = SQLiteGallery(path)
    rss0 = rss_mb()
    t0 = time.perf_counter()
    g.search(queries[:1], k=5)  # loads the matrix once
    load_s = time.perf_counter() - t0
    rss_cnnkit = rss_mb() - rss0
    repeat = 20 if n <= 100_000 else 7
    rows = []

    # exactness check against brute force on the first queries
    res = g.search(queries[:4], k=5)
    for q, row in zip(queries[:4], res):
        d = np.sqrt(((emb.astype(np.float64) - q) ** 2).sum(1))
        want = np.argsort(d)[:5]
        assert [m.name for m in row] == [f"p{i:07d}" for i in want]
        assert np.allclose([m.distance for m in row], d[want], atol=1e-6)

    matrix = np.ascontiguousarray(emb)

    def floor(q):
        s = q @ matrix.T
        return np.argpartition(-s, 5, axis=1)[:, :5]

    as_list = [row for row in emb] if n <= 100_000 else None

    def face_distance_loop(q):
        for qi in q:
            d = np.linalg.norm(np.array(as_list) - qi, axis=1)
            np.argsort(d)[:5]

    for batch in (1, 64):
        q = queries[:batch]
        c_med, c_max = timeit(lambda: g.search(q, k=5), repeat)
        f_med, f_max = timeit(lambda: floor(q), repeat)
        row = {"gallery": n, "batch": batch, "cnnkit_ms": round(c_med, 3), "cnnkit_max_ms": round(c_max, 3),
               "cnnkit_ms_per_query": round(c_med / batch, 3), "numpy_floor_ms": round(f_med, 3),
               "ratio_to_floor": round(c_med / f_med, 2)}
        if as_list is not None and batch == 1:
            fr_med, _ = timeit(lambda: face_distance_loop(q), 3 if n > 1000 else repeat)
            row["face_distance_list_ms"] = round(fr_med, 3)
        else:
            row["face_distance_list_ms"] = None
        row.update({"insert_s": round(insert_s, 2), "matrix_load_s": round(load_s, 2),
                    "rss_added_mb": round(rss_cnnkit, 1), "matrix_mb": round(emb.nbytes / 2**20, 1),
                    "db_mb": round(sum(p.stat().st_size for p in tmp.glob(f"g{n}.sqlite*")) / 2**20, 1)})
        rows.append(row)
    g.close()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000,100000,1000000")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(s) for s in args.sizes.split(",")):
            rows += bench(n, rng, Path(tmp))
            print(f"done {n}", file=sys.stderr)
    info = {"numpy": np.__version__, "cpus": os.cpu_count(), "load": os.getloadavg()[0]}
    if args.json:
        print(json.dumps({"rows": rows, "env": info}))
        return
    cols = ["gallery", "batch", "cnnkit_ms", "cnnkit_ms_per_query", "numpy_floor_ms", "ratio_to_floor",
            "face_distance_list_ms", "matrix_load_s", "rss_added_mb", "matrix_mb", "insert_s", "db_mb"]
    print(" ".join(f"{c:>14}" for c in cols))
    for r in rows:
        print(" ".join(f"{'-' if r[c] is None else r[c]:>14}" for c in cols))
    print(f"env: {info}")


if __name__ == "__main__":
    main()
