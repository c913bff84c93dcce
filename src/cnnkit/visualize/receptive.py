"""Receptive fields of units in 1D/2D/3D ConvNets, computed analytically.

A unit at position ``p`` (per spatial dimension) of a layer sees the input interval
``[start + p * jump, start + p * jump + size)``; ``start`` may be negative (padding) and the interval
may reach past the input, so :func:`unit_box` clips it to the input. The three numbers compose layer
by layer (Araujo et al., "Computing receptive fields of convolutional neural networks", Distill 2019):

    size_out  = size_in + (dilation * (kernel - 1)) * jump_in
    start_out = start_in - padding * jump_in
    jump_out  = jump_in * stride

Convolutions, max/avg/LP pooling, and element-wise modules (activations, normalisation, dropout,
identity, and any unknown module without a ``kernel_size`` that keeps the spatial shape) are
understood. Models are walked in execution order (recorded with forward hooks when an example input
is given, else in registration order, which is execution order for ``nn.Sequential`` nesting).
A model that branches (skip connections) is treated as the chain of its leaf modules in execution
order; :func:`measured_receptive_field` measures the field from input gradients instead.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

import torch
from torch import Tensor, nn

from cnnkit.core.errors import CnnkitError, UnknownNameError
from cnnkit.core.shapes import pool_output_size

__all__ = [
    "ReceptiveField",
    "UnsupportedLayerError",
    "receptive_fields",
    "receptive_field",
    "unit_box",
    "measured_receptive_field",
    "measured_receptive_fields",
    "linearised_copy",
]


class UnsupportedLayerError(CnnkitError):
    """A module whose geometry cannot be composed analytically (e.g. Linear, Upsample)."""


@dataclass(frozen=True)
class _Step:
    """One windowed layer, per dimension; ``same`` keeps the size (``padding="same"``)."""

    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    dilation: tuple[int, ...]
    same: bool = False
    ceil_mode: bool = False

    def out_size(self, n: int, dim: int) -> int:
        if self.same:
            return n
        return pool_output_size(n, self.kernel[dim], stride=self.stride[dim], padding=self.padding[dim],
                                dilation=self.dilation[dim], ceil_mode=self.ceil_mode)


@dataclass(frozen=True)
class ReceptiveField:
    """Receptive field of every unit of one layer, per spatial dimension (tensor order: D, H, W).

    ``size``: extent in input samples; ``jump``: input distance between neighbouring units;
    ``start``: input coordinate of the first sample seen by the unit at position 0 (may be < 0).
    ``steps``: the windowed layers on the way, used by :func:`unit_box` for the exact clipped box.
    """

    size: tuple[int, ...]
    jump: tuple[int, ...]
    start: tuple[int, ...]
    steps: tuple[_Step, ...] = field(default=(), compare=False, repr=False)

    @property
    def ndim(self) -> int:
        return len(self.size)

    @classmethod
    def identity(cls, ndim: int) -> "ReceptiveField":
        return cls((1,) * ndim, (1,) * ndim, (0,) * ndim)

    def then(self, step: _Step) -> "ReceptiveField":
        """The field after one more windowed layer."""
        size = tuple(s + d * (k - 1) * j for s, k, d, j in zip(self.size, step.kernel, step.dilation, self.jump))
        start = tuple(st - p * j for st, p, j in zip(self.start, step.padding, self.jump))
        jump = tuple(j * s for j, s in zip(self.jump, step.stride))
        return ReceptiveField(size, jump, start, self.steps + (step,))

    def box(self, position: Sequence[int]) -> tuple[tuple[int, int], ...]:
        """Unclipped ``[start, end)`` per dimension for the unit at ``position`` (tensor order)."""
        if len(position) != self.ndim:
            raise CnnkitError(f"position {tuple(position)} has {len(position)} dims, field has {self.ndim}")
        return tuple((st + p * j, st + p * j + s)
                     for st, p, j, s in zip(self.start, position, self.jump, self.size))

    def output_shape(self, input_shape: Sequence[int]) -> tuple[int, ...]:
        """Spatial shape of the layer's output for an input of spatial shape ``input_shape``."""
        shape = [int(n) for n in input_shape]
        for step in self.steps:
            shape = [step.out_size(n, d) for d, n in enumerate(shape)]
        return tuple(shape)


