"""The frictions a new user met in the first hour (issue 16), each through the CLI on real files."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from cnnkit.cli._app import cli
from cnnkit.faces.encoders import DEFAULT_ENCODER, load_face_encoder

REPO = Path(__file__).resolve().parents[2]
THREAD_COMMANDS = [["face", "enroll"], ["face", "verify"], ["face", "identify"], ["face", "compare"], ["face", "cluster"], ["demo"], ["serve"],
                   ["train"], ["conv", "train"], ["conv", "evaluate"], ["style"], ["visualize", "units"],
                   ["head", "train"]]


@pytest.mark.parametrize("command", THREAD_COMMANDS, ids=" ".join)
def test_every_computing_command_has_the_same_threads_option(command):
    res = CliRunner().invoke(cli, [*command, "--help"], terminal_width=200)
    assert res.exit_code == 0, res.output
    assert "--threads INTEGER RANGE" in res.output
    assert "$CNNKIT_THREADS, else 1" in res.output


def test_threads_default_is_one_and_the_option_and_variable_change_it(tmp_path, monkeypatch):
    runner = CliRunner()
    model = tmp_path / "ecg"
    torch.set_num_threads(2)
    res = runner.invoke(cli, ["conv", "train", "ecg200", "--epochs", "1", "-o", str(model), "--no-progress",
                              "--format", "json"])
    assert res.exit_code == 0, res.output
    assert torch.get_num_threads() == 1
    assert runner.invoke(cli, ["conv", "evaluate", f"{model}.safetensors", "--threads", "2"]).exit_code == 0
    assert torch.get_num_threads() == 2
    monkeypatch.setenv("CNNKIT_THREADS", "3")
    assert runner.invoke(cli, ["conv", "evaluate", f"{model}.safetensors"]).exit_code == 0
    assert torch.get_num_threads() == 3
    monkeypatch.setenv("CNNKIT_THREADS", "many")
    res = runner.invoke(cli, ["conv", "evaluate", f"{model}.safetensors"])
    assert res.exit_code == 2 and "CNNKIT_THREADS must be a positive integer, got 'many'" in res.output
    torch.set_num_threads(1)


def test_metrics_are_k_over_n_with_n_stated(tmp_path):
    model = tmp_path / "ecg"
    res = CliRunner().invoke(cli, ["conv", "train", "ecg200", "--epochs", "2", "-o", str(model), "--no-progress",
                                   "--format", "json"])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(cli, ["conv", "evaluate", f"{model}.safetensors", "--format", "json"])
    out = json.loads(res.stdout)
    assert out["n"] == 100
    k = out["value"] * out["n"]
    assert abs(k - round(k)) < 1e-9
    assert re.search(r'"value": (0\.\d{1,2}|1\.0)[,}]', res.stdout), res.stdout  # 0.88, not 0.8799999952316284


SMALL_TRAIN = ["--people", "s1..s4", "--encoder", "small_cnn", "--encoder-arg", "widths=[4,4,4,4]",
               "--epochs", "1", "--people-per-batch", "2", "--images-per-person", "2", "--val-fraction", "0.5",
               "--size", "28", "24", "--quiet"]


def test_train_refuses_to_overwrite_a_model_without_force(orl_dir, tmp_path):
    runner = CliRunner()
    out = tmp_path / "model"
    res = runner.invoke(cli, ["train", str(orl_dir), "-o", str(out), *SMALL_TRAIN])
    assert res.exit_code == 0, res.output
    first = (out / "model.safetensors").read_bytes()
    res = runner.invoke(cli, ["train", str(orl_dir), "-o", str(out), *SMALL_TRAIN, "--seed", "1"])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert f"error: {out}: a model is already saved there" in res.stderr and "--force" in res.stderr
    assert (out / "model.safetensors").read_bytes() == first  # nothing lost
    res = runner.invoke(cli, ["train", str(orl_dir), "-o", str(out), *SMALL_TRAIN, "--seed", "1", "--force"])
    assert res.exit_code == 0, res.output
    assert (out / "model.safetensors").read_bytes() != first
    # the final table is metric/value rows, not a 13-column line of 200 characters
    assert max(len(line) for line in res.stdout.splitlines()) <= len(str(out)) + 20
    assert res.stdout.splitlines()[0].split() == ["metric", "value"]


def _style_files(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(tmp_path / "content.png")
    Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(tmp_path / "style.png")
    gen = torch.Generator().manual_seed(0)
    torch.save({"features.0.weight": torch.randn(64, 3, 3, 3, generator=gen) * 0.2, "features.0.bias": torch.zeros(64),
                "features.2.weight": torch.randn(64, 64, 3, 3, generator=gen) * 0.05,
                "features.2.bias": torch.zeros(64)}, tmp_path / "vgg.pth")
    return tmp_path


STYLE_FAST = ["--size", "32", "--steps", "6", "--content-layers", "conv1_2", "--style-layers",
              "conv1_1:0.5,conv1_2:0.5", "--init", "noise"]


def test_style_creates_no_folder_outside_the_output_path(tmp_path):
    files = _style_files(tmp_path)
    target = tmp_path / "nonexistent" / "dir" / "x.png"
    res = CliRunner().invoke(cli, ["style", str(files / "content.png"), str(files / "style.png"), "-o", str(target),
                                   "--weights", str(files / "vgg.pth"), *STYLE_FAST, "--no-progress"])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert f"error: {target}: the folder {target.parent} does not exist" in res.stderr
    assert not (tmp_path / "nonexistent").exists()


@pytest.mark.parametrize("argv", [
    ["conv", "train", "ecg200", "-o", "{out}/m.safetensors"],
    ["train", "{orl}", "-o", "{out}/model"],
    ["visualize", "filters", "--model", "vgg19", "-o", "{out}/f.png"],
    ["visualize", "units", "--model", "vgg19", "--data", "{orl}", "-o", "{out}/units"],
    ["visualize", "activations", "{orl}/s1/1.pgm", "--model", "vgg19", "-o", "{out}/maps"],
    ["demo", "-o", "{out}/demo"],
])
def test_no_command_creates_folders_above_its_output(tmp_path, orl_dir, argv):
    """Every command that writes under -o refuses a path whose folder does not exist, before any
    work (no model is loaded, no data read), and creates nothing."""
    out = tmp_path / "nonexistent" / "dir"
    args = [a.format(out=out, orl=orl_dir) for a in argv]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 2 and "Traceback" not in res.output, res.output
    assert f"the folder {out} does not exist" in res.stderr
    assert not (tmp_path / "nonexistent").exists()


def test_style_table_reports_what_the_progress_bar_ends_on(tmp_path):
    files = _style_files(tmp_path)
    res = CliRunner().invoke(cli, ["style", str(files / "content.png"), str(files / "style.png"),
                                   "-o", str(tmp_path / "o.png"), "--weights", str(files / "vgg.pth"), *STYLE_FAST,
                                   "--progress", "--format", "csv"])
    assert res.exit_code == 0, res.output
    bar_style = re.findall(r"style=([0-9.e+-]+)", res.stderr)[-1]
    bar_content = re.findall(r"content=([0-9.e+-]+)", res.stderr)[-1]
    header, row = res.stdout.strip().splitlines()
    table = dict(zip(header.split(","), row.split(",")))
    assert (table["style_loss"], table["content_loss"]) == (bar_style, bar_content)


def test_activation_maps_count_what_is_drawn_and_captions_keep_their_spaces(tmp_path):
    from cnnkit.visualize.render import caption_font, grid

    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(tmp_path / "in.png")
    (tmp_path / "net.py").write_text(
        "import torch\n"
        "def build() -> torch.nn.Module:\n"  # issue 14: only annotated factories are called
        "    torch.manual_seed(0)\n"
        "    return torch.nn.Sequential(torch.nn.Conv2d(3, 128, 3, padding=1))\n")
    res = CliRunner().invoke(cli, ["visualize", "activations", str(tmp_path / "in.png"), "--model",
                                   f"{tmp_path / 'net.py'}:build", "--layers", "0", "--size", "32",
                                   "-o", str(tmp_path / "maps")])
    assert res.exit_code == 0, res.output
    assert "64 of 128 maps of 0" in res.output
    # a space is as wide as a letter's gap, not 1 px (the bitmap font lost them: "64filters3x3")
    from PIL import ImageDraw

    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    assert draw.textlength("a b", font=caption_font()) - draw.textlength("ab", font=caption_font()) >= 2
    # a title longer than its tiles widens the sheet instead of being cut off
    title = "mobilenet_v2_face backbone.features.17.conv.1.0  receptive field 491  top 9 of 16 units"
    sheet = grid([Image.new("RGB", (10, 10))] * 2, 2, title=title)
    assert sheet.width >= draw.textlength(title, font=caption_font())


def test_units_on_a_deep_model_defaults_to_five_layers_first_to_last():
    from cnnkit.visualize.receptive import default_layers

    net = torch.nn.Sequential(*[torch.nn.Conv2d(2, 2, 3, padding=1) for _ in range(51)])
    layers = default_layers(net, torch.zeros(2, 16, 16))
    assert layers == ["0", "12", "25", "38", "50"]


# -- the face commands on a fresh machine --------------------------------------------------------

def _face(*args: str, db: Path):
    return CliRunner().invoke(cli, ["face", *args, "--db", str(db)])


def _no_face_photo(path: Path) -> Path:
    Image.fromarray(np.tile(np.linspace(0, 255, 160, dtype=np.uint8), (120, 1))).save(path)
    return path


def test_first_commands_say_what_to_do_and_name_the_gallery(orl_dir, tmp_path):
    db = tmp_path / "g.sqlite"
    for args in (["people"], ["identify", str(orl_dir / "s1" / "2.pgm")], ["verify", "s1", str(orl_dir / "s1" / "2.pgm")]):
        res = _face(*args, db=db)
        assert res.exit_code == 2 and "Traceback" not in res.output
        assert res.stderr.strip() == (f"error: {db}: no such gallery; nobody is enrolled yet "
                                      "(`cnnkit face enroll NAME PHOTO` creates it)")
    res = _face("enroll", "s1", str(orl_dir / "s1" / "1.pgm"), db=db)
    assert res.exit_code == 0, res.output
    assert f"gallery: {db}" in res.stderr
    res = _face("verify", "zoe", str(orl_dir / "s1" / "2.pgm"), db=db)
    assert res.exit_code == 2
    assert res.stderr.strip() == f"error: 'zoe' is not enrolled in {db} (`cnnkit face people` lists who is)"


def test_a_missing_photo_reads_the_same_in_every_face_command(orl_dir, tmp_path):
    db = tmp_path / "g.sqlite"
    assert _face("enroll", "s1", str(orl_dir / "s1" / "1.pgm"), db=db).exit_code == 0
    nope = str(tmp_path / "nope.jpg")
    runs = {"enroll": _face("enroll", "ada", nope, db=db), "verify": _face("verify", "s1", nope, db=db),
            "identify": _face("identify", nope, db=db),
            "compare": CliRunner().invoke(cli, ["face", "compare", nope, str(orl_dir / "s1" / "1.pgm")])}
    for command, res in runs.items():
        assert res.exit_code == 2, (command, res.output)
        assert f"{nope}: no such file" in res.output, (command, res.output)
        assert "No such file or directory" not in res.output, command


def test_a_photo_enrolled_as_someone_else_is_an_error_naming_them_and_force_moves_it(orl_dir, tmp_path):
    db = tmp_path / "g.sqlite"
    photo = str(orl_dir / "s1" / "1.pgm")
    assert _face("enroll", "s1", photo, db=db).exit_code == 0
    res = _face("enroll", "bob", photo, db=db)
    assert res.exit_code == 2
    assert f"{photo}: already enrolled as 's1' in {db}; use --force to move it to 'bob'" in res.output
    res = _face("people", "--format", "csv", db=db)
    assert [line.split(",")[0] for line in res.stdout.splitlines()] == ["name", "s1"]  # nothing changed
    res = CliRunner().invoke(cli, ["face", "enroll", "bob", photo, "--force", "--db", str(db), "--format", "json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["moved"] == 1 and out["photos"][0]["status"] == "moved" and out["photos"][0]["error"] == "moved from 's1'"
    res = _face("people", "--format", "csv", db=db)
    assert [line.split(",")[0] for line in res.stdout.splitlines()] == ["name", "bob"]
    # the same person again is still a quiet skip (reruns resume)
    res = _face("enroll", "bob", photo, db=db)
    assert res.exit_code == 0 and "skipped" in res.stdout


def test_identify_table_and_csv_have_one_row_per_photo_and_the_threshold_rule_matches_the_readme(orl_dir, tmp_path):
    db = tmp_path / "g.sqlite"
    photos = [str(orl_dir / f"s{i}" / "1.pgm") for i in range(1, 7)]
    for i, photo in enumerate(photos, 1):
        assert _face("enroll", f"s{i}", photo, db=db).exit_code == 0
    nobody = str(_no_face_photo(tmp_path / "nobody.png"))
    probe = str(orl_dir / "s2" / "5.pgm")
    res = _face("identify", nobody, probe, "--format", "csv", db=db)
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[0] == "image,box,name,distance"
    assert lines[1] == f"{nobody},,(no face),"
    assert lines[2].startswith(f"{probe},") and lines[2].split(",")[2] == "s2"
    res = _face("identify", nobody, probe, db=db)
    assert [line.split()[0] for line in res.stdout.splitlines()[2:]] == [nobody, probe]
    # README: "With fewer than 10 people the encoder default is used."
    res = _face("identify", probe, "--format", "json", db=db)
    out = json.loads(res.stdout)
    default = load_face_encoder(DEFAULT_ENCODER).default_threshold  # the encoder's own (0.6337 for the fusion)
    assert (out["threshold"], out["threshold_source"]) == (round(default, 6), "default") and default < 1


def test_compare_help_speaks_of_no_gallery():
    res = CliRunner().invoke(cli, ["face", "compare", "--help"])
    assert res.exit_code == 0 and "gallery" not in res.output.split("Options:", 1)[1]


def test_a_retrained_model_is_named_when_its_gallery_refuses_it(orl_dir, tmp_path):
    db, model = tmp_path / "g.sqlite", tmp_path / "model"
    assert CliRunner().invoke(cli, ["train", str(orl_dir), "-o", str(model), *SMALL_TRAIN]).exit_code == 0
    res = _face("enroll", "s5", str(orl_dir / "s5" / "1.pgm"), "--encoder", str(model), db=db)
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(cli, ["train", str(orl_dir), "-o", str(model), *SMALL_TRAIN, "--seed", "3", "--force"])
    assert res.exit_code == 0, res.output
    res = _face("identify", str(orl_dir / "s5" / "2.pgm"), "--encoder", str(model), db=db)
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert f"from the model {model} (use another --db" in res.stderr


def test_the_demo_shows_progress_on_a_terminal_from_the_start(tmp_path):
    """On a terminal, the demo says what it does and shows an enrollment bar before any result."""
    import os
    import pty
    import select
    import signal
    import subprocess
    import sys
    import time

    import fcntl
    import struct
    import termios

    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # a real terminal has a size
    env = {k: v for k, v in os.environ.items() if k != "CNNKIT_DB"} | {"COLUMNS": "120"}
    proc = subprocess.Popen([sys.executable, "-m", "cnnkit.cli._main", "demo", "-o", str(tmp_path / "demo")],
                            stdin=child, stdout=child, stderr=child, env=env, start_new_session=True)
    os.close(child)
    seen, deadline = b"", time.monotonic() + 300
    try:
        while b"enrolling:" not in seen and time.monotonic() < deadline and proc.poll() is None:
            if select.select([main], [], [], 1.0)[0]:
                try:
                    seen += os.read(main, 4096)
                except OSError:  # the child closed the terminal
                    break
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
        os.close(main)
    text = seen.decode(errors="replace")
    assert proc.returncode == -signal.SIGTERM, text  # still running when the bar was seen
    assert text.startswith("demo: enrolling photo 1 of 30 people from ")
    assert "then identifying 370 photos" in text
    assert "enrolling:" in text and "rank1" not in text  # the bar came before any result
