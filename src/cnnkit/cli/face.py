"""``cnnkit face ...``, ``cnnkit head train`` and ``cnnkit demo``; in every command ``**pipeline`` is
--encoder, --detector and --device."""
from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import click

from cnnkit.cli._options import (
    db_option, device_option, emit, encoder_option, face_pipeline, format_option, open_db, options, progress_bar,
    threads_option, tracked)
from cnnkit.core.errors import printable

_decision_options = options(
    click.option("--threshold", type=float, help="Distance threshold [default: calibrated for this gallery's encoder, "
                                                 "else estimated from the gallery, else the encoder's default]."),
    click.option("--method", type=click.Choice(["auto", "distance", "head"]), default="auto",
                 help="Decide by distance threshold, or by the binary head stored for this encoder (`cnnkit head "
                      "train --db`); auto: the one `head train` found better."))
_pairs_options = options(click.argument("pairs_file", type=click.Path(exists=True, dir_okay=False)),
                         click.option("--root", required=True, type=click.Path(exists=True, file_okay=False),
                                      help="Image root: image i of a person is ROOT/name/name_%04d.jpg."))
_pipeline_options = options(encoder_option(), device_option, format_option)
_gallery_options = options(encoder_option(), device_option, db_option, format_option)


@click.group()
def face() -> None:
    """One-shot face verification (1:1) and recognition (1:K) on a stored gallery."""


@face.command()
@click.argument("name", required=False)
@click.argument("photos", nargs=-1, type=click.Path())
@click.option("--folders", type=click.Path(file_okay=False),
              help="Enroll DIR/NAME/*.jpg: one sub-folder per person (NAME and PHOTOS are then not given).")
@click.option("--largest", is_flag=True, help="Take the largest face when a photo shows several.")
@click.option("--force", is_flag=True, help="A photo already enrolled as someone else is moved to NAME "
                                            "(without it, that is an error naming the person).")
@click.option("--shard", metavar="I/N", help="Only enroll the photos of shard I of N (0-based).")
@click.option("--index", type=click.Choice(["hnsw", "none"]),
              help="PostgreSQL galleries: search through an HNSW index (approximate) or exactly (none).")
@click.option("--m", "hnsw_m", default=16, help="HNSW: links per node.")
@click.option("--ef-construction", default=64, help="HNSW: build candidate list.")
@_gallery_options
def enroll(name: str | None, photos: tuple[str, ...], folders: str | None, largest: bool, force: bool,
           shard: str | None, index: str | None, hnsw_m: int, ef_construction: int, db: str | None, fmt: str,
           **pipeline: str) -> None:
    """Enroll NAME from one or more PHOTOS (one is enough), or every person under --folders DIR.

    Each photo is committed on its own: good photos are kept, bad ones reported; a rerun skips
    photos already enrolled, so an interrupted enrollment resumes where it stopped. A photo enrolled
    as another person is an error naming them (--force moves it)."""
    from cnnkit.faces.recognition import enroll_counts, enroll_photos, folder_items
    from cnnkit.store.sharding import select_shard

    if folders and (name or photos):
        raise click.UsageError("give either NAME PHOTO... or --folders DIR, not both")
    if not folders and (not name or not photos):
        raise click.UsageError("give NAME and at least one PHOTO (or --folders DIR)")
    items, not_used = folder_items(folders) if folders else ([(name, Path(p)) for p in photos], [])
    for o in not_used:
        if o.status == "error":
            click.echo(f"error: {printable(o.image)}: {o.error}", err=True)
    items = select_shard(items, shard) if shard else items
    outcomes = []
    with open_db(db) as gallery:
        if index is not None:
            if not hasattr(gallery, "create_index"):
                raise click.UsageError("--index needs a PostgreSQL gallery (--db postgresql://...); "
                                       "SQLite search is exact")
            gallery.create_index(index, m=hnsw_m, ef_construction=ef_construction)
        run = enroll_photos(face_pipeline(gallery=gallery, **pipeline), gallery, items, largest=largest, move=force)
        try:
            for outcome in tracked(run, len(items), "enrolling", lambda o: o.error if o.status == "error" else None):
                outcomes.append(outcome)  # noqa: PERF402 - kept one by one for the message below
        except KeyboardInterrupt:
            click.echo(f"interrupted: {enroll_counts(outcomes)['enrolled']} photos enrolled and committed; "
                       "rerun the same command to resume", err=True)
            sys.exit(130)
    counts, rows = enroll_counts(outcomes + not_used), [o.to_dict() for o in outcomes + not_used]
    emit(counts | {"gallery": gallery.path, "photos": rows}, fmt, rows=rows,
         columns=["image", "name", "status", "error"])
    click.echo(f"gallery: {gallery.path}", err=True)
    if counts["errors"]:
        sys.exit(2)


