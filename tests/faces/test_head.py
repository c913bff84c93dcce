"""The binary head: trained with `cnnkit head train FOLDER --encoder MODEL --db G`, it is the head
`face verify/identify --method head` use on G (one encoder tag for both)."""
import json
import shutil

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from cnnkit.cli._app import cli
from cnnkit.faces import FacePipeline
from cnnkit.faces.head import sample_pairs
from cnnkit.nn.checkpoint import save_encoder
from cnnkit.nn.heads import head_probability
from cnnkit.nn.registry import create_encoder
from cnnkit.store import open_gallery


def _tiny_model(path):
    torch.manual_seed(0)
    kwargs = {"embedding_dim": 8, "widths": [4, 8, 8, 8], "input_size": [48, 40]}
    save_encoder(path, create_encoder("small_cnn", **kwargs).eval(),
                 {"encoder": "small_cnn", "kwargs": kwargs, "input": {"size": [48, 40], "channels": 1, "align": False}})


def _people(orl_dir, tmp_path, names=("s1", "s2", "s3", "s4")):
    folder = tmp_path / "people"
    for person in names:
        shutil.copytree(orl_dir / person, folder / person)
    return folder


def test_head_trained_on_a_folder_decides_verify_on_that_gallery(orl_dir, tmp_path):
    folder, model, db = _people(orl_dir, tmp_path), tmp_path / "model", tmp_path / "g.sqlite"
    _tiny_model(model)
    run = CliRunner().invoke
    res = run(cli, ["face", "enroll", "--folders", str(folder), "--encoder", str(model), "--db", str(db)])
    assert res.exit_code == 0, res.output
    res = run(cli, ["head", "train", str(folder), "--encoder", str(model), "--pairs-per-person", "5",
                    "--features", "abs,sq", "-o", str(tmp_path / "head.json"), "--db", str(db), "--format", "json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["train_pairs"] == 4 * 5 * 2
    spec = json.loads((tmp_path / "head.json").read_text())
    assert spec["features"] == ["abs", "sq"] and spec["dim"] == 8
    photo = orl_dir / "s2" / "5.pgm"
    res = run(cli, ["face", "verify", "s2", str(photo), "--method", "head", "--encoder", str(model),
                    "--db", str(db), "--format", "json"])
    assert res.exit_code in (0, 1), res.output
    verdict = json.loads(res.stdout.strip().splitlines()[-1])
    assert verdict["method"] == "head"
    # the score is the stored head's P(same) against s2's closest enrolled photo
    with open_gallery(db) as gallery:
        assert gallery.get_setting(gallery.encoder_tag, "head") == spec
        own, _ = gallery.faces_of("s2")
    query = FacePipeline(str(model)).encode_one(photo).embedding
    expected = float(head_probability(spec, query[None], own).max())
    assert abs(verdict["probability"] - expected) < 1e-5
    assert verdict["match"] == (expected > 0.5)


def test_sample_pairs_balances_same_and_different():
    labels = np.array([0, 0, 0, 1, 1, 2])  # person 2 has one photo: no same-person pair of their own
    i, j = sample_pairs(labels, 3, seed=0)
    same = labels[i] == labels[j]
    assert len(i) == 2 * 3 * 2 and same.sum() == 6 and (~same).sum() == 6
    assert set(labels[i][same]) == {0, 1} and not np.any(i[same] == j[same])


def test_head_help():
    res = CliRunner().invoke(cli, ["head", "train", "--help"])
    assert res.exit_code == 0 and "--features" in res.output and "--test" in res.output


@pytest.mark.parametrize("features, pairs_per_person", [("abs", 5), ("sq", 10)])
def test_head_train_stores_the_better_method_and_auto_decides_by_it(orl_dir, tmp_path, features, pairs_per_person):
    """`head train --test --db` stores "head" as the method exactly when the head beat the best single
    threshold on the test pairs; `verify`/`identify --method auto` then decide by it (with this
    seeded model and these ORL people: the head wins with abs features, the threshold with sq)."""
    folder = _people(orl_dir, tmp_path, names=("s1", "s2", "s3", "s4", "s5", "s6"))
    model, db = tmp_path / "model", tmp_path / "g.sqlite"
    _tiny_model(model)
    run = CliRunner().invoke
    res = run(cli, ["face", "enroll", "--folders", str(folder), "--encoder", str(model), "--db", str(db)])
    assert res.exit_code == 0, res.output
    res = run(cli, ["head", "train", str(folder), "--encoder", str(model), "--features", features,
                    "--pairs-per-person", str(pairs_per_person), "--test", str(folder),
                    "-o", str(tmp_path / "head.json"), "--db", str(db), "--format", "json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    head_won = out["test_head_accuracy"] > out["test_threshold_accuracy"]
    assert head_won == (features == "abs")
    assert out["better"] == ("head" if head_won else "threshold")
    with open_gallery(db) as gallery:
        assert gallery.get_setting(out["encoder_tag"], "method") == out["better"]
    expected = "head" if head_won else "distance"
    photo = orl_dir / "s2" / "5.pgm"
    res = run(cli, ["face", "verify", "s2", str(photo), "--encoder", str(model), "--db", str(db), "--format", "json"])
    assert res.exit_code in (0, 1), res.output
    assert json.loads(res.stdout.strip().splitlines()[-1])["method"] == expected
    res = run(cli, ["face", "identify", str(photo), "--encoder", str(model), "--db", str(db), "--format", "json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout.strip().splitlines()[-1])["method"] == expected
