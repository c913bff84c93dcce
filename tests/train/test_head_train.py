import json
import shutil

import numpy as np
import torch
from click.testing import CliRunner

from cnnkit.cli._app import cli
from cnnkit.nn.checkpoint import save_encoder
from cnnkit.nn.heads import head_probability
from cnnkit.nn.registry import create_encoder
from cnnkit.store import open_gallery


def _tiny_model(path):
    torch.manual_seed(0)
    kwargs = {"embedding_dim": 8, "widths": [4, 8, 8, 8], "input_size": [48, 40]}
    save_encoder(path, create_encoder("small_cnn", **kwargs).eval(),
                 {"encoder": "small_cnn", "kwargs": kwargs, "input": {"size": [48, 40], "channels": 1, "align": False}})


def test_head_train_on_a_folder_stores_the_head_in_the_gallery(orl_dir, tmp_path):
    folder = tmp_path / "people"
    for person in ("s1", "s2", "s3", "s4"):
        shutil.copytree(orl_dir / person, folder / person)
    _tiny_model(tmp_path / "model")
    db = tmp_path / "g.sqlite"
    res = CliRunner().invoke(cli, ["head", "train", str(folder), "--encoder", str(tmp_path / "model"),
                                   "--pairs-per-person", "5", "--features", "abs,sq", "-o", str(tmp_path / "head.json"),
                                   "--db", str(db), "--format", "json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["train_pairs"] == 4 * 5 * 2 and out["better"] in ("head", "threshold")
    assert 0.0 <= out["train_head_accuracy"] <= 1.0
    spec = json.loads((tmp_path / "head.json").read_text())
    assert spec["features"] == ["abs", "sq"] and spec["dim"] == 8
    with open_gallery(db) as gallery:
        assert gallery.get_setting(out["encoder_tag"], "head") == spec
        assert gallery.get_setting(out["encoder_tag"], "method") == out["better"]
    prob = head_probability(spec, np.zeros((2, 8), np.float32), np.ones((3, 8), np.float32))
    assert prob.shape == (2, 3)


def test_head_help():
    res = CliRunner().invoke(cli, ["head", "train", "--help"])
    assert res.exit_code == 0 and "--features" in res.output and "--test" in res.output
