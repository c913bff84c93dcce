"""Time per call of each cnnkit miner + triplet loss, beside a naive Python loop and beside
pytorch-metric-learning (PML) ``TripletMarginMiner`` / ``BatchHardMiner`` + ``TripletMarginLoss``,
on the same inputs in the same run; and whether the loss values agree.

    python benchmarks/triplet_mining.py [--sizes 128 1024] [--dim 128] [--repeats 7] [--json]

Inputs: B unit-length random embeddings, P = B/4 people x K = 4 images, margin 0.2. Time = best of
interleaved repeats of (distance matrix + mining + loss forward), on the CPU. The naive loop runs
once (pure Python over the precomputed distance matrix). Best-of is used, not the median,
because the machine this was written on was shared by several busy processes: the fastest run
is the one least disturbed by them.

Where the definitions agree the values must match:
- batch-all: cnnkit ``batch_all(margin)`` + ``mean_active`` == PML ``TripletMarginMiner("all")`` +
  ``TripletMarginLoss`` (its default ``AvgNonZeroReducer``), plain Euclidean distance; and the sum J with
  squared distances == naive loop.
- batch-hard: cnnkit ``batch_hard`` == PML ``BatchHardMiner`` (same triplets, same loss).
- semi-hard: cnnkit follows FaceNet (one negative per anchor-positive pair: the closest negative
  farther than the positive inside the margin, else the hardest); PML's ``"semihard"`` keeps *every*
  triplet with 0 < d(a,n) - d(a,p) <= margin. Different definitions: only cnnkit == naive is checked.
- random: no PML counterpart; checked for validity only.
PML is optional (``pip install pytorch-metric-learning --no-deps``); without it those columns are blank.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from typing import Any, Callable

import torch
import torch.nn.functional as F

from cnnkit.distances import pairwise_distance
from cnnkit.losses import triplet_loss_from_distances
from cnnkit.mining import mine_triplets

MARGIN = 0.2


def _time_once(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def cnnkit_loss(strategy: str, emb: torch.Tensor, labels: torch.Tensor, *, squared: bool, reduction: str) -> float:
    dist = pairwise_distance(emb, squared=squared)
    idx = mine_triplets(strategy, dist, labels, margin=MARGIN, generator=torch.Generator().manual_seed(0))
    return float(triplet_loss_from_distances(dist, idx, margin=MARGIN, reduction=reduction))


def naive_loss(strategy: str, emb: torch.Tensor, labels: torch.Tensor, *, squared: bool) -> float:
    """Sum of the triplet losses of the triplets a pure Python loop chooses (batch-all: every
    valid triplet; hard: per anchor; semihard: per anchor-positive pair)."""
    e = emb.double()
    d = ((e[:, None] - e[None]) ** 2).sum(-1)
    d = (d if squared else d.sqrt()).tolist()
    lab = labels.tolist()
    b = len(lab)
    total = 0.0
    for a in range(b):
        pos = [p for p in range(b) if p != a and lab[p] == lab[a]]
        neg = [n for n in range(b) if lab[n] != lab[a]]
        if not pos or not neg:
            continue
        da = d[a]
        if strategy == "hard":
            p = max(pos, key=lambda i: da[i])
            n = min(neg, key=lambda i: da[i])
            total += max(da[p] - da[n] + MARGIN, 0.0)
            continue
        for p in pos:
            if strategy == "all":
                total += sum(max(da[p] - da[n] + MARGIN, 0.0) for n in neg)
            else:  # semihard
                semi = [n for n in neg if da[p] < da[n] < da[p] + MARGIN]
                n = min(semi or neg, key=lambda i: da[i])
                total += max(da[p] - da[n] + MARGIN, 0.0)
    return total


def pml_callables(emb: torch.Tensor, labels: torch.Tensor) -> dict[str, Callable[[], float]]:
    try:
        from pytorch_metric_learning import distances, losses, miners
    except ImportError:
        return {}
    dist = distances.LpDistance(normalize_embeddings=True)
    loss = losses.TripletMarginLoss(margin=MARGIN, distance=dist)
    out = {}
    for name, miner in (("all", miners.TripletMarginMiner(margin=MARGIN, type_of_triplets="all", distance=dist)),
                        ("hard", miners.BatchHardMiner(distance=dist)),
                        ("semihard", miners.TripletMarginMiner(margin=MARGIN, type_of_triplets="semihard",
                                                               distance=dist))):
        out[name] = (lambda m=miner: float(loss(emb, labels, m(emb, labels))))
    return out


def run(sizes: list[int], dim: int, repeats: int, naive_max: int, progress: bool = False) -> list[dict[str, Any]]:
    rows = []
    for b in sizes:
        g = torch.Generator().manual_seed(b)
        emb = F.normalize(torch.randn(b, dim, generator=g), dim=1)
        labels = torch.arange(b // 4).repeat_interleave(4)
        pml = pml_callables(emb, labels)
        for strategy in ("all", "hard", "semihard", "random"):
            ours = lambda: cnnkit_loss(strategy, emb, labels, squared=False, reduction="mean_active")  # noqa: E731
            fns = {"cnnkit": ours}
            if strategy in pml:
                fns["pml"] = pml[strategy]
            times: dict[str, list[float]] = {k: [] for k in fns}
            for _ in range(repeats):  # interleaved, so load from other processes hits both
                for k, fn in fns.items():
                    times[k].append(_time_once(fn))
            row: dict[str, Any] = {"B": b, "D": dim, "miner": strategy,
                                   "cnnkit_ms": 1e3 * min(times["cnnkit"]),
                                   "cnnkit_loss": ours()}
            if "pml" in fns:
                row["pml_ms"] = 1e3 * min(times["pml"])
                row["pml_loss"] = fns["pml"]()
                row["agree"] = (strategy != "semihard") and math.isclose(row["cnnkit_loss"], row["pml_loss"],
                                                                         rel_tol=1e-4, abs_tol=1e-6)
                if strategy == "semihard":
                    row["agree"] = "n/a (different definition)"
            if strategy != "random" and b <= naive_max:
                t = time.perf_counter()
                ref = naive_loss(strategy, emb, labels, squared=True)
                row["naive_ms"] = 1e3 * (time.perf_counter() - t)
                ours_sum = cnnkit_loss(strategy, emb, labels, squared=True, reduction="sum")
                row["naive_agree"] = math.isclose(ours_sum, ref, rel_tol=1e-4, abs_tol=1e-5)
            rows.append(row)
            if progress:
                print("  " + json.dumps(row), flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 1024])
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--naive-max", type=int, default=1024, help="skip the naive loop above this B")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = run(args.sizes, args.dim, args.repeats, args.naive_max, progress=not args.json)
    if args.json:
        print(json.dumps({"threads": args.threads, "margin": MARGIN, "rows": rows}))
        return
    cols = ["B", "D", "miner", "cnnkit_ms", "pml_ms", "naive_ms", "cnnkit_loss", "pml_loss", "agree", "naive_agree"]
    print("  ".join(f"{c:>11}" for c in cols))
    for r in rows:
        cells = [r.get(c, "") for c in cols]
        print("  ".join(f"{c:>11.4g}" if isinstance(c, float) else f"{str(c)[:11]:>11}" for c in cells))


if __name__ == "__main__":
    main()
