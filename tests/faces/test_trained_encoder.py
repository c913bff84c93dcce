"""A model trained with `cnnkit train` is accepted wherever an encoder name is (--encoder MODEL)."""
import json
from pathlib import Path

import numpy as np
import torch
from click.testing import CliRunner

from cnnkit.cli._app import cli
from cnnkit.faces import FacePipeline, load_face_encoder
from cnnkit.faces.encoders import embed_chips
from cnnkit.faces.encoders import TrainedFaceEncoder
from cnnkit.nn.checkpoint import encode_images, load_encoder, prepare_images, save_encoder
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


def test_flip_runs_the_trained_model_twice_per_photo(tmp_path):
    """flip on: each photo and its mirror go through the network once each, never more."""
    path = _model(tmp_path)
    config = json.loads((path / "model.json").read_text())
    config["input"]["flip_tta"] = True
    (path / "model.json").write_text(json.dumps(config))
    pipe = FacePipeline(str(path))
    assert pipe.flip
    seen = []
    pipe.encoder.model.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].shape[0]))
    photos = [ORL / "s1" / f"{i}.pgm" for i in (1, 2, 3)]
    faces = [res for _, res in pipe.encode_many(photos)]
    assert sum(seen) == 2 * len(photos)
    # the result is the L2-normalised mean of the two passes
    img = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(photos[0]))
    model, cfg = load_encoder(path)
    both = encode_images(model, cfg, [img, np.ascontiguousarray(img[:, ::-1])])
    mean = both.mean(0) / np.linalg.norm(both.mean(0))
    np.testing.assert_allclose(faces[0].embedding, mean, atol=1e-5)


def test_flip_tta_is_the_normalised_sum_of_the_image_and_its_mirror(tmp_path):
    torch.manual_seed(0)
    kwargs = {"embedding_dim": 8, "widths": [4, 8, 8, 8]}
    model = create_encoder("small_cnn", **kwargs).eval()
    path = save_encoder(tmp_path / "m", model, {"encoder": "small_cnn", "kwargs": kwargs,
                                                 "input": {"size": [40, 32], "channels": 1, "align": False,
                                                           "flip_tta": True}})
    enc = load_face_encoder(path)
    assert enc.flip and enc.normalized
    image = np.random.default_rng(1).integers(0, 256, (40, 32), dtype=np.uint8)
    got = embed_chips(enc, [image], flip=enc.flip)
    x = prepare_images([image], size=[40, 32], channels=1)
    expected = torch.nn.functional.normalize(model(x) + model(x.flip(-1)), dim=1).detach().numpy()
    np.testing.assert_allclose(got, expected, atol=1e-6)
    np.testing.assert_allclose(embed_chips(enc, [image[:, ::-1].copy()], flip=True), got, atol=1e-5)
