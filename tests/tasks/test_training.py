"""A short training run per dimension lowers the loss; checkpoints round-trip; the CLI prints the
documented fields. Kept small: a few seconds each on two CPU cores."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from cnnkit.cli._app import cli
from cnnkit.core.errors import CnnkitError, UnknownNameError, WeightsError
from cnnkit.data.ecg import load_ucr, znormalize
from cnnkit.nn.models import create_model
from cnnkit.tasks import get_task, list_tasks, load_model, read_config, save_model, train_task
from cnnkit.tasks.metrics import dice
from cnnkit.train.classify import fit_classifier, predict_logits
from cnnkit.tasks.ecg import augment_series
from cnnkit.tasks.fashion import augment_images


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models gain nothing from a second thread, and on a shared machine lose a lot to it."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _lowered(losses: list[float]) -> bool:
    return losses[-1] < 0.9 * losses[0]


def test_1d_training_on_ecg200_lowers_the_loss():
    x, y = load_ucr("ECG200", "train")
    model = create_model("classifier1d", in_channels=1, num_classes=2, widths=(16, 32), downsample="none")
    losses = fit_classifier(model, torch.from_numpy(znormalize(x))[:, None], torch.from_numpy(y), epochs=6,
                 batch_size=16, lr=3e-3, seed=0, progress=False)
    assert _lowered(losses), losses


def test_2d_training_on_fashion_mnist_lowers_the_loss():
    from cnnkit.data.idx import fashion_mnist_dir, load_fashion_mnist

    try:
        fashion_mnist_dir()
    except CnnkitError as exc:
        pytest.skip(f"Fashion-MNIST absent: {exc}")
    images, labels = load_fashion_mnist("train")
    x = torch.from_numpy(images[:512]).float()[:, None] / 255.0
    model = create_model("classifier2d", in_channels=1, num_classes=10, widths=(8, 16))
    losses = fit_classifier(model, x, torch.from_numpy(labels[:512]), epochs=4, batch_size=32, lr=1e-2, seed=0,
                 augment=augment_images, progress=False)
    assert _lowered(losses), losses


def test_3d_training_on_mni152_patches_lowers_the_loss():
    pytest.importorskip("nilearn", reason="brain3d needs nilearn (the MNI152 template ships in its wheel)")
    from cnnkit.data.volumes import load_mni152_tissues, random_patches, split_halves

    t1, labels = load_mni152_tissues(2)
    x, y = random_patches(np.ascontiguousarray(split_halves(t1)[0]), np.ascontiguousarray(split_halves(labels)[0]),
                          size=16, count=16, rng=np.random.default_rng(0))
    model = create_model("unet3d", in_channels=1, num_classes=3, widths=(4, 8))
    losses = fit_classifier(model, torch.from_numpy(x), torch.from_numpy(y), epochs=3, batch_size=4, lr=1e-2, seed=0,
                 progress=False)
    assert _lowered(losses), losses
    assert predict_logits(model, torch.from_numpy(x[:2])).shape == (2, 3, 16, 16, 16)


def test_training_is_seeded():
    x, y = load_ucr("ECG200", "train")
    xs, ys = torch.from_numpy(znormalize(x[:32]))[:, None], torch.from_numpy(y[:32])
    runs = []
    for _ in range(2):
        torch.manual_seed(3)
        model = create_model("classifier1d", in_channels=1, num_classes=2, widths=(8,))
        runs.append(fit_classifier(model, xs, ys, epochs=2, batch_size=8, lr=1e-2, seed=3, augment=augment_series,
                        progress=False))
    assert runs[0] == runs[1]


def test_augmentations_keep_shape_and_are_seeded():
    img = torch.randn(6, 1, 28, 28)
    a = augment_images(img, torch.Generator().manual_seed(1))
    b = augment_images(img, torch.Generator().manual_seed(1))
    assert a.shape == img.shape and torch.equal(a, b)
    shifted = augment_images(torch.arange(16.0).reshape(1, 1, 4, 4), torch.Generator().manual_seed(0), 1)
    values = set(shifted.flatten().tolist())
    assert values <= set(range(16)) | {0.0}


def test_dice_reference_values():
    pred, target = torch.tensor([0, 1, 1, 2]), torch.tensor([0, 1, 2, 2])
    assert dice(pred, target, 1) == pytest.approx(2 * 1 / 3)
    assert dice(pred, target, 2) == pytest.approx(2 * 1 / 3)
    assert dice(pred, target, 5) == 1.0


def test_registry_lists_the_four_tasks():
    assert list_tasks() == ["brain3d", "ecg200", "ecg5000", "fashion-mnist"]
    for name in list_tasks():
        task = get_task(name)
        assert task.build()(task.example_input(2)).shape[0] == 2
    with pytest.raises(UnknownNameError, match="ecg200"):
        get_task("ecg")


def test_checkpoint_round_trip(tmp_path):
    result = train_task("ecg200", epochs=1, progress=False)
    assert set(result.config) >= {"task", "model", "model_kwargs", "input_shape", "metrics", "train_seconds"}
    path = save_model(tmp_path / "m", result.model, result.config)
    assert path.name == "m.safetensors" and json.loads((tmp_path / "m.json").read_text())["task"] == "ecg200"
    model, config = load_model(path)
    assert config == json.loads(json.dumps(result.config))
    x = get_task("ecg200").example_input(3).normal_()
    torch.testing.assert_close(model(x), result.model.eval()(x))
    (tmp_path / "plain.safetensors").write_bytes(b"not a model")
    with pytest.raises(WeightsError, match="not a safetensors file"):
        read_config(tmp_path / "plain.safetensors")


def test_cli_train_evaluate_summary(tmp_path):
    runner = CliRunner()
    out = tmp_path / "ecg.safetensors"
    res = runner.invoke(cli, ["conv", "train", "ecg200", "--epochs", "2", "-o", str(out), "--no-progress",
                              "--format", "json"])
    assert res.exit_code == 0, res.output
    trained = json.loads(res.stdout.splitlines()[0])
    assert list(trained) == ["task", "metric", "value", "n", "seconds"] and trained["task"] == "ecg200"
    assert trained["n"] == 100  # ECG200's test set: the accuracy is k/100
    res = runner.invoke(cli, ["conv", "evaluate", str(out), "--format", "json"])
    assert res.exit_code == 0, res.output
    evaluated = json.loads(res.stdout)
    assert evaluated["metric"] == "accuracy" and evaluated["value"] == pytest.approx(trained["value"])
    res = runner.invoke(cli, ["conv", "summary", "ecg200"])
    assert res.exit_code == 0 and res.stdout.splitlines()[-1].split()[0] == "total"
    res = runner.invoke(cli, ["conv", "train", "nope", "-o", str(tmp_path / "x")])
    assert res.exit_code == 2 and "error: unknown task 'nope'" in res.output
    res = runner.invoke(cli, ["conv", "tasks", "--format", "csv"])
    assert res.stdout.splitlines()[0] == "task,metric,model,epochs,input_shape"
