"""Shape arithmetic n_out = floor((n + 2p - d(f - 1) - 1)/s) + 1 against what torch produces."""
from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnkit.core.errors import ShapeError
from cnnkit.nn.models import create_model, list_models
from cnnkit.nn.shapes import (
    conv_output_shape, conv_output_size, conv_transpose_output_size, format_summary, layer_output_shape,
    model_summary, pool_output_shape, pool_output_size,
)

_CONV_FN = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_MAX = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
_AVG = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}
_CONV_T = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}


def _random_conv(rng: random.Random, nd: int):
    ks = tuple(rng.randint(1, 5) for _ in range(nd))
    ds = tuple(rng.randint(1, 3) for _ in range(nd))
    ps = tuple(rng.randint(0, 3) for _ in range(nd))
    ss = tuple(rng.randint(1, 4) for _ in range(nd))
    sizes = tuple(max(d * (k - 1) + 1 - 2 * p, 1) + rng.randint(0, 12 if nd < 3 else 6)
                  for k, d, p in zip(ks, ds, ps))
    return sizes, ks, ss, ps, ds


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_conv_shape_matches_torch_for_random_configs(nd):
    rng = random.Random(nd)
    for _ in range(60):
        sizes, ks, ss, ps, ds = _random_conv(rng, nd)
        out = _CONV_FN[nd](torch.zeros(1, 1, *sizes), torch.zeros(1, 1, *ks), stride=ss, padding=ps, dilation=ds)
        assert conv_output_shape(sizes, ks, stride=ss, padding=ps, dilation=ds) == tuple(out.shape[2:]), \
            (sizes, ks, ss, ps, ds)


@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("ceil_mode", [False, True])
def test_pool_shape_matches_torch_for_random_configs(nd, ceil_mode):
    rng = random.Random(100 + nd)
    for _ in range(60):
        k = rng.randint(1, 4)
        p, s, d = rng.randint(0, k // 2), rng.randint(1, 3), rng.randint(1, 2)
        sizes = tuple(d * (k - 1) + 1 + rng.randint(0, 9) for _ in range(nd))
        x = torch.zeros(1, 1, *sizes)
        got = _MAX[nd](x, k, stride=s, padding=p, dilation=d, ceil_mode=ceil_mode).shape[2:]
        assert pool_output_shape(sizes, k, stride=s, padding=p, dilation=d, ceil_mode=ceil_mode) == tuple(got)
        got = _AVG[nd](x, k, stride=s, padding=p, ceil_mode=ceil_mode).shape[2:]
        assert pool_output_shape(sizes, k, stride=s, padding=p, ceil_mode=ceil_mode) == tuple(got)


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_transposed_conv_and_layer_shapes_match_torch(nd):
    rng = random.Random(200 + nd)
    for _ in range(20):
        sizes, ks, ss, ps, ds = _random_conv(rng, nd)
        conv = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[nd](2, 3, ks, stride=ss, padding=ps, dilation=ds)
        x = torch.zeros(1, 2, *sizes)
        assert layer_output_shape(conv, x.shape) == tuple(conv(x).shape)
        k, s = rng.randint(1, 4), rng.randint(1, 3)
        p, o = rng.randint(0, (k - 1) // 2), rng.randint(0, s - 1)
        up = _CONV_T[nd](2, 3, k, stride=s, padding=p, output_padding=o)
        small = torch.zeros(1, 2, *(rng.randint(2, 6) for _ in range(nd)))
        assert layer_output_shape(up, small.shape) == tuple(up(small).shape)


def test_formula_reference_values_and_errors():
    assert conv_output_size(28, 3, padding=1) == 28
    assert conv_output_size(28, 5, stride=2) == 12              # floor(23 / 2) + 1
    assert conv_output_size(96, 3, dilation=4) == 88
    assert pool_output_size(7, 2) == 3 and pool_output_size(7, 2, ceil_mode=True) == 4
    assert conv_transpose_output_size(4, 2, stride=2) == 8
    with pytest.raises(ShapeError, match="smaller than the dilated kernel"):
        conv_output_size(4, 3, dilation=2)
    with pytest.raises(ShapeError, match="does not have 2 entries"):
        conv_output_shape((5, 5), (3, 3, 3))
    assert layer_output_shape(nn.LSTM(2, 2), (1, 2, 3)) is None


KWARGS = {"classifier": {"widths": (4, 8, 8), "kernel_sizes": (5, 3, 3), "head_size": 2},
          "unet": {"widths": (4, 8, 16)}}
SPATIAL = {1: (48,), 2: (20, 24), 3: (8, 12, 16)}


@pytest.mark.parametrize("name", list_models())
def test_model_summary_shapes_follow_the_formula(name):
    nd = int(name[-2])
    model = create_model(name, in_channels=3, num_classes=5, **KWARGS[name[:-2]])
    rows = model_summary(model, (2, 3, *SPATIAL[nd]))
    assert model.training  # the mode is restored
    checked = 0
    for row in rows:
        layer = model.get_submodule(row.name)
        predicted = layer_output_shape(layer, row.input_shape)
        if predicted is not None:
            assert predicted == row.output_shape, row
            checked += 1
    assert checked == len(rows)
    assert sum(r.params for r in rows) == sum(p.numel() for p in model.parameters())
    final = rows[-1].output_shape
    assert final == ((2, 5) if name.startswith("classifier") else (2, 5, *SPATIAL[nd]))


def test_summary_mult_adds_reference_and_table():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 10 * 10, 4))
    rows = model_summary(model, (1, 3, 10, 10))
    assert [r.mult_adds for r in rows] == [10 * 10 * 8 * 3 * 9, 0, 0, 800 * 4]
    assert [r.output_shape for r in rows] == [(1, 8, 10, 10), (1, 8, 10, 10), (1, 800), (1, 4)]
    table = format_summary(rows)
    assert table.splitlines()[-1].split() == ["total", f"{224 + 3204:,}", f"{21600 + 3200:,}"]
