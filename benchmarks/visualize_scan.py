"""Cost of the streaming top-k scan (``cnnkit visualize units``) beside plain forward passes.

Question: how much slower is a scan than just running the model over the same data, and does its
memory stay flat as the data set grows?

For each data set size N (each in a fresh process, so that peak RSS belongs to that size alone):
  1. plain forward passes of the model over N inputs, batched, no hooks (baseline);
  2. ``scan_top_units`` over the same N inputs (hooks, per-batch top-k merge, early stop);
  3. the same scan keeping several positions per input (``distinct_inputs=False``).
Inputs are generated on the fly from their index (seeded), so the data never sits in memory and
the peak RSS measures the model, one batch and the top-k tables. The model is VGG19 (random weights;
the cost does not depend on them) up to the deepest scanned layer.

    python benchmarks/visualize_scan.py [--sizes 64,256,1024] [--image-size 112] [--json]
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch

LAYERS = ("conv1_1", "conv2_1", "conv3_1")


class _Generated(torch.utils.data.Dataset):
    """N random images (3, S, S) in [0, 1], each made from its index: nothing is stored."""

    def __init__(self, n: int, size: int) -> None:
        self.n, self.size = n, size
        self.description = f"generated:{n}:{size}"

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(i)
        return torch.rand(3, self.size, self.size, generator=g)


def _worker(n: int, size: int, batch: int, threads: int) -> dict:
    from cnnkit.nn.vgg import VGG19Features
    from cnnkit.visualize.scan import scan_top_units

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = VGG19Features(last_layer=LAYERS[-1]).eval()
    data = _Generated(n, size)

    def forward_only() -> tuple[float, float]:
        start, cpu = time.perf_counter(), time.process_time()
        with torch.no_grad():
            for s in range(0, n, batch):
                model(torch.stack([data[i] for i in range(s, min(n, s + batch))]))
        return time.perf_counter() - start, time.process_time() - cpu

    def scan(distinct: bool) -> tuple[float, float, int]:
        start, cpu = time.perf_counter(), time.process_time()
        result = scan_top_units(model, data, LAYERS, top=9, batch_size=batch, distinct_inputs=distinct,
                                progress=False)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        state = sum(t.activation.nbytes + t.index.nbytes + t.position.nbytes for t in result.layers.values())
        return seconds, cpu, state

    with torch.no_grad():  # warm-up (allocator, kernels), not timed
        model(torch.stack([data[i] for i in range(min(n, batch))]))
    rss = lambda: round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # noqa: E731
    t_forward, c_forward = forward_only()
    rss_forward = rss()  # peak so far: model + one batch
    t_scan, c_scan, state = scan(True)
    rss_scan = rss()
    t_scan_all, c_scan_all, _ = scan(False)
    return {"n": n, "image_size": size, "batch": batch, "threads": threads,
            "forward_s": round(t_forward, 3), "scan_s": round(t_scan, 3), "scan_all_positions_s": round(t_scan_all, 3),
            "forward_cpu_s": round(c_forward, 3), "scan_cpu_s": round(c_scan, 3),
            "scan_all_positions_cpu_s": round(c_scan_all, 3),
            "ratio": round(t_scan / t_forward, 3), "ratio_all_positions": round(t_scan_all / t_forward, 3),
            "cpu_ratio": round(c_scan / c_forward, 3), "cpu_ratio_all_positions": round(c_scan_all / c_forward, 3),
            "topk_state_bytes": state, "peak_rss_forward_mb": rss_forward, "peak_rss_after_scan_mb": rss_scan,
            "peak_rss_mb": rss()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="64,256,1024")
    parser.add_argument("--image-size", type=int, default=112)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        print(json.dumps(_worker(args.worker, args.image_size, args.batch_size, args.threads)))
        return 0
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        cmd = [sys.executable, __file__, "--worker", str(n), "--image-size", str(args.image_size),
               "--batch-size", str(args.batch_size), "--threads", str(args.threads)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
    summary = {"benchmark": "visualize_scan", "model": f"vgg19 up to {LAYERS[-1]} (random weights)",
               "layers": list(LAYERS), "units": "all (64+128+256)", "top": 9, "rows": rows,
               "max_ratio": max(r["ratio"] for r in rows), "max_cpu_ratio": max(r["cpu_ratio"] for r in rows),
               "scan_rss_growth_mb": round(rows[-1]["peak_rss_after_scan_mb"] - rows[0]["peak_rss_after_scan_mb"], 1),
               "rss_growth_mb": round(rows[-1]["peak_rss_mb"] - rows[0]["peak_rss_mb"], 1)}
    if args.json:
        print(json.dumps(summary))
        return 0
    print(f"scan of {summary['model']}, layers {','.join(LAYERS)}, all units, top 9, "
          f"{args.image_size}px, batch {args.batch_size}, {args.threads} threads")
    print("wall and CPU seconds (CPU time is the fairer measure on a shared machine); ratio = scan / forward")
    head = (f"{'N':>6} {'forward s':>10} {'scan s':>7} {'ratio':>6} {'fwd CPU':>8} {'scan CPU':>9} {'ratio':>6} "
            f"{'all-pos CPU':>12} {'ratio':>6} {'top-k KB':>9} {'RSS fwd':>8} {'RSS scan':>9} {'RSS all':>8}")
    print(head)
    for r in rows:
        print(f"{r['n']:>6} {r['forward_s']:>10.2f} {r['scan_s']:>7.2f} {r['ratio']:>6.2f} "
              f"{r['forward_cpu_s']:>8.2f} {r['scan_cpu_s']:>9.2f} {r['cpu_ratio']:>6.2f} "
              f"{r['scan_all_positions_cpu_s']:>12.2f} {r['cpu_ratio_all_positions']:>6.2f} "
              f"{r['topk_state_bytes'] / 1024:>9.1f} {r['peak_rss_forward_mb']:>8.1f} "
              f"{r['peak_rss_after_scan_mb']:>9.1f} {r['peak_rss_mb']:>8.1f}")
    print("RSS: peak resident MB of the process after the forward passes, after the scan, after the "
          "all-positions scan (ru_maxrss only grows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
