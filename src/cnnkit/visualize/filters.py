"""The kernels of a convolution layer (by default the first one) as an image grid."""
from __future__ import annotations

import torch
from PIL import Image
from torch import nn

from cnnkit.core.errors import CnnkitError, UnknownNameError

from .render import filter_grid

__all__ = ["first_conv", "filter_image", "input_channel_order"]

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def first_conv(model: nn.Module) -> str:
    """Name of the first convolution of ``model`` in registration order."""
    for name, module in model.named_modules():
        if isinstance(module, _CONV):
            return name
    raise CnnkitError(f"{type(model).__name__} has no Conv1d/Conv2d/Conv3d layer")


def input_channel_order(model: nn.Module) -> list[int] | None:
    """The channel permutation applied to the input before the first convolution, if the model
    declares one: a leaf with an ``order`` attribute (e.g. VGG19's caffe ``normalize``, RGB -> BGR)."""
    for _name, module in model.named_modules():
        if isinstance(module, _CONV):
            return None
        order = getattr(module, "order", None)
        if not list(module.children()) and isinstance(order, (list, tuple)) and sorted(order) == list(range(len(order))):
            return [int(i) for i in order]
    return None


def filter_image(model: nn.Module, layer: str | None = None, *, cell: int = 36) -> Image.Image:
    """Grid of the kernels of ``layer`` (default: the first convolution). The first convolution's
    input channels are put back in the input's order (RGB) when the model permutes them."""
    name = layer or first_conv(model)
    module = dict(model.named_modules()).get(name)
    if module is None:
        raise UnknownNameError(f"unknown layer {name!r}")
    if not isinstance(module, _CONV):
        raise CnnkitError(f"{name} is a {type(module).__name__}, not a convolution")
    weight = module.weight.detach()
    order = input_channel_order(model) if name == first_conv(model) else None
    if order is not None and len(order) == weight.shape[1]:
        weight = weight[:, torch.argsort(torch.tensor(order))]  # model channel j is input channel order[j]
    return filter_grid(weight, cell=cell)
