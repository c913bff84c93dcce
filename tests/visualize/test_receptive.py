"""Analytic receptive fields against the non-zero region of input gradients, in 1D, 2D and 3D."""
from __future__ import annotations

import itertools
from collections import OrderedDict

import pytest
import torch
from torch import nn

from cnnkit.core.errors import UnknownNameError
from cnnkit.visualize.receptive import (
    ReceptiveField, UnsupportedLayerError, measured_receptive_field, measured_receptive_fields, receptive_field,
    receptive_fields, unit_box,
)


def _stack1d() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv1d(1, 3, 5, stride=2, padding=2), nn.ReLU(),
        nn.MaxPool1d(3, stride=2, padding=1),
        nn.Conv1d(3, 3, 3, dilation=2, padding=2), nn.BatchNorm1d(3), nn.ReLU(),
        nn.Conv1d(3, 2, 4, stride=3, padding=1),
        nn.MaxPool1d(2, dilation=2),
    )


def _stack2d() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.LeakyReLU(),
        nn.MaxPool2d(2),
        nn.Sequential(nn.Conv2d(4, 4, (3, 5), stride=(2, 1), padding=(0, 2), dilation=(1, 2)), nn.Tanh()),
        nn.AvgPool2d(3, stride=2, padding=1),
        nn.Conv2d(4, 2, 3, padding="same", dilation=2),
    )


def _stack3d() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv3d(1, 2, 3, padding=1), nn.ReLU(),
        nn.MaxPool3d(2, stride=2),
        nn.Conv3d(2, 2, 3, stride=2, padding=(1, 0, 1), dilation=(1, 2, 1)), nn.GroupNorm(1, 2),
    )


CASES = {1: (_stack1d, (1, 61)), 2: (_stack2d, (3, 29, 33)), 3: (_stack3d, (1, 15, 17, 16))}


