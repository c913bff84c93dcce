"""Clustering ORL and Yale, which no constant of the clustering rule was chosen on.

Each set is clustered alone, with the automatic threshold (``MergeRule`` included) and with the
same pair threshold for every merge (the rule before ``MergeRule``), BCubed F against the true
people. ORL: 40 people x 10 photos (grey, mostly frontal); Yale: 15 people x 11 photos (lighting,
expressions, glasses; nine pairs of files are byte-identical).

    .venv/bin/python benchmarks/cluster_orl_yale.py [--data ../shared/data/faces]
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from cnnkit.core.errors import CnnkitError
from cnnkit.eval.clustering import bcubed
from cnnkit.faces import FacePipeline
from cnnkit.faces.cluster import cluster_embeddings


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "faces"
    ap.add_argument("--data", default=os.environ.get("CNNKIT_FACES", str(default)))
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    pipe = FacePipeline(threads=1)
    root = Path(args.data)
    print(f"{'set':6s} {'faces':>5s} {'people':>6s} {'pair tau':>8s} {'groups':>7s} {'F rule':>7s} {'F pair only':>11s}")
    for name, pattern in (("orl", "orl/s*/*.pgm"), ("yale", "yale/subject*/*")):
        emb, truth = [], []
        for f, res in pipe.encode_many(sorted(root.glob(pattern)), largest=True):
            if not isinstance(res, CnnkitError):
                emb.append(res.embedding)
                truth.append(f.parent.name)
        x = np.stack(emb)
        res = cluster_embeddings(x, verification_threshold=pipe.default_threshold)
        only = cluster_embeddings(x, verification_threshold=pipe.default_threshold, threshold=res.threshold)
        group = f"{res.rule.group_threshold:.4f}" if res.rule else "-"
        print(f"{name:6s} {len(x):5d} {len(set(truth)):6d} {res.threshold:8.4f} {group:>7s} "
              f"{bcubed(truth, res.labels).f:7.4f} {bcubed(truth, only.labels).f:11.4f}")


if __name__ == "__main__":
    main()