def unit_box(rf: ReceptiveField, position: Sequence[int], input_shape: Sequence[int]
             ) -> tuple[tuple[int, int], ...]:
    """``[start, end)`` per dimension (tensor order) of the input samples that the unit at
    ``position`` sees, for an input of spatial shape ``input_shape``.

    Exact: the taps are walked back layer by layer and clipped to every intermediate feature map,
    so padding of a deep layer (which reads no data) and the holes of dilated kernels at a border do
    not widen the box. For a unit away from the borders the box has the full ``rf.size``.
    """
    box = rf.box(position)
    if not rf.steps:  # composed by hand: clip to the input only
        return tuple((max(0, a), min(int(n), b)) for (a, b), n in zip(box, input_shape))
    return tuple(_support(rf.steps, d, int(p), int(n)) for d, (p, n) in enumerate(zip(position, input_shape)))


def _support(steps: tuple[_Step, ...], dim: int, position: int, n: int) -> tuple[int, int]:
    """Bounding interval in the input of the samples that reach ``position`` along ``dim``."""
    sizes = [n]
    for step in steps[:-1]:
        sizes.append(step.out_size(sizes[-1], dim))
    reached = {position}
    for step, n_in in zip(reversed(steps), reversed(sizes)):
        s, p, d, k = step.stride[dim], step.padding[dim], step.dilation[dim], step.kernel[dim]
        reached = {j for u in reached for i in range(k) if 0 <= (j := u * s - p + d * i) < n_in}
    if not reached:
        raise CnnkitError(f"position {position} reads only padding along dimension {dim}")
    return min(reached), max(reached) + 1


def _tuple(value: int | Sequence[int], ndim: int) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,) * ndim
    value = tuple(int(v) for v in value)
    return value * ndim if len(value) == 1 else value


_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_MAXPOOL = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)
_AVGPOOL = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)
_LPPOOL = tuple(m for m in (getattr(nn, "LPPool1d", None), getattr(nn, "LPPool2d", None),
                            getattr(nn, "LPPool3d", None)) if m is not None)
_UNSUPPORTED = (nn.Linear, nn.Upsample, nn.Flatten, nn.ConvTranspose1d, nn.ConvTranspose2d,
                nn.ConvTranspose3d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
                nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d, nn.Unfold, nn.Fold,
                nn.PixelShuffle, nn.PixelUnshuffle)