@face.command()
@click.argument("name")
@click.argument("photo", type=click.Path())
@_decision_options
@_gallery_options
def verify(name: str, photo: str, threshold: float | None, method: str, db: str | None, fmt: str,
           **pipeline: str) -> None:
    """Is the face in PHOTO the enrolled person NAME? Exit 0 when it matches, 1 when it does not,
    2 on error. (No liveness check: a photo of a photo matches too.)"""
    from cnnkit.faces.recognition import resolve_decision, verify_photo

    gallery = open_db(db, create=False)
    face_pipe = face_pipeline(gallery=gallery, **pipeline)
    decision = resolve_decision(gallery, face_pipe, threshold=threshold, method=method)
    result = verify_photo(face_pipe, gallery, name, photo, decision)
    emit(result.to_dict() | {"threshold_source": decision.threshold_source}, fmt)
    sys.exit(0 if result.match else 1)


@face.command()
@click.argument("photos", nargs=-1, required=True, type=click.Path())
@click.option("-k", "--top", "k", default=5, help="Candidates per face.")
@click.option("--ef-search", type=int,
              help="PostgreSQL galleries with an HNSW index: candidate list size per query (recall vs speed).")
@_decision_options
@_gallery_options
def identify(photos: tuple[str, ...], k: int, ef_search: int | None, threshold: float | None, method: str,
             db: str | None, fmt: str, **pipeline: str) -> None:
    """Name every face in every PHOTO (directories are searched recursively), or "unknown" (null)."""
    from cnnkit.data.folders import list_images
    from cnnkit.faces.recognition import identify_photos, resolve_decision

    gallery = open_db(db, create=False)
    if ef_search is not None:
        if not hasattr(gallery, "ef_search"):
            raise click.UsageError("--ef-search needs a PostgreSQL gallery with an HNSW index")
        gallery.ef_search = ef_search
    face_pipe = face_pipeline(gallery=gallery, **pipeline)
    decision = resolve_decision(gallery, face_pipe, threshold=threshold, method=method)
    images = list_images(photos)
    results = list(tracked(identify_photos(face_pipe, gallery, images, decision, k=k), len(images), "identifying",
                           lambda r: r.get("error")))
    # a table row per face, or one saying "(no face)" / "(error)", so that every photo looked at appears
    rows = [{"image": r["image"], **f, "name": "unknown" if f["name"] is None else f["name"]} for r in results
            for f in r["faces"] or [{"box": None, "name": "(error)" if "error" in r else "(no face)"}]]
    emit(decision.to_dict() | {"results": results}, fmt, rows=rows, columns=["image", "box", "name", "distance"])
    if any("error" in r for r in results):
        sys.exit(2)


@face.command()
@click.argument("photo_a", type=click.Path())
@click.argument("photo_b", type=click.Path())
@click.option("--threshold", type=float, help="Distance threshold [default: the encoder's own default].")
@encoder_option(gallery=False)
@device_option
@format_option
def compare(photo_a: str, photo_b: str, threshold: float | None, fmt: str, **pipeline: str) -> None:
    """Do PHOTO_A and PHOTO_B show the same person? (No gallery.) Exit 0 same, 1 different."""
    from cnnkit.faces.recognition import compare as compare_photos

    result = compare_photos(photo_a, photo_b, pipeline=face_pipeline(**pipeline), threshold=threshold)
    emit(result.to_dict(), fmt)
    sys.exit(0 if result.match else 1)


@face.command()
@click.option("--remove", metavar="NAME", help="Delete NAME and all their embeddings.")
@db_option
@format_option
def people(remove: str | None, db: str | None, fmt: str) -> None:
    """List the enrolled people (or remove one with --remove NAME)."""
    gallery = open_db(db, create=False)
    if remove is not None:
        emit({"removed": remove, "embeddings": gallery.remove_person(remove)}, fmt)
        return
    rows = [{"name": p.name, "faces": p.faces, "enrolled": p.created_at} for p in gallery.people()]
    emit({"encoder": gallery.encoder_tag, "people": rows}, fmt, rows=rows, columns=["name", "faces", "enrolled"])


