"""Identification under concurrent load: ``cnnkit serve`` beside a face_recognition-style Flask
service and a cnnkit CLI process per query, all in this run, on loopback.

A gallery of 1,000 people: the 40 ORL people (photo 1 of each, encoded for real) and 960 synthetic
people made from mixtures of those embeddings plus noise (the same spread of distances); the query
is a real photo (ORL s1/2, who is in the gallery, enlarged 3x to 276x336 so that dlib's HOG detector
of the Flask row finds the face too). Each client sends its next request when the last
one is answered (closed loop), for ``--seconds`` per level; requests still running at the end are
not counted. Rows:

- pipeline, in process: ``identify_photo`` in a loop in this process, one thread: the rate the
  server is measured against (the issue's aim: the server's throughput within 1.3x of it);
- cnnkit serve: ``cnnkit serve`` with its defaults (2 inference threads, queue 32);
- Flask, face_recognition style: the shape of face_recognition's web example (Flask, threaded,
  models and known encodings in memory, each request decoded, detected with dlib's HOG and encoded
  by dlib, then compared with ``face_distance <= 0.6`` against all known encodings);
- CLI per query: ``cnnkit face identify PHOTO --db gallery.sqlite`` as a new process per request.

    CNNKIT_THREADS=1 .venv/bin/python benchmarks/serve_load.py [--seconds 60] [--clients 1,4,16] [--json]

The Flask row needs Flask (`pip install flask`; not a cnnkit dependency) or `--skip flask`.

429 answers (a full queue) are counted apart from errors. Quote ``uptime`` beside the table: on a
shared machine the absolute numbers move with the load.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
ORL = REPO / "data" / "orl"
QUERY = ORL / "s1" / "2.pgm"
PEOPLE = 1000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 180) -> float:
    import httpx

    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if proc.poll() is not None:
            raise SystemExit(f"{url}: the server exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return time.perf_counter() - t0
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url}: not ready after {timeout} s")


# -- the gallery -----------------------------------------------------------------------------------

def build_gallery(pipe, path: Path, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """1,000 people in a SQLite gallery; returns their embeddings and names."""
    from cnnkit.data.image_io import load_image
    from cnnkit.store import SQLiteGallery

    real = [(f"s{i}", pipe.encode_one(load_image(ORL / f"s{i}" / "1.pgm")).embedding) for i in range(1, 41)]
    emb = np.stack([e for _, e in real]).astype(np.float64)
    rng = np.random.default_rng(seed)
    synth = []
    for _ in range(PEOPLE - len(real)):
        i, j = rng.choice(len(emb), 2, replace=False)
        w = rng.uniform(0.3, 0.7)
        v = w * emb[i] + (1 - w) * emb[j] + rng.normal(0, 0.03, emb.shape[1])
        synth.append(v * np.linalg.norm(emb[i]) / np.linalg.norm(v))
    names = [n for n, _ in real] + [f"synthetic{k:04d}" for k in range(len(synth))]
    matrix = np.vstack([emb, np.asarray(synth)]).astype(np.float32)
    g = SQLiteGallery(path)
    for name, vec in zip(names, matrix):
        g.add_faces(name, vec[None, :], tag=pipe.tag)
    g.close()
    return matrix, names


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process so far (Linux), which a loaded machine changes less than wall time."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def query_photo() -> bytes:
    from PIL import Image

    img = Image.open(QUERY)
    buf = io.BytesIO()
    img.resize((img.width * 3, img.height * 3), Image.BICUBIC).save(buf, format="PNG")
    return buf.getvalue()


# -- load ------------------------------------------------------------------------------------------

def load(send, clients: int, seconds: float) -> dict:
    """``clients`` closed-loop clients calling ``send()`` -> HTTP status (or an exception) for ``seconds``."""
    lat: list[float] = []
    codes: dict[str, int] = {}
    lock = threading.Lock()
    start = time.perf_counter()
    deadline = start + seconds

    def client() -> None:
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            try:
                status = send()
            except Exception as exc:  # noqa: BLE001 - counted as an error, by kind
                status = type(exc).__name__
            t1 = time.perf_counter()
            if t1 > deadline:
                return  # still running at the end: not counted
            with lock:
                codes[str(status)] = codes.get(str(status), 0) + 1
                if status == 200:
                    lat.append(t1 - t0)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ok = len(lat)
    errors = sum(n for c, n in codes.items() if c not in ("200", "429"))
    return {"clients": clients, "seconds": seconds, "ok": ok, "rps": ok / seconds,
            "p50_ms": float(np.percentile(lat, 50) * 1e3) if lat else None,
            "p99_ms": float(np.percentile(lat, 99) * 1e3) if lat else None,
            "errors": errors, "rejected_429": codes.get("429", 0), "codes": codes}


def http_sender(url: str, headers: dict[str, str], photo: bytes, check_name: bool = True):
    import httpx

    local = threading.local()

    def send():
        c = getattr(local, "c", None)
        if c is None:
            c = local.c = httpx.Client(timeout=120)
        r = c.post(url, files={"image": ("q.pgm", photo)}, headers=headers)
        if r.status_code == 200 and check_name:
            faces = r.json()["faces"]
            if not faces or faces[0]["name"] != "s1":
                return "wrong-answer"
        return r.status_code

    return send


# -- the Flask baseline (run as a child process) ---------------------------------------------------

def flask_main(gallery_npz: str, port: int) -> None:
    """face_recognition's web example, with its pipeline: HOG + 5 points + dlib's encoder."""
    from flask import Flask, jsonify, request
    from werkzeug.serving import make_server

    from cnnkit.data.image_io import load_image
    from cnnkit.faces import FacePipeline, load_face_encoder

    data = np.load(gallery_npz)
    known, names = data["matrix"].astype(np.float64), list(data["names"])
    pipe = FacePipeline(load_face_encoder("dlib_resnet", backend="dlib"), detector="hog", flip=False, threads=1)
    app = Flask(__name__)

    @app.route("/identify", methods=["POST"])
    def identify():
        img = load_image(request.files["image"].read())
        out = []
        for f in pipe.faces(img):
            d = np.linalg.norm(known - f.embedding.astype(np.float64), axis=1)  # face_distance
            i = int(np.argmin(d))
            out.append({"name": names[i] if d[i] <= 0.6 else None, "distance": float(d[i])})
        return jsonify({"faces": out})

    @app.route("/ready")
    def ready():
        return "ok"

    pipe.faces(load_image(query_photo()))  # models loaded before the first request
    make_server("127.0.0.1", port, app, threaded=True).serve_forever()


# -- main ------------------------------------------------------------------------------------------

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--clients", default="1,4,16")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--skip", default="", help="comma list of rows to skip: flask,cli")
    args = ap.parse_args()
    levels = [int(c) for c in args.clients.split(",")]
    skip = set(filter(None, args.skip.split(",")))
    os.environ.setdefault("CNNKIT_THREADS", "1")
    import torch

    torch.set_num_threads(int(os.environ["CNNKIT_THREADS"]))
    from cnnkit.data.image_io import load_image
    from cnnkit.faces import FacePipeline
    from cnnkit.faces.recognition import identify_photo, resolve_decision
    from cnnkit.store import SQLiteGallery

    tmp = Path(tempfile.mkdtemp(prefix="cnnkit-serve-load-"))
    photo = query_photo()
    pipe = FacePipeline(threads=1)
    matrix, names = build_gallery(pipe, tmp / "data" / "bench.sqlite")
    np.savez(tmp / "gallery.npz", matrix=matrix, names=np.asarray(names))
    rows: list[dict] = []

    # 1. the pipeline's own single-process rate
    g = SQLiteGallery(tmp / "data" / "bench.sqlite", create=False)
    decision = resolve_decision(g, pipe)

    def in_process():
        faces = identify_photo(pipe, g, load_image(photo), decision)
        return 200 if faces and faces[0].name == "s1" else "wrong-answer"

    in_process()
    r = load(in_process, 1, args.seconds)
    rows.append({"system": "pipeline, in process (1 thread)", **r})
    g.close()
    del pipe

    env = {**os.environ, "CNNKIT_THREADS": os.environ["CNNKIT_THREADS"], "PYTHONUNBUFFERED": "1"}
    cli = [sys.executable, "-m", "cnnkit.cli._main"]
    # 2. cnnkit serve
    key = subprocess.run([*cli, "serve", "keys", "add", "--db", str(tmp / "data"), "--role", "read"],
                         capture_output=True, text=True, check=True, env=env).stdout.strip().splitlines()[-1].split()[-1]
    port = free_port()
    server = subprocess.Popen([*cli, "serve", "--db", str(tmp / "data"), "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    try:
        startup = wait_ready(f"http://127.0.0.1:{port}/readyz", server)
        startup_cpu = cpu_seconds(server.pid)
        send = http_sender(f"http://127.0.0.1:{port}/v1/galleries/bench/identify", {"Authorization": f"Bearer {key}"}, photo)
        send()
        for n in levels:
            rows.append({"system": "cnnkit serve", **load(send, n, args.seconds)})
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(60)

    # 3. face_recognition-style Flask
    if "flask" not in skip:
        port = free_port()
        flask = subprocess.Popen([sys.executable, __file__, "--flask-worker", str(tmp / "gallery.npz"), str(port)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
        try:
            wait_ready(f"http://127.0.0.1:{port}/ready", flask)
            send = http_sender(f"http://127.0.0.1:{port}/identify", {}, photo)
            send()
            for n in levels:
                rows.append({"system": "Flask, face_recognition style", **load(send, n, args.seconds)})
        finally:
            flask.terminate()
            flask.wait(60)

    # 4. one CLI process per query
    if "cli" not in skip:
        query_file = tmp / "query.png"
        query_file.write_bytes(photo)

        def cli_query():
            out = subprocess.run([*cli, "face", "identify", str(query_file), "--db", str(tmp / "data" / "bench.sqlite"),
                                  "--format", "json"], capture_output=True, text=True, env=env, timeout=600)
            if out.returncode != 0:
                return f"exit{out.returncode}"
            faces = json.loads(out.stdout)["results"][0]["faces"]
            return 200 if faces and faces[0]["name"] == "s1" else "wrong-answer"

        for n in levels:
            rows.append({"system": "CLI process per query", **load(cli_query, n, args.seconds)})

    base = rows[0]["rps"]
    for row in rows:
        row["vs_pipeline"] = row["rps"] / base if base else None
    meta = {"uptime": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
            "cpus": os.cpu_count(), "gallery_people": PEOPLE, "query": str(QUERY.relative_to(REPO)),
            "serve_startup_s": round(startup, 2), "serve_startup_cpu_s": startup_cpu, "threshold": decision.threshold}
    if args.json:
        print(json.dumps({"meta": meta, "rows": rows}, indent=1))
        return
    print(f"# {meta['uptime']}  ({meta['cpus']} CPUs); gallery {PEOPLE} people; query {meta['query']}; "
          f"cnnkit serve ready in {meta['serve_startup_s']} s ({meta['serve_startup_cpu_s']} CPU s)")
    print(f"{'system':34} {'clients':>7} {'req/s':>7} {'x pipe':>7} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6} {'429':>5}")
    for row in rows:
        f = lambda v: "-" if v is None else f"{v:.0f}"  # noqa: E731
        print(f"{row['system']:34} {row['clients']:>7} {row['rps']:>7.2f} {row['vs_pipeline']:>7.2f} "
              f"{f(row['p50_ms']):>8} {f(row['p99_ms']):>8} {row['errors']:>6} {row['rejected_429']:>5}")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--flask-worker":
        flask_main(sys.argv[2], int(sys.argv[3]))
    else:
        main()
