"""PerceptualLoss with a stand-in encoder: weighting, targets, blends, layer lists."""
from __future__ import annotations

import pytest
import torch

from cnnkit.core.errors import CnnkitError, UnknownNameError
from cnnkit.style.functional import content_cost, style_cost
from cnnkit.style.loss import PerceptualLoss, check_layers, parse_layer_weights


def _img(seed, h=16, w=16):
    return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(seed))


def test_total_is_weighted_sum_of_parts(tiny_encoder):
    loss = PerceptualLoss(tiny_encoder, content_layers=(("conv2_1", 1.0),),
                          style_layers=(("conv1_1", 0.3), ("conv2_1", 0.7)),
                          content_weight=2.0, style_weight=5.0, tv_weight=0.5)
    content, style, gen = _img(0), _img(1, 20, 12), _img(2)
    loss.set_targets(content, [style])
    costs = loss(gen)
    fg = tiny_encoder.forward_layers(gen, ["conv1_1", "conv2_1"])
    fc = tiny_encoder.forward_layers(content, ["conv2_1"])
    fs = tiny_encoder.forward_layers(style, ["conv1_1", "conv2_1"])
    expected_content = content_cost(fg["conv2_1"], fc["conv2_1"])
    expected_style = 0.3 * style_cost(fg["conv1_1"], fs["conv1_1"]) + 0.7 * style_cost(fg["conv2_1"], fs["conv2_1"])
    torch.testing.assert_close(costs.content, expected_content)
    torch.testing.assert_close(costs.style, expected_style)
    torch.testing.assert_close(costs.total, 2.0 * costs.content + 5.0 * costs.style + 0.5 * costs.tv)


def test_costs_vanish_at_the_targets(tiny_encoder):
    loss = PerceptualLoss(tiny_encoder, content_layers=(("conv2_1", 1.0),), style_layers=(("conv1_1", 1.0),))
    img = _img(3)
    loss.set_targets(img, [img])
    costs = loss(img)
    assert float(costs.content) == 0.0 and float(costs.style) == pytest.approx(0.0, abs=1e-9)


def test_blend_weights(tiny_encoder):
    kw = {"content_layers": (("conv2_1", 1.0),), "style_layers": (("conv1_1", 1.0),)}
    one, two = PerceptualLoss(tiny_encoder, **kw), PerceptualLoss(tiny_encoder, **kw)
    a, b, gen = _img(4), _img(5), _img(6)
    one.set_targets(a, [a])
    two.set_targets(a, [a, b], blend=[3.0, 0.0])  # normalised: all weight on a
    torch.testing.assert_close(one(gen).style, two(gen).style)
    with pytest.raises(CnnkitError, match="blend weights"):
        two.set_targets(a, [a, b], blend=[1.0])


def test_gradient_reaches_pixels_only(tiny_encoder):
    loss = PerceptualLoss(tiny_encoder, content_layers=(("conv2_1", 1.0),), style_layers=(("conv1_1", 1.0),))
    loss.set_targets(_img(7), [_img(8)])
    gen = _img(9).requires_grad_(True)
    loss(gen).total.backward()
    assert gen.grad is not None and gen.grad.abs().sum() > 0
    assert all(p.grad is None for p in tiny_encoder.parameters())
    assert all(not b.requires_grad for b in loss.buffers())


def test_targets_required_first(tiny_encoder):
    with pytest.raises(CnnkitError, match="set_targets"):
        PerceptualLoss(tiny_encoder)(_img(0))


def test_parse_layer_weights():
    assert parse_layer_weights("conv1_1:0.2, conv2_1") == (("conv1_1", 0.2), ("conv2_1", 1.0))
    assert parse_layer_weights({"conv4_2": 2}) == (("conv4_2", 2.0),)
    with pytest.raises(CnnkitError, match="not a number"):
        parse_layer_weights("conv1_1:x")
    with pytest.raises(CnnkitError, match="empty"):
        parse_layer_weights(" , ")


def test_unknown_layer_lists_valid_names():
    with pytest.raises(UnknownNameError, match=r"'conv9_1'; valid names: conv1_1, relu1_1"):
        check_layers(("conv1_1", "relu1_1"), (("conv1_1", 1.0), ("conv9_1", 1.0)))


