"""Exact top-5 identification at gallery sizes 1e3, 1e5, 1e6 (synthetic unit vectors, D=128).

Side by side in one process, torch and BLAS both on one thread (the table's last line says so):
- cnnkit: ``SQLiteGallery.search`` with ``TorchScoreKernel``, as the CLI opens it: an int8 (one
  query) or bfloat16 (batch) first pass, then an exact float64 re-rank of every row whose distance
  lower bound can still enter the top 5 (``store.search``);
- numpy floor: one matrix product + ``argpartition`` top-5 on a prebuilt matrix (no people, no names);
- face_recognition style: ``face_distance`` (``np.linalg.norm(embeddings - q, axis=1)``) over a Python
  list of per-face arrays, as its users keep their galleries, converted with ``np.array`` per query.

Timing: one untimed call of each, then ``repeats`` rounds that call cnnkit and the floor in turn (so
both see the same load), the median of each (``cnnkit_max_ms``: the slowest round).

``identical_to_exact``: every query's 5 names and distances equal a float64 brute-force scan's
(ranked by distance, then person id). ``open_s``: a fresh process opens the gallery (its sidecar
current) and answers one query, what a CLI call pays; ``rss_added_mb``: that process's peak RSS,
after also a batch of 64, above itself before opening. ``first_open_s`` / ``first_open_rss_added_mb``:
the same when the sidecar must first be built from the database.

Usage: python benchmarks/identify_scale.py [--sizes 1000,100000,1000000] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# "one thread" for both sides: BLAS reads these when numpy is first imported, so they are set before it
# (an explicit environment wins); torch is set to one thread in main()
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from cnnkit.distances.lowp import TorchScoreKernel  # noqa: E402
from cnnkit.store import SQLiteGallery  # noqa: E402


def unit(rng: np.random.Generator, n: int, d: int = 128) -> np.ndarray:
    x = rng.standard_normal((n, d), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def timeit(fn, repeat: int) -> tuple[float, float]:
    """Median and p99-ish (max of repeats) wall time in ms (no warm-up)."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return float(np.median(times)), float(np.max(times))


def interleaved(fns: list, repeat: int) -> list[tuple[float, float]]:
    """Per function, median and max wall time in ms: one untimed warm-up call of each, then
    ``repeat`` rounds calling each in turn, so that all see the same load."""
    for fn in fns:
        fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeat):
        for fn, out in zip(fns, times):
            t0 = time.perf_counter()
            fn()
            out.append((time.perf_counter() - t0) * 1000)
    return [(float(np.median(t)), float(np.max(t))) for t in times]


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


def exact_top(emb: np.ndarray, queries: np.ndarray, k: int = 5) -> list[list[tuple[str, float]]]:
    """Brute force in float64, one person per row: (name, distance) ranked by (distance, person id)."""
    out = []
    for q in queries.astype(np.float64):
        d = np.concatenate([np.sqrt(((emb[i:i + 65536].astype(np.float64) - q) ** 2).sum(1))
                            for i in range(0, len(emb), 65536)])
        top = np.lexsort((np.arange(len(d)), d))[:k]
        out.append([(f"p{i:07d}", float(d[i])) for i in top])
    return out


