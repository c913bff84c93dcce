import numpy as np
import pytest
import torch

from cnnkit.core.errors import WeightsError
from cnnkit.data.folders import augment
from cnnkit.nn.checkpoint import encode_images, is_model_path, load_encoder, prepare_images, save_encoder
from cnnkit.nn.registry import create_encoder


@pytest.mark.parametrize("layout", ["dir", "files"])
def test_round_trip(tmp_path, layout):
    torch.manual_seed(0)
    kwargs = {"embedding_dim": 8, "widths": [4, 8, 8, 8], "input_size": [40, 32]}
    model = create_encoder("small_cnn", **kwargs).eval()
    config = {"encoder": "small_cnn", "kwargs": kwargs, "input": {"size": [40, 32], "channels": 1, "align": False},
              "metrics": {"val_rank1": 1.0}, "version": "test"}
    path = tmp_path / ("model" if layout == "dir" else "model.json")
    save_encoder(path, model, config)
    assert is_model_path(path)
    loaded, cfg = load_encoder(path)
    assert cfg["metrics"] == {"val_rank1": 1.0} and len(cfg["weights_sha256"]) == 64
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (60, 50), dtype=np.uint8), rng.integers(0, 256, (40, 32, 3), dtype=np.uint8)]
    emb = encode_images(loaded, cfg, images)
    assert emb.shape == (2, 8) and emb.dtype == np.float32
    expected = model(prepare_images(images, size=[40, 32], channels=1)).detach().numpy()
    np.testing.assert_allclose(emb, expected, atol=1e-6)


def test_missing_model(tmp_path):
    assert not is_model_path(tmp_path / "nope")
    with pytest.raises(WeightsError, match="not a cnnkit model"):
        load_encoder(tmp_path / "nope")


def test_prepare_images_range_and_shape():
    x = prepare_images([np.full((10, 8), 255, np.uint8), np.zeros((10, 8, 3), np.uint8)], size=(5, 4), channels=3)
    assert x.shape == (2, 3, 5, 4)
    assert float(x[0].min()) == 1.0 and float(x[1].max()) == -1.0


def test_augment_keeps_shape_and_range_and_is_seeded():
    x = torch.rand(4, 1, 20, 16) * 2 - 1
    a = augment(x, generator=torch.Generator().manual_seed(0))
    b = augment(x, generator=torch.Generator().manual_seed(0))
    assert a.shape == x.shape and torch.equal(a, b)
    assert float(a.min()) >= -1 and float(a.max()) <= 1 and not torch.equal(a, x)


def test_files_written_before_keep_loading():
    """One face encoder and one task model written by an earlier cnnkit (tests/assets/make_checkpoints.py)
    load through the one checkpoint module and give the outputs they gave then."""
    import json
    from pathlib import Path

    from cnnkit.nn.checkpoint import load_model_file

    assets = Path(__file__).resolve().parents[1] / "assets" / "checkpoints"
    expected = json.loads((assets / "expected.json").read_text())
    enc, name, config = load_model_file(assets / "face_encoder")
    assert name == "small_cnn" and config["version"] == "asset-1"
    x = torch.from_numpy(np.linspace(-1, 1, 40 * 32, dtype=np.float32).reshape(1, 1, 40, 32))
    np.testing.assert_allclose(enc(x).detach().numpy(), expected["face_encoder"], atol=1e-5)
    model, name, config = load_model_file(assets / "task_model.safetensors")
    assert name == "ecg200" and config["model"] == "classifier1d"
    s = torch.from_numpy(np.linspace(-1, 1, 16, dtype=np.float32).reshape(1, 1, 16))
    np.testing.assert_allclose(model(s).detach().numpy(), expected["task_model"], atol=1e-5)
    with pytest.raises(WeightsError, match="not a model saved"):
        load_model_file(assets / "expected.json")


def test_resume_state_written_before_keeps_loading(tmp_path, orl_dir):
    """A model directory with its resume state (model.state.pt) written by an earlier cnnkit
    (tests/assets/make_checkpoints.py, generation 2) loads with weights_only=True and training
    continues from it: the stored epoch is kept and only the next one runs."""
    import json
    import shutil
    from pathlib import Path

    from cnnkit.train.loop import TrainConfig, train_encoder

    src = Path(__file__).resolve().parents[1] / "assets" / "checkpoints" / "trained_encoder"
    state = torch.load(src / "model.state.pt", map_location="cpu", weights_only=True)
    assert state["epoch"] == 0 and len(state["history"]) == 1 and {"optimizer", "scheduler"} <= set(state)
    out = tmp_path / "m"
    shutil.copytree(src, out)
    cfg = TrainConfig(people="s1..s4", epochs=2, p=2, k=4, encoder="small_cnn", val_fraction=0.5,
                      encoder_kwargs={"embedding_dim": 8, "widths": [4, 8, 8, 8]}, size=(40, 32))
    logged: list[str] = []
    result = train_encoder(orl_dir, out, cfg, resume=True, progress=False, log=logged.append)
    assert logged[0] == "resuming after epoch 1"
    assert [h["epoch"] for h in result["history"]] == [1, 2] and result["history"][0] == state["history"][0]
    assert json.loads((out / "model.json").read_text())["version"].endswith("/epoch-2")
