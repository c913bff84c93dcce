"""``cnnkit train DATA_DIR -o MODEL``: train a Siamese encoder on a folder of identities."""
from __future__ import annotations

import json
import os

import click

from cnnkit.cli._options import format_option, threads_option
from cnnkit.cli._output import emit, round_metric


def _kwarg(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, object]:
    out: dict[str, object] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep:
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", ctx, param)
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--output", "out", required=True, metavar="MODEL",
              help="Model directory to write (model.safetensors + model.json).")
@click.option("--encoder", default="mobilenet_v2_face", show_default=True,
              help="Registered encoder name (small_cnn: from scratch, no pretrained weights needed).")
@click.option("--encoder-arg", "encoder_kwargs", multiple=True, callback=_kwarg, metavar="KEY=VALUE",
              help="Extra encoder keyword (JSON value), e.g. norm=group or widths=[32,64,128,256].")
@click.option("--dim", "embedding_dim", default=128, show_default=True, help="Embedding size D.")
@click.option("--loss", type=click.Choice(["triplet", "contrastive"]), default="triplet", show_default=True)
@click.option("--mining", type=click.Choice(["semihard", "hard", "all", "random"]), default="semihard",
              show_default=True)
@click.option("--margin", type=float, default=None, help="Margin [default: 0.2 triplet, 1.0 contrastive].")
@click.option("--distance", type=click.Choice(["squared", "euclidean"]), default="squared", show_default=True)
@click.option("--reduction", type=click.Choice(["sum", "mean", "mean_active"]), default="sum", show_default=True,
              help="Triplet cost over the mined triplets.")
@click.option("--epochs", default=15, show_default=True)
@click.option("--people-per-batch", "p", default=8, show_default=True, help="P identities per batch.")
@click.option("--images-per-person", "k", default=4, show_default=True, help="K images per identity.")
@click.option("--lr", default=1e-3, show_default=True)
@click.option("--weight-decay", default=5e-4, show_default=True)
@click.option("--val-fraction", default=0.1, show_default=True, help="Identities held out for validation.")
@click.option("--people", default=None, help="Only these sub-folders: names, globs or ranges (s1..s30).")
@click.option("--channels", type=click.Choice(["1", "3"]), default=None, help="Grey or RGB [default: encoder's].")
@click.option("--size", nargs=2, type=int, default=None, metavar="H W", help="Input size [default: encoder's].")
@click.option("--no-augment", is_flag=True, help="No flips, crops or brightness changes.")
@click.option("--seed", default=0, show_default=True)
@threads_option
@click.option("--resume", is_flag=True, help="Continue from the optimiser state saved in MODEL.")
@click.option("--force", is_flag=True, help="Overwrite a model already saved in MODEL (galleries enrolled "
                                             "with it will refuse the new one).")
@click.option("--quiet", is_flag=True, help="No progress bars or per-epoch lines.")
@format_option
def train(data_dir: str, out: str, encoder: str, encoder_kwargs: dict[str, object], embedding_dim: int,
          loss: str, mining: str, margin: float | None, distance: str, reduction: str, epochs: int, p: int,
          k: int, lr: float, weight_decay: float, val_fraction: float, people: str | None, channels: str | None,
          size: tuple[int, int] | None, no_augment: bool, seed: int, resume: bool, force: bool, quiet: bool,
          fmt: str) -> None:
    """Train an encoder on DATA_DIR (one sub-folder per person) and save it as MODEL.

    Works unchanged under `torchrun --nproc_per_node N` (DistributedDataParallel). Prints the
    final validation metrics.
    """
    from cnnkit.core.paths import check_output_file
    from cnnkit.train.loop import TrainConfig, train_encoder

    check_output_file(out)  # MODEL is the one folder created: the folder it goes in must exist

    cfg = TrainConfig(
        encoder=encoder, encoder_kwargs=encoder_kwargs, embedding_dim=embedding_dim, loss=loss, mining=mining,
        margin=margin, squared=distance == "squared", reduction=reduction, epochs=epochs, p=p, k=k, lr=lr,
        weight_decay=weight_decay, val_fraction=val_fraction, people=people,
        channels=int(channels) if channels else None, size=tuple(size) if size else None,
        augment=not no_augment, seed=seed,
    )
    result = train_encoder(data_dir, out, cfg, resume=resume, overwrite=force, progress=not quiet,
                           log=(lambda s: None) if quiet else (lambda s: click.echo(s, err=True)))
    if int(os.environ.get("RANK", "0")) == 0:
        summary = {"model": out, **{k: round_metric(v) for k, v in result["metrics"].items()}}
        emit(summary, fmt, rows=[{"metric": k, "value": v} for k, v in summary.items()])
