"""Gallery backends side by side: SQLite (exact, numpy) and PostgreSQL + pgvector (exact scan and HNSW).

For each size N: N synthetic unit vectors (D=128, one face per person), inserted through each
backend's write path (SQLite: ``add_faces`` per person, one transaction each; PostgreSQL: ``add_batch``
= COPY in batches, and ``add_faces`` per person on a sample); single-query latency p50/p99 of exact
search on both and of HNSW search at several ``ef_search``; HNSW recall@10 (people) against exact
numpy ground truth; client RSS, server RSS and on-disk size.

Two kinds of synthetic data (``--data``): ``uniform`` on the sphere, and ``aniso`` (low intrinsic
dimension, closer to real embeddings). Queries are enrolled vectors plus noise (a second photo of an enrolled person: distance ~0.5).

    python benchmarks/gallery_backends.py --sizes 100000 1000000 [--data uniform aniso] [--json] [--pg-url URL]

Without ``--pg-url`` a PostgreSQL 16 server is started through pgserver in a temporary directory.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import psutil
import psycopg

from cnnkit.store import SQLiteGallery
from cnnkit.store.pgvector import PgVectorGallery


def unit(rng: np.random.Generator, n: int, d: int, kind: str = "uniform") -> np.ndarray:
    """n unit vectors. ``uniform``: isotropic Gaussian, normalised (uniform on the sphere: the worst
    case for any ANN index, every non-neighbour at ~sqrt(2)). ``aniso``: per-dimension standard
    deviation 1/sqrt(i+1) before normalising (participation ratio ~18 of 128 dimensions), a stand-in
    for the low intrinsic dimension of real face embeddings."""
    x = np.empty((n, d), dtype=np.float32)
    scale = (1.0 / np.sqrt(np.arange(1, d + 1))).astype(np.float32) if kind == "aniso" else None
    for s in range(0, n, 100_000):
        block = rng.standard_normal((min(100_000, n - s), d), dtype=np.float32)
        if scale is not None:
            block *= scale
        x[s:s + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return x


def pct(lat: list[float]) -> dict[str, float]:
    a = np.asarray(lat) * 1000
    return {"p50_ms": round(float(np.percentile(a, 50)), 3), "p99_ms": round(float(np.percentile(a, 99)), 3)}


def ground_truth(x: np.ndarray, queries: np.ndarray, k: int, chunk: int = 100_000) -> list[set[str]]:
    """Exact top-k names per query. Unit vectors: nearest = largest dot product; in row chunks."""
    best_ids = np.empty((len(queries), 0), dtype=np.int64)
    best_dot = np.empty((len(queries), 0), dtype=np.float32)
    for s in range(0, len(x), chunk):
        dots = np.concatenate([best_dot, queries @ x[s:s + chunk].T], axis=1)
        ids = np.concatenate([best_ids, np.broadcast_to(np.arange(s, s + len(x[s:s + chunk])), (len(queries), len(x[s:s + chunk])))], axis=1)
        top = np.argpartition(-dots, k - 1, axis=1)[:, :k]
        best_dot, best_ids = np.take_along_axis(dots, top, 1), np.take_along_axis(ids, top, 1)
    return [{f"p{i:07d}" for i in row} for row in best_ids]


def recall(results: list[list], truth: list[set[str]]) -> float:
    return float(np.mean([len({m.name for m in r} & t) / len(t) for r, t in zip(results, truth)]))


def timed_queries(fn, queries: np.ndarray, backend_pid: int | None = None) -> tuple[list, list[float], float]:
    """Results, wall-clock latencies, and mean CPU seconds per query (this process plus the
    PostgreSQL backend serving it, parallel workers not counted): on a loaded machine the CPU
    time is the better estimate of the latency the same query has on an idle core."""
    backend = psutil.Process(backend_pid) if backend_pid else None

    def cpu() -> float:
        t = time.process_time()
        if backend is not None:
            c = backend.cpu_times()
            t += c.user + c.system
        return t

    res, lat = [], []
    c0 = cpu()
    for q in queries:
        t = time.perf_counter()
        res.append(fn(q)[0])
        lat.append(time.perf_counter() - t)
    return res, lat, (cpu() - c0) / max(1, len(queries))


def server_rss(pg: PgVectorGallery) -> int:
    pid = pg.conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    try:
        postmaster = psutil.Process(pid).parent()
        procs = [postmaster, *postmaster.children()]
        return int(sum(p.memory_info().rss for p in procs))
    except psutil.Error:
        return -1


def run_size(n: int, kind: str, args: argparse.Namespace, pg_url: str, workdir: Path, log) -> dict:
    rng = np.random.default_rng(n)
    d, k = args.dim, 10
    x = unit(rng, n, d, kind)
    log = (lambda f: lambda msg: f(f"{kind} {msg}"))(log)
    names = [f"p{i:07d}" for i in range(n)]
    picks = rng.choice(n, size=args.queries, replace=False)
    queries = x[picks] + rng.standard_normal((args.queries, d), dtype=np.float32) * (0.5 / np.sqrt(d))
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    truth = ground_truth(x, queries, k)
    row: dict = {"n": n, "dim": d, "data": kind}

    if "sqlite" in args.backends:
        run_sqlite(row, n, x, names, queries, truth, workdir, k, log)
    if "pg" in args.backends:
        run_pg(row, n, x, names, queries, truth, args, pg_url, k, kind, log)
    return row


def run_sqlite(row: dict, n: int, x: np.ndarray, names: list[str], queries: np.ndarray,
               truth: list[set[str]], workdir: Path, k: int, log) -> None:
    path = workdir / f"g{n}.sqlite"
    sq = SQLiteGallery(path)
    t = time.perf_counter()
    for i in range(n):
        sq.add_faces(names[i], x[i:i + 1], tag="bench")
    row["sqlite_insert_per_s"] = round(n / (time.perf_counter() - t))
    log(f"[{n}] sqlite insert {row['sqlite_insert_per_s']}/s")
    rss0 = psutil.Process().memory_info().rss
    t = time.perf_counter()
    sq.search(queries[:1], k=k)
    row["sqlite_first_search_s"] = round(time.perf_counter() - t, 2)  # loads the matrix
    res, lat, cpu = timed_queries(lambda q: sq.search(q, k=k), queries)
    row["sqlite_exact"] = {**pct(lat), "recall@10": round(recall(res, truth), 4), "cpu_ms": round(cpu * 1000, 3)}
    row["sqlite_client_rss_delta_mb"] = round((psutil.Process().memory_info().rss - rss0) / 2**20)
    row["sqlite_disk_mb"] = round(sum(p.stat().st_size for p in workdir.glob(f"g{n}.sqlite*")) / 2**20, 1)
    sq.close()
    path.unlink(missing_ok=True)
    log(f"[{n}] sqlite exact {row['sqlite_exact']}")


def run_pg(row: dict, n: int, x: np.ndarray, names: list[str], queries: np.ndarray, truth: list[set[str]],
           args: argparse.Namespace, pg_url: str, k: int, kind: str, log) -> None:
    schema = f"bench_{kind}_{n}"
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    pg = PgVectorGallery(pg_url, schema=schema)
    sample = min(args.single_sample, n)
    t = time.perf_counter()
    for i in range(sample):
        pg.add_faces(names[i], x[i:i + 1], tag="bench")
    row["pg_add_faces_per_s"] = round(sample / (time.perf_counter() - t))
    t = time.perf_counter()
    for s in range(sample, n, args.batch):
        pg.add_batch(names[s:s + args.batch], x[s:s + args.batch], tag="bench")
    row["pg_copy_insert_per_s"] = round((n - sample) / (time.perf_counter() - t))
    log(f"[{n}] pg add_faces {row['pg_add_faces_per_s']}/s, COPY batches {row['pg_copy_insert_per_s']}/s")
    pg.conn.execute(f'VACUUM ANALYZE "{schema}".faces')
    nq = min(args.exact_queries, len(queries))
    pid = pg.conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    res, lat, cpu = timed_queries(lambda q: pg.search(q, k=k, exact=True), queries[:nq], pid)
    row["pg_exact"] = {**pct(lat), "recall@10": round(recall(res, truth[:nq]), 4), "queries": nq,
                       "cpu_ms": round(cpu * 1000, 3)}
    log(f"[{n}] pg exact {row['pg_exact']}")
    row["pg_disk_mb_before_index"] = round(pg.disk_bytes()["total"] / 2**20, 1)
    t = time.perf_counter()
    pg.create_index("hnsw", m=args.m, ef_construction=args.ef_construction, maintenance_work_mem=args.maintenance_work_mem)
    row["pg_hnsw_params"] = f"m={args.m},ef_construction={args.ef_construction}"
    row["pg_hnsw_build_s"] = round(time.perf_counter() - t, 1)
    log(f"[{n}] pg HNSW build {row['pg_hnsw_build_s']} s")
    for ef in args.ef_search:
        pg.search(queries[0], k=k, ef_search=ef)  # warm
        res, lat, cpu = timed_queries(lambda q: pg.search(q, k=k, ef_search=ef), queries, pid)
        row[f"pg_hnsw_ef{ef}"] = {**pct(lat), "recall@10": round(recall(res, truth), 4), "cpu_ms": round(cpu * 1000, 3)}
        log(f"[{n}] pg hnsw ef_search={ef} {row[f'pg_hnsw_ef{ef}']}")
    sizes = pg.disk_bytes()
    row["pg_disk_mb"] = round(sizes["total"] / 2**20, 1)
    row["pg_index_mb"] = round(sizes["faces_indexes"] / 2**20, 1)
    row["pg_server_rss_mb"] = round(server_rss(pg) / 2**20)
    row["pg_shared_buffers"] = pg.conn.execute("SHOW shared_buffers").fetchone()[0]
    pg.conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    pg.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--data", nargs="+", default=["uniform", "aniso"], choices=["uniform", "aniso"],
                    help="synthetic data kinds, each run at every size (see unit())")
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--exact-queries", type=int, default=50, help="exact PostgreSQL scans timed (slow at 1e6)")
    ap.add_argument("--ef-search", type=int, nargs="+", default=[40, 100, 200, 400])
    ap.add_argument("--batch", type=int, default=10_000)
    ap.add_argument("--single-sample", type=int, default=1000, help="faces inserted one transaction each")
    ap.add_argument("--maintenance-work-mem", default="2GB")
    ap.add_argument("--m", type=int, default=16, help="HNSW m")
    ap.add_argument("--ef-construction", type=int, default=64, help="HNSW ef_construction")
    ap.add_argument("--pg-url", default=os.environ.get("CNNKIT_BENCH_PG_URL"))
    ap.add_argument("--backends", nargs="+", default=["sqlite", "pg"], choices=["sqlite", "pg"])
    ap.add_argument("--shared-buffers", default=None,
                    help="restart the benchmark's own server with this shared_buffers (e.g. 2GB; default 128MB)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    def log(msg: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the cleanup (stop the server)
    with tempfile.TemporaryDirectory(prefix="cnnkit-bench-") as tmp:
        server = None
        url = args.pg_url
        if url is None:
            import pgserver

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                server = pgserver.get_server(Path(tmp) / "pgdata", cleanup_mode="stop")
                if args.shared_buffers:  # needs a restart: set, stop, start again
                    with psycopg.connect(server.get_uri(), autocommit=True) as c:
                        c.execute(f"ALTER SYSTEM SET shared_buffers = '{args.shared_buffers}'")
                    server.cleanup()
                    server = pgserver.get_server(Path(tmp) / "pgdata", cleanup_mode="stop")
            url = server.get_uri()
        try:
            rows = []
            for n in args.sizes:
                for kind in args.data:
                    rows.append(run_size(n, kind, args, url, Path(tmp), log))
                    log(json.dumps(rows[-1]))
        finally:
            if server is not None:
                server.cleanup()
    if args.json:
        print(json.dumps({"benchmark": "gallery_backends", "cpus": os.cpu_count(), "rows": rows}))
        return
    print(f"{'data':>7} {'N':>8} {'backend/search':<22} {'insert/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'recall@10':>9} {'cpu ms':>8}")
    for r in rows:
        if "sqlite_exact" in r:
            v = r["sqlite_exact"]
            print(f"{r['data']:>7} {r['n']:>8} {'sqlite exact (numpy)':<22} {r['sqlite_insert_per_s']:>9} "
                  f"{v['p50_ms']:>8} {v['p99_ms']:>8} {v['recall@10']:>9} {v.get('cpu_ms', ''):>8}")
        if "pg_exact" in r:
            v = r["pg_exact"]
            print(f"{r['data']:>7} {r['n']:>8} {'pg exact (<-> scan)':<22} {r['pg_copy_insert_per_s']:>9} "
                  f"{v['p50_ms']:>8} {v['p99_ms']:>8} {v['recall@10']:>9} {v.get('cpu_ms', ''):>8}")
        for key in (k for k in r if k.startswith("pg_hnsw_ef")):
            v = r[key]
            print(f"{r['data']:>7} {r['n']:>8} {'pg hnsw ef=' + key[10:]:<22} {'':>9} {v['p50_ms']:>8} "
                  f"{v['p99_ms']:>8} {v['recall@10']:>9} {v.get('cpu_ms', ''):>8}")
        extra = {k: v for k, v in r.items() if not isinstance(v, dict) and k not in {"n", "dim", "data"}}
        print(f"{'':>16} " + ", ".join(f"{k}={v}" for k, v in extra.items()))

if __name__ == "__main__":
    main()