def _geometry(module: nn.Module, ndim: int) -> _Step | None:
    """The window of a conv/pool module; None for an element-wise one."""
    if isinstance(module, _CONV):
        kernel = _tuple(module.kernel_size, ndim)
        dilation = _tuple(module.dilation, ndim)
        if module.padding == "valid":
            return _Step(kernel, _tuple(module.stride, ndim), (0,) * ndim, dilation)
        if module.padding == "same":  # torch puts the odd extra sample on the right
            padding = tuple(d * (k - 1) // 2 for k, d in zip(kernel, dilation))
            return _Step(kernel, _tuple(module.stride, ndim), padding, dilation, same=True)
        return _Step(kernel, _tuple(module.stride, ndim), _tuple(module.padding, ndim), dilation)
    if isinstance(module, _MAXPOOL + _AVGPOOL + _LPPOOL):
        kernel = _tuple(module.kernel_size, ndim)
        stride = _tuple(module.stride if module.stride is not None else module.kernel_size, ndim)
        padding = _tuple(getattr(module, "padding", 0), ndim)
        dilation = _tuple(getattr(module, "dilation", 1), ndim)
        return _Step(kernel, stride, padding, dilation, ceil_mode=bool(module.ceil_mode))
    if isinstance(module, _UNSUPPORTED) or hasattr(module, "kernel_size") or hasattr(module, "scale_factor"):
        raise UnsupportedLayerError(
            f"cannot compose the receptive field through {type(module).__name__}; "
            "choose layers before it or use measured_receptive_field()")
    return None  # element-wise: activation, norm, dropout, identity, custom per-sample maps


def _leaves(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(name, m) for name, m in model.named_modules() if not list(m.children()) and name]


@torch.no_grad()
def _execution_order(model: nn.Module, example: Tensor) -> list[tuple[str, nn.Module, bool]]:
    """Leaf modules in the order they run on ``example``, each with whether it kept the spatial shape."""
    order: list[tuple[str, nn.Module, bool]] = []
    names = {id(m): n for n, m in _leaves(model)}

    def hook(module: nn.Module, args: tuple, output: object) -> None:
        same = (bool(args) and isinstance(args[0], Tensor) and isinstance(output, Tensor)
                and args[0].shape[2:] == output.shape[2:])
        order.append((names[id(module)], module, same))

    handles = [m.register_forward_hook(hook) for _, m in _leaves(model)]
    try:
        model(example)
    finally:
        for h in handles:
            h.remove()
    return order


def receptive_fields(model: nn.Module, *, ndim: int, example: Tensor | None = None,
                     layers: Iterable[str] | None = None) -> dict[str, ReceptiveField]:
    """Receptive field of the output of every leaf module (or of the named ``layers`` only).

    Args:
        model: any module made of conv / pool / element-wise leaves (``nn.Sequential`` nesting,
            or any module whose leaves run as a chain).
        ndim: number of spatial dimensions (1, 2 or 3).
        example: an input, shape (B, C, *S); if given, leaves are walked in execution order and an
            unknown element-wise leaf must keep the spatial shape.
        layers: names as in ``model.named_modules()``; a container name means its last leaf.

    Raises:
        UnknownNameError: a requested layer is not in the model.
        UnsupportedLayerError: a module on the way cannot be composed (Linear, Upsample, ...).
    """
    if ndim not in (1, 2, 3):
        raise CnnkitError(f"ndim must be 1, 2 or 3, got {ndim}")
    if example is not None:
        order = _execution_order(model, example)
    else:
        order = [(n, m, True) for n, m in _leaves(model)]
    wanted = None if layers is None else list(layers)
    modules = dict(model.named_modules())
    if wanted is not None:
        missing = [w for w in wanted if w not in modules or not w]
        if missing:
            raise UnknownNameError(
                f"unknown layer(s) {missing}; available: {[n for n, _ in _leaves(model)]}")
    rf: ReceptiveField | UnsupportedLayerError = ReceptiveField.identity(ndim)
    after: dict[str, ReceptiveField | UnsupportedLayerError] = {}
    for name, module, same_shape in order:
        if isinstance(rf, ReceptiveField):  # after an unsupported module every field is unknown
            try:
                geometry = _geometry(module, ndim)
                if geometry is None and not same_shape:
                    raise UnsupportedLayerError(
                        f"{name} ({type(module).__name__}) changes the spatial shape but has no known geometry")
            except UnsupportedLayerError as exc:
                rf = exc
            else:
                rf = rf.then(geometry) if geometry is not None else rf
        after.setdefault(name, rf)  # a module called twice (shared pooling): its first call
        # a container's field is the field after its last leaf that has run so far
        parts = name.split(".")
        for i in range(1, len(parts)):
            after[".".join(parts[:i])] = rf
    if wanted is None:
        return {n: f for n, f in after.items() if isinstance(f, ReceptiveField)}
    not_run = [w for w in wanted if w not in after]
    if not_run:
        raise UnknownNameError(f"layer(s) {not_run} did not run on the example input")
    for w in wanted:
        if isinstance(after[w], UnsupportedLayerError):
            raise UnsupportedLayerError(f"layer {w}: {after[w]}")
    return {w: after[w] for w in wanted}


def receptive_field(model: nn.Module, layer: str, *, ndim: int, example: Tensor | None = None
                    ) -> ReceptiveField:
    """Receptive field of one layer; see :func:`receptive_fields`."""
    return receptive_fields(model, ndim=ndim, example=example, layers=[layer])[layer]


_ELEMENTWISE_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.InstanceNorm1d,
                      nn.InstanceNorm2d, nn.InstanceNorm3d, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm)


def linearised_copy(model: nn.Module) -> nn.Module:
    """A copy with the same geometry in which every input sample inside a unit's receptive field
    has a strictly positive gradient: conv kernels set to one (bias zero), max pooling replaced by a
    depthwise all-ones convolution of the same window, activations and normalisations by identity.
    Used to measure receptive fields from gradients without dead ReLUs or max-pool routing."""
    import copy

    clone = copy.deepcopy(model).eval()

    def replace(parent: nn.Module) -> None:
        for name, child in parent.named_children():
            if isinstance(child, _CONV):
                with torch.no_grad():
                    child.weight.fill_(1.0)
                    if child.bias is not None:
                        child.bias.zero_()
            elif isinstance(child, _MAXPOOL + _AVGPOOL + _LPPOOL):
                setattr(parent, name, _WindowSum(child))
            elif list(child.children()):
                replace(child)
            elif not list(child.parameters()) or isinstance(child, _ELEMENTWISE_NORMS):
                setattr(parent, name, nn.Identity())

    replace(clone)
    return clone


