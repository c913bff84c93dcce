"""``cnnkit demo``: the main job on the AT&T/ORL faces that ship in the repository (the protocol is
:func:`cnnkit.faces.demo.run_demo`)."""
from __future__ import annotations

from pathlib import Path

import click

from cnnkit.cli._options import device_option, format_option
from cnnkit.cli._output import emit, progress_bar


@click.command()
@click.option("--data", "data_dir", type=click.Path(file_okay=False), default=None,
              help="ORL folder (s1..s40/N.pgm) [default: data/orl of this checkout, or $CNNKIT_DATA/orl].")
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False), default="demo-out", show_default=True,
              help="Folder for the gallery and report.html (the gallery is recreated).")
@click.option("--enrolled", type=int, default=30, show_default=True, help="People s1..sN are enrolled.")
@click.option("--encoder", default="dlib_resnet", show_default=True)
@device_option
@format_option
def demo(data_dir: str | None, out_dir: str, enrolled: int, encoder: str, device: str, fmt: str) -> None:
    """One-shot recognition on ORL: enroll one photo per person, identify everyone else."""
    from cnnkit.cli.face import _pipeline
    from cnnkit.core.paths import repo_data_dir
    from cnnkit.faces.demo import run_demo

    root = Path(data_dir) if data_dir else repo_data_dir() / "orl"
    summary = run_demo(root, out_dir, _pipeline(encoder, "retinaface", device), enrolled=enrolled,
                       on_error=lambda msg: click.echo(f"error: {msg}", err=True),
                       progress=lambda total: progress_bar(total, "identifying"))
    emit(summary, fmt, rows=[{"metric": k, "value": v} for k, v in summary.items()])