def open_in_child(path: Path) -> dict:
    """In a fresh process: open the gallery and answer one query (``open_s``, what a CLI call pays),
    then a batch of 64; ``rss_added_mb`` is the peak RSS (VmHWM) above the process before opening."""
    code = (
        "import json, time, numpy as np, torch\n"
        "torch.set_num_threads(1)\n"
        "from cnnkit.distances.lowp import TorchScoreKernel\n"
        "from cnnkit.store import SQLiteGallery\n"
        "def vm(key):\n"
        "    return int(next(l for l in open('/proc/self/status') if l.startswith(key)).split()[1]) / 1024\n"
        "kern = TorchScoreKernel(); kern.format_for(1); kern.format_for(64)\n"
        "q = np.random.default_rng(1).standard_normal((64, 128)).astype(np.float32)\n"
        "q /= np.linalg.norm(q, axis=1, keepdims=True)\n"
        "rss0 = vm('VmRSS')\n"
        "t0 = time.perf_counter()\n"
        f"g = SQLiteGallery({str(path)!r}, kernel=kern); g.search(q[:1], k=5)\n"
        "t = time.perf_counter() - t0\n"
        "g.search(q, k=5)\n"
        "print(json.dumps({'open_s': t, 'rss_added_mb': vm('VmHWM') - rss0}))\n"
    )
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def bench(n: int, rng: np.random.Generator, tmp: Path) -> list[dict]:
    emb = unit(rng, n)
    queries = unit(rng, 64)
    path = tmp / f"g{n}.sqlite"
    insert_s = build(path, emb)
    opened = open_in_child(path)          # first open of a fresh gallery
    reopened = open_in_child(path)        # a later CLI call
    g = SQLiteGallery(path, kernel=TorchScoreKernel())
    rows = []
    matrix = np.ascontiguousarray(emb)
    reference = exact_top(matrix, queries)

    def floor(q):
        s = q @ matrix.T
        return np.argpartition(-s, 5, axis=1)[:, :5]

    def face_distance_loop(q):
        for qi in q:
            d = np.linalg.norm(np.array(as_list) - qi, axis=1)
            np.argsort(d)[:5]

    as_list = [row for row in emb]
    for batch in (1, 64):
        q = queries[:batch]
        got = [[(m.name, m.distance) for m in r] for r in g.search(q, k=5)]
        identical = got == reference[:batch]
        repeat = 20 if n <= 100_000 else 15 if batch == 1 else 5
        (c_med, c_max), (f_med, _) = interleaved([lambda: g.search(q, k=5), lambda: floor(q)], repeat)
        row = {"gallery": n, "batch": batch, "cnnkit_ms": round(c_med, 3), "cnnkit_max_ms": round(c_max, 3),
               "cnnkit_ms_per_query": round(c_med / batch, 3), "numpy_floor_ms": round(f_med, 3),
               "ratio_to_floor": round(c_med / f_med, 2), "identical_to_exact": identical, "repeats": repeat}
        if batch == 1:
            fr_med, _ = timeit(lambda: face_distance_loop(q), 1 if n > 100_000 else 3 if n > 1000 else repeat)
            row["face_distance_list_ms"] = round(fr_med, 3)
        else:
            row["face_distance_list_ms"] = None
        row.update({"insert_s": round(insert_s, 2), "first_open_s": round(opened["open_s"], 2),
                    "first_open_rss_added_mb": round(opened["rss_added_mb"], 1),
                    "open_s": round(reopened["open_s"], 3), "matrix_load_s": round(reopened["open_s"], 3),
                    "rss_added_mb": round(reopened["rss_added_mb"], 1), "matrix_mb": round(emb.nbytes / 2**20, 1),
                    "db_mb": round(sum(p.stat().st_size for p in tmp.glob(f"g{n}.sqlite*")) / 2**20, 1)})
        rows.append(row)
    g.close()
    return rows


def _cell(v: object) -> str:
    return "-" if v is None else ("yes" if v else "no") if isinstance(v, bool) else str(v)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000,100000,1000000")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    load_start = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(s) for s in args.sizes.split(",")):
            rows += bench(n, rng, Path(tmp))
            print(f"done {n}", file=sys.stderr)
    info = {"numpy": np.__version__, "torch": torch.__version__, "cpus": os.cpu_count(),
            "load_start": load_start, "load": os.getloadavg(), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
            "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS"), "torch_threads": torch.get_num_threads()}
    if args.json:
        print(json.dumps({"rows": rows, "env": info}))
        return
    cols = ["gallery", "batch", "cnnkit_ms", "cnnkit_ms_per_query", "numpy_floor_ms", "ratio_to_floor",
            "identical_to_exact", "face_distance_list_ms", "first_open_s", "first_open_rss_added_mb", "open_s",
            "rss_added_mb", "matrix_mb",
            "insert_s", "db_mb"]
    print(" ".join(f"{c:>14}" for c in cols))
    for r in rows:
        print(" ".join(f"{_cell(r[c]):>14}" for c in cols))
    print(f"threads: BLAS {info['OPENBLAS_NUM_THREADS']}, torch {info['torch_threads']}, for cnnkit and the floor alike")
    print(f"env: {info}")


if __name__ == "__main__":
    main()
