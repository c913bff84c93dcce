"""Conv blocks, pooling and the raw cross-correlation, in 1D, 2D and 3D."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage, signal

from cnnkit.core.errors import ShapeError, UnknownNameError
from cnnkit.nn.blocks import (
    ConvBlock1d, ConvBlock2d, ConvBlock3d, GlobalAvgPool, conv_block, cross_correlate, global_avg_pool,
    plain_conv_block, pool, upsample,
)
from cnnkit.nn.models import create_model, list_models

SIZES = {1: (37,), 2: (19, 23), 3: (9, 11, 10)}
KERNELS = {1: (5,), 2: (3, 4), 3: (3, 2, 3)}


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_cross_correlation_matches_scipy_signal(nd):
    rng = np.random.default_rng(nd)
    x, k = rng.standard_normal(SIZES[nd]), rng.standard_normal(KERNELS[nd])
    got = cross_correlate(torch.from_numpy(x), torch.from_numpy(k))
    np.testing.assert_allclose(got.numpy(), signal.correlate(x, k, mode="valid"), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_same_padded_correlation_matches_scipy_ndimage(nd):
    rng = np.random.default_rng(10 + nd)
    x, k = rng.standard_normal(SIZES[nd]), rng.standard_normal((3,) * nd)
    got = cross_correlate(torch.from_numpy(x), torch.from_numpy(k), padding=1)
    np.testing.assert_allclose(got.numpy(), ndimage.correlate(x, k, mode="constant", cval=0.0), atol=1e-10)


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_strided_dilated_correlation_matches_scipy(nd):
    rng = np.random.default_rng(20 + nd)
    x, k = rng.standard_normal(SIZES[nd]), rng.standard_normal((2,) * nd)
    dilated = np.zeros((3,) * nd)
    dilated[(slice(None, None, 2),) * nd] = k          # dilation 2 = zeros between the taps
    expected = signal.correlate(x, dilated, mode="valid")[(slice(None, None, 2),) * nd]
    got = cross_correlate(torch.from_numpy(x), torch.from_numpy(k), stride=2, dilation=2)
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-10)


def test_cross_correlation_is_not_flipped_convolution():
    x = torch.tensor([0.0, 1.0, 0.0, 0.0])
    assert cross_correlate(x, torch.tensor([1.0, 2.0, 3.0])).tolist() == [2.0, 1.0]
    assert signal.convolve(x.numpy(), [1.0, 2.0, 3.0], mode="valid").tolist() == [2.0, 3.0]


def test_cross_correlation_keeps_leading_dims_and_rejects_bad_kernels():
    x = torch.randn(2, 3, 10)
    assert cross_correlate(x, torch.randn(3)).shape == (2, 3, 8)
    with pytest.raises(UnknownNameError, match="1, 2 or 3"):
        cross_correlate(torch.randn(2, 3, 4, 5, 6), torch.randn(2, 2, 2, 2))
    with pytest.raises(ShapeError, match="at least 2 dims"):
        cross_correlate(torch.randn(5), torch.randn(2, 2))


@pytest.mark.parametrize(("cls", "shape"), [(ConvBlock1d, (2, 3, 17)), (ConvBlock2d, (2, 3, 9, 8)),
                                           (ConvBlock3d, (2, 3, 5, 6, 7))])
def test_block_shapes_same_and_strided(cls, shape):
    x = torch.randn(shape)
    assert cls(3, 8)(x).shape == (2, 8, *shape[2:])
    strided = cls(3, 8, stride=2)(x).shape[2:]
    assert strided == tuple((n - 1) // 2 + 1 for n in shape[2:])


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_block_equals_plain_torch_layers(nd):
    block, plain = conv_block(nd, 4, 6), plain_conv_block(nd, 4, 6)
    plain.load_state_dict({k.replace("conv.", "0.").replace("norm.", "1."): v
                           for k, v in block.state_dict().items()})
    x = torch.randn(3, 4, *SIZES[nd])
    torch.testing.assert_close(block(x), plain(x))
    block.eval(), plain.eval()
    torch.testing.assert_close(block(x), plain(x))


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_residual_block_adds_the_input(nd):
    block = conv_block(nd, 5, 5, residual=True, activation=torch.nn.Identity)
    assert block.shortcut is None
    x = torch.randn(2, 5, *SIZES[nd])
    torch.testing.assert_close(block(x), block.norm(block.conv(x)) + x)
    projected = conv_block(nd, 5, 7, stride=2, residual=True)
    assert projected.shortcut is not None and projected(x).shape[1] == 7


def test_block_rejects_wrong_rank_and_dimensionality():
    with pytest.raises(ShapeError, match=r"ConvBlock2d input must have shape \(B, C, H, W\)"):
        ConvBlock2d(3, 4)(torch.randn(3, 8, 8))
    with pytest.raises(UnknownNameError, match="1, 2 or 3"):
        conv_block(4, 1, 1)
    with pytest.raises(UnknownNameError, match="pool kind"):
        pool(2, "median")  # type: ignore[arg-type]


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_pool_upsample_and_global_pool(nd):
    x = torch.randn(2, 4, *(8,) * nd)
    assert pool(nd, "max")(x).shape == (2, 4, *(4,) * nd)
    assert pool(nd, "avg", 3, 1)(x).shape == (2, 4, *(6,) * nd)
    assert upsample(nd, 4, 2)(x).shape == (2, 2, *(16,) * nd)
    torch.testing.assert_close(GlobalAvgPool()(x), x.mean(dim=tuple(range(2, 2 + nd))))
    with pytest.raises(ShapeError):
        global_avg_pool(torch.randn(2, 4))


SMALL = {"classifier": {"widths": (4, 8), "blocks_per_stage": 2, "residual": True}, "unet": {"widths": (4, 8)}}


@pytest.mark.parametrize("name", list_models())
def test_every_registered_model_trains(name):
    nd = int(name[-2])
    model = create_model(name, in_channels=2, num_classes=3, **SMALL[name[:-2]])
    out = model(torch.randn(2, 2, *(8,) * nd))
    assert out.shape == ((2, 3) if name.startswith("classifier") else (2, 3, *(8,) * nd))
    out.sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"no gradient for {missing}"


def test_unet_rejects_indivisible_size_and_unknown_model():
    with pytest.raises(ShapeError, match="divisible by 4"):
        create_model("unet2d", in_channels=1, num_classes=2, widths=(2, 4, 8))(torch.randn(1, 1, 10, 12))
    with pytest.raises(UnknownNameError, match="classifier2d"):
        create_model("resnet2d")
