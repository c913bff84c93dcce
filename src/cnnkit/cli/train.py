"""``cnnkit train DATA_DIR -o MODEL``: train a Siamese encoder on a folder of identities. Every option
but ``--resume``, ``--force``, ``--quiet``, ``--threads`` and ``--format`` sets the
:class:`~cnnkit.train.loop.TrainConfig` field its destination names."""
from __future__ import annotations

import json
import os
from typing import Any

import click

from cnnkit.cli._options import emit, format_option, threads_option
from cnnkit.core.numbers import round_metric


def _kwarg(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, object]:
    """``KEY=VALUE`` items as a dict; a value is JSON when it parses as JSON, else the text."""
    out: dict[str, object] = {}
    for key, sep, raw in (item.partition("=") for item in values):
        if not sep:
            raise click.BadParameter(f"expected KEY=VALUE, got {key!r}", ctx, param)
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


@click.command()
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--output", "out", required=True, metavar="MODEL",
              help="Model directory to write (model.safetensors + model.json).")
@click.option("--encoder", default="mobilenet_v2_face",
              help="Registered encoder name (small_cnn: from scratch, no pretrained weights needed).")
@click.option("--encoder-arg", "encoder_kwargs", multiple=True, callback=_kwarg, metavar="KEY=VALUE",
              help="Extra encoder keyword (JSON value), e.g. norm=group or widths=[32,64,128,256].")
@click.option("--dim", "embedding_dim", default=128, help="Embedding size D.")
@click.option("--loss", type=click.Choice(["triplet", "contrastive"]), default="triplet")
@click.option("--mining", type=click.Choice(["semihard", "hard", "all", "random"]), default="semihard")
@click.option("--margin", type=float, help="Margin [default: 0.2 triplet, 1.0 contrastive].")
@click.option("--distance", "squared", type=click.Choice(["squared", "euclidean"]), default="squared",
              callback=lambda ctx, param, value: value == "squared")
@click.option("--reduction", type=click.Choice(["sum", "mean", "mean_active"]), default="sum",
              help="Triplet cost over the mined triplets.")
@click.option("--epochs", default=15)
@click.option("--people-per-batch", "p", default=8, help="P identities per batch.")
@click.option("--images-per-person", "k", default=4, help="K images per identity.")
@click.option("--lr", default=1e-3)
@click.option("--weight-decay", default=5e-4)
@click.option("--val-fraction", default=0.1, help="Identities held out for validation.")
@click.option("--people", help="Only these sub-folders: names, globs or ranges (s1..s30).")
@click.option("--channels", type=click.Choice(["1", "3"]), help="Grey or RGB [default: encoder's].",
              callback=lambda ctx, param, value: int(value) if value else None)
@click.option("--size", nargs=2, type=int, metavar="H W", help="Input size [default: encoder's].")
@click.option("--no-augment", "augment", is_flag=True, help="No flips, crops or brightness changes.",
              callback=lambda ctx, param, value: not value)
@click.option("--seed", default=0)
@threads_option
@click.option("--resume", is_flag=True, help="Continue from the optimiser state saved in MODEL.")
@click.option("--force", is_flag=True, help="Overwrite a model already saved in MODEL (galleries enrolled "
                                             "with it will refuse the new one).")
@click.option("--quiet", is_flag=True, help="No progress bars or per-epoch lines.")
@format_option
def train(data_dir: str, out: str, resume: bool, force: bool, quiet: bool, fmt: str, **config: Any) -> None:
    """Train an encoder on DATA_DIR (one sub-folder per person) and save it as MODEL.

    Works unchanged under `torchrun --nproc_per_node N` (DistributedDataParallel). Prints the
    final validation metrics.
    """
    from cnnkit.core.paths import check_output_file
    from cnnkit.train.loop import TrainConfig, train_encoder

    check_output_file(out)  # MODEL is the one folder created: the folder it goes in must exist
    result = train_encoder(data_dir, out, TrainConfig(**config), resume=resume, overwrite=force, progress=not quiet,
                           log=(lambda s: None) if quiet else (lambda s: click.echo(s, err=True)))
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, the main process alone prints
        summary = {"model": out, **{k: round_metric(v) for k, v in result["metrics"].items()}}
        emit(summary, fmt, rows=[{"metric": k, "value": v} for k, v in summary.items()])
