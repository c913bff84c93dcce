"""SFace ported to PyTorch: the graph read from the ONNX file, the de-quantisation, the checksum, the
cache, and the same outputs as onnxruntime on the original int8 file."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from cnnkit.core.errors import WeightsError
from cnnkit.nn.onnx_reader import read_onnx
from cnnkit.nn.sface import SFaceNet, _dequantize, load_sface, sface_weights_path


@pytest.fixture(scope="module")
def onnx_path():
    return sface_weights_path()


def test_module_convolutions_match_the_graph(onnx_path) -> None:
    graph = read_onnx(onnx_path)
    convs = [n for n in graph.nodes if n.op_type == "Conv"]
    ours = [m for m in SFaceNet().modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == len(ours) == 27
    for node, conv in zip(convs, ours):
        assert list(node.attributes["strides"]) == list(conv.stride), node.outputs
        assert node.attributes["group"] == conv.groups, node.outputs
        assert list(node.attributes["pads"][:2]) == list(conv.padding), node.outputs
        assert list(node.attributes["kernel_shape"]) == list(conv.kernel_size), node.outputs


def test_block_dequantize_matches_a_loop() -> None:
    rng = np.random.default_rng(0)
    q = rng.integers(-128, 128, (3, 10)).astype(np.int8)
    scale = rng.uniform(0.01, 0.1, (3, 3)).astype(np.float32)
    zero = rng.integers(-5, 5, (3, 3)).astype(np.int8)
    expected = np.array([[(int(q[i, j]) - int(zero[i, j // 4])) * float(scale[i, j // 4]) for j in range(10)]
                         for i in range(3)])
    np.testing.assert_allclose(_dequantize(q, scale, zero, axis=1, block=4), expected, rtol=1e-6)


def test_same_embeddings_as_onnxruntime_on_the_int8_file(onnx_path) -> None:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(onnx_path), sess_options=opts, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).uniform(0, 255, (2, 3, 112, 112)).astype(np.float32)
    # the file declares its weights as graph inputs too; onnxruntime needs a value for each
    feeds = {i.name: np.zeros(i.shape, np.float32) for i in sess.get_inputs() if i.name != "data"}
    ref = np.concatenate([sess.run(None, {**feeds, "data": x[i:i + 1]})[0] for i in range(2)])
    with torch.no_grad():
        ours = load_sface()(torch.from_numpy(x)).numpy()
    assert ours.shape == (2, 128)
    np.testing.assert_allclose(ours, ref, atol=2e-4, rtol=0)


def test_checksum_is_verified(onnx_path, tmp_path) -> None:
    bad = tmp_path / "sface.onnx"
    shutil.copy(onnx_path, bad)
    with open(bad, "r+b") as f:
        f.seek(5000)
        byte = f.read(1)
        f.seek(5000)
        f.write(bytes([byte[0] ^ 1]))
    with pytest.raises(WeightsError, match=str(bad)):
        load_sface(bad, cache=tmp_path / "cache")


def test_dequantised_once_then_read_from_the_cache(onnx_path, tmp_path) -> None:
    from safetensors import safe_open

    load_sface(onnx_path, cache=tmp_path)
    files = list(tmp_path.glob("*.safetensors"))
    assert len(files) == 1
    with safe_open(str(files[0]), "pt") as f:
        assert len(f.metadata()["source_sha256"]) == 64
        assert f.get_tensor("fc.weight").dtype == torch.float32
    stamp = files[0].stat().st_mtime_ns
    load_sface(onnx_path, cache=tmp_path)
    assert files[0].stat().st_mtime_ns == stamp


def test_not_an_onnx_file(tmp_path) -> None:
    bad = tmp_path / "x.onnx"
    bad.write_bytes(b"\xff\xff\xff")
    with pytest.raises(WeightsError, match="x.onnx"):
        read_onnx(bad)


def test_folded_network_equals_the_unfolded_one() -> None:
    from cnnkit.nn.sface import FoldedSFaceNet

    net = load_sface()
    folded = net.fold()
    assert isinstance(folded, FoldedSFaceNet)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    x = torch.from_numpy(np.random.default_rng(3).uniform(0, 255, (3, 3, 112, 112)).astype(np.float32))
    with torch.inference_mode():
        a, b = net(x), folded(x)
        b_nhwc = folded(x.contiguous(memory_format=torch.channels_last))
    assert a.abs().max() > 0.1  # not a degenerate output
    torch.testing.assert_close(b, a, atol=2e-5, rtol=0)
    torch.testing.assert_close(b_nhwc, a, atol=2e-5, rtol=0)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())  # the original is unchanged
