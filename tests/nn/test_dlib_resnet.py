"""The PyTorch port of dlib's ResNet gives dlib's own embeddings."""
from __future__ import annotations

import numpy as np
import pytest

from cnnkit.core.errors import WeightsError
from cnnkit.data.image_io import load_image
from cnnkit.faces import load_face_encoder
from cnnkit.faces.detect import dlib_model_path
from cnnkit.nn.dlib_resnet import read_dlib_resnet


def test_reader_finds_dlib_architecture() -> None:
    spec = read_dlib_resnet(dlib_model_path("dlib_face_recognition_resnet_model_v1.dat"))
    kinds = [k for k, _ in spec.layers]
    assert spec.size == 150 and kinds.count("con") == 29 and kinds.count("add_prev") == 14
    np.testing.assert_allclose(spec.mean_rgb, (122.782, 117.001, 104.298), atol=1e-3)
    first = spec.layers[0][1]
    assert first["weight"].shape == (32, 3, 7, 7) and first["stride"] == 2 and first["padding"] == 0
    assert spec.layers[-1][1]["weight"].shape == (256, 128)


def test_reader_rejects_other_files(tmp_path) -> None:
    p = tmp_path / "x.dat"
    p.write_bytes(b"\x00" * 100)
    with pytest.raises(WeightsError, match="not a dlib ResNet file"):
        read_dlib_resnet(str(p))


def test_torch_equals_dlib_on_real_faces(pipeline, orl_dir, astronaut) -> None:
    images = [astronaut, load_image(orl_dir / "s1/1.pgm"), load_image(orl_dir / "s9/5.pgm")]
    chips = [pipeline.align(im, pipeline.detect(im)[0]) for im in images]
    torch_enc = load_face_encoder("dlib_resnet", backend="torch")
    dlib_enc = load_face_encoder("dlib_resnet", backend="dlib")
    assert torch_enc.tag == dlib_enc.tag
    a, b = torch_enc.encode(chips), dlib_enc.encode(chips)
    assert np.abs(a - b).max() < 1e-5  # float32 rounding only; distances are ~0.3-1.0


def test_the_network_is_a_module_of_named_parts() -> None:
    from torch import nn

    from cnnkit.nn.dlib_resnet import DlibResNet, ResidualBlock

    net = DlibResNet.from_dat(dlib_model_path("dlib_face_recognition_resnet_model_v1.dat"))
    assert isinstance(net, nn.Module) and net.embedding_dim == 128 and not net.training
    assert sum(isinstance(m, ResidualBlock) for m in net.modules()) == 14


def test_folded_network_equals_the_unfolded_one(pipeline, astronaut) -> None:
    import torch

    from cnnkit.nn.dlib_resnet import Affine, DlibResNet

    net = DlibResNet.from_dat(dlib_model_path("dlib_face_recognition_resnet_model_v1.dat"))
    folded = net.fold()
    assert not any(isinstance(m, Affine) for m in folded.modules())
    assert sum(isinstance(m, Affine) for m in net.modules()) == 29  # the original is unchanged
    chip = pipeline.align(astronaut, pipeline.detect(astronaut)[0])
    rng = np.random.default_rng(4)
    x = torch.from_numpy(np.stack([chip, chip[:, ::-1], rng.integers(0, 256, chip.shape, dtype=np.uint8)])
                         .astype(np.float32)).permute(0, 3, 1, 2)
    with torch.inference_mode():
        a, b = net(x), folded(x)
    assert a.abs().max() > 0.05
    torch.testing.assert_close(b, a, atol=1e-5, rtol=0)
