"""How clustering scales: seconds and peak memory for N synthetic face embeddings.

The embeddings imitate dlib's on LFW: 128-d, identities with a long-tailed number of photos (a third
of them alone), distances between two photos of one person around 0.41 and between two people
around 0.81. Each size runs in a fresh process, so "peak MB" is that process's maximum resident set
(Python, numpy and the data included), "cpu_s" its CPU seconds (on a machine shared with other jobs,
wall seconds say more about the load than about the code). Side by side, where they fit: dlib's Chinese whispers (all
pairs, in C++) and scikit-learn's average linkage (needs the N x N matrix).

``--pg`` adds the PostgreSQL path: the embeddings are copied into a table with an HNSW index
(pgvector, through the ``pgserver`` wheel unless ``--pg-url`` is given), the neighbour graph is
read from the index (k nearest per face, one LATERAL query per batch of faces, over two
connections), and the same average linkage runs on it. The pgserver is restarted with
``--shared-buffers`` so that the index stays in PostgreSQL's own cache.

    .venv/bin/python benchmarks/cluster_scale.py [--sizes 10000,30000,100000] [--pg 100000]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

DIM = 128


def synthetic(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(n, 128) float32 embeddings and their identities."""
    rng = np.random.default_rng(seed)
    counts, total = [], 0
    while total < n:  # LFW-like: many people with one photo, a few with hundreds
        counts.append(1 if rng.random() < 0.7 else int(min(300, rng.zipf(1.8) + 1)))
        total += counts[-1]  # (a sum() per person took 5 minutes at 1e6)
    labels = np.repeat(np.arange(len(counts)), counts)[:n]
    s_noise = 0.41 / np.sqrt(2 * DIM)
    s_centre = np.sqrt(0.81 ** 2 / (2 * DIM) - s_noise ** 2)
    centres = rng.normal(0, s_centre, (len(counts), DIM))
    x = centres[labels] + rng.normal(0, s_noise, (n, DIM))
    return x.astype(np.float32), labels


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run_one(method: str, n: int) -> dict:
    from cnnkit.eval.clustering import bcubed

    x, truth = synthetic(n)
    base = peak_mb()
    t0, c0 = time.perf_counter(), cpu_s()
    extra: dict = {}
    if method == "cnnkit":
        from cnnkit.faces.cluster import cluster_embeddings

        res = cluster_embeddings(x, verification_threshold=0.6)
        labels = res.labels
        extra = {"threshold": round(res.threshold, 4), "capped": res.capped}
    elif method == "dlib":
        import dlib

        labels = np.asarray(dlib.chinese_whispers_clustering([dlib.vector(v.tolist()) for v in x.astype(float)], 0.5))
        extra = {"threshold": 0.5}
    else:
        from sklearn.cluster import AgglomerativeClustering

        labels = AgglomerativeClustering(n_clusters=None, distance_threshold=0.5, linkage="average").fit_predict(x)
        extra = {"threshold": 0.5}
    seconds, cpu = time.perf_counter() - t0, cpu_s() - c0
    b = bcubed(truth, labels)
    return {"method": method, "n": n, "seconds": round(seconds, 1), "cpu_s": round(cpu, 1), "peak_mb": round(peak_mb(), 0),
            "data_mb": round(base, 0), "f": round(b.f, 4), **extra}


def _start_pgserver(shared_buffers: str):
    """A pgserver PostgreSQL in a temporary folder, restarted with ``shared_buffers`` (the HNSW
    index must fit in it: a search that reads its pages through the OS cache is several times
    slower). Returns (server, url)."""
    import tempfile
    import warnings

    import pgserver
    import psycopg
    from pgserver._commands import pg_ctl

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = pgserver.get_server(tempfile.mkdtemp(prefix="cnnkit-cluster-pg-"), cleanup_mode="delete")
    url = server.get_uri()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"ALTER SYSTEM SET shared_buffers = '{shared_buffers}'")
    pg_ctl(["-w", "restart"], pgdata=server.pgdata, user=server.system_user)  # same options as the start
    return server, url


def _stop_pgserver(server) -> None:
    from pgserver._commands import pg_ctl

    try:  # the restarted postmaster is not the one pgserver knows of: stop it, then let pgserver delete
        pg_ctl(["-w", "stop"], pgdata=server.pgdata, user=server.system_user)
    except Exception as exc:  # noqa: BLE001 - already stopped, say so and clean up anyway
        print(f"  pg_ctl stop: {exc}", file=sys.stderr)
    server.cleanup()


