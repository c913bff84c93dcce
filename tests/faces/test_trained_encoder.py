"""A model trained with `cnnkit train` is accepted wherever an encoder name is (--encoder MODEL)."""
import json
from pathlib import Path

import numpy as np
import torch
from click.testing import CliRunner

from cnnkit.cli._app import cli
from cnnkit.faces import FacePipeline, load_face_encoder
from cnnkit.faces.trained import TrainedFaceEncoder
from cnnkit.nn.checkpoint import encode_images, load_encoder, save_encoder
from cnnkit.nn.registry import create_encoder

ORL = Path(__file__).resolve().parents[2] / "data" / "orl"


def _model(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    kwargs = {"widths": [8, 16, 16, 32], "embedding_dim": 16}
    enc = create_encoder("small_cnn", **kwargs)
    config = {"encoder": "small_cnn", "kwargs": kwargs, "version": "test-1",
              "input": {"size": [56, 46], "channels": 1, "align": False},
              "metrics": {"val_threshold": 0.7}}
    return save_encoder(tmp_path / "model", enc, config)


def test_load_face_encoder_accepts_a_model_dir(tmp_path):
    path = _model(tmp_path)
    enc = load_face_encoder(path)
    assert isinstance(enc, TrainedFaceEncoder) and enc.whole_image and enc.dim == 16
    assert enc.default_threshold == 0.7 and enc.tag.startswith("small_cnn:test-1:")
    img = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(ORL / "s1" / "1.pgm"))
    model, config = load_encoder(path)
    np.testing.assert_allclose(enc.encode([img]), encode_images(model, config, [img]), atol=1e-6)


def test_whole_image_pipeline_and_cli(tmp_path):
    path = _model(tmp_path)
    pipe = FacePipeline(str(path), flip=False)
    face = pipe.encode_one(ORL / "s2" / "3.pgm")
    assert face.box == (0.0, 0.0, 92.0, 112.0) and face.embedding.shape == (16,)
    db = tmp_path / "g.sqlite"
    for s in (1, 2, 3):
        r = CliRunner().invoke(cli, ["face", "enroll", f"s{s}", str(ORL / f"s{s}" / "1.pgm"), "--encoder", str(path),
                                     "--db", str(db)])
        assert r.exit_code == 0, r.output
    r = CliRunner().invoke(cli, ["face", "identify", str(ORL / "s2" / "1.pgm"), "--encoder", str(path),
                                 "--db", str(db), "--format", "json"])
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert r.exit_code == 0 and out["results"][0]["faces"][0]["name"] == "s2"
    assert out["results"][0]["faces"][0]["distance"] < 1e-5
    r = CliRunner().invoke(cli, ["face", "identify", str(ORL / "s2" / "1.pgm"), "--db", str(db)])  # default encoder
    assert r.exit_code == 2 and "small_cnn:test-1" in r.stderr
