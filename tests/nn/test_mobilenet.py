"""MobileNetV2 written in cnnkit, loaded with torchvision's ImageNet weights (no torchvision)."""
import numpy as np
import pytest
import torch
from PIL import Image

from cnnkit.core.errors import WeightsError
from cnnkit.nn.mobilenet import N_FEATURE_TENSORS, MobileNetV2, load_imagenet_weights, weights_path
from cnnkit.nn.registry import create_encoder


@pytest.fixture(scope="module")
def weights():
    try:
        return weights_path()
    except WeightsError as exc:
        pytest.skip(str(exc))


def _astronaut(size: int) -> torch.Tensor:
    skimage_data = pytest.importorskip("skimage.data")
    img = Image.fromarray(skimage_data.astronaut()).resize((size, size), Image.BILINEAR)
    x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255).permute(2, 0, 1)[None]
    return (x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def test_layout_matches_torchvision_names_and_shapes(weights):
    state = torch.load(weights, map_location="cpu", weights_only=True)
    mine = MobileNetV2().state_dict()
    theirs = {k: tuple(v.shape) for k, v in state.items() if k.startswith("features.")}
    assert {k: tuple(v.shape) for k, v in mine.items()} == theirs
    assert len(theirs) == N_FEATURE_TENSORS == 312
    assert set(state) - set(theirs) == {"classifier.1.weight", "classifier.1.bias"}


def test_imagenet_weights_give_the_reference_features_of_a_known_image(weights):
    torch.manual_seed(0)
    model = MobileNetV2()
    assert load_imagenet_weights(model, weights, verify=True) == 312
    with torch.no_grad():
        feats = model.eval()(_astronaut(64))
    assert feats.shape == (1, 1280, 2, 2)
    # reference values measured once with these weights (torch 2.13, CPU, float32)
    assert feats.mean().item() == pytest.approx(0.985325, rel=1e-4)
    assert feats.abs().sum().item() == pytest.approx(5044.863, rel=1e-4)
    assert int(feats.mean(dim=(2, 3)).argmax()) == 648
    with torch.no_grad():
        again = model(_astronaut(64))
    torch.testing.assert_close(again, feats, rtol=0, atol=0)


def test_encoder_keeps_imagenet_bn_statistics_and_frozen_blocks(weights):
    enc = create_encoder("mobilenet_v2_face", input_size=(64, 64), freeze=16)  # fresh: no .train() call
    assert len(enc.backbone.features) == 18  # up to the 320-channel block; the 1280 1x1 conv is dropped
    bn = enc.backbone.features[0][1]
    before = bn.running_mean.clone()
    x = torch.rand(4, 1, 64, 64) * 2 - 1
    emb = enc(x)
    assert emb.shape == (4, 128)
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(4))
    torch.testing.assert_close(bn.running_mean, before, rtol=0, atol=0)
    emb.sum().backward()
    assert enc.backbone.features[0][0].weight.grad is None  # frozen (block 0 < freeze)
    assert enc.backbone.features[17].conv[0][0].weight.grad is not None
    assert enc.head.proj.weight.grad is not None


def test_orthogonal_head_keeps_the_pretrained_distances_at_the_start(weights):
    enc = create_encoder("mobilenet_v2_face", embedding_dim=320, input_size=(64, 64)).eval()
    w = enc.head.proj.weight
    torch.testing.assert_close(w @ w.T, torch.eye(320), atol=1e-5, rtol=0)


def test_corrupt_weights_raise_a_typed_error(tmp_path):
    bad = tmp_path / "w.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="SHA-256"):
        load_imagenet_weights(MobileNetV2(), bad, verify=True)
    with pytest.raises(WeightsError, match="cannot read"):
        load_imagenet_weights(MobileNetV2(), bad)
