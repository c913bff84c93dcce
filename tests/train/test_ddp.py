"""The same `cnnkit train` under torchrun with 2 processes (gloo): replicas stay in sync and the
loss matches a single-process run. Group norm makes the two runs the same computation (batch norm
would normalise each half-batch with its own statistics)."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ARGS = ["--encoder", "small_cnn", "--people", "s1..s6", "--epochs", "2", "--people-per-batch", "4", "--images-per-person", "4",
        "--val-fraction", "0.34", "--size", "48", "40", "--encoder-arg", "norm=group",
        "--encoder-arg", "widths=[8,16,16,32]", "--lr", "3e-3", "--threads", "1", "--quiet", "--format", "json"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cnnkit() -> str:
    path = Path(sys.executable).with_name("cnnkit")
    if not path.exists():
        pytest.skip("the cnnkit console script is not installed next to the interpreter")
    return str(path)


def test_ddp_two_processes_match_single_process(orl_dir, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    single = subprocess.run([sys.executable, _cnnkit(), "train", str(orl_dir), "-o", str(tmp_path / "one"), *ARGS],
                            capture_output=True, text=True, env=env, timeout=600)
    assert single.returncode == 0, single.stderr
    ddp = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port()),
         _cnnkit(), "train", str(orl_dir), "-o", str(tmp_path / "two"), *ARGS],
        capture_output=True, text=True, env=env, timeout=600)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    one = json.loads((tmp_path / "one" / "model.json").read_text())["history"]
    two = json.loads((tmp_path / "two" / "model.json").read_text())["history"]
    assert two[-1]["replica_max_diff"] == 0.0
    for a, b in zip(one, two):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-3, abs=1e-4)
    assert json.loads(ddp.stdout.strip().splitlines()[-1])["model"] == str(tmp_path / "two")
