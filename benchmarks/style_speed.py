"""Seconds and peak memory per L-BFGS iteration of cnnkit's style transfer beside a straightforward
implementation in the manner of the PyTorch tutorial (full VGG19 features rebuilt as a Sequential with
loss modules inserted after the chosen layers, trimmed after the last loss as the tutorial does, MSE
losses, clamping inside the closure, LBFGS with its defaults), with the same weights, layers and steps.
Also cnnkit's achieved GFLOP/s against a float32 matrix-product peak measured in the same run.

    python benchmarks/style_speed.py [--sizes 256,512] [--steps 10] [--threads 2] [--json]

Each (implementation, size) runs in a fresh child process of this run, so its peak RSS (ru_maxrss)
is its own; the children alternate cnnkit / tutorial so that load from other processes hits both.
Wall time and CPU time (user + system) per evaluation are both reported: on a shared machine the
CPU time is the steadier figure.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

CONTENT_LAYER = "conv4_2"
STYLE_LAYERS = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
STARRY = os.path.join(os.path.dirname(__file__), "..", "data", "style", "starry_night.jpg")


def _images(size: int):
    import numpy as np
    import torch
    from PIL import Image
    from skimage import data

    def tensor(arr: np.ndarray, wh: tuple[int, int]) -> torch.Tensor:
        img = Image.fromarray(arr).resize(wh, Image.Resampling.LANCZOS)
        return torch.from_numpy(np.array(img)).permute(2, 0, 1)[None].float().div(255).contiguous()

    astronaut = data.astronaut()  # square; the tutorial needs the style image at the content's size
    content = tensor(astronaut, (size, size))
    style = tensor(np.array(Image.open(STARRY).convert("RGB")), (size, size))
    return content, style


def conv_flops(height: int, width: int, last_layer: str) -> int:
    """FLOPs of one evaluation: every conv forward and its input-gradient backward (2 x 2 x MACs)."""
    from cnnkit.nn.vgg import CONV_SHAPES, VGG19_LAYERS

    h, w, total = height, width, 0
    for name in VGG19_LAYERS[: VGG19_LAYERS.index(last_layer) + 1]:
        if name.startswith("conv"):
            out_ch, in_ch = CONV_SHAPES[name]
            total += 2 * 2 * out_ch * in_ch * 9 * h * w
        elif name.startswith("pool"):
            h, w = h // 2, w // 2
    return total


def matmul_peak_gflops(n: int = 2048, repeats: int = 8) -> float:
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * n ** 3 / best / 1e9


# ------------------------------------------------------------------------------------------
# the two implementations, each returning (evaluations, wall seconds, cpu seconds) of its loop


def run_cnnkit(size: int, steps: int) -> tuple[int, float, float]:
    from cnnkit.style.optimize import StyleOptions, run

    content, style = _images(size)
    opts = StyleOptions(size=size, steps=steps, content_layers=CONTENT_LAYER, style_layers=",".join(STYLE_LAYERS))
    res = run(content, style, opts)
    # the optimisation loop only, as for the tutorial (not weights loading, targets or the final costs)
    return res.evaluations, res.scales[-1]["seconds"], res.scales[-1]["cpu_seconds"]


def run_tutorial(size: int, steps: int) -> tuple[int, float, float]:
    import torch
    import torch.nn.functional as F
    from torch import nn

    from cnnkit.nn.vgg import vgg19_features

    content_img, style_img = _images(size)
    cnn = vgg19_features()  # all 37 layers, same weights, frozen
    normalization = cnn.normalize

    def gram_matrix(inp):
        a, b, c, d = inp.size()
        features = inp.view(a * b, c * d)
        G = torch.mm(features, features.t())
        return G.div(a * b * c * d)

    class ContentLoss(nn.Module):
        def __init__(self, target):
            super().__init__()
            self.target = target.detach()

        def forward(self, inp):
            self.loss = F.mse_loss(inp, self.target)
            return inp

    class StyleLoss(nn.Module):
        def __init__(self, target_feature):
            super().__init__()
            self.target = gram_matrix(target_feature).detach()

        def forward(self, inp):
            self.loss = F.mse_loss(gram_matrix(inp), self.target)
            return inp

    content_losses, style_losses = [], []
    model = nn.Sequential(normalization)
    for name, layer in cnn.named_children():
        if name == "normalize":
            continue
        if isinstance(layer, nn.ReLU):
            layer = nn.ReLU(inplace=False)
        model.add_module(name, layer)
        if name == CONTENT_LAYER:
            target = model(content_img).detach()
            content_loss = ContentLoss(target)
            model.add_module(f"content_loss_{name}", content_loss)
            content_losses.append(content_loss)
        if name in STYLE_LAYERS:
            target_feature = model(style_img).detach()
            style_loss = StyleLoss(target_feature)
            model.add_module(f"style_loss_{name}", style_loss)
            style_losses.append(style_loss)
    last = max(i for i, m in enumerate(model.children()) if isinstance(m, (ContentLoss, StyleLoss)))
    model = model[: last + 1]
    model.eval()
    model.requires_grad_(False)

    input_img = content_img.clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS([input_img], max_iter=steps)  # the tutorial keeps max_iter=20 per step()
    run = [0]

    def closure():
        with torch.no_grad():
            input_img.clamp_(0, 1)
        optimizer.zero_grad()
        model(input_img)
        style_score = sum(sl.loss for sl in style_losses) * 1e6
        content_score = sum(cl.loss for cl in content_losses)
        loss = style_score + content_score
        loss.backward()
        run[0] += 1
        return style_score + content_score

    start, cpu0 = time.perf_counter(), time.process_time()
    while run[0] < steps:
        optimizer.step(closure)
    with torch.no_grad():
        input_img.clamp_(0, 1)
    return run[0], time.perf_counter() - start, time.process_time() - cpu0


def worker(impl: str, size: int, steps: int, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    fn = run_cnnkit if impl == "cnnkit" else run_tutorial
    evals, wall, cpu = fn(size, steps)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    row = {"impl": impl, "size": size, "evaluations": evals, "s_per_eval": wall / evals,
           "cpu_s_per_eval": cpu / evals, "peak_rss_mib": round(peak_mib, 1)}
    if impl == "cnnkit":
        row["gflops_per_s"] = conv_flops(*_images(size)[0].shape[-2:], "conv5_1") / 1e9 / row["s_per_eval"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="256,512")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--worker", nargs=2, metavar=("IMPL", "SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], int(args.worker[1]), args.steps, args.threads)))
        return

    import torch

    torch.set_num_threads(args.threads)
    peak = matmul_peak_gflops()
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        for impl in ("cnnkit", "tutorial"):
            out = subprocess.run([sys.executable, __file__, "--worker", impl, str(size), "--steps", str(args.steps),
                                  "--threads", str(args.threads)], capture_output=True, text=True, check=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    peak_after = matmul_peak_gflops()
    for row in rows:
        if "gflops_per_s" in row:
            row["fraction_of_peak"] = row["gflops_per_s"] / max(peak, peak_after)
    result = {"threads": args.threads, "steps": args.steps, "matmul_peak_gflops": [peak, peak_after],
              "load_average": os.getloadavg(), "rows": rows}
    if args.json:
        print(json.dumps(result))
        return
    print(f"matmul peak (2048^2 float32, {args.threads} threads): {peak:.1f} GFLOP/s before, "
          f"{peak_after:.1f} after; load average {os.getloadavg()[0]:.1f}")
    print(f"{'impl':9} {'size':>5} {'evals':>5} {'s/eval':>8} {'cpu s/eval':>10} {'peak RSS MiB':>12} {'GFLOP/s':>8} {'of peak':>7}")
    for r in rows:
        g = f"{r['gflops_per_s']:.1f}" if "gflops_per_s" in r else "-"
        f = f"{r['fraction_of_peak']:.0%}" if "fraction_of_peak" in r else "-"
        print(f"{r['impl']:9} {r['size']:>5} {r['evaluations']:>5} {r['s_per_eval']:>8.3f} {r['cpu_s_per_eval']:>10.3f} "
              f"{r['peak_rss_mib']:>12.0f} {g:>8} {f:>7}")


if __name__ == "__main__":
    main()
