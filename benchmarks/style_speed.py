"""Seconds until the picture is reached: cnnkit's style transfer with its defaults beside a straightforward
implementation in the manner of the PyTorch tutorial (full VGG19 features rebuilt as a Sequential with
loss modules inserted after the chosen layers, trimmed after the last loss, MSE losses, style weight 1e6,
clamping inside the closure, LBFGS with its defaults), both starting from the photo.

    python benchmarks/style_speed.py [--sizes 256,512] [--max-evals 400] [--threads 1] [--json]
                                     [--save-dir DIR] [--options '{"style_weight": 1.0}']

"Reached" is one bar for both, judged by :class:`Judge` on the picture each evaluation sees: cnnkit's
unweighted style cost (conv1_1..conv5_1, lambda_l = 1) at most ``STOP_AT`` (2 %) of the photo's own, and
the blurred-luminance correlation to the photo (``cnnkit.style.quality.content_kept``) at least ``KEEP``
(0.95). cnnkit stops itself with ``stop_at`` / ``keep_content``; the tutorial loop is judged after every
evaluation with the clock stopped. The time counts from the targets (after the weights are loaded) to
the first evaluation that meets the bar. The final picture of each is judged again at its size.

Each (implementation, size) runs in a fresh child process, so its peak RSS (ru_maxrss) is its own; the
children alternate cnnkit / tutorial so that load from other processes hits both. Wall time and CPU time
(user + system) are both reported: on a shared machine the CPU time is the steadier figure.
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
STOP_AT = 0.02
KEEP = 0.95


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


class Judge:
    """The one bar: cnnkit's style cost relative to the photo's own, and ``content_kept``, at one size."""

    def __init__(self, content, style) -> None:
        import torch

        from cnnkit.nn.vgg import vgg19_features
        from cnnkit.style.loss import PerceptualLoss

        self.loss = PerceptualLoss(vgg19_features(last_layer="conv5_1"))  # cnnkit's default layers
        self.loss.set_targets(content, [style])
        self.content = content
        with torch.no_grad():
            self.start = float(self.loss(content).style)

    def measure(self, img) -> tuple[float, float]:
        """(style cost / the photo's, content kept) of ``img`` (1, 3, H, W) in [0, 1]."""
        import torch

        from cnnkit.style.quality import content_kept

        with torch.no_grad():
            img = img.detach().clamp(0, 1)
            return float(self.loss(img).style) / self.start, content_kept(img, self.content)

    def reached(self, img) -> bool:
        ratio, kept = self.measure(img)
        return ratio <= STOP_AT and kept >= KEEP


# ------------------------------------------------------------------------------------------
# the two implementations, each returning (picture, evaluations, wall s, cpu s, reached)


def run_cnnkit(size: int, max_evals: int, overrides: dict):
    import torch

    from cnnkit.style.optimize import StyleOptions, run

    content, style = _images(size)
    fields = {"size": size, "steps": max_evals, "stop_at": STOP_AT, "keep_content": KEEP} | overrides
    opts = StyleOptions(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})
    cpu0 = time.process_time()
    res = run(content, style, opts)
    cpu = time.process_time() - cpu0  # includes loading the weights (a fraction of a second)
    img = torch.from_numpy(__import__("numpy").asarray(res.image)).permute(2, 0, 1)[None].float().div(255)
    # res.seconds: from the first scale's targets to the end (not weights loading or the picture's conversion)
    return img, res.evaluations, res.seconds, cpu, bool(res.reached), res.scales


def run_tutorial(size: int, max_evals: int, judge: Judge):
    import torch
    import torch.nn.functional as F
    from torch import nn

    from cnnkit.nn.vgg import vgg19_features

    content_img, style_img = _images(size)
    cnn = vgg19_features()  # all 37 layers, same weights, frozen
    clock = {"wall": 0.0, "cpu": 0.0}  # time spent judging, taken off
    start, cpu0 = time.perf_counter(), time.process_time()

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
    model = nn.Sequential(cnn.normalize)
    for name, layer in cnn.named_children():
        if name == "normalize":
            continue
        if isinstance(layer, nn.ReLU):
            layer = nn.ReLU(inplace=False)
        model.add_module(name, layer)
        if name == CONTENT_LAYER:
            content_loss = ContentLoss(model(content_img).detach())
            model.add_module(f"content_loss_{name}", content_loss)
            content_losses.append(content_loss)
        if name in STYLE_LAYERS:
            style_loss = StyleLoss(model(style_img).detach())
            model.add_module(f"style_loss_{name}", style_loss)
            style_losses.append(style_loss)
    last = max(i for i, m in enumerate(model.children()) if isinstance(m, (ContentLoss, StyleLoss)))
    model = model[: last + 1]
    model.eval()
    model.requires_grad_(False)

    input_img = content_img.clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS([input_img])  # the tutorial's max_iter=20 per step()
    state = {"evals": 0, "reached": False}

    class Reached(Exception):
        pass

    def closure():
        with torch.no_grad():
            input_img.clamp_(0, 1)
        # the judge looks at the picture this evaluation sees, with the clock stopped
        paused, paused_cpu = time.perf_counter(), time.process_time()
        hit = state["evals"] > 0 and judge.reached(input_img)
        clock["wall"] += time.perf_counter() - paused
        clock["cpu"] += time.process_time() - paused_cpu
        if hit:
            state["reached"] = True
            raise Reached
        optimizer.zero_grad()
        model(input_img)
        style_score = sum(sl.loss for sl in style_losses) * 1e6
        content_score = sum(cl.loss for cl in content_losses)
        loss = style_score + content_score
        loss.backward()
        state["evals"] += 1
        return style_score + content_score

    try:
        while state["evals"] < max_evals:
            optimizer.step(closure)
        with torch.no_grad():
            input_img.clamp_(0, 1)
        state["reached"] = judge.reached(input_img)
    except Reached:
        pass
    wall = time.perf_counter() - start - clock["wall"]
    cpu = time.process_time() - cpu0 - clock["cpu"]
    return input_img.detach(), state["evals"], wall, cpu, state["reached"], []


