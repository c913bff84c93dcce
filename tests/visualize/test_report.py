"""units.json format, pictures and the ``cnnkit visualize`` commands on small 1D/2D/3D models."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from torch import nn

from cnnkit.cli._app import cli
from cnnkit.visualize.receptive import receptive_field
from cnnkit.visualize.render import BORDER, OUTSIDE, contact_sheet
from cnnkit.visualize.report import units_json
from cnnkit.visualize.scan import scan_top_units
from cnnkit.visualize.sources import ImageFolder, TensorSource

REPO = Path(__file__).resolve().parents[2]


def _model2d() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(4, 5, 5, padding=2), nn.ReLU()).eval()


@pytest.fixture
def image_dir(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    folder = tmp_path / "images"
    (folder / "sub").mkdir(parents=True)
    for i in range(7):
        arr = rng.integers(0, 256, (40 + i, 36, 3), dtype=np.uint8)  # not square: resized and cropped
        Image.fromarray(arr).save(folder / ("sub" if i % 2 else ".") / f"img{i}.png")
    return folder


def test_units_json_format_boxes_and_activations(image_dir):
    model = _model2d()
    data = ImageFolder(image_dir, size=24)
    result = scan_top_units(model, data, ["0", "4"], top=3, units=2, progress=False)
    doc = units_json(result, data, model_name="tiny")
    assert set(doc) == {"model", "layers"} and doc["model"] == "tiny"
    assert list(doc["layers"]) == ["0", "4"]
    layer = doc["layers"]["4"]
    assert set(layer) == {"receptive_field", "units"} and layer["receptive_field"] == [12, 12]
    rf = receptive_field(model, "4", ndim=2)  # size 12, jump 2, start -5
    with torch.no_grad():
        acts = model(torch.stack([data[i] for i in range(len(data))]))
    for unit in layer["units"]:
        assert set(unit) == {"unit", "top"} and len(unit["top"]) == 3
        previous = float("inf")
        for entry in unit["top"]:
            assert set(entry) == {"index", "source", "position", "activation", "box"}
            x, y = entry["position"]
            assert entry["activation"] == pytest.approx(float(acts[entry["index"], unit["unit"], y, x]))
            assert entry["activation"] <= previous
            previous = entry["activation"]
            x1, y1, x2, y2 = entry["box"]
            assert (x1, y1) == (max(0, rf.start[1] + 2 * x), max(0, rf.start[0] + 2 * y))
            assert (x2, y2) == (min(24, rf.start[1] + 2 * x + 12), min(24, rf.start[0] + 2 * y + 12))
            assert entry["source"] == data.source(entry["index"]) and entry["source"].endswith(".png")
    assert json.loads(json.dumps(doc)) == doc


def test_1d_and_3d_boxes_are_starts_then_ends():
    torch.manual_seed(1)
    seq = TensorSource(torch.randn(5, 1, 30), name="seq")
    model1d = nn.Sequential(nn.Conv1d(1, 2, 5, stride=2)).eval()
    doc = units_json(scan_top_units(model1d, seq, ["0"], top=2, progress=False), seq, model_name="m1")
    entry = doc["layers"]["0"]["units"][0]["top"][0]
    assert doc["layers"]["0"]["receptive_field"] == [5]
    assert entry["box"] == [2 * entry["position"][0], 2 * entry["position"][0] + 5]
    assert entry["source"].startswith("seq[")
    vol = TensorSource(torch.rand(3, 1, 6, 8, 10), name="vol")
    model3d = nn.Sequential(nn.Conv3d(1, 2, (1, 3, 5))).eval()
    doc = units_json(scan_top_units(model3d, vol, ["0"], top=2, progress=False), vol, model_name="m3")
    x, y, z = doc["layers"]["0"]["units"][1]["top"][0]["position"]
    assert doc["layers"]["0"]["receptive_field"] == [5, 3, 1]  # x, y, z
    assert doc["layers"]["0"]["units"][1]["top"][0]["box"] == [x, y, z, x + 5, y + 3, z + 1]


def test_contact_sheet_marks_clipped_fields(image_dir):
    model = _model2d()
    data = ImageFolder(image_dir, size=24)
    table = scan_top_units(model, data, ["4"], top=4, units=3, progress=False).layers["4"]
    sheet = np.asarray(contact_sheet(table, data, cell=56))
    assert sheet.shape == (18 + 2 + 3 * 58, 28 + 2 + 4 * 58, 3)  # title, label column, 3 x 4 cells
    pixels = {tuple(p) for p in sheet.reshape(-1, 3)[::7]}
    border_units = (table.position == 0).any() or (table.position == 11).any()
    if border_units:  # a field of 12 at jump 2 reaches past a 24-pixel image at the feature map border
        assert OUTSIDE in pixels and BORDER in pixels


_FACTORIES = {
    "2d": "nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 5, 5, padding=2), nn.ReLU())",
    "1d": "nn.Sequential(nn.Conv1d(1, 4, 7, padding=3), nn.ReLU(), nn.MaxPool1d(2), nn.Conv1d(4, 4, 5))",
    "3d": "nn.Sequential(nn.Conv3d(1, 3, 3), nn.ReLU(), nn.MaxPool3d(2), nn.Conv3d(3, 3, 3))",
}


def _save_model(kind: str, path: Path) -> str:
    """A FILE.py:FACTORY model spec (the CLI refuses pickled modules)."""
    path.write_text("import torch\nfrom torch import nn\n\n\ndef build() -> nn.Module:\n    torch.manual_seed(0)\n"
                    f"    return {_FACTORIES[kind]}\n")
    return f"{path}:build"


def test_cli_refuses_pickled_modules(tmp_path):
    torch.save(_model2d(), tmp_path / "tiny.pt")
    result = CliRunner().invoke(cli, ["visualize", "filters", "--model", str(tmp_path / "tiny.pt"), "-o", str(tmp_path / "f.png")])
    assert result.exit_code == 2 and "pickled modules are not loaded" in result.output


@pytest.mark.parametrize(("spec", "reason"), [
    ("os:getpid", "not a Python function (builtin_function_or_method); refusing to call it"),
    ("collections:OrderedDict", "a class that is not a torch.nn.Module; refusing to call it"),
    ("FILE:build", "the factory must be annotated to return a torch.nn.Module"),
])
def test_cli_factory_refused_before_it_is_called(tmp_path, spec, reason):
    marker = tmp_path / "called"
    (tmp_path / "evil.py").write_text(f"def build():\n    open({str(marker)!r}, 'w').close()\n")
    spec = spec.replace("FILE", str(tmp_path / "evil.py"))
    result = CliRunner().invoke(cli, ["visualize", "filters", "--model", spec, "-o", str(tmp_path / "f.png")])
    assert result.exit_code == 2 and reason in result.output and not marker.exists()


def test_cli_help_says_model_files_are_run():
    result = CliRunner().invoke(cli, ["visualize", "filters", "--help"])
    assert "FILE.py is run as Python code" in " ".join(result.output.split())


def test_cli_units_2d_writes_everything(tmp_path, image_dir):
    model_path = _save_model("2d", tmp_path / "tiny.py")
    out = tmp_path / "out"
    args = ["visualize", "units", "--model", str(model_path), "--data", str(image_dir), "--layers", "0,4",
            "--units", "3", "--top", "4", "--size", "24", "--batch-size", "3", "-o", str(out),
            "--no-progress", "--format", "json"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    assert printed["inputs"] == 7 and [r["layer"] for r in printed["layers"]] == ["0", "4"]
    doc = json.loads((out / "units.json").read_text())
    assert doc["model"] == "tiny" and len(doc["layers"]["4"]["units"]) == 3
    for name in ("index.html", "filters.png", "sheets/0.png", "sheets/4.png", "activations/4.png", "scan.ckpt"):
        assert (out / name).is_file(), name
    html = (out / "index.html").read_text()
    assert "sheets/4.png" in html and "units.json" in html and "filters.png" in html
    again = CliRunner().invoke(cli, args)  # resumes from the finished checkpoint: same document
    assert again.exit_code == 0 and json.loads((out / "units.json").read_text()) == doc


def test_cli_same_command_for_1d_and_3d(tmp_path):
    torch.save(torch.rand(6, 1, 12, 12, 12), tmp_path / "cubes.pt")
    ecg = REPO / "data" / "ecg" / "ECG200_TEST.tsv"
    for name, model, data in (("m1", "1d", ecg), ("m3", "3d", tmp_path / "cubes.pt")):
        out = tmp_path / name
        result = CliRunner().invoke(cli, ["visualize", "units", "--model", _save_model(model, tmp_path / f"{name}.py"),
                                          "--data", str(data), "--units", "2", "--top", "3", "-o", str(out),
                                          "--no-progress"])
        assert result.exit_code == 0, result.output
        doc = json.loads((out / "units.json").read_text())
        assert list(doc["layers"]) == ["0", "3"]
        box = doc["layers"]["3"]["units"][0]["top"][0]["box"]
        assert len(box) == (2 if name == "m1" else 6)
        assert Image.open(out / "sheets" / "3.png").size[0] > 100
    assert doc["layers"]["3"]["receptive_field"] == [8, 8, 8]


def test_cli_filters_and_activations(tmp_path, image_dir):
    model_path = _save_model("2d", tmp_path / "tiny.py")
    result = CliRunner().invoke(cli, ["visualize", "filters", "--model", str(model_path), "-o", str(tmp_path / "f.png")])
    assert result.exit_code == 0, result.output
    assert "filters of 0" in result.output and Image.open(tmp_path / "f.png").size[0] > 50
    image = next(image_dir.glob("*.png"))
    result = CliRunner().invoke(cli, ["visualize", "activations", str(image), "--model", str(model_path),
                                      "--layers", "1,4", "--size", "24", "-o", str(tmp_path / "acts")])
    assert result.exit_code == 0, result.output
    assert "5 maps of 4, shape (12, 12)" in result.output
    assert (tmp_path / "acts" / "1.png").is_file()
    bad = CliRunner().invoke(cli, ["visualize", "units", "--model", str(model_path), "--data", str(image_dir),
                                   "--layers", "conv9", "-o", str(tmp_path / "x"), "--no-progress"])
    assert bad.exit_code == 2 and "unknown layer(s) ['conv9']" in bad.output


def test_cli_face_encoder_uses_its_own_preprocessing(tmp_path, orl_dir):
    """A face encoder saved by the Siamese training (here: random weights) on grey ORL faces."""
    from cnnkit.nn.checkpoint import save_encoder
    from cnnkit.nn.registry import create_encoder

    torch.manual_seed(3)
    kwargs = {"embedding_dim": 8, "widths": [4, 8], "input_size": [56, 46]}
    encoder = create_encoder("small_cnn", **kwargs)
    save_encoder(tmp_path / "face", encoder, {"encoder": "small_cnn", "kwargs": kwargs,
                                              "input": {"size": [56, 46], "channels": 1, "align": False}})
    people = tmp_path / "faces"
    people.mkdir()
    for pgm in sorted(orl_dir.glob("s1/*.pgm"))[:6]:
        (people / pgm.name).symlink_to(pgm)
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["visualize", "units", "--model", str(tmp_path / "face"), "--data", str(people),
                                      "--units", "2", "--top", "3", "-o", str(out), "--no-progress", "--format", "json"])
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "units.json").read_text())
    assert doc["model"] == "small_cnn"
    first = next(iter(doc["layers"].values()))["units"][0]["top"][0]
    assert first["source"].endswith(".pgm") and max(first["box"][2], first["box"][3]) <= 56


def test_filters_are_shown_in_the_input_channel_order():
    """VGG19's caffe weights read BGR; the grid shows them as RGB again."""
    from cnnkit.nn.vgg import VGG19Features
    from cnnkit.visualize.filters import filter_image, input_channel_order

    model = VGG19Features(last_layer="conv1_1")
    assert input_channel_order(model) == [2, 1, 0]
    with torch.no_grad():
        model.conv1_1.weight.zero_()
        model.conv1_1.weight[:, 0] = 1.0  # every kernel reads only the model's channel 0 = blue
    pixels = np.asarray(filter_image(model, cell=8))[20:28, 2:10].reshape(-1, 3)  # the first tile
    assert (pixels[:, 2] > 200).all() and (pixels[:, 0] < 50).all()  # blue, not red