class _WindowSum(nn.Module):
    """Sum over the window of a pooling module (same kernel, stride, padding, dilation)."""

    def __init__(self, pool: nn.Module) -> None:
        super().__init__()
        self.pool = pool

    def forward(self, x: Tensor) -> Tensor:
        nd = x.ndim - 2
        step = _geometry(self.pool, nd)
        weight = x.new_ones((x.shape[1], 1, *step.kernel))
        pad = [p for p in reversed(step.padding) for _ in range(2)]
        if step.ceil_mode:  # extra zeros on the right so that the last partial window exists
            for d in range(nd):
                n = x.shape[2 + d]
                need = (step.out_size(n, d) - 1) * step.stride[d] + step.dilation[d] * (step.kernel[d] - 1) + 1
                pad[2 * (nd - 1 - d) + 1] += max(0, need - n - 2 * step.padding[d])
        conv = (None, nn.functional.conv1d, nn.functional.conv2d, nn.functional.conv3d)[nd]
        return conv(nn.functional.pad(x, pad), weight, stride=step.stride, dilation=step.dilation,
                    groups=x.shape[1])


def _forward_to(model: nn.Module, layer: str, x: Tensor) -> Tensor:
    captured: list[Tensor] = []
    handle = dict(model.named_modules())[layer].register_forward_hook(
        lambda _m, _a, out: captured.append(out))
    try:
        model(x)
    finally:
        handle.remove()
    return captured[0]


def measured_receptive_field(model: nn.Module, layer: str, input_shape: Sequence[int],
                             position: Sequence[int] | None = None, *, channel: int = 0,
                             linearise: bool = True) -> tuple[tuple[int, int], ...]:
    """``[start, end)`` per dimension of the input samples whose gradient is non-zero for one unit.

    Args:
        input_shape: (C, *S) of one input.
        position: unit position in the layer's output (tensor order); default its centre.
        linearise: measure on :func:`linearised_copy` (the geometry, independent of the weights);
            False measures the model as it is (a subset of the field where ReLUs are dead or max
            pooling routes the gradient elsewhere).
    """
    return measured_receptive_fields(model, layer, input_shape, [position], channel=channel,
                                     linearise=linearise)[0]


def measured_receptive_fields(model: nn.Module, layer: str, input_shape: Sequence[int],
                              positions: Sequence[Sequence[int] | None], *, channel: int = 0,
                              linearise: bool = True) -> list[tuple[tuple[int, int], ...]]:
    """:func:`measured_receptive_field` for several positions, with one copy and one forward pass."""
    import copy

    net = linearised_copy(model) if linearise else copy.deepcopy(model).eval()
    net = net.to(torch.float64)
    x = torch.rand(1, *input_shape, dtype=torch.float64, requires_grad=True)
    out = _forward_to(net, layer, x)
    boxes = []
    for position in positions:
        if position is None:
            position = tuple(s // 2 for s in out.shape[2:])
        (grad,) = torch.autograd.grad(out[(0, channel, *position)], x, retain_graph=True)
        nonzero = grad[0].abs().sum(0) != 0
        if not nonzero.any():
            raise CnnkitError(f"unit {channel} at {tuple(position)} of {layer} has no gradient")
        box = []
        for dim in range(nonzero.ndim):
            other = tuple(d for d in range(nonzero.ndim) if d != dim)
            hit = nonzero.any(dim=other) if other else nonzero
            idx = hit.nonzero().flatten()
            box.append((int(idx.min()), int(idx.max()) + 1))
        boxes.append(tuple(box))
    return boxes


DEFAULT_LAYER_COUNT = 5  # this many convolutions, evenly spread from the first to the last


def default_layers(model: nn.Module, example: Tensor | None = None, count: int = DEFAULT_LAYER_COUNT) -> list[str]:
    """Of the convolutions of ``model`` whose receptive field can be composed from the input
    (``example``: one item without the batch axis), e.g. a U-Net's encoder, not its decoder after
    the transposed convolutions, ``count`` spread evenly from the first to the last (a MobileNetV2
    face encoder has 52).

    Raises:
        CnnkitError: no such convolution (the layers must be named).
    """
    convs = [n for n, m in model.named_modules() if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d))]
    if example is not None:
        fields = receptive_fields(model, ndim=example.ndim - 1, example=example[None])
        convs = [n for n in convs if n in fields]
    if not convs:
        raise CnnkitError("the model has no convolution with a known receptive field; name the layers with --layers")
    if len(convs) <= count:
        return convs
    step = (len(convs) - 1) / (count - 1)
    return [convs[round(i * step)] for i in range(count)]
