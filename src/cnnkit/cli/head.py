"""``cnnkit head train``: fit the binary "same person" head on labelled pairs."""
from __future__ import annotations

import click

from cnnkit.cli._options import db_option, device_option, format_option, threads_option
from cnnkit.cli._output import emit


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def head() -> None:
    """The logistic "same person" head over two embeddings (DeepFace-style)."""


@head.command("train")
@click.argument("pairs", type=click.Path(exists=True))
@click.option("--root", type=click.Path(exists=True, file_okay=False), default=None,
              help="Image root of an LFW-format pairs file (default: the file's folder).")
@click.option("--encoder", default=None,
              help="Face encoder name, a fusion (dlib_resnet+sface), or MODEL [default: the default encoder].")
@click.option("--features", default="abs", show_default=True,
              help="Comma list of abs, sq, chi2 (chi2 only for non-negative embeddings), block_sq (one squared "
                   "distance per part of a fused encoder: learns the fusion weights and threshold).")
@click.option("--pairs-per-person", default=20, show_default=True,
              help="When PAIRS is a folder of identities: same-person pairs sampled per person.")
@click.option("--seed", default=0, show_default=True)
@click.option("--test", default=None, type=click.Path(exists=True),
              help="Held-out pairs (file or folder): accuracy of the head beside the calibrated threshold.")
@click.option("--test-root", default=None, type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--output", "out", required=True, metavar="HEAD", help="JSON file to write.")
@db_option
@device_option
@threads_option
@format_option
def train_head(pairs: str, root: str | None, encoder: str | None, features: str, pairs_per_person: int, seed: int,
               test: str | None, test_root: str | None, out: str, db: str | None, device: str, fmt: str) -> None:
    """Fit the head on PAIRS (an LFW pairs file, or a folder of identities to sample pairs from)
    with the encoder frozen; write it as JSON, and with --db store it in the gallery next to the
    threshold of the encoder's tag, with the better of head and threshold as the default method."""
    from pathlib import Path

    from cnnkit.cli.face import _gallery, _pipeline
    from cnnkit.faces.head import store_head
    from cnnkit.faces.head import train_head as fit_head

    head_json, result = fit_head(_pipeline(encoder, "retinaface", device), pairs, root=root,
                                 features=tuple(features.split(",")), pairs_per_person=pairs_per_person, seed=seed,
                                 test=test, test_root=test_root)
    Path(out).write_text(head_json)
    result["head"] = out
    if db:
        with _gallery(db) as gallery:
            store_head(gallery, result["encoder_tag"], head_json, result["better"])
        result["db"] = db
    emit(result, fmt)
