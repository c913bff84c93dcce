"""LFW View 1: threshold from pairsDevTrain.txt (best accuracy), accuracy on pairsDevTest.txt.

Side by side in one run: cnnkit's default pipeline (RetinaFace; dlib's 5-point shape predictor in
a box placed from RetinaFace's landmarks; dlib's chip; the dlib ResNet on the chip and its mirror
image, averaged), its variants (RetinaFace's own landmarks on a fitted template, a joint 10-point
fit, without the mirror), and the face_recognition pipeline (dlib HOG detector, 5-point landmarks,
the same dlib ResNet encoder, no mirror). Embeddings are cached on disk per pipeline
configuration (``cache_dir()/face_encodings``), so a second run only re-does the arithmetic.

A pair in which either image has no face found gets distance +inf (counted as "different people":
an error for a matched pair), so every pipeline is scored on all pairs.

    .venv/bin/python benchmarks/lfw_view1.py [--lfw ../shared/data/faces/lfw] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from cnnkit.eval.verification import accuracy_at, best_threshold
from cnnkit.faces import FacePipeline
from cnnkit.faces.pairs import pair_distances, read_pairs

PIPELINES = {
    "cnnkit default (retinaface + sp5, flip)": dict(),
    "cnnkit (retinaface + sp5)": dict(alignment="sp5", flip=False),
    "cnnkit (retinaface + landmark template)": dict(alignment="landmarks", flip=False),
    "cnnkit (retinaface + template, flip)": dict(alignment="landmarks", flip=True),
    "cnnkit (retinaface + joint 10-point)": dict(alignment="joint", flip=False),
    "face_recognition (hog + sp5)": dict(detector="hog", flip=False),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_lfw = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "faces" / "lfw"
    ap.add_argument("--lfw", default=os.environ.get("CNNKIT_LFW", str(default_lfw)))
    ap.add_argument("--only", action="append", help="substring of a pipeline name to run (repeatable)")
    ap.add_argument("--threads", type=int, default=1, help="torch and onnxruntime threads (1 is fastest on a shared machine)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    lfw = Path(args.lfw)
    if not (lfw / "pairsDevTest.txt").is_file():
        sys.exit(f"LFW not found at {lfw} (give --lfw)")
    train, test = read_pairs(lfw / "pairsDevTrain.txt"), read_pairs(lfw / "pairsDevTest.txt")
    rows = []
    for label, kwargs in PIPELINES.items():
        if args.only and not any(s in label for s in args.only):
            continue
        pipe = FacePipeline(threads=args.threads, **kwargs)
        t0 = time.perf_counter()
        d_train, y_train, nf_train = pair_distances(pipe, train, lfw, progress=not args.json)
        d_test, y_test, nf_test = pair_distances(pipe, test, lfw, progress=not args.json)
        wall = time.perf_counter() - t0
        thr, train_acc = best_threshold(d_train, y_train)
        rows.append({
            "pipeline": label,
            "threshold": round(thr, 4),
            "train_accuracy": round(train_acc, 4),
            "test_accuracy": round(accuracy_at(d_test, y_test, thr), 4),
            "test_accuracy_at_0.6": round(accuracy_at(d_test, y_test, 0.6), 4),
            "test_pairs_without_face": int(np.isnan(d_test).sum()),
            "images_without_face": len(set(nf_train) | set(nf_test)),
            "no_face_images": sorted(set(nf_train) | set(nf_test)),
            "wall_s": round(wall, 1),
        })
    if args.json:
        print(json.dumps({"benchmark": "lfw_view1", "lfw": str(lfw), "train_pairs": len(train),
                          "test_pairs": len(test), "results": rows}))
        return
    print(f"LFW View 1: threshold on {len(train)} pairsDevTrain pairs, accuracy on {len(test)} pairsDevTest pairs")
    head = f"{'pipeline':42s} {'thr':>6s} {'train':>7s} {'test':>7s} {'test@0.6':>8s} {'no-face img':>11s} {'wall s':>7s}"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['pipeline']:42s} {r['threshold']:6.3f} {r['train_accuracy']:7.4f} {r['test_accuracy']:7.4f} "
              f"{r['test_accuracy_at_0.6']:8.4f} {r['images_without_face']:11d} {r['wall_s']:7.1f}")
    for r in rows:
        if r["no_face_images"]:
            print(f"{r['pipeline']}: no face in {', '.join(r['no_face_images'][:10])}"
                  + (" ..." if len(r["no_face_images"]) > 10 else ""))
    print("(wall time includes embedding unless cached; machine shared with other jobs)")


if __name__ == "__main__":
    main()
