"""``cnnkit head train``: fit the binary "same person" head on labelled pairs."""
from __future__ import annotations

import click

from cnnkit.cli._options import db_option, device_option, face_pipeline, format_option, open_db, threads_option
from cnnkit.cli._output import emit


@click.group()
def head() -> None:
    """The logistic "same person" head over two embeddings (DeepFace-style)."""


@head.command("train")
@click.argument("pairs", type=click.Path(exists=True))
@click.option("--root", type=click.Path(exists=True, file_okay=False),
              help="Image root of an LFW-format pairs file (default: the file's folder).")
@click.option("--encoder",
              help="Face encoder name, a fusion (dlib_resnet+sface), or MODEL [default: the default encoder].")
@click.option("--features", default="abs",
              help="Comma list of abs, sq, chi2 (chi2 only for non-negative embeddings), block_sq (one squared "
                   "distance per part of a fused encoder: learns the fusion weights and threshold).")
@click.option("--pairs-per-person", default=20,
              help="When PAIRS is a folder of identities: same-person pairs sampled per person.")
@click.option("--seed", default=0)
@click.option("--test", type=click.Path(exists=True),
              help="Held-out pairs (file or folder): accuracy of the head beside the calibrated threshold.")
@click.option("--test-root", type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--output", "out", required=True, metavar="HEAD", help="JSON file to write.")
@db_option
@device_option
@threads_option
@format_option
def train(pairs: str, encoder: str | None, features: str, out: str, db: str | None, device: str, fmt: str,
          **fit: str | int | None) -> None:
    """Fit the head on PAIRS (an LFW pairs file, or a folder of identities to sample pairs from)
    with the encoder frozen; write it as JSON, and with --db store it in the gallery next to the
    threshold of the encoder's tag, with the better of head and threshold as the default method."""
    from pathlib import Path

    from cnnkit.faces.head import store_head, train_head

    head_json, result = train_head(face_pipeline(encoder, "retinaface", device), pairs,
                                   features=tuple(features.split(",")), **fit)
    Path(out).write_text(head_json)
    result["head"] = out
    if db:
        with open_db(db) as gallery:
            store_head(gallery, result["encoder_tag"], head_json, result["better"])
        result["db"] = db
    emit(result, fmt)
