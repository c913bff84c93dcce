import json

import torch
from click.testing import CliRunner

from cnnkit.cli._app import cli
from cnnkit.train.loop import TrainConfig, fit
from cnnkit.train.oneshot import oneshot_eval

SMALL = {"widths": [8, 16, 16, 32]}


def test_two_epochs_lower_the_loss_and_save_a_usable_model(orl_dir, tmp_path):
    torch.set_num_threads(2)
    cfg = TrainConfig(people="s1..s6", epochs=2, p=4, k=4, encoder_kwargs=SMALL, val_fraction=0.34, lr=3e-3,
                      size=(48, 40))
    out = tmp_path / "m"
    result = fit(orl_dir, out, cfg, progress=False, log=lambda s: None)
    hist = result["history"]
    assert [h["epoch"] for h in hist] == [1, 2]
    assert hist[1]["loss"] < hist[0]["loss"]
    assert {"val_eer", "val_rank1", "val_accuracy", "active_triplets", "mean_pos_dist", "mean_neg_dist"} <= set(hist[1])
    config = json.loads((out / "model.json").read_text())
    assert config["input"] == {"size": [48, 40], "channels": 1, "align": False, "flip_tta": True}
    assert config["train"]["train_people"] and not set(config["train"]["train_people"]) & set(config["train"]["val_people"])
    report = oneshot_eval(orl_dir, out, people="s7..s9", seeds=3, use_store=False)
    assert report["people"] == 3 and report["probes"] == 27 and 0 <= report["rank1"] <= 1

    # seeded and repeatable; resuming after the end changes nothing
    again = fit(orl_dir, tmp_path / "m2", cfg, progress=False, log=lambda s: None)
    assert [h["loss"] for h in again["history"]] == [h["loss"] for h in hist]
    resumed = fit(orl_dir, out, cfg, resume=True, progress=False, log=lambda s: None)
    assert resumed["history"] == hist


def test_cli_train_help_and_error():
    runner = CliRunner()
    res = runner.invoke(cli, ["train", "--help"])
    assert res.exit_code == 0 and "--mining" in res.output and "semihard" in res.output
    res = runner.invoke(cli, ["train", ".", "-o", "x", "--encoder", "nope"])
    assert res.exit_code == 2 and "unknown encoder 'nope'" in res.output