@pytest.mark.parametrize("command", ["units", "filters", "activations"])
def test_cli_help(command):
    result = CliRunner().invoke(cli, ["visualize", command, "--help"])
    assert result.exit_code == 0 and "--model" in result.output


def test_cli_units_without_data_needs_a_task_model(tmp_path):
    """--data defaults to a task model's own data (tasks.run.data_for); a model that names no task
    is one error line naming the option, exit 2."""
    from cnnkit.tasks import get_task
    from cnnkit.tasks.run import data_for

    result = CliRunner().invoke(cli, ["visualize", "units", "--model", _save_model("2d", tmp_path / "m.py"),
                                      "-o", str(tmp_path / "out"), "--no-progress"])
    assert result.exit_code == 2 and "error: --data is required for this model" in result.output
    assert data_for({"task": "ecg200"}) == get_task("ecg200").default_data()
    assert data_for({"task": "ecg200"}, "mine") == "mine"


def test_default_layers_vgg19_and_other_models(image_dir, tmp_path):
    """Without --layers: VGG19's five style layers; another model: convolutions spread over it."""
    from cnnkit.cli.visualize import _setup
    from cnnkit.core.assets import weights_table

    if not any(w["name"] == "vgg19" and w["installed"] for w in weights_table()):
        pytest.skip("VGG19 weights not installed (cnnkit weights install vgg19)")
    _net, name, _data, layers = _setup("vgg19", str(image_dir), None, 32, 8, 2, "cpu")
    assert (name, layers) == ("vgg19", ["conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"])
    _net, _name, _data, layers = _setup(_save_model("2d", tmp_path / "m.py"), str(image_dir), None, 32, 8, 2, "cpu")
    assert layers == ["0", "3"]  # the two convolutions of the tiny 2D model
