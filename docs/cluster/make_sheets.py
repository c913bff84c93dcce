"""The contact sheets in this folder: cnnkit's automatic clustering of all 13,233 LFW photos
(benchmarks/cluster_lfw.py's "automatic threshold" row), a few clusters shown.

    .venv/bin/python docs/cluster/make_sheets.py [--lfw ../shared/data/faces/lfw] [--cache-dir DIR]

Shown: the three largest clusters, one of 5 faces, and the largest cluster of at most 10 faces
that mixes people (so the sheets show what goes wrong too). Faces are cut from the photos by the
default detector; each sheet shows at most 10 faces (the most central first), 56 px each. README.md lists who is who.
"""
from __future__ import annotations

import argparse
import os
from collections import Counter
from pathlib import Path

import numpy as np

from cnnkit.faces import FacePipeline
from cnnkit.faces.cluster import cluster_embeddings, encoder_cluster_far, representatives
from cnnkit.faces.cluster.sheets import contact_sheet
from cnnkit.faces.pairs import encode_files

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lfw", default=os.environ.get("CNNKIT_LFW", str(HERE.parents[2] / "shared/data/faces/lfw")))
    ap.add_argument("--cache-dir", default=None)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    files = sorted(Path(args.lfw).glob("*/*.jpg"))
    pipe = FacePipeline(threads=1)
    enc = encode_files(pipe, files, cache_dir=args.cache_dir, progress=False)
    files = [f for f in files if isinstance(enc[f], np.ndarray)]
    x = np.stack([enc[f] for f in files])
    res = cluster_embeddings(x, verification_threshold=pipe.default_threshold, far=encoder_cluster_far(pipe.encoder))
    order = representatives(x, res.labels)
    truth = [f.parent.name for f in files]
    sizes = {c: len(m) for c, m in order.items()}
    mixed = [c for c in sorted(order) if len({truth[i] for i in order[c]}) > 1 and sizes[c] <= 10]
    five = next(c for c in sorted(order) if sizes[c] == 5 and c not in mixed)
    chosen = [0, 1, 2, five, mixed[0]]
    lines = [f"Automatic threshold {res.threshold:.4f} ({res.source}); {res.n_clusters} clusters of two or more "
             f"faces, {res.alone} faces alone.", ""]
    for k, c in enumerate(chosen):
        faces = []
        for i in order[c][:10]:
            face = pipe.encode_one(files[i], largest=True)  # the box of the face that was embedded
            faces.append({"file": str(files[i]), "box": list(face.box)})
        name = f"lfw-cluster-{k + 1}.png"
        contact_sheet(faces, HERE / name, thumb=56, columns=10, limit=10)
        who = Counter(truth[i] for i in order[c]).most_common()
        lines.append(f"- `{name}`: cluster {c}, {sizes[c]} faces: " + ", ".join(f"{n} ({m})" for n, m in who))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