@face.command()
@_pairs_options
@click.option("--plot", default="roc.png", type=click.Path(dir_okay=False), help="Where to write the ROC curve (PNG).")
@click.option("--store/--no-store", default=True, help="Store the chosen threshold in the gallery for this encoder.")
@_gallery_options
def calibrate(pairs_file: str, root: str, plot: str, store: bool, db: str | None, fmt: str, **pipeline: str) -> None:
    """Choose the threshold on labelled pairs (LFW format): ROC, AUC, EER, TAR@FAR, and the
    best-accuracy threshold, stored in the gallery for this encoder."""
    from cnnkit.faces.pairs import calibrate_pairs

    face_pipe = face_pipeline(**pipeline)
    with (open_db(db) if store else contextlib.nullcontext()) as gallery:
        out = calibrate_pairs(face_pipe, pairs_file, root, gallery=gallery, plot=plot)
    emit(out, fmt, rows=[out])


@face.command()
@_pairs_options
@click.option("--train", "train_file", type=click.Path(exists=True, dir_okay=False),
              help="For a View 1 file: choose the threshold on these pairs (View 2: on the other 9 folds).")
@click.option("--method", type=click.Choice(["distance", "head"]), default="distance",
              help="Decide by a distance threshold, or by a binary head fitted like the threshold: on the other 9 "
                   "folds (View 2) or on --train (View 1), never on the pairs scored.")
@click.option("--features", default="auto", help="--method head: pair features (see `cnnkit head train`); auto: "
                                                 "block_sq for a fused encoder (fusion weights + threshold), else abs.")
@_pipeline_options
def evaluate(pairs_file: str, root: str, train_file: str | None, method: str, features: str, fmt: str,
             **pipeline: str) -> None:
    """The LFW protocol: 10-fold accuracy for a View 2 file, or train/test for View 1 files."""
    from cnnkit.faces.pairs import evaluate_pairs

    _emit_skipping_no_face(evaluate_pairs(face_pipeline(**pipeline), pairs_file, root, train_file=train_file,
                                          method=method, features=features), fmt)


@face.command()
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--seeds", default=10, help="Random one-shot galleries.")
@click.option("--people", help="Only these sub-folders: names, globs or ranges (s31..s40).")
@click.option("--unknown", metavar="PEOPLE",
              help="Sub-folders never enrolled (same forms as --people): open-set DIR at FPIR 0.01 and 0.1.")
@_pipeline_options
def oneshot(data_dir: str, seeds: int, people: str | None, unknown: str | None, fmt: str, **pipeline: str) -> None:
    """One-shot identification on DATA_DIR (one sub-folder per person): per seed, enroll one random
    photo per person in a fresh in-memory gallery and identify all the others; rank-1 mean and std.
    Photos without a face are skipped, counted and listed (no_face, no_face_files);
    rank1_no_face_as_miss scores them as misses. A model trained with `cnnkit train` encodes whole
    images as it was trained to."""
    from cnnkit.faces.oneshot import oneshot_eval

    out = oneshot_eval(data_dir, face_pipeline(**pipeline), seeds=seeds, people=people, unknown=unknown)
    _emit_skipping_no_face(out, fmt)


def _emit_skipping_no_face(out: dict, fmt: str) -> None:
    """A stderr line per photo without a face and their count, then the result (tables without the file list)."""
    for f in out["no_face_files"]:
        click.echo(f"no face: {f}", err=True)
    if out["no_face_files"]:
        click.echo(f"{len(out['no_face_files'])} photo(s) without a face skipped (failure to acquire)", err=True)
    emit(out, fmt, rows=[{k: v for k, v in out.items() if k != "no_face_files"}])


@face.group()
def gallery() -> None:
    """Manage galleries (SQLite files or PostgreSQL databases)."""


@gallery.command("copy")
@click.argument("src")
@click.argument("dst")
@click.option("--batch", default=1000, help="Faces per transaction.")
@format_option
def gallery_copy(src: str, dst: str, batch: int, fmt: str) -> None:
    """Copy the gallery SRC into the empty gallery DST (any two backends), in batches; counts and a
    SHA-256 of the vectors are verified at the end."""
    from cnnkit.store import open_gallery
    from cnnkit.store.copy import copy_gallery

    with open_gallery(src, create=False) as source, open_gallery(dst) as target:
        emit(copy_gallery(source, target, batch=batch, progress=sys.stderr.isatty()), fmt)


