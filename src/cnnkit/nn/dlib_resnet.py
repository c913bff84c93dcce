"""dlib's face recognition ResNet, read from its ``.dat`` file and run in PyTorch.

The ``dlib-bin`` wheel is built without BLAS, so dlib's own forward pass costs 0.2-0.8 s per face
on this machine; the same network in PyTorch is an order of magnitude faster and gives the same
embeddings (``tests/nn/test_dlib_resnet.py`` compares both on real faces).

The file is dlib's serialisation of ``anet_type`` from dlib's ``dnn_face_recognition_ex.cpp``
(a 29-convolution ResNet on 150x150 RGB chips, 128-d output). Layers are stored from the input
upwards, each as its name (``con_4``, ``affine_``, ``relu_``, ``max_pool_2``, ``avg_pool_2``,
``add_prev_``, ``fc_2``) followed by its tensors (little-endian float32) and its settings as dlib
packed integers. The reader walks that sequence; the network is rebuilt from it:

- a plain residual block: ``con, affine, relu, con, affine, add_prev, relu``;
- a down-sampling block: the same with the first ``con`` at stride 2 and an ``avg_pool`` 2x2/2 on
  the shortcut before ``add_prev``; dlib adds tensors of different sizes by zero-padding the
  smaller one (channels and, at the two deepest levels, rows and columns).
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cnnkit.core.checks import check_shape
from cnnkit.core.errors import WeightsError
from cnnkit.nn.fold import fold_scale_shift

__all__ = ["DlibNetSpec", "read_dlib_resnet", "DlibResNet", "ResidualBlock", "Affine", "pad_add"]


@dataclass
class DlibNetSpec:
    """What :func:`read_dlib_resnet` found: the input means and the layer sequence.

    ``layers`` holds ``(kind, params)`` tuples in forward order, kind one of ``"con"``,
    ``"affine"``, ``"relu"``, ``"max_pool"``, ``"avg_pool"``, ``"add_prev"``, ``"fc"``.
    """

    mean_rgb: tuple[float, float, float]
    size: int
    layers: list[tuple[str, dict]] = field(default_factory=list)


class _Reader:
    def __init__(self, data: bytes, path: str) -> None:
        self.b, self.pos, self.path = data, 0, path

    def fail(self, what: str) -> WeightsError:
        return WeightsError(f"{self.path}: not a dlib ResNet file ({what} at byte {self.pos})")

    def int(self) -> int:
        head = self.b[self.pos]
        size, negative = head & 0x0F, bool(head & 0x80)
        if size > 8:
            raise self.fail("bad integer")
        value = int.from_bytes(self.b[self.pos + 1: self.pos + 1 + size], "little")
        self.pos += 1 + size
        return -value if negative else value

    def float(self) -> float:
        mantissa, exponent = self.int(), self.int()
        return float(mantissa) * 2.0**exponent

    def string(self) -> str:
        n = self.int()
        s = self.b[self.pos: self.pos + n]
        self.pos += n
        return s.decode("latin-1")

    def tensor(self) -> np.ndarray:
        if self.int() != 2:
            raise self.fail("unknown tensor version")
        shape = tuple(self.int() for _ in range(4))
        count = int(np.prod(shape))
        arr = np.frombuffer(self.b, dtype="<f4", count=count, offset=self.pos).astype(np.float32)
        self.pos += 4 * count
        return arr.reshape(shape)

    def next_layer(self) -> tuple[int, str] | None:
        """Position just after the next layer name, and its kind; None at the end."""
        m = _NAME_PATTERN.search(self.b, self.pos)
        if m is None:
            return None
        return m.end(), _NAMES[m.group()[1:]]


_NAMES = {
    b"\x05con_4": "con",
    b"\x07affine_": "affine",
    b"\x05relu_": "relu",
    b"\x0amax_pool_2": "max_pool",
    b"\x0aavg_pool_2": "avg_pool",
    b"\x09add_prev_": "add_prev",
    b"\x04fc_2": "fc",
}

_NAME_PATTERN = re.compile(b"\x01(?:" + b"|".join(re.escape(t) for t in _NAMES) + b")")


def read_dlib_resnet(path: str) -> DlibNetSpec:
    """Read the layers of ``dlib_face_recognition_resnet_model_v1.dat`` (forward order)."""
    with open(path, "rb") as fh:
        data = fh.read()
    r = _Reader(data, path)
    start = data.find(b"\x15input_rgb_image_sized")
    if start < 0:
        raise r.fail("no input_rgb_image_sized layer")
    r.pos = start
    r.pos -= 1  # the packed length byte before the name
    if r.string() != "input_rgb_image_sized":
        raise r.fail("bad input layer")
    mean = (r.float(), r.float(), r.float())
    rows, cols = r.int(), r.int()
    spec = DlibNetSpec(mean_rgb=mean, size=rows)
    if rows != cols:
        raise r.fail("non-square input")
    while (found := r.next_layer()) is not None:
        r.pos, kind = found
        if kind == "con":
            params = r.tensor().ravel()
            n_filt, nr, nc, sy, sx, py, px = (r.int() for _ in range(7))
            n_in = (params.size - n_filt) // (n_filt * nr * nc)
            w = params[: n_filt * n_in * nr * nc].reshape(n_filt, n_in, nr, nc)
            spec.layers.append(("con", {"weight": w, "bias": params[w.size:], "stride": sy, "padding": py}))
        elif kind == "affine":
            params = r.tensor().ravel()
            k = params.size // 2
            spec.layers.append(("affine", {"gamma": params[:k], "beta": params[k:]}))
        elif kind in ("max_pool", "avg_pool"):
            nr, nc, sy, sx, py, px = (r.int() for _ in range(6))
            spec.layers.append((kind, {"size": nr, "stride": sy, "padding": py}))
        elif kind == "fc":
            _outputs, _inputs = r.int(), r.int()
            spec.layers.append(("fc", {"weight": r.tensor().reshape(_inputs, _outputs)}))
        else:
            spec.layers.append((kind, {}))
    n_con = sum(k == "con" for k, _ in spec.layers)
    if n_con != 29 or spec.layers[-1][0] != "fc":
        raise WeightsError(f"{path}: expected dlib's 29-convolution ResNet, found {n_con} convolutions")
    return spec


def _structure(spec: DlibNetSpec) -> tuple[list[dict], list[dict], np.ndarray]:
    """Group the flat layer list: stem (con, affine, relu, max_pool), residual blocks, fc weight."""
    layers = list(spec.layers)
    kinds = [k for k, _ in layers]
    if kinds[:4] != ["con", "affine", "relu", "max_pool"] or kinds[-2:] != ["avg_pool", "fc"]:
        raise WeightsError(f"unexpected dlib ResNet layout: {kinds[:4]} ... {kinds[-2:]}")
    stem = [p for _, p in layers[:4]]
    blocks, i = [], 4
    body = layers[4:-2]
    while i - 4 < len(body):
        seq = body[i - 4:]
        names = [k for k, _ in seq[:8]]
        if names[:5] != ["con", "affine", "relu", "con", "affine"]:
            raise WeightsError(f"unexpected residual block layout at layer {i}: {names}")
        down = names[5] == "avg_pool"
        tail = ["avg_pool", "add_prev", "relu"] if down else ["add_prev", "relu"]
        if names[5: 5 + len(tail)] != tail:
            raise WeightsError(f"unexpected residual block ending at layer {i}: {names}")
        blocks.append({
            "con1": seq[0][1], "aff1": seq[1][1], "con2": seq[3][1], "aff2": seq[4][1],
            "pool": seq[5][1] if down else None,
        })
        i += 5 + len(tail)
    return stem, blocks, layers[-1][1]["weight"]


def _conv(p: dict) -> nn.Conv2d:
    w = torch.from_numpy(p["weight"])
    layer = nn.Conv2d(w.shape[1], w.shape[0], tuple(w.shape[2:]), stride=p["stride"], padding=p["padding"])
    layer.weight.data.copy_(w)
    layer.bias.data.copy_(torch.from_numpy(p["bias"]))
    return layer


def pad_add(a: Tensor, b: Tensor) -> Tensor:
    """dlib's add of tensors of different sizes (B, C, H, W): the larger size, missing values zero."""
    if a.shape == b.shape:
        return a + b
    fmt = torch.channels_last if a.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
    out = torch.empty([max(x, y) for x, y in zip(a.shape, b.shape)], dtype=a.dtype, device=a.device,
                      memory_format=fmt).zero_()
    out[:, : a.shape[1], : a.shape[2], : a.shape[3]] += a
    out[:, : b.shape[1], : b.shape[2], : b.shape[3]] += b
    return out


