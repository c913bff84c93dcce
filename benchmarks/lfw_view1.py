"""LFW View 1: threshold (or binary head) from pairsDevTrain.txt, accuracy on pairsDevTest.txt.

Side by side in one run: cnnkit's default pipeline; the dlib ResNet alone (RetinaFace; dlib's
5-point shape predictor in a box placed from RetinaFace's landmarks; dlib's chip; the chip and its
mirror image, averaged) and its variants (RetinaFace's own landmarks on a fitted template, a joint
10-point fit, without the mirror); SFace alone (RetinaFace's points on OpenCV's 112x112 template,
mirror averaged, and not); the two fused (weighted concatenation: the weights in ``faces.fused.FUSIONS``,
and equal weights with either, both or no part mirror averaged); binary heads fitted on pairsDevTrain (``block_sq`` over the fusion: its weights
and threshold; ``abs`` per dimension); and the face_recognition pipeline (dlib HOG detector,
5-point landmarks, the same dlib ResNet encoder, no mirror). Embeddings are cached on disk per pipeline
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
from cnnkit.faces.fused import FusedEncoder
from cnnkit.faces.pairs import pair_distances, read_pairs

PIPELINES = {
    "cnnkit default": dict(),
    "cnnkit dlib_resnet (retinaface + sp5, flip)": dict(encoder="dlib_resnet"),
    "cnnkit sface (retinaface, own template, flip)": dict(encoder="sface"),
    "cnnkit sface (retinaface, own template)": dict(encoder="sface", flip=False),
    "cnnkit dlib_resnet+sface (fused, fitted weights)": dict(encoder="dlib_resnet+sface"),
    "cnnkit dlib_resnet+sface (fused, equal weights)": dict(encoder="dlib_resnet*1+sface*1"),
    "cnnkit dlib_resnet+sface (fused, equal weights, flip dlib only)": dict(
        encoder=FusedEncoder.from_spec("dlib_resnet*1+sface*1", part_flips=(True, False))),
    "cnnkit dlib_resnet+sface (fused, equal weights, flip sface only)": dict(
        encoder=FusedEncoder.from_spec("dlib_resnet*1+sface*1", part_flips=(False, True))),
    "cnnkit dlib_resnet+sface (fused, equal weights, no flip)": dict(encoder="dlib_resnet*1+sface*1", flip=False),
    "cnnkit dlib_resnet (retinaface + sp5)": dict(encoder="dlib_resnet", alignment="sp5", flip=False),
    "cnnkit dlib_resnet (retinaface + landmark template)": dict(encoder="dlib_resnet", alignment="landmarks", flip=False),
    "cnnkit dlib_resnet (retinaface + template, flip)": dict(encoder="dlib_resnet", alignment="landmarks", flip=True),
    "cnnkit dlib_resnet (retinaface + joint 10-point)": dict(encoder="dlib_resnet", alignment="joint", flip=False),
    "face_recognition (hog + sp5)": dict(encoder="dlib_resnet", detector="hog", flip=False),
}

#: binary heads fitted on pairsDevTrain over the embeddings of a pipeline, scored on pairsDevTest
HEADS = {
    "head block_sq over dlib_resnet+sface": ("cnnkit dlib_resnet+sface (fused, equal weights)", ("block_sq",)),
    "head block_sq, flip dlib only": ("cnnkit dlib_resnet+sface (fused, equal weights, flip dlib only)", ("block_sq",)),
    "head block_sq, flip sface only": ("cnnkit dlib_resnet+sface (fused, equal weights, flip sface only)",
                                       ("block_sq",)),
    "head block_sq, no flip": ("cnnkit dlib_resnet+sface (fused, equal weights, no flip)", ("block_sq",)),
    "head abs over dlib_resnet+sface": ("cnnkit dlib_resnet+sface (fused, equal weights)", ("abs",)),
    "head abs over dlib_resnet": ("cnnkit dlib_resnet (retinaface + sp5, flip)", ("abs",)),
}


def _head_row(label: str, pipe: FacePipeline, feats: tuple[str, ...], train, test, lfw: Path) -> dict:
    """A binary head fitted on pairsDevTrain, scored on pairsDevTest (a pair without a face: "different")."""
    from cnnkit.eval.verification import kfold_decision_accuracy
    from cnnkit.faces.fused import fusion_from_head
    from cnnkit.faces.head import head_decider, pair_embeddings

    t0 = time.perf_counter()
    ta, tb, tf = pair_embeddings(pipe, train, lfw, progress=False)
    ea, eb, ef = pair_embeddings(pipe, test, lfw, progress=False)
    same = np.r_[train.labels, test.labels]
    folds = np.r_[np.zeros(len(train)), np.ones(len(test))]
    decide = head_decider(pipe, np.vstack([ta, ea]), np.vstack([tb, eb]), same, np.r_[tf, ef], features=feats)
    on_train = folds == 0
    train_acc = float(np.mean(decide(on_train, on_train) == same[on_train]))  # fitted and scored on train
    test_acc = kfold_decision_accuracy(same, folds, decide, score=[1])[0]  # fitted on train, scored on test
    row = {"pipeline": label, "threshold": float("nan"), "train_accuracy": round(train_acc, 4),
           "test_accuracy": round(test_acc, 4), "test_accuracy_at_default": float("nan"),
           "test_pairs_without_face": int((~ef).sum()), "images_without_face": 0, "no_face_images": [],
           "wall_s": round(time.perf_counter() - t0, 1)}
    if feats == ("block_sq",):
        from cnnkit.faces.head import fit_head

        head = fit_head(ta[tf], tb[tf], train.labels[tf], features=feats, blocks=pipe.encoder.blocks,
                        stored_weights=pipe.encoder.weights)
        row.update(fusion_from_head(json.loads(head.to_json()), pipe.encoder.weights))
    return row


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
    rows: list[dict] = []
    errors: dict[str, np.ndarray] = {}
    pipes: dict[str, FacePipeline] = {}
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
            "test_accuracy_at_default": round(accuracy_at(d_test, y_test, pipe.default_threshold), 4),
            "test_pairs_without_face": int(np.isnan(d_test).sum()),
            "images_without_face": len(set(nf_train) | set(nf_test)),
            "no_face_images": sorted(set(nf_train) | set(nf_test)),
            "wall_s": round(wall, 1),
        })
        errors[label] = (np.where(np.isnan(d_test), np.inf, d_test) <= thr) != y_test
        pipes[label] = pipe
    for label, (source, feats) in HEADS.items():
        if source not in pipes:
            continue
        rows.append(_head_row(label, pipes[source], feats, train, test, lfw))
    dlib, sface = errors.get("cnnkit dlib_resnet (retinaface + sp5, flip)"), errors.get(
        "cnnkit sface (retinaface, own template, flip)")
    if args.json:
        print(json.dumps({"benchmark": "lfw_view1", "lfw": str(lfw), "train_pairs": len(train),
                          "test_pairs": len(test), "results": rows}))
        return
    print(f"LFW View 1: threshold on {len(train)} pairsDevTrain pairs, accuracy on {len(test)} pairsDevTest pairs")
    head = f"{'pipeline':66s} {'thr':>6s} {'train':>7s} {'test':>7s} {'test@dflt':>9s} {'no-face img':>11s} {'wall s':>7s}"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['pipeline']:66s} {r['threshold']:6.3f} {r['train_accuracy']:7.4f} {r['test_accuracy']:7.4f} "
              f"{r['test_accuracy_at_default']:9.4f} {r['images_without_face']:11d} {r['wall_s']:7.1f}")
    if dlib is not None and sface is not None:
        print(f"pairsDevTest errors: {int((dlib & ~sface).sum())} only dlib_resnet, {int((sface & ~dlib).sum())} only "
              f"sface, {int((dlib & sface).sum())} both")
    for r in rows:
        if "fusion_weights" in r:
            print(f"{r['pipeline']}: fusion weights {r['fusion_weights']}, threshold {r['fusion_threshold']}")
    for r in rows:
        if r["no_face_images"]:
            print(f"{r['pipeline']}: no face in {', '.join(r['no_face_images'][:10])}"
                  + (" ..." if len(r["no_face_images"]) > 10 else ""))
    print("(wall time includes embedding unless cached; machine shared with other jobs)")


if __name__ == "__main__":
    main()