def _copy_text(x: np.ndarray, start: int, block: int = 10_000):
    """COPY text of rows ``id\t[v1,...,vD]``, one block of rows at a time (one % per row: a
    Python format per value took 471 s for 1e6 rows)."""
    row = "%d\t[" + ",".join(["%.6g"] * x.shape[1]) + "]\n"
    for lo in range(0, len(x), block):
        yield "".join(row % (start + lo + i, *v) for i, v in enumerate(x[lo:lo + block].tolist()))


def run_pg(n: int, url: str | None, k: int, ef: int, work_mem: str = "2GB", shared_buffers: str = "2GB",
           connections: int = 2) -> dict:
    import psycopg

    from cnnkit.faces.cluster import (
        average_linkage,
        cluster_threshold,
        graph_from_pairs,
    )

    x, truth = synthetic(n)
    server = None
    if url is None:
        server, url = _start_pgserver(shared_buffers)
    out: dict = {"method": "cnnkit + pgvector HNSW", "n": n, "k": k, "ef_search": ef,
                 "maintenance_work_mem": work_mem, "shared_buffers": shared_buffers if server else None,
                 "connections": connections}
    sampler = _PeakSampler()
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            conn.execute("DROP TABLE IF EXISTS cluster_bench")
            conn.execute(f"CREATE TABLE cluster_bench (id integer PRIMARY KEY, v vector({DIM}))")
            t0 = time.perf_counter()
            with conn.cursor().copy("COPY cluster_bench (id, v) FROM STDIN") as copy:
                for text in _copy_text(x, 0):
                    copy.write(text)
            out["copy_s"] = round(time.perf_counter() - t0, 1)
            print(f"  copied {n:,} vectors in {out['copy_s']} s; building the HNSW index", file=sys.stderr, flush=True)
            t0 = time.perf_counter()
            # the graph must fit in maintenance_work_mem, or the build slows down many times (pgvector's notice)
            conn.execute(f"SET maintenance_work_mem = '{work_mem}'")
            conn.execute("CREATE INDEX ON cluster_bench USING hnsw (v vector_l2_ops) WITH (m = 16, ef_construction = 64)")
            out["index_s"] = round(time.perf_counter() - t0, 1)
            print(f"  index built in {out['index_s']} s", file=sys.stderr, flush=True)
            out["index_mb"] = round(conn.execute("SELECT pg_indexes_size('cluster_bench')").fetchone()[0] / 2**20, 0)
            t_total = time.perf_counter()
            tau, source, _ = cluster_threshold(x, 0.6)
            t0 = time.perf_counter()
            rows, cols = _knn_pairs(url, n, k, ef, tau, connections, t0)
            out["knn_s"] = round(time.perf_counter() - t0, 1)
            out["ms_per_query"] = round(1000 * (time.perf_counter() - t0) / n, 2)
            r, c = np.concatenate(rows), np.concatenate(cols)
            t0 = time.perf_counter()
            graph = graph_from_pairs(x, r, c)
            labels = average_linkage(x, tau, graph=graph)
            out["linkage_s"] = round(time.perf_counter() - t0, 1)
            out["total_s"] = round(time.perf_counter() - t_total, 1)
            from cnnkit.eval.clustering import bcubed

            out.update({"threshold": round(tau, 4), "edges": int(len(graph.rows)), "f": round(bcubed(truth, labels).f, 4),
                        "client_peak_mb": round(peak_mb(), 0)})
            out["server_rss_mb"] = _server_rss_mb()
            out["server_peak_rss_mb"] = sampler.stop()
            conn.execute("DROP TABLE cluster_bench")
    finally:
        sampler.stop()
        if server is not None:
            _stop_pgserver(server)
    return out


