"""The README a new user reads first: it says how to reach `cnnkit`, and it does not contradict itself."""
from __future__ import annotations

import re
from pathlib import Path

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_setup_keeps_two_commands_then_the_path_line():
    setup = README.split("## Set-up on a fresh machine", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", setup, flags=re.S)
    assert [line.split()[:2] for line in blocks[0].strip().splitlines()] == [["make", "demo"], ["make", "test"]]
    assert blocks[1].strip() == 'export PATH="$PWD/.venv/bin:$PATH"'


def test_one_figure_for_cnnkit_train_with_the_defaults():
    # every rank-1 figure quoted for "cnnkit train ... with the defaults" is the same one
    text = " ".join(README.split())
    figures = set()
    for sentence in re.split(r"(?<=[.;:])\s", text):
        if "with the defaults" in sentence and ("cnnkit train" in sentence or "s1..s30" in sentence):
            figures |= set(re.findall(r"(0\.\d{3}) ± 0\.\d{3}", sentence))
    assert figures == {"0.958"}
    assert "target of 0.95 is not reached" not in text
