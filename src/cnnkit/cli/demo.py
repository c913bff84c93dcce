"""``cnnkit demo``: the main job on the AT&T/ORL faces that ship inside the cnnkit package (the
protocol is :func:`cnnkit.faces.demo.run_demo`)."""
from __future__ import annotations

import click

from cnnkit.cli._options import device_option, face_pipeline, format_option, threads_option
from cnnkit.cli._output import emit, progress_bar


@click.command()
@click.option("--data", "data_dir", type=click.Path(file_okay=False),
              help="ORL folder (s1..s40/N.pgm) [default: the copy shipped in the cnnkit package].")
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False), default="demo-out",
              help="Folder for the gallery and report.html (the gallery is recreated).")
@click.option("--enrolled", default=30, help="People s1..sN are enrolled.")
@click.option("--encoder", help="Face encoder [default: cnnkit.faces.encoders.DEFAULT_ENCODER].")
@device_option
@threads_option
@format_option
def demo(data_dir: str | None, out_dir: str, enrolled: int, encoder: str | None, device: str, fmt: str) -> None:
    """One-shot recognition on ORL: enroll one photo per person, identify everyone else."""
    from cnnkit.core.assets import orl_dir
    from cnnkit.faces.demo import run_demo

    summary = run_demo(data_dir or orl_dir(), out_dir, face_pipeline(encoder, "retinaface", device),
                       enrolled=enrolled, on_status=lambda msg: click.echo(msg, err=True),
                       on_error=lambda msg: click.echo(f"error: {msg}", err=True), progress=progress_bar)
    emit(summary, fmt, rows=[{"metric": k, "value": v} for k, v in summary.items()])
