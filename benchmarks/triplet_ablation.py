"""Mining strategies and losses compared on the same budget: one-shot rank-1 and EER on people the
encoder never saw (ORL: train on s1..s30, test on s31..s40), beside raw-pixel nearest neighbour.

    python benchmarks/triplet_ablation.py [--epochs 10] [--size 56 46] [--seed 0] [--json]

Every row is one `cnnkit train` run (library call :func:`cnnkit.train.loop.train_encoder`) with the same
encoder, epochs, P x K batches, learning rate, augmentation and seed; only the loss and the
mining change (batch-all, batch-hard, semi-hard, random triplets; contrastive on all pairs of the
batch). Rank-1 is the mean over 10 one-shot galleries; the EER is over every pair of the test
people's images (Euclidean distance). The budget is kept small on purpose (a shared 2-core CPU).
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from cnnkit.data.folders import IdentityFolder, scan_identity_folder
from cnnkit.eval.verification import eer
from cnnkit.nn.checkpoint import encode_images, load_encoder
from cnnkit.train.loop import TrainConfig, train_encoder
from cnnkit.core.euclidean import euclidean_matrix
from cnnkit.eval.embedding import oneshot_rank1

RUNS = (("triplet", "all"), ("triplet", "hard"), ("triplet", "semihard"), ("triplet", "random"),
        ("contrastive", "all"))


def evaluate(emb: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """One-shot rank-1 (10 seeds) and the EER over all pairs, for embeddings (N, D) and labels (N,)."""
    iu = np.triu_indices(len(labels), 1)
    d = euclidean_matrix(emb, emb)[iu]
    same = (labels[:, None] == labels[None, :])[iu]
    shot = oneshot_rank1(emb, labels, seeds=10)
    return {"rank1": shot["rank1"], "rank1_std": shot["rank1_std"], "eer": eer(d, same)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[1] / "data" / "orl"))
    ap.add_argument("--train", default="s1..s30")
    ap.add_argument("--test", default="s31..s40")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--size", type=int, nargs=2, default=[56, 46])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    test = IdentityFolder(scan_identity_folder(args.data, people=args.test))
    labels = test.labels.numpy()
    flat = np.stack([np.asarray(im, np.float32).mean(-1).ravel() for im in test.images])
    rows = [{"loss": "raw pixels", "mining": "-", **evaluate(flat, labels), "train_s": 0.0}]
    with tempfile.TemporaryDirectory() as tmp:
        for loss, mining in RUNS:
            cfg = TrainConfig(loss=loss, mining=mining, epochs=args.epochs, people=args.train, size=tuple(args.size),
                              seed=args.seed, val_fraction=0.0)
            t = time.time()
            out = Path(tmp) / f"{loss}-{mining}"
            train_encoder(args.data, out, cfg, progress=False, log=lambda s: None)
            model, config = load_encoder(out)
            rows.append({"loss": loss, "mining": mining if loss == "triplet" else "all pairs",
                         **evaluate(encode_images(model, config, test.images), labels),
                         "train_s": round(time.time() - t, 1)})
            if not args.json:
                r = rows[-1]
                print(f"  done {loss}/{mining}: rank1 {r['rank1']:.3f} eer {r['eer']:.3f} ({r['train_s']} s)", flush=True)
    if args.json:
        print(json.dumps({"epochs": args.epochs, "size": args.size, "seed": args.seed, "train": args.train,
                          "test": args.test, "rows": rows}))
        return
    print(f"{'loss':12s} {'mining':10s} {'rank1':>7s} {'± std':>6s} {'EER':>6s} {'train s':>8s}")
    for r in rows:
        print(f"{r['loss']:12s} {r['mining']:10s} {r['rank1']:7.3f} {r['rank1_std']:6.3f} {r['eer']:6.3f} {r['train_s']:8.1f}")


if __name__ == "__main__":
    main()