@face.command()
@click.argument("photos", nargs=-1, required=True, type=click.Path())
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Output folder: clusters.json, index.html, sheets/, faces.npz (rerun to resume).")
@click.option("--db", metavar="PATH|URL",
              help="A gallery: faces of enrolled people are labelled with their name, the rest clustered.")
@_pipeline_options
def cluster(photos: tuple[str, ...], out_dir: str, db: str | None, fmt: str, **pipeline: str) -> None:
    """Detect and embed every face of every photo (directories are searched recursively), group
    them by person, and write OUT/clusters.json and OUT/index.html (one contact sheet per cluster,
    largest first, faces left alone last). The threshold is chosen from the data: see
    `cnnkit.faces.cluster.threshold`. Photos without a face, or unreadable, are reported and skipped."""
    from cnnkit.data.folders import list_images
    from cnnkit.faces.cluster.collection import cluster_collection

    images, face_pipe, errors = list_images(photos), face_pipeline(**pipeline), []
    opened = open_db(db, create=False) if db else contextlib.nullcontext()
    with opened as gallery, progress_bar(len(images), "embedding") as bar:
        def on_photo(file: str, error: str | None) -> None:
            bar.update(1)
            if error:
                errors.append(error)
                bar.write(f"error: {error}", file=sys.stderr)

        s, data = cluster_collection(face_pipe, images, out_dir, gallery=gallery, on_photo=on_photo)
    groups = [{"id": c["id"], "size": c["size"], "representative": c["representative"]["file"]}
              for c in data["clusters"] if c["size"] > 1]
    emit(s, fmt, rows=groups[:20])
    if fmt != "json":
        click.echo(f"{s['faces']} faces in {s['photos']} photos: {s['clusters']} clusters, {s['alone']} alone, "
                   f"{s['known']} recognised; threshold {s['threshold']:.4f} ({s['threshold_source']}); "
                   f"{s['errors']} photos without a usable face; see {s['index_html']}", err=True)
    if errors:
        sys.exit(2)


@face.command()
@click.argument("clusters_json", type=click.Path(exists=True, dir_okay=False))
@click.argument("cluster_id", type=int, required=False)
@click.argument("person", required=False)
@click.option("--max", "max_faces", type=int, help="Enroll only the N most central faces.")
@click.option("--merge", nargs=2, type=int, metavar="A B",
              help="Move every face of cluster B into cluster A (clusters.json is rewritten).")
@click.option("--split", type=int, metavar="FACE",
              help="Move one face (its 'face' number in clusters.json) into a new cluster of its own.")
@db_option
@format_option
def name(clusters_json: str, cluster_id: int | None, person: str | None, max_faces: int | None,
         merge: tuple[int, int] | None, split: int | None, db: str | None, fmt: str) -> None:
    """Enroll the faces of cluster CLUSTER_ID as PERSON (all of them, or --max N most central), in
    one transaction; a rerun adds nothing. Or fix the clusters first: --merge A B, --split FACE."""
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
    with open_db(db) as gallery:
        emit(name_cluster(data, table, cluster_id, person, gallery, data["encoder"], max_faces=max_faces), fmt)


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
def head_train(pairs: str, encoder: str | None, features: str, out: str, db: str | None, device: str, fmt: str,
          **fit: str | int | None) -> None:
    """Fit the head on PAIRS (an LFW pairs file, or a folder of identities to sample pairs from)
    with the encoder frozen; write it as JSON, and with --db store it in the gallery next to the
    threshold of the encoder's tag, with the better of head and threshold as the default method."""
    from cnnkit.faces.head import store_head, train_head

    head_json, result = train_head(face_pipeline(encoder, device), pairs,
                                   features=tuple(features.split(",")), **fit)
    Path(out).write_text(head_json)
    result["head"] = out
    if db:
        with open_db(db) as gallery:
            store_head(gallery, result["encoder_tag"], head_json, result["better"])
        result["db"] = db
    emit(result, fmt)


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

    summary = run_demo(data_dir or orl_dir(), out_dir, face_pipeline(encoder, device),
                       enrolled=enrolled, on_status=lambda msg: click.echo(msg, err=True),
                       on_error=lambda msg: click.echo(f"error: {msg}", err=True), progress=progress_bar)
    emit(summary, fmt, rows=[{"metric": k, "value": v} for k, v in summary.items()])
