"""Throughput of cnnkit's ConvBlock1d/2d/3d beside the same layers as a plain torch.nn.Sequential
(Conv → BatchNorm → ReLU, same weights), measured in the same run, interleaved, and multiply-adds per
second against a float32 matrix-product peak measured in the same run.

    python benchmarks/conv_nd.py [--repeats 15] [--threads N] [--clock wall|cpu] [--json]

Inference: eval mode under no_grad. Training: forward + backward in train mode. Times are medians of
``--repeats`` interleaved runs (block, plain, matmul, block, plain, matmul...), so load from other
processes hits all three alike; '% peak' is the block's median multiply-adds per second over the
median matmul rate. Training multiply-adds are counted as 3x the forward ones.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from cnnkit.nn.blocks import conv_block, plain_conv_block
from cnnkit.nn.shapes import layer_mult_adds

SHAPES = {1: (32, 64, 2048), 2: (16, 64, 56, 56), 3: (2, 32, 32, 32, 32)}


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
_clock = time.perf_counter


def _time(fn, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = _clock()
        fn()
        times.append(_clock() - start)
    return times


MM = 1024
_A, _B = torch.randn(MM, MM), torch.randn(MM, MM)


def _matmul() -> None:
    torch.mm(_A, _B)


def bench_nd(nd: int, repeats: int, mm_times: list[float]) -> list[dict]:
    """Block vs plain layers for ``nd``; appends the times of the interleaved matmul runs to ``mm_times``."""
    shape = SHAPES[nd]
    channels = shape[1]
    block, plain = conv_block(nd, channels, channels), plain_conv_block(nd, channels, channels)
    plain.load_state_dict({k.replace("conv.", "0.").replace("norm.", "1."): v for k, v in block.state_dict().items()})
    x = torch.randn(shape)
    macs = layer_mult_adds(block.conv, shape, shape)
    rows = []
    for mode in ("inference", "training"):
        def run(module, mode=mode):
            if mode == "inference":
                with torch.no_grad():
                    module(x)
            else:
                module(x).sum().backward()

        for m in (block, plain):
            m.train(mode == "training")
            run(m)                                    # warm-up
        t_block, t_plain = [], []
        for _ in range(repeats):
            t_block += _time(lambda: run(block), 1)
            t_plain += _time(lambda: run(plain), 1)
            mm_times += _time(_matmul, 1)
        tb, tp = statistics.median(t_block), statistics.median(t_plain)
        factor = 1 if mode == "inference" else 3     # backward costs about twice the forward
        rows.append({"nd": nd, "input": "x".join(map(str, shape)), "mode": mode,
                     "block_ms": tb * 1e3, "plain_ms": tp * 1e3, "overhead_pct": 100 * (tb - tp) / tp,
                     "block_gmacs": factor * macs / tb / 1e9, "plain_gmacs": factor * macs / tp / 1e9})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                        help="wall: elapsed time; cpu: this process's CPU time (with --threads 1 it is "
                             "unaffected by other processes on a shared machine)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args()
    global _clock
    _clock = CLOCKS[args.clock]
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    _matmul()
    mm_times: list[float] = []
    rows = [row for nd in (1, 2, 3) for row in bench_nd(nd, args.repeats, mm_times)]
    peak = MM ** 3 / statistics.median(mm_times)          # same conditions as the medians above
    best = MM ** 3 / min(mm_times)
    for row in rows:
        row["block_pct_of_peak"] = 100 * row["block_gmacs"] * 1e9 / peak
    if args.json:
        print(json.dumps({"threads": torch.get_num_threads(), "clock": args.clock, "matmul_median_gmacs": peak / 1e9,
                          "matmul_best_gmacs": best / 1e9, "rows": rows}))
        return
    print(f"threads {torch.get_num_threads()}, {args.clock} clock; matmul {MM}x{MM} float32, interleaved with the runs below: "
          f"median {peak / 1e9:.1f} GMAC/s (the '% peak' reference), best {best / 1e9:.1f} GMAC/s")
    head = f"{'nd':>2}  {'input':<16} {'mode':<9} {'block ms':>9} {'plain ms':>9} {'overhead':>9} " \
           f"{'block GMAC/s':>12} {'plain GMAC/s':>12} {'% peak':>7}"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['nd']:>2}  {r['input']:<16} {r['mode']:<9} {r['block_ms']:>9.2f} {r['plain_ms']:>9.2f} "
              f"{r['overhead_pct']:>8.1f}% {r['block_gmacs']:>12.2f} {r['plain_gmacs']:>12.2f} "
              f"{r['block_pct_of_peak']:>6.1f}%")


if __name__ == "__main__":
    main()