def worker(impl: str, size: int, max_evals: int, threads: int, overrides: dict, save_dir: str | None) -> dict:
    import torch

    from cnnkit.style.optimize import save_image, to_pil

    torch.set_num_threads(threads)
    judge = Judge(*_images(size))
    if impl == "cnnkit":
        img, evals, wall, cpu, reached, scales = run_cnnkit(size, max_evals, overrides)
    else:
        img, evals, wall, cpu, reached, scales = run_tutorial(size, max_evals, judge)
    ratio, kept = judge.measure(img)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if save_dir:
        os.makedirs(save_dir, exist_ok=True)
        save_image(to_pil(img), os.path.join(save_dir, f"{impl}_{size}.png"))
    return {"impl": impl, "size": size, "reached": reached,
            "seconds_to_quality": round(wall, 2) if reached else None, "cpu_seconds": round(cpu, 2),
            "evaluations": evals, "s_per_eval": round(wall / max(evals, 1), 3),
            "final_style_ratio": round(ratio, 4), "final_content_kept": round(kept, 4),
            "peak_rss_mib": round(peak_mib, 1),
            "scales": [{"size": s["size"][0], "evaluations": s["evaluations"], "seconds": round(s["seconds"], 2)}
                       for s in scales]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="256,512")
    parser.add_argument("--max-evals", type=int, default=400, help="give up after this many evaluations")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--impls", default="cnnkit,tutorial")
    parser.add_argument("--options", default="{}", help="JSON: StyleOptions fields to change from cnnkit's defaults")
    parser.add_argument("--save-dir", default=None, help="write each final picture as IMPL_SIZE.png here")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--worker", nargs=2, metavar=("IMPL", "SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    overrides = json.loads(args.options)
    if args.worker:
        print(json.dumps(worker(args.worker[0], int(args.worker[1]), args.max_evals, args.threads, overrides,
                                args.save_dir)))
        return

    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        for impl in args.impls.split(","):
            cmd = [sys.executable, __file__, "--worker", impl, str(size), "--max-evals", str(args.max_evals),
                   "--threads", str(args.threads), "--options", args.options]
            if args.save_dir:
                cmd += ["--save-dir", args.save_dir]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    for size in {r["size"] for r in rows}:
        mine = [r for r in rows if r["size"] == size]
        by = {r["impl"]: r["seconds_to_quality"] for r in mine}
        for r in mine:
            if r["impl"] == "cnnkit" and by.get("cnnkit") and by.get("tutorial"):
                r["x_tutorial"] = round(by["cnnkit"] / by["tutorial"], 3)
    result = {"threads": args.threads, "stop_at": STOP_AT, "keep_content": KEEP, "options": overrides,
              "load_average": os.getloadavg(), "rows": rows}
    if args.json:
        print(json.dumps(result))
        return
    print(f"bar: style cost <= {STOP_AT:.0%} of the photo's, content kept >= {KEEP}; {args.threads} thread(s); "
          f"load average {os.getloadavg()[0]:.1f}; cnnkit options {overrides or 'defaults'}")
    print(f"{'impl':9} {'size':>5} {'s to quality':>12} {'x tutorial':>10} {'evals':>5} {'s/eval':>7} {'cpu s':>7} "
          f"{'style %':>7} {'kept':>6} {'RSS MiB':>8}  scales")
    for r in rows:
        s = f"{r['seconds_to_quality']:.1f}" if r["reached"] else "not reached"
        x = f"{r['x_tutorial']:.2f}" if "x_tutorial" in r else "-"
        sc = " ".join(f"{c['size']}:{c['evaluations']}/{c['seconds']:.0f}s" for c in r["scales"])
        print(f"{r['impl']:9} {r['size']:>5} {s:>12} {x:>10} {r['evaluations']:>5} {r['s_per_eval']:>7.3f} "
              f"{r['cpu_seconds']:>7.1f} {r['final_style_ratio']:>7.2%} {r['final_content_kept']:>6.3f} "
              f"{r['peak_rss_mib']:>8.0f}  {sc}")


if __name__ == "__main__":
    main()