def _knn_pairs(url: str, n: int, k: int, ef: int, tau: float, connections: int, t0: float):
    """Pairs (i < j) within ``tau`` among each face's k nearest by the HNSW index: batches of 500
    faces, one LATERAL query each, over ``connections`` connections at once (a query waits in
    the server, so threads overlap)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import psycopg

    batch = 500
    sql = (f"SELECT q.id, n.id, n.d FROM cluster_bench q CROSS JOIN LATERAL (SELECT c.id, c.v <-> q.v AS d "
           f"FROM cluster_bench c ORDER BY c.v <-> q.v LIMIT {k + 1}) n WHERE q.id >= %s AND q.id < %s")
    local = threading.local()
    done = [0]
    lock = threading.Lock()

    def one(start: int):
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = psycopg.connect(url, autocommit=True)
            conn.execute(f"SET hnsw.ef_search = {ef}")
            conns.append(conn)
        got = np.asarray(conn.execute(sql, (start, start + batch)).fetchall(), np.float64).reshape(-1, 3)
        keep = (got[:, 0] < got[:, 1]) & (got[:, 2] <= tau)
        with lock:
            before, done[0] = done[0], done[0] + batch
            if before // 50_000 != done[0] // 50_000 or done[0] >= n:
                rate = min(done[0], n) / (time.perf_counter() - t0)
                print(f"  knn {min(done[0], n):,}/{n:,} faces, {1000 / rate:.2f} ms per face, "
                      f"{(n - min(done[0], n)) / rate / 60:.0f} min left", file=sys.stderr, flush=True)
        return got[keep, 0].astype(np.int64), got[keep, 1].astype(np.int64)

    conns: list = []
    try:
        with ThreadPoolExecutor(connections) as pool:
            parts = list(pool.map(one, range(0, n, batch)))
    finally:
        for c in conns:
            c.close()
    return [p[0] for p in parts], [p[1] for p in parts]


class _PeakSampler:
    """The largest sum of the postgres processes' resident sets, sampled every second in a thread
    (the index build's peak is gone by the end of the run)."""

    def __init__(self) -> None:
        import threading

        self.peak: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            now = _server_rss_mb()
            if now is not None:
                self.peak = max(self.peak or 0.0, now)

    def stop(self) -> float | None:
        self._stop.set()
        self._thread.join()
        return self.peak


def _server_rss_mb() -> float | None:
    try:
        import psutil
    except ImportError:
        return None
    total = 0
    for p in psutil.process_iter(["name", "memory_info"]):
        if p.info["name"] and p.info["name"].startswith("postgres") and p.info["memory_info"]:
            total += p.info["memory_info"].rss
    return round(total / 2**20, 0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,30000,100000")
    ap.add_argument("--peers-up-to", type=int, default=10000, help="run dlib / sklearn only up to this N (sklearn needs N x N doubles)")
    ap.add_argument("--pg", type=int, default=0, help="also cluster this many through pgvector's HNSW graph")
    ap.add_argument("--pg-url", default=None)
    ap.add_argument("--k", type=int, default=32, help="neighbours per face read from the HNSW index")
    ap.add_argument("--ef-search", type=int, default=64)
    ap.add_argument("--maintenance-work-mem", default="2GB", help="PostgreSQL's, for the HNSW build (1e6 faces: 4GB)")
    ap.add_argument("--shared-buffers", default="2GB", help="the pgserver's; the HNSW index should fit (1e6 faces: 3GB)")
    ap.add_argument("--connections", type=int, default=2, help="connections reading the kNN graph at once")
    ap.add_argument("--one", nargs=2, metavar=("METHOD", "N"), help=argparse.SUPPRESS)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if args.one:
        print(json.dumps(run_one(args.one[0], int(args.one[1]))))
        return
    rows = []
    for n in [int(s) for s in args.sizes.split(",")]:
        for method in ("cnnkit", "dlib", "sklearn"):
            if method != "cnnkit" and n > args.peers_up_to:
                continue
            out = subprocess.run([sys.executable, __file__, "--one", method, str(n)], capture_output=True, text=True)
            if out.returncode != 0:
                rows.append({"method": method, "n": n, "error": out.stderr.strip().splitlines()[-1][:100]})
            else:
                rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            if not args.json:
                print(rows[-1], file=sys.stderr, flush=True)
    if args.pg:
        rows.append(run_pg(args.pg, args.pg_url, args.k, args.ef_search, args.maintenance_work_mem,
                           args.shared_buffers, args.connections))
    if args.json:
        print(json.dumps({"benchmark": "cluster_scale", "results": rows}))
        return
    print(f"{'method':24s} {'N':>8s} {'seconds':>8s} {'peak MB':>8s} {'F':>7s}  notes")
    for r in rows:
        notes = {k: v for k, v in r.items() if k not in {"method", "n", "seconds", "peak_mb", "f"}}
        print(f"{r['method']:24s} {r['n']:8d} {r.get('seconds', r.get('total_s', '')):>8} "
              f"{r.get('peak_mb', r.get('client_peak_mb', '')):>8} {r.get('f', ''):>7}  {notes}")
    print(f"(load average {os.getloadavg()[0]:.1f} on a 2-core machine shared with other jobs)")


if __name__ == "__main__":
    main()