def test_bfloat16_encoder_is_close_and_exact_is_float32(tiny_encoder):
    layers = {"content_layers": (("conv2_1", 1.0),), "style_layers": (("conv1_1", 1.0), ("conv2_1", 1.0))}
    content, style, gen = _img(0, 32, 32), _img(1, 32, 32), _img(2, 32, 32)
    ref = PerceptualLoss(tiny_encoder, **layers)
    low = PerceptualLoss(tiny_encoder, encoder_dtype=torch.bfloat16, **layers)
    for loss in (ref, low):
        loss.set_targets(content, [style])
    a, b, exact = ref(gen), low(gen), low(gen, exact=True)
    assert b.style.dtype == torch.float32 and b.style != a.style  # it did run in bfloat16
    torch.testing.assert_close(b.style, a.style, rtol=0.03, atol=0)
    torch.testing.assert_close(b.content, a.content, rtol=0.03, atol=0)
    assert float(exact.style) == float(a.style) and float(exact.content) == float(a.content)
    # the targets are float32 whatever the encoder runs in
    assert low.style_conv1_1.dtype == torch.float32 and low.content_conv2_1.dtype == torch.float32


def test_channels_last_gives_the_same_costs_and_gradient(tiny_encoder):
    """The layout the encoder runs in (channels_last for float32 on a CPU) changes no cost, and the
    Gram matrix of a channels_last activation is taken without a copy yet equals the plain one."""
    import copy

    layers = {"content_layers": (("conv2_1", 1.0),), "style_layers": (("conv1_1", 1.0), ("conv2_1", 1.0))}
    content, style, gen = _img(0, 32, 32), _img(1, 32, 32), _img(2, 32, 32)
    plain = PerceptualLoss(tiny_encoder, **layers)
    cl_encoder = copy.deepcopy(tiny_encoder).to(memory_format=torch.channels_last)
    cl = PerceptualLoss(cl_encoder, memory_format=torch.channels_last, **layers)
    grads = []
    for loss in (plain, cl):
        loss.set_targets(content, [style])
        x = gen.clone().requires_grad_(True)
        loss(x).total.backward()
        grads.append(x.grad)
    assert cl.content_conv2_1.is_contiguous(memory_format=torch.channels_last)
    assert not cl.content_conv2_1.is_contiguous()  # it did run channels_last
    a, b = plain(gen), cl(gen)
    torch.testing.assert_close(b.style, a.style, rtol=1e-5, atol=0)
    torch.testing.assert_close(b.content, a.content, rtol=1e-5, atol=0)
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-4, atol=1e-7)
    assert grads[1].is_contiguous()  # the pixels keep their own layout (L-BFGS flattens them)


def test_content_style_is_the_photos_own_style_cost(tiny_encoder):
    loss = PerceptualLoss(tiny_encoder, content_layers=(("conv2_1", 1.0),), style_layers=(("conv1_1", 0.5), ("conv2_1", 1.0)))
    content = _img(0, 32, 32)
    loss.set_targets(content, [_img(1, 32, 32)])
    assert loss.content_style == pytest.approx(float(loss(content).style), rel=1e-6)
    assert loss.content_style > 0


def test_bfloat16_channels_last_is_close_to_float32(tiny_encoder):
    """The default on a CPU with AMX, bfloat16 in channels_last (``optimize.encoder_layout``), gives the
    float32 costs and gradient within bfloat16's rounding; its exact costs are the float32 ones."""
    import copy

    from cnnkit.style.optimize import encoder_layout

    layout = encoder_layout("cpu")
    assert layout == torch.channels_last
    assert encoder_layout("cuda") == torch.contiguous_format
    layers = {"content_layers": (("conv2_1", 1.0),), "style_layers": (("conv1_1", 1.0), ("conv2_1", 1.0))}
    content, style, gen = _img(0, 32, 32), _img(1, 32, 32), _img(2, 32, 32)
    ref = PerceptualLoss(tiny_encoder, **layers)
    low = PerceptualLoss(copy.deepcopy(tiny_encoder).to(memory_format=layout), encoder_dtype=torch.bfloat16,
                         memory_format=layout, **layers)
    grads, costs = [], []
    for loss in (ref, low):
        loss.set_targets(content, [style])
        x = gen.clone().requires_grad_(True)
        c = loss(x)
        c.total.backward()
        grads.append(x.grad)
        costs.append(c)
    assert costs[1].style != costs[0].style  # it did run in bfloat16
    torch.testing.assert_close(costs[1].style, costs[0].style, rtol=0.03, atol=0)
    cos = torch.nn.functional.cosine_similarity(grads[0].flatten(), grads[1].flatten(), dim=0)
    assert float(cos) > 0.99
    exact = low(gen, exact=True)
    torch.testing.assert_close(exact.style, costs[0].style.detach(), rtol=1e-5, atol=0)
