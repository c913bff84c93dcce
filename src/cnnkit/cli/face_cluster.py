"""``cnnkit face cluster`` and ``cnnkit face name``: group the faces of a photo collection, then
name a group once and enroll it."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from cnnkit.cli._options import db_option, device_option, format_option
from cnnkit.cli._output import emit, progress_bar


def _encoder_option(fn):
    from cnnkit.cli.face import encoder_option

    return encoder_option(fn)


@click.command("cluster")
@click.argument("photos", nargs=-1, required=True, type=click.Path())
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Output folder: clusters.json, index.html, sheets/, faces.npz (rerun to resume).")
@click.option("--db", "db", default=None, metavar="PATH|URL",
              help="A gallery: faces of enrolled people are labelled with their name, the rest clustered.")
@_encoder_option
@device_option
@format_option
def cluster(photos: tuple[str, ...], out_dir: str, db: str | None, encoder: str, detector: str, device: str,
            fmt: str) -> None:
    """Detect and embed every face of every photo (directories are searched recursively), group
    them by person, and write OUT/clusters.json and OUT/index.html (one contact sheet per cluster,
    largest first, faces left alone last). The threshold is chosen from the data: see
    `cnnkit.faces.cluster.threshold`. Photos without a face, or unreadable, are reported and skipped."""
    from cnnkit.cli.face import _gallery, _pipeline
    from cnnkit.faces.cluster import encoder_cluster_far
    from cnnkit.faces.cluster.collection import CLUSTERS_FILE, cluster_table, embed_photos, write_json
    from cnnkit.faces.cluster.sheets import write_index
    from cnnkit.data.folders import list_images
    from cnnkit.faces.recognition import resolve_decision
    from cnnkit.store.base import check_tag

    images = list_images(photos)
    pipeline = _pipeline(encoder, detector, device)
    gallery = _gallery(db, create=False) if db else None
    if gallery is not None:
        check_tag(gallery.encoder_tag, pipeline.tag)
    problems = 0
    with progress_bar(len(images), "embedding") as bar:
        def on_photo(file: str, error: str | None) -> None:
            nonlocal problems
            bar.update(1)
            if error:
                problems += 1
                bar.write(f"error: {error}", file=sys.stderr)

        table = embed_photos(pipeline, images, out_dir, on_photo=on_photo)
    verification = resolve_decision(gallery, pipeline, method="distance")
    data = cluster_table(table, verification.threshold, verification_source=verification.threshold_source,
                         gallery=gallery, encoder=pipeline.tag, far=encoder_cluster_far(pipeline.encoder))
    write_json(Path(out_dir) / CLUSTERS_FILE, data)
    index = write_index(data, out_dir)
    if gallery is not None:
        gallery.close()
    groups = [c for c in data["clusters"] if c["size"] > 1]
    summary = {"photos": data["photos"], "faces": data["faces"], "clusters": len(groups),
               "alone": len(data["clusters"]) - len(groups), "known": sum(len(k["faces"]) for k in data["known"]), "threshold": data["threshold"],
               "threshold_source": data["threshold_source"], "errors": len(data["errors"]),
               "clusters_json": str(Path(out_dir) / CLUSTERS_FILE), "index_html": str(index)}
    emit(summary, fmt, rows=[{"id": c["id"], "size": c["size"], "representative": c["representative"]["file"]}
                             for c in groups[:20]] if fmt != "json" else None)
    if fmt != "json":
        click.echo(f"{summary['faces']} faces in {summary['photos']} photos: {summary['clusters']} clusters, "
                   f"{summary['alone']} alone, {summary['known']} recognised; threshold {summary['threshold']:.4f} "
                   f"({summary['threshold_source']}); {summary['errors']} photos without a usable face; see {index}", err=True)
    if problems:
        sys.exit(2)


@click.command("name")
@click.argument("clusters_json", type=click.Path(exists=True, dir_okay=False))
@click.argument("cluster_id", type=int, required=False)
@click.argument("person", required=False)
@click.option("--max", "max_faces", type=int, default=None, help="Enroll only the N most central faces.")
@click.option("--merge", nargs=2, type=int, default=None, metavar="A B",
              help="Move every face of cluster B into cluster A (clusters.json is rewritten).")
@click.option("--split", "split", type=int, default=None, metavar="FACE",
              help="Move one face (its 'face' number in clusters.json) into a new cluster of its own.")
@db_option
@format_option
def name(clusters_json: str, cluster_id: int | None, person: str | None, max_faces: int | None,
         merge: tuple[int, int] | None, split: int | None, db: str | None, fmt: str) -> None:
    """Enroll the faces of cluster CLUSTER_ID as PERSON (all of them, or --max N most central), in
    one transaction; a rerun adds nothing. Or fix the clusters first: --merge A B, --split FACE."""
    from cnnkit.cli.face import _gallery
    from cnnkit.faces.cluster.collection import merge_clusters, name_cluster, read_clusters, split_face, write_json

    data, table = read_clusters(clusters_json)
    if merge is not None or split is not None:
        if cluster_id is not None or person is not None:
            raise click.UsageError("--merge and --split rewrite clusters.json; name a cluster in a separate call")
        changed = merge_clusters(data, table, *merge) if merge is not None else split_face(data, table, split)
        write_json(clusters_json, data)
        emit({"cluster": changed["id"], "size": changed["size"]}, fmt)
        return
    if cluster_id is None or not person:
        raise click.UsageError("give CLUSTER_ID and PERSON (or --merge A B, or --split FACE)")
    if max_faces is not None and max_faces < 1:
        raise click.UsageError("--max must be at least 1")
    gallery = _gallery(db)
    try:
        result = name_cluster(data, table, cluster_id, person, gallery, data["encoder"], max_faces=max_faces)
    finally:
        gallery.close()
    emit(result, fmt)
