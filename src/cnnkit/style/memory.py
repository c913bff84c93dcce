"""A memory estimate for one style-transfer scale, made before the run.

The estimate counts what a VGG19 evaluation keeps for its backward pass (each conv output, each pool
output and its int64 max-pool indices), the gradients alive at the peak of the backward pass, the
frozen weights, the optimiser state (L-BFGS keeps ``2 * history`` image-sized vectors) and a fixed
base for the Python process and torch. The factors were calibrated against peak RSS measured here
(peak RSS at 256, 512 and a 256/512/1024 multi-scale run, issue 7 report); it is an estimate, not a guarantee.
"""
from __future__ import annotations

from typing import Sequence

from cnnkit.core.errors import CnnkitError
from cnnkit.nn.vgg import CONV_SHAPES, VGG19_LAYERS

BASE_BYTES = 450 * 2**20  # python + torch + the image buffers, measured at 64 px
_FLOAT = 4


def _activation_sizes(height: int, width: int, last_layer: str) -> list[tuple[str, int]]:
    sizes: list[tuple[str, int]] = []
    h, w = height, width
    channels = 3
    for name in VGG19_LAYERS[: VGG19_LAYERS.index(last_layer) + 1]:
        if name.startswith("conv"):
            channels = CONV_SHAPES[name][0]
            sizes.append((name, channels * h * w))
        elif name.startswith("pool"):
            h, w = h // 2, w // 2
            sizes.append((name, channels * h * w))
    return sizes


def estimate_bytes(height: int, width: int, *, last_layer: str, optimizer: str = "lbfgs",
                   history_size: int = 100, style_sizes: Sequence[tuple[int, int]] = (),
                   requested: Sequence[str] = ()) -> int:
    """Estimated peak memory (bytes) of style transfer at ``height`` x ``width``.

    Args:
        last_layer: deepest VGG19 layer in use (the network is truncated after it).
        optimizer: ``"lbfgs"`` (history of ``2 * history_size`` image-sized vectors) or ``"adam"`` (2).
        style_sizes: (H, W) of each style image as fed to the network (one no-grad pass each).
        requested: layers whose output is used by a cost: a requested conv keeps its output beside
            its ReLU's (the ReLU cannot run in place).
    """
    acts = _activation_sizes(height, width, last_layer)
    kept = sum(n * (_FLOAT + 8 if name.startswith("pool") else _FLOAT) * (2 if name in requested else 1)
               for name, n in acts)
    largest = max(n for _, n in acts) * _FLOAT
    backward = 3 * largest  # incoming grad, outgoing grad and a workspace at the widest layer
    weights = sum(o * i * 9 + o for name, (o, i) in CONV_SHAPES.items()
                  if VGG19_LAYERS.index(name) <= VGG19_LAYERS.index(last_layer)) * _FLOAT
    image = 3 * height * width * _FLOAT
    vectors = 2 * history_size + 6 if optimizer == "lbfgs" else 6
    style_pass = max((2 * max(n for _, n in _activation_sizes(h, w, last_layer)) * _FLOAT
                      for h, w in style_sizes), default=0)
    return BASE_BYTES + weights + max(kept + backward, style_pass) + vectors * image


def lbfgs_history_for_budget(height: int, width: int, *, last_layer: str, budget: int,
                             history_size: int = 100, minimum: int = 5, requested: Sequence[str] = ()) -> int | None:
    """The largest L-BFGS history (<= ``history_size``, >= ``minimum``) whose estimate fits ``budget``
    bytes, or ``None`` when even ``minimum`` does not fit."""
    for hist in range(history_size, minimum - 1, -1):
        if estimate_bytes(height, width, last_layer=last_layer, history_size=hist, requested=requested) <= budget:
            return hist
    return None


def parse_bytes(text: str) -> int:
    """``"8G"``, ``"512M"``, ``"8GB"``, ``"1.5g"`` or a plain number of bytes -> bytes."""
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    factor = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}.get(t[-1:], 1)
    number = t[:-1] if factor != 1 else t
    try:
        value = float(number)
    except ValueError:
        raise CnnkitError(f"cannot read memory size {text!r} (use e.g. 8G or 512M)") from None
    return int(value * factor)


__all__ = ["estimate_bytes", "lbfgs_history_for_budget", "parse_bytes"]