def _positions(shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """First, centre and last positions per dimension (borders exercise clipping); for volumes only
    the corners and the centre, to keep the test short."""
    if len(shape) == 3:
        return list(itertools.product(*[sorted({0, s - 1}) for s in shape])) + [tuple(s // 2 for s in shape)]
    return list(itertools.product(*[sorted({0, s // 2, s - 1}) for s in shape]))


@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_analytic_field_equals_gradient_support(ndim):
    torch.manual_seed(ndim)
    make, in_shape = CASES[ndim]
    model = make().eval()
    x = torch.rand(1, *in_shape)
    fields = receptive_fields(model, ndim=ndim, example=x)
    checked = 0
    for name, module in model.named_modules():
        if not name or list(module.children()):
            continue
        out_shape = tuple(_forward_shape(model, name, x)[2:])
        positions = _positions(out_shape)
        measured = measured_receptive_fields(model, name, in_shape, positions)
        for pos, box in zip(positions, measured):
            assert box == unit_box(fields[name], pos, in_shape[1:]), (name, pos)
            checked += 1
    assert checked > 20


@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_gradient_of_the_real_model_stays_inside_the_field(ndim):
    """Without linearising, dead ReLUs and max-pool routing can only shrink the support. (The last
    conv, not a GroupNorm after it: its statistics mix all positions, as every norm's do.)"""
    torch.manual_seed(10 + ndim)
    make, in_shape = CASES[ndim]
    model = make().eval()
    last = [n for n, m in model.named_modules() if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d))][-1]
    rf = receptive_field(model, last, ndim=ndim)
    out_shape = _forward_shape(model, last, torch.rand(1, *in_shape))[2:]
    pos = tuple(s // 2 for s in out_shape)
    box = unit_box(rf, pos, in_shape[1:])
    measured = measured_receptive_field(model, last, in_shape, pos, linearise=False)
    assert all(b0 <= m0 and m1 <= b1 for (b0, b1), (m0, m1) in zip(box, measured))


def test_real_gradient_support_equals_field_without_relu_or_maxpool():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 3, stride=2, padding=1), nn.AvgPool2d(2),
                          nn.Conv2d(3, 2, 3, dilation=3, padding=2)).double().eval()
    rf = receptive_field(model, "2", ndim=2)
    assert rf == ReceptiveField((29, 29), (4, 4), (-9, -9))
    measured = measured_receptive_field(model, "2", (2, 40, 40), (3, 3), linearise=False)
    assert measured == unit_box(rf, (3, 3), (40, 40)) == ((3, 32), (3, 32))


VGG19_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
             512, 512, 512, 512, "M"]


def _vgg19_structure() -> nn.Sequential:
    """The VGG19 feature layers with the usual names (conv1_1, relu1_1, ..., pool5); no weights."""
    layers: dict[str, nn.Module] = {}
    block, index, channels = 1, 1, 3
    for v in VGG19_CFG:
        if v == "M":
            layers[f"pool{block}"] = nn.MaxPool2d(2, 2)
            block, index = block + 1, 1
        else:
            layers[f"conv{block}_{index}"] = nn.Conv2d(channels, v, 3, padding=1)
            layers[f"relu{block}_{index}"] = nn.ReLU()
            channels, index = v, index + 1
    return nn.Sequential(OrderedDict(layers))


VGG19_RF = {"conv1_1": 3, "conv2_1": 10, "conv3_1": 24, "conv4_1": 68, "conv5_1": 156,
            "conv5_4": 252, "pool5": 268}


def test_vgg19_receptive_fields():
    fields = receptive_fields(_vgg19_structure(), ndim=2, layers=list(VGG19_RF))
    assert {k: rf.size for k, rf in fields.items()} == {k: (v, v) for k, v in VGG19_RF.items()}
    assert fields["conv5_1"].jump == (16, 16) and fields["conv5_1"].start == (-70, -70)


def test_vgg19_receptive_fields_of_the_project_encoder():
    """The same numbers for the project's VGG19 (with its leading element-wise ``normalize``)."""
    vgg = pytest.importorskip("cnnkit.nn.vgg")
    model = vgg.VGG19Features()  # random weights: the field does not depend on them
    fields = receptive_fields(model, ndim=2, example=torch.rand(1, 3, 64, 64),
                              layers=["conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"])
    assert [rf.size[0] for rf in fields.values()] == [3, 10, 24, 68, 156]


class _Scale(nn.Module):
    """An element-wise custom module without parameters (like an input normaliser)."""

    def forward(self, x):
        return x * 2 - 1


def test_custom_elementwise_and_container_names():
    model = nn.Sequential(_Scale(), nn.Sequential(nn.Conv1d(1, 1, 3), nn.ReLU()), nn.Conv1d(1, 1, 3, stride=2))
    fields = receptive_fields(model, ndim=1, example=torch.rand(1, 1, 20))
    assert fields["0"] == ReceptiveField.identity(1)
    assert receptive_field(model, "1", ndim=1).size == (3,)  # container = its last leaf
    assert fields["2"] == ReceptiveField((5,), (2,), (0,))


def test_errors_name_the_problem():
    model = nn.Sequential(nn.Conv2d(1, 1, 3), nn.Upsample(scale_factor=2), nn.Conv2d(1, 1, 3))
    with pytest.raises(UnsupportedLayerError, match="Upsample"):
        receptive_fields(model, ndim=2, layers=["2"])
    assert list(receptive_fields(model, ndim=2)) == ["0"]  # the fields that can be composed
    with pytest.raises(UnknownNameError, match="conv9"):
        receptive_fields(model, ndim=2, layers=["conv9"])


def _forward_shape(model: nn.Module, name: str, x: torch.Tensor) -> torch.Size:
    out = []
    h = dict(model.named_modules())[name].register_forward_hook(lambda _m, _a, o: out.append(o.shape))
    with torch.no_grad():
        model(x)
    h.remove()
    return out[0]


def test_layers_before_an_unsupported_module_still_have_fields():
    model = nn.Sequential(nn.Conv1d(1, 2, 3), nn.MaxPool1d(2), nn.Conv1d(2, 2, 3),
                          nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(2, 3))
    fields = receptive_fields(model, ndim=1, example=torch.rand(2, 1, 30), layers=["0", "2"])
    assert fields["2"] == ReceptiveField((8,), (2,), (0,))
    with pytest.raises(UnsupportedLayerError, match="layer 5"):
        receptive_fields(model, ndim=1, example=torch.rand(2, 1, 30), layers=["5"])
