"""Enrollment throughput: faces per second on LFW photos, split into detect / align / encode.

Rows, all measured in this run on the same photos (decoded once, beforehand, except the first);
faces per wall second and per CPU second of this process (the second is steadier on a shared machine):

- cnnkit face enroll: the path the command runs (``faces.recognition.enroll_photos``: hash, decode,
  detect, align, batched encoder, one committed transaction per photo into a fresh SQLite gallery);

- cnnkit default (``DEFAULT_ENCODER``, the fusion dlib_resnet+sface): RetinaFace (ONNX), then dlib's
  5-point shape predictor and dlib's ResNet in PyTorch on its chip and the chip's mirror image, and
  SFace in PyTorch on its own chip alone; batched;
- cnnkit, one pass: the same without any mirror image;
- cnnkit dlib_resnet alone (RetinaFace + 5-point predictor + dlib ResNet, chip and mirror image),
  sface alone (chip and mirror image), the fusion with both parts mirrored and with SFace's only;
- cnnkit, dlib backend: dlib_resnet with the encoder run by dlib itself;
- face_recognition pipeline: dlib HOG detector (upsample 1) + 5-point shape predictor + dlib's
  own encoder called face by face, as ``face_recognition.face_encodings`` does.

    .venv/bin/python benchmarks/enroll_throughput.py [--n 200] [--threads 2] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from cnnkit.data.image_io import load_image
from cnnkit.faces import FacePipeline, load_face_encoder
from cnnkit.faces.encoders import DEFAULT_ENCODER
from cnnkit.faces.fused import FusedEncoder
from cnnkit.faces.pipeline import primary_face


def run_enroll(label: str, pipe: FacePipeline, files: list[Path]) -> dict:
    """The whole ``cnnkit face enroll`` path on files, into a temporary gallery."""
    import tempfile

    from cnnkit.faces.recognition import enroll_photos
    from cnnkit.store import SQLiteGallery

    first = load_image(files[0])
    pipe.encode([pipe.align(first, pipe.detect(first)[0])])  # load the models first
    with tempfile.TemporaryDirectory() as tmp, SQLiteGallery(Path(tmp) / "g.sqlite") as gallery:
        t0, c0 = time.perf_counter(), time.process_time()
        outcomes = list(enroll_photos(pipe, gallery, [(f.parent.name, f) for f in files], largest=True))
        total, cpu = time.perf_counter() - t0, time.process_time() - c0
    faces = sum(o.status == "enrolled" for o in outcomes)
    return {"pipeline": label, "photos": len(files), "faces": faces, "no_face": len(files) - faces,
            "detect_ms": float("nan"), "align_ms": float("nan"), "encode_ms": float("nan"),
            "total_s": round(total, 2), "faces_per_s": round(faces / total, 2),
            "faces_per_cpu_s": round(faces / cpu, 2)}


def run(label: str, pipe: FacePipeline, images: list[np.ndarray], *, batch: int) -> dict:
    # warm up: load every model before timing
    pipe.encode([pipe.align(images[0], pipe.detect(images[0])[0])])
    t_det = t_align = t_enc = 0.0
    c0 = time.process_time()
    chips: list[np.ndarray] = []
    no_face = 0
    for img in images:
        t0 = time.perf_counter()
        dets = pipe.detect(img)
        t1 = time.perf_counter()
        t_det += t1 - t0
        if not dets:
            no_face += 1
            continue
        chips.append(pipe.align(img, primary_face(dets, img.shape)))
        t_align += time.perf_counter() - t1
    t0 = time.perf_counter()
    for i in range(0, len(chips), batch):
        pipe.encode(chips[i: i + batch])
    t_enc = time.perf_counter() - t0
    cpu = time.process_time() - c0
    total = t_det + t_align + t_enc
    n = len(images)
    return {
        "pipeline": label,
        "photos": n,
        "faces": len(chips),
        "no_face": no_face,
        "detect_ms": round(1000 * t_det / n, 1),
        "align_ms": round(1000 * t_align / max(len(chips), 1), 1),
        "encode_ms": round(1000 * t_enc / max(len(chips), 1), 1),
        "total_s": round(total, 2),
        "faces_per_s": round(len(chips) / total, 2),
        "faces_per_cpu_s": round(len(chips) / cpu, 2),
    }


def _flips(pipe: FacePipeline) -> str:
    """"flip", "no flip", or for a fusion with some parts mirrored: which ones."""
    flips = pipe.part_flips or (pipe.flip,)
    if all(flips) or not any(flips):
        return "flip" if flips[0] else "no flip"
    return "flip " + "+".join(p.name for p, f in zip(pipe.encoder.parts, flips) if f) + " only"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_lfw = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "faces" / "lfw"
    ap.add_argument("--lfw", default=os.environ.get("CNNKIT_LFW", str(default_lfw)))
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1, help="torch and onnxruntime threads (1 is fastest on a shared machine)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    lfw = Path(args.lfw)
    files = sorted(lfw.glob("*/*.jpg"))
    if len(files) < args.n:
        sys.exit(f"need {args.n} LFW photos under {lfw}, found {len(files)}")
    step = len(files) // args.n
    files = files[::step][: args.n]  # spread over the alphabet, fixed choice
    t0 = time.perf_counter()
    images = [load_image(f) for f in files]
    load_ms = 1000 * (time.perf_counter() - t0) / len(images)
    rows = [
        run_enroll("cnnkit face enroll (files -> gallery)", FacePipeline(threads=args.threads), files),
        run(f"cnnkit default ({DEFAULT_ENCODER}, {_flips(FacePipeline(threads=args.threads))})",
            FacePipeline(threads=args.threads), images, batch=args.batch),
        run("cnnkit default, no flip (one encoder pass)", FacePipeline(threads=args.threads, flip=False), images,
            batch=args.batch),
        run("cnnkit dlib_resnet (retinaface+sp5, flip)", FacePipeline("dlib_resnet", threads=args.threads), images,
            batch=args.batch),
        run("cnnkit sface (retinaface, flip)", FacePipeline("sface", threads=args.threads), images, batch=args.batch),
        run("cnnkit dlib_resnet+sface (flip both)", FacePipeline("dlib_resnet+sface", threads=args.threads, flip=True),
            images, batch=args.batch),
        run("cnnkit dlib_resnet+sface (flip sface only)",
            FacePipeline(FusedEncoder.from_spec("dlib_resnet+sface", part_flips=(False, True)), threads=args.threads),
            images, batch=args.batch),
        run("cnnkit dlib_resnet, dlib backend encoder",
            FacePipeline(load_face_encoder("dlib_resnet", backend="dlib"), threads=args.threads), images,
            batch=args.batch),
        run("face_recognition (hog + sp5 + dlib, 1 by 1)",
            FacePipeline(load_face_encoder("dlib_resnet", backend="dlib"), detector="hog", flip=False), images,
            batch=1),
    ]
    out = {"benchmark": "enroll_throughput", "photos": len(images), "decode_ms_per_photo": round(load_ms, 1),
           "threads": args.threads, "cpu_count": os.cpu_count(), "load_average": os.getloadavg()[0],
           "results": rows}
    if args.json:
        print(json.dumps(out))
        return
    print(f"{len(images)} LFW photos (250x250 JPEG, decode {load_ms:.1f} ms each, not counted); "
          f"{args.threads} threads; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    head = (f"{'pipeline':58s} {'faces':>5s} {'detect ms':>9s} {'align ms':>8s} {'encode ms':>9s} {'faces/s':>8s} "
            f"{'faces/CPU s':>11s}")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['pipeline']:58s} {r['faces']:5d} {r['detect_ms']:9.1f} {r['align_ms']:8.1f} "
              f"{r['encode_ms']:9.1f} {r['faces_per_s']:8.2f} {r['faces_per_cpu_s']:11.2f}")
    base = next(r for r in rows if r["pipeline"].startswith("face_recognition"))
    for r in rows[:2]:
        print(f"{r['pipeline']}: {r['faces_per_s'] / base['faces_per_s']:.2f}x the face_recognition pipeline's "
              f"faces/s ({r['faces_per_cpu_s'] / base['faces_per_cpu_s']:.2f}x per CPU second)")


if __name__ == "__main__":
    main()
