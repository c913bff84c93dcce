"""The kernels of a convolution layer (by default the first one) as an image grid."""
from __future__ import annotations

from PIL import Image
from torch import nn

from cnnkit.core.errors import CnnkitError, UnknownNameError

from .render import filter_grid

__all__ = ["first_conv", "filter_image"]

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def first_conv(model: nn.Module) -> str:
    """Name of the first convolution of ``model`` in registration order."""
    for name, module in model.named_modules():
        if isinstance(module, _CONV):
            return name
    raise CnnkitError(f"{type(model).__name__} has no Conv1d/Conv2d/Conv3d layer")


def filter_image(model: nn.Module, layer: str | None = None, *, cell: int = 36) -> Image.Image:
    """Grid of the kernels of ``layer`` (default: the first convolution)."""
    name = layer or first_conv(model)
    module = dict(model.named_modules()).get(name)
    if module is None:
        raise UnknownNameError(f"unknown layer {name!r}")
    if not isinstance(module, _CONV):
        raise CnnkitError(f"{name} is a {type(module).__name__}, not a convolution")
    img = filter_grid(module.weight, cell=cell)
    return img
