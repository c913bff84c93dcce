import pytest
import torch

from cnnkit.core.errors import ShapeError, UnknownNameError
from cnnkit.core.errors import ConfigError, DuplicateNameError
from cnnkit.nn.registry import ENCODERS, create_encoder, list_encoders, register_encoder
from cnnkit.nn.siamese import SiameseNetwork


def test_registry_lists_both_kinds():
    assert {"small_cnn", "resnet18_face"} <= set(list_encoders())


# small versions, so that the test stays fast; an encoder not named here is built with its defaults
_SMALL = {"small_cnn": {"widths": (8, 8, 16, 16)}, "resnet18_face": {"widths": (8, 8, 16, 16)},
          "mobilenet_v2_face": {"pretrained": False, "freeze": 0}}


@pytest.mark.parametrize("name", list_encoders())
def test_every_encoder_gets_a_gradient_in_every_parameter(name):
    torch.manual_seed(0)
    model = create_encoder(name, embedding_dim=16, **_SMALL.get(name, {}))
    x = torch.randn(3, model.in_channels, 48, 40)
    emb = model(x)
    assert emb.shape == (3, 16)
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(3))
    (emb * torch.randn_like(emb)).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"no gradient for {missing}"


def test_defaults_describe_their_input():
    grey, rgb = create_encoder("small_cnn"), create_encoder("resnet18_face")
    assert (grey.in_channels, grey.input_size, grey.embedding_dim) == (1, (112, 92), 128)
    assert (rgb.in_channels, rgb.input_size) == (3, (112, 112))


def test_siamese_shares_weights():
    torch.manual_seed(0)
    enc = create_encoder("small_cnn", embedding_dim=8, widths=(4, 4, 8, 8)).eval()
    net = SiameseNetwork(enc)
    a = torch.randn(2, 1, 32, 32)
    ea, eb = net(a, a.clone())
    torch.testing.assert_close(ea, eb)
    torch.testing.assert_close(ea, enc(a))


def test_errors():
    with pytest.raises(UnknownNameError, match="small_cnn"):
        create_encoder("nope")
    with pytest.raises(ShapeError):
        create_encoder("small_cnn")(torch.randn(2, 3, 32, 32))
    with pytest.raises(DuplicateNameError, match="encoder 'small_cnn' is already registered"):
        register_encoder(ENCODERS.get("small_cnn"))
    with pytest.raises(ConfigError, match="encoder 'small_cnn'.*norm"):
        create_encoder("small_cnn", norm="foo")
