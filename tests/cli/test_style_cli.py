"""``cnnkit style`` through CliRunner, with a two-conv torchvision-format weights file (conv1_1, conv1_2)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from cnnkit.cli._app import cli

FAST = ["--size", "32", "--steps", "3", "--no-progress", "--threads", "1",
        "--content-layers", "conv1_2", "--style-layers", "conv1_1:0.5,conv1_2:0.5"]


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(tmp_path / "content.png")
    Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(tmp_path / "style.png")
    gen = torch.Generator().manual_seed(0)
    state = {"features.0.weight": torch.randn(64, 3, 3, 3, generator=gen) * 0.2, "features.0.bias": torch.zeros(64),
             "features.2.weight": torch.randn(64, 64, 3, 3, generator=gen) * 0.05, "features.2.bias": torch.zeros(64)}
    torch.save(state, tmp_path / "vgg.pth")
    return tmp_path


def _invoke(files, *extra):
    return CliRunner().invoke(cli, ["style", str(files / "content.png"), str(files / "style.png"),
                                    "--weights", str(files / "vgg.pth"), *FAST, *extra])


def test_json_output_and_same_seed_same_file(files):
    out_a, out_b = files / "a.png", files / "b.png"
    # from the photo itself (the recoloured start of two noise images is already at their style)
    result = _invoke(files, "-o", str(out_a), "--format", "json", "--seed", "7", "--init", "content")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == {"content_loss", "style_loss", "initial_style_loss", "tv_loss", "seconds", "size"}
    assert data["size"] == [32, 24] and data["style_loss"] < data["initial_style_loss"]
    assert Image.open(out_a).size == (32, 24)
    assert _invoke(files, "-o", str(out_b), "--format", "json", "--seed", "7", "--init", "content").exit_code == 0
    assert out_a.read_bytes() == out_b.read_bytes()
    assert "estimated peak memory" in result.stderr


def test_save_every_writes_intermediate_files(files):
    result = _invoke(files, "-o", str(files / "out.png"), "--save-every", "2")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in files.glob("out*.png")) == ["out-00002.png", "out-00003.png", "out.png"]


@pytest.mark.parametrize(("extra", "message"), [
    (["--style-layers", "conv1_1,conv9_9"], "error: unknown layer 'conv9_9'; valid names: conv1_1, relu1_1"),
    (["--size", "400"], "style.png: style image is 40x40 px, far smaller than the 400 px"),
    (["--max-memory", "1K"], "more than --max-memory"),
    (["--steps", "x"], "--steps must be comma-separated integers"),
])
def test_bad_input_is_one_error_line(files, extra, message):
    result = _invoke(files, "-o", str(files / "o.png"), *extra)
    assert result.exit_code == 2
    assert message in result.stderr and "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) <= 2  # the estimate line at most, then the error


def test_unreadable_image_and_wrong_weights(files):
    (files / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    result = CliRunner().invoke(cli, ["style", str(files / "broken.jpg"), str(files / "style.png"),
                                      "-o", str(files / "o.png"), "--weights", str(files / "vgg.pth"), *FAST])
    assert result.exit_code == 2 and "broken.jpg" in result.stderr and result.stderr.startswith("error: ")
    state = torch.load(files / "vgg.pth")
    state["features.2.weight"] = torch.zeros(64, 32, 3, 3)
    torch.save(state, files / "wrong.pth")
    result = CliRunner().invoke(cli, ["style", str(files / "content.png"), str(files / "style.png"),
                                      "-o", str(files / "o.png"), *FAST, "--weights", str(files / "wrong.pth")])
    assert result.exit_code == 2
    assert "features.2.weight (conv1_2) has shape (64, 32, 3, 3), expected (64, 64, 3, 3)" in result.stderr


def test_stop_at_ends_the_run_when_the_picture_is_reached(files):
    result = _invoke(files, "-o", str(files / "s.png"), "--format", "json", "--steps", "40",
                     "--style-weight", "1e4", "--stop-at", "0.9", "--keep-content", "0.5")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["reached"] is True and data["evaluations"] < 40


def test_init_choices_are_the_librarys():
    """--init offers exactly the starts the library knows, its default first."""
    import click

    from cnnkit.cli.style import style
    from cnnkit.style.optimize import INITS, StyleOptions

    opt = next(p for p in style.params if p.name == "init")
    assert isinstance(opt.type, click.Choice)
    assert tuple(opt.type.choices) == INITS and opt.default == INITS[0] == StyleOptions().init