class Affine(nn.Module):
    """dlib's ``affine`` (batch norm frozen into a per-channel scale and shift). (B, C, H, W) -> same."""

    def __init__(self, gamma: np.ndarray, beta: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("gamma", torch.from_numpy(gamma).view(1, -1, 1, 1))
        self.register_buffer("beta", torch.from_numpy(beta).view(1, -1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gamma + self.beta


class ResidualBlock(nn.Module):
    """con, affine, relu, con, affine, add the shortcut (average-pooled when down-sampling), relu."""

    def __init__(self, block: dict) -> None:
        super().__init__()
        self.body = nn.Sequential(_conv(block["con1"]), Affine(block["aff1"]["gamma"], block["aff1"]["beta"]),
                                  nn.ReLU(), _conv(block["con2"]), Affine(block["aff2"]["gamma"], block["aff2"]["beta"]))
        pool = block["pool"]
        self.pool = None if pool is None else (pool["size"], pool["stride"], pool["padding"])

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x if self.pool is None else F.avg_pool2d(x, *self.pool)
        return F.relu_(pad_add(self.body(x), shortcut))


class DlibResNet(nn.Module):
    """dlib's face recognition ResNet as a module. (B, 3, 150, 150) float RGB in [0, 255] -> (B, 128)
    (not L2-normalised: dlib's threshold 0.6 is on these).

    Build it from the weights file with :meth:`from_dat`.
    """

    def __init__(self, spec: DlibNetSpec) -> None:
        super().__init__()
        stem, blocks, fc = _structure(spec)
        self.register_buffer("mean", torch.tensor(spec.mean_rgb, dtype=torch.float32).view(1, 3, 1, 1))
        pool = stem[3]
        self.stem = nn.Sequential(_conv(stem[0]), Affine(stem[1]["gamma"], stem[1]["beta"]), nn.ReLU(),
                                  nn.MaxPool2d(pool["size"], pool["stride"], pool["padding"]))
        self.blocks = nn.Sequential(*(ResidualBlock(b) for b in blocks))
        self.register_buffer("fc", torch.from_numpy(fc))
        self.embedding_dim = int(fc.shape[1])

    @classmethod
    def from_dat(cls, path: str) -> "DlibResNet":
        """Read ``dlib_face_recognition_resnet_model_v1.dat`` (in eval mode, on the CPU)."""
        return cls(read_dlib_resnet(path)).eval()

    #: activations channels-last (set by :meth:`fold`: faster convolutions on the CPU)
    channels_last = False

    def forward(self, x: Tensor) -> Tensor:
        check_shape(x, "B 3 H W", name="x")
        x = (x - self.mean) / 256.0
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        x = self.blocks(self.stem(x))
        return x.mean(dim=(2, 3)) @ self.fc

    def fold(self) -> "DlibResNet":
        """The same network for inference, faster (this one is unchanged): every ``affine``
        folded into the convolution before it (the same function up to float rounding), the
        activations channels-last."""
        net = copy.deepcopy(self)
        for seq in [net.stem] + [b.body for b in net.blocks]:
            for i in range(1, len(seq)):
                if isinstance(seq[i], Affine) and isinstance(seq[i - 1], nn.Conv2d):
                    conv, aff = seq[i - 1], seq[i]
                    w, b = fold_scale_shift(conv.weight, conv.bias, aff.gamma.flatten(), aff.beta.flatten())
                    conv.weight.data, conv.bias.data = w, b
                    seq[i] = nn.Identity()
                elif isinstance(seq[i], nn.ReLU):
                    seq[i].inplace = True
        net.channels_last = True
        return net.to(memory_format=torch.channels_last).eval()
