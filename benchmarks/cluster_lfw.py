"""Clustering all of LFW: BCubed precision, recall and F against the true identities.

Every LFW photo (13,233 photos of 5,749 people, 4,069 of whom have one photo) is embedded with
cnnkit's default pipeline (its main face, through the on-disk embedding cache, so a second run is
free). Side by side on the same embeddings, in the same run:

- cnnkit (``cnnkit.faces.cluster``): average linkage on squared distances over the graph of pairs
  within the threshold, the threshold chosen by the rule from the collection itself (no labels) at
  the encoder's false-accept rate (``encoder_cluster_far``), as ``cnnkit face cluster`` runs it;
  also with groups merging a little further apart than single faces (``MergeRule``, off by
  default) and at a few fixed thresholds, for reference;
- dlib's Chinese whispers (what face_recognition users run) at 0.45, 0.5, 0.55 and 0.6 (``--fine``:
  every 0.01 from 0.45 to 0.60, for the best a user could find by trying);
- scikit-learn's agglomerative average linkage (Euclidean) at 0.45, 0.5, 0.55 and 0.6 (one fit with
  the full tree, cut at each threshold; its time is the fit's).

Those thresholds are dlib's (default 0.6); with ``--encoder`` another encoder's embeddings are
clustered and every fixed threshold is scaled by its default threshold over dlib's 0.6.

A photo where no face is found is its own cluster for every method (and counted). ``--tune`` prints
the sweep the rule's false-accept rate was chosen on instead: the 3,443 photos of pairsDevTrain;
``--outside-view1`` runs on the 8,241 photos outside View 1, which that choice never saw.

    .venv/bin/python benchmarks/cluster_lfw.py [--lfw ../shared/data/faces/lfw] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from cnnkit.eval.clustering import bcubed
from cnnkit.faces import FacePipeline
from cnnkit.faces.cluster import cluster_embeddings, encoder_cluster_far, impostor_stats, threshold_from_stats
from cnnkit.faces.pairs import encode_files, lfw_image_path, read_pairs

PEER_THRESHOLDS = (0.45, 0.5, 0.55, 0.6)


def load_embeddings(lfw: Path, files: list[Path], threads: int, cache_dir: str | None, progress: bool,
                    encoder: str | None = None):
    pipe = FacePipeline(encoder, threads=threads)
    enc = encode_files(pipe, files, cache_dir=cache_dir, progress=progress)
    ok = [f for f in files if isinstance(enc[f], np.ndarray)]
    x = np.stack([enc[f] for f in ok]).astype(np.float32) if ok else np.empty((0, pipe.dim), np.float32)
    return pipe, ok, x, len(files) - len(ok)


def score(truth_all: np.ndarray, have_face: np.ndarray, labels: np.ndarray) -> dict:
    """Labels of the photos with a face -> BCubed over every photo (no face: alone)."""
    full = np.full(len(truth_all), -1, dtype=np.int64)
    full[have_face] = labels
    b = bcubed(truth_all, full)
    return {"precision": round(b.precision, 4), "recall": round(b.recall, 4), "f": round(b.f, 4),
            "clusters": b.clusters}


def sklearn_average(x: np.ndarray, thresholds) -> tuple[dict[float, np.ndarray], float]:
    from sklearn.cluster import AgglomerativeClustering

    t0 = time.perf_counter()
    model = AgglomerativeClustering(n_clusters=None, distance_threshold=max(thresholds), linkage="average",
                                    compute_full_tree=True, compute_distances=True).fit(x.astype(np.float64))
    seconds = time.perf_counter() - t0
    n = len(x)
    out = {}
    for t in thresholds:  # replay the merges below t (sklearn merges while distance < threshold)
        parent = np.arange(2 * n)
        for k, ((a, b), d) in enumerate(zip(model.children_, model.distances_)):
            if d >= t:
                break
            parent[a] = parent[b] = n + k
        root = parent.copy()
        while True:
            nxt = root[root]
            if np.array_equal(nxt, root):
                break
            root = nxt
        out[t] = root[:n]
    return out, seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_lfw = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "faces" / "lfw"
    ap.add_argument("--lfw", default=os.environ.get("CNNKIT_LFW", str(default_lfw)))
    ap.add_argument("--cache-dir", default=None, help="embedding cache (default: cache_dir()/face_encodings)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--encoder", default=None, help="face encoder (default: the default encoder)")
    ap.add_argument("--tune", action="store_true", help="the FAR sweep on pairsDevTrain's photos instead")
    ap.add_argument("--outside-view1", action="store_true",
                    help="only the photos outside View 1 (none of them was seen when CLUSTER_FAR was chosen)")
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--fine", action="store_true",
                    help="the peers at every 0.01 from 0.45 to 0.60 (dlib's scale) instead of the four thresholds")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    lfw = Path(args.lfw)
    if not (lfw / "pairsDevTrain.txt").is_file():
        sys.exit(f"LFW not found at {lfw} (give --lfw)")
    if args.tune:
        files = [lfw_image_path(lfw, *k) for k in read_pairs(lfw / "pairsDevTrain.txt").images()]
    else:
        files = sorted(lfw.glob("*/*.jpg"))
        if args.outside_view1:
            seen = {lfw_image_path(lfw, *k) for name in ("pairsDevTrain.txt", "pairsDevTest.txt")
                    for k in read_pairs(lfw / name).images()}
            files = [f for f in files if f not in seen]
    truth = np.array([f.parent.name for f in files])
    pipe, ok, x, no_face = load_embeddings(lfw, files, args.threads, args.cache_dir, not args.json, args.encoder)
    have = np.isin(np.arange(len(files)), [i for i, f in enumerate(files) if f in set(ok)])
    vt = pipe.default_threshold
    scale = vt / 0.6  # the fixed thresholds below are dlib's (default 0.6); other encoders: in proportion
    grid = tuple(round(0.45 + 0.01 * i, 2) for i in range(16)) if args.fine else PEER_THRESHOLDS
    peer_thresholds = tuple(round(t * scale, 4) for t in grid)
    rows = []

    def add(method: str, threshold: float | str, labels: np.ndarray, seconds: float) -> None:
        rows.append({"method": method, "threshold": threshold, **score(truth, have, labels),
                     "seconds": round(seconds, 1)})

    if args.tune:
        stats = impostor_stats(x, vt)
        for far in (1e-3, 3e-4, 1e-4, 3e-5, 1e-5, 3e-6, 1e-6, 5e-7, 3e-7, 2e-7, 1e-7, 5e-8, 3e-8, 1e-8):
            t = min(vt, threshold_from_stats(stats, far))
            t0 = time.perf_counter()
            res = cluster_embeddings(x, verification_threshold=vt, threshold=t)
            add(f"cnnkit, FAR {far:g}", round(t, 4), res.labels, time.perf_counter() - t0)
    else:
        t0 = time.perf_counter()
        far = encoder_cluster_far(pipe.encoder)
        res = cluster_embeddings(x, verification_threshold=vt, far=far)
        add(f"cnnkit (automatic threshold, FAR {far:g})", round(res.threshold, 4), res.labels, time.perf_counter() - t0)
        t0 = time.perf_counter()
        merged = cluster_embeddings(x, verification_threshold=vt, far=far, merge=True)
        add("cnnkit (automatic, with MergeRule)", round(merged.threshold, 4), merged.labels, time.perf_counter() - t0)
        if merged.rule is not None:
            rule = merged.rule
            print(f"merge rule: pair {rule.pair_threshold:.4f}, large groups {rule.group_threshold:.4f} (variance "
                  f"shares people {rule.shared:.3f}, photos {rule.per_face:.3f}, rest {rule.pairwise:.3f}, from "
                  f"{rule.pairs} mutual nearest pairs)", file=sys.stderr)
        for t in tuple(round(t * scale, 4) for t in PEER_THRESHOLDS[:3]):
            t0 = time.perf_counter()
            add("cnnkit (fixed threshold)", t, cluster_embeddings(x, verification_threshold=vt, threshold=t).labels,
                time.perf_counter() - t0)
        if not args.no_peers:
            import dlib

            vecs = [dlib.vector(v.astype(np.float64).tolist()) for v in x]
            for t in peer_thresholds:
                t0 = time.perf_counter()
                lab = np.asarray(dlib.chinese_whispers_clustering(vecs, t))
                add("dlib chinese_whispers", t, lab, time.perf_counter() - t0)
            cuts, seconds = sklearn_average(x, peer_thresholds)
            for t in peer_thresholds:
                add("sklearn agglomerative average", t, cuts[t], seconds)
    meta = {"photos": len(files), "people": int(len(set(truth))), "no_face": no_face, "encoder": pipe.tag,
            "verification_threshold": vt}
    if args.json:
        print(json.dumps({"benchmark": "cluster_lfw", **meta, "results": rows}))
        return
    which = "pairsDevTrain photos" if args.tune else "photos outside View 1" if args.outside_view1 else "all photos"
    print(f"LFW {which}: {meta['photos']} photos, "
          f"{meta['people']} people, no face found in {no_face}; encoder {pipe.tag}")
    head = f"{'method':32s} {'threshold':>9s} {'P':>7s} {'R':>7s} {'F':>7s} {'clusters':>8s} {'s':>7s}"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['method']:32s} {str(r['threshold']):>9s} {r['precision']:7.4f} {r['recall']:7.4f} "
              f"{r['f']:7.4f} {r['clusters']:8d} {r['seconds']:7.1f}")
    if not args.tune and not args.no_peers:
        best = max((r for r in rows if not r["method"].startswith("cnnkit")), key=lambda r: r["f"])
        print(f"best peer: {best['method']} at {best['threshold']}: F {best['f']}")
    print(f"(clusters count singletons; load average {os.getloadavg()[0]:.1f}, machine shared with other jobs)")


if __name__ == "__main__":
    main()
