"""``cnnkit face ...``: enroll, verify, identify, compare, people, calibrate, evaluate."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from cnnkit.cli._options import db_option, device_option, format_option
from cnnkit.cli._output import emit, progress_bar


def encoder_option(fn):
    fn = click.option("--detector", default="retinaface", show_default=True,
                      help="Face detector: retinaface or hog (dlib's, as face_recognition).")(fn)
    return click.option("--encoder", default="dlib_resnet", show_default=True,
                        help="Encoder name, or the path of a model trained with `cnnkit train`.")(fn)


def decision_options(fn):
    """--threshold, --method, --encoder/--detector, --device, --db and --format."""
    for option in (format_option, db_option, device_option, encoder_option, method_option, threshold_option):
        fn = option(fn)
    return fn


def method_option(fn):
    return click.option("--method", type=click.Choice(["auto", "distance", "head"]), default="auto", show_default=True,
                        help="Decide by distance threshold, or by the binary head stored for this encoder "
                             "(`cnnkit head train --db`); auto: the one `head train` found better.")(fn)


def threshold_option(fn):
    return click.option("--threshold", type=float, default=None,
                        help="Distance threshold [default: calibrated for this gallery's encoder, else "
                             "estimated from the gallery, else the encoder's default].")(fn)


def _pipeline(encoder: str, detector: str, device: str):
    from cnnkit.cli._options import face_threads
    from cnnkit.faces import FacePipeline

    face_threads()
    return FacePipeline(encoder, detector=detector, device=device)


def _gallery(db: str | None, *, create: bool = True):
    from cnnkit.distances.lowp import TorchScoreKernel
    from cnnkit.store import open_gallery

    return open_gallery(db, create=create, kernel=TorchScoreKernel())


@click.group()
def face() -> None:
    """One-shot face verification (1:1) and recognition (1:K) on a stored gallery."""


@face.command()
@click.argument("name", required=False)
@click.argument("photos", nargs=-1, type=click.Path())
@click.option("--folders", type=click.Path(file_okay=False), default=None,
              help="Enroll DIR/NAME/*.jpg: one sub-folder per person (NAME and PHOTOS are then not given).")
@click.option("--largest", is_flag=True, help="Take the largest face when a photo shows several.")
@click.option("--shard", default=None, metavar="I/N", help="Only enroll the photos of shard I of N (0-based).")
@click.option("--index", "index", type=click.Choice(["hnsw", "none"]), default=None,
              help="PostgreSQL galleries: search through an HNSW index (approximate) or exactly (none).")
@click.option("--m", "hnsw_m", type=int, default=16, show_default=True, help="HNSW: links per node.")
@click.option("--ef-construction", type=int, default=64, show_default=True, help="HNSW: build candidate list.")
@encoder_option
@device_option
@db_option
@format_option
def enroll(name: str | None, photos: tuple[str, ...], folders: str | None, largest: bool, shard: str | None,
           index: str | None, hnsw_m: int, ef_construction: int, encoder: str, detector: str, device: str,
           db: str | None, fmt: str) -> None:
    """Enroll NAME from one or more PHOTOS (one is enough), or every person under --folders DIR.

    Each photo is committed on its own: good photos are kept, bad ones reported; a rerun skips
    photos already enrolled, so an interrupted enrollment resumes where it stopped."""
    from cnnkit.data.folders import person_folders
    from cnnkit.faces.recognition import enroll_photos

    if folders:
        if name or photos:
            raise click.UsageError("give either NAME PHOTO... or --folders DIR, not both")
        items = [(person, p) for person, ps in person_folders(folders) for p in ps]
    else:
        if not name or not photos:
            raise click.UsageError("give NAME and at least one PHOTO (or --folders DIR)")
        items = [(name, Path(p)) for p in photos]
    if shard:
        from cnnkit.store.sharding import select_shard

        items = select_shard(items, shard)
    gallery = _gallery(db)
    if index is not None:
        if not hasattr(gallery, "create_index"):
            raise click.UsageError("--index needs a PostgreSQL gallery (--db postgresql://...); SQLite search is exact")
        gallery.create_index(index, m=hnsw_m, ef_construction=ef_construction)
    pipeline = _pipeline(encoder, detector, device)
    outcomes = []
    bar = progress_bar(len(items), "enrolling")
    try:
        for outcome in enroll_photos(pipeline, gallery, items, largest=largest):
            outcomes.append(outcome)
            bar.update(1)
            if outcome.status == "error":
                bar.write(f"error: {outcome.error}", file=sys.stderr)
    except KeyboardInterrupt:
        bar.close()
        done = sum(o.status == "enrolled" for o in outcomes)
        click.echo(f"interrupted: {done} photos enrolled and committed; rerun the same command to resume", err=True)
        sys.exit(130)
    finally:
        bar.close()
        gallery.close()
    rows = [o.to_dict() for o in outcomes]
    counts = {s: sum(o.status == s for o in outcomes) for s in ("enrolled", "skipped", "error")}
    emit({"enrolled": counts["enrolled"], "skipped": counts["skipped"], "errors": counts["error"], "photos": rows},
         fmt, rows=rows, columns=["image", "name", "status", "error"])
    if counts["error"]:
        sys.exit(2)


@face.command()
@click.argument("name")
@click.argument("photo", type=click.Path())
@decision_options
def verify(name: str, photo: str, threshold: float | None, method: str, encoder: str, detector: str, device: str,
           db: str | None, fmt: str) -> None:
    """Is the face in PHOTO the enrolled person NAME? Exit 0 when it matches, 1 when it does not,
    2 on error. (No liveness check: a photo of a photo matches too.)"""
    from cnnkit.faces.recognition import resolve_decision, verify_photo

    gallery = _gallery(db, create=False)
    pipeline = _pipeline(encoder, detector, device)
    decision = resolve_decision(gallery, pipeline, threshold=threshold, method=method)
    result = verify_photo(pipeline, gallery, name, photo, decision)
    emit(result.to_dict() | {"threshold_source": decision.threshold_source}, fmt)
    sys.exit(0 if result.match else 1)


@face.command()
@click.argument("photos", nargs=-1, required=True, type=click.Path())
@click.option("-k", "--top", "k", type=int, default=5, show_default=True, help="Candidates per face.")
@click.option("--ef-search", type=int, default=None,
              help="PostgreSQL galleries with an HNSW index: candidate list size per query (recall vs speed).")
@decision_options
def identify(photos: tuple[str, ...], k: int, ef_search: int | None, threshold: float | None, method: str,
             encoder: str, detector: str, device: str, db: str | None, fmt: str) -> None:
    """Name every face in every PHOTO (directories are searched recursively), or "unknown" (null)."""
    from cnnkit.data.folders import list_images
    from cnnkit.faces.recognition import identify_photos, resolve_decision

    gallery = _gallery(db, create=False)
    if ef_search is not None:
        if not hasattr(gallery, "ef_search"):
            raise click.UsageError("--ef-search needs a PostgreSQL gallery with an HNSW index")
        gallery.ef_search = ef_search
    pipeline = _pipeline(encoder, detector, device)
    decision = resolve_decision(gallery, pipeline, threshold=threshold, method=method)
    images = list_images(photos)
    results = []
    with progress_bar(len(images), "identifying") as bar:
        for result in identify_photos(pipeline, gallery, images, decision, k=k):
            results.append(result)
            if "error" in result:
                bar.write(f"error: {result['error']}", file=sys.stderr)
            bar.update(1)
    rows = [{"image": r["image"], "box": f["box"], "name": f["name"] if f["name"] is not None else "unknown",
             "distance": f["distance"]} for r in results for f in r["faces"]]
    emit(decision.to_dict() | {"results": results}, fmt,
         rows=rows, columns=["image", "box", "name", "distance"])
    if any("error" in r for r in results):
        sys.exit(2)


@face.command()
@click.argument("photo_a", type=click.Path())
@click.argument("photo_b", type=click.Path())
@threshold_option
@encoder_option
@device_option
@format_option
def compare(photo_a: str, photo_b: str, threshold: float | None, encoder: str, detector: str, device: str,
            fmt: str) -> None:
    """Do PHOTO_A and PHOTO_B show the same person? (No gallery.) Exit 0 same, 1 different."""
    from cnnkit.faces.recognition import compare as compare_photos

    result = compare_photos(photo_a, photo_b, pipeline=_pipeline(encoder, detector, device), threshold=threshold)
    emit(result.to_dict(), fmt)
    sys.exit(0 if result.match else 1)


@face.command()
@click.option("--remove", "remove", default=None, metavar="NAME", help="Delete NAME and all their embeddings.")
@db_option
@format_option
def people(remove: str | None, db: str | None, fmt: str) -> None:
    """List the enrolled people (or remove one with --remove NAME)."""
    gallery = _gallery(db, create=False)
    if remove is not None:
        n = gallery.remove_person(remove)
        emit({"removed": remove, "embeddings": n}, fmt)
        return
    rows = [{"name": p.name, "faces": p.faces, "enrolled": p.created_at} for p in gallery.people()]
    emit({"encoder": gallery.encoder_tag, "people": rows}, fmt, rows=rows, columns=["name", "faces", "enrolled"])


@face.command()
@click.argument("pairs_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--root", required=True, type=click.Path(exists=True, file_okay=False),
              help="Image root: image i of a person is ROOT/name/name_%04d.jpg.")
@click.option("--plot", default="roc.png", show_default=True, type=click.Path(dir_okay=False),
              help="Where to write the ROC curve (PNG).")
@click.option("--store/--no-store", default=True, show_default=True,
              help="Store the chosen threshold in the gallery for this encoder.")
@encoder_option
@device_option
@db_option
@format_option
def calibrate(pairs_file: str, root: str, plot: str, store: bool, encoder: str, detector: str, device: str,
              db: str | None, fmt: str) -> None:
    """Choose the threshold on labelled pairs (LFW format): ROC, AUC, EER, TAR@FAR, and the
    best-accuracy threshold, stored in the gallery for this encoder."""
    from cnnkit.faces.pairs import calibrate_pairs

    pipeline = _pipeline(encoder, detector, device)
    gallery = _gallery(db) if store else None
    try:
        out = calibrate_pairs(pipeline, pairs_file, root, gallery=gallery, plot=plot)
    finally:
        if gallery is not None:
            gallery.close()
    emit(out, fmt, rows=[out])


@face.command()
@click.argument("pairs_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--root", required=True, type=click.Path(exists=True, file_okay=False),
              help="Image root: image i of a person is ROOT/name/name_%04d.jpg.")
@click.option("--train", "train_file", default=None, type=click.Path(exists=True, dir_okay=False),
              help="For a View 1 file: choose the threshold on these pairs (View 2: on the other 9 folds).")
@encoder_option
@device_option
@format_option
def evaluate(pairs_file: str, root: str, train_file: str | None, encoder: str, detector: str, device: str,
             fmt: str) -> None:
    """The LFW protocol: 10-fold accuracy for a View 2 file, or train/test for View 1 files."""
    from cnnkit.faces.pairs import evaluate_pairs

    emit(evaluate_pairs(_pipeline(encoder, detector, device), pairs_file, root, train_file=train_file), fmt)


@face.command()
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--seeds", default=10, show_default=True, help="Random one-shot galleries.")
@click.option("--people", default=None, help="Only these sub-folders: names, globs or ranges (s31..s40).")
@encoder_option
@device_option
@format_option
def oneshot(data_dir: str, seeds: int, people: str | None, encoder: str, detector: str, device: str,
            fmt: str) -> None:
    """One-shot identification on DATA_DIR (one sub-folder per person): per seed, enroll one random
    photo per person in a fresh in-memory gallery and identify all the others; rank-1 mean and std.
    A model trained with `cnnkit train` encodes whole images as it was trained to."""
    from cnnkit.faces.oneshot import oneshot_eval

    emit(oneshot_eval(data_dir, _pipeline(encoder, detector, device), seeds=seeds, people=people), fmt)


@face.group()
def gallery() -> None:
    """Manage galleries (SQLite files or PostgreSQL databases)."""


@gallery.command("copy")
@click.argument("src")
@click.argument("dst")
@click.option("--batch", type=int, default=1000, show_default=True, help="Faces per transaction.")
@format_option
def gallery_copy(src: str, dst: str, batch: int, fmt: str) -> None:
    """Copy the gallery SRC into the empty gallery DST (any two backends), in batches; counts and a
    SHA-256 of the vectors are verified at the end."""
    from cnnkit.store import open_gallery
    from cnnkit.store.copy import copy_gallery

    source = open_gallery(src, create=False)
    target = open_gallery(dst)
    try:
        result = copy_gallery(source, target, batch=batch, progress=sys.stderr.isatty())
    finally:
        source.close()
        target.close()
    emit(result, fmt)


from cnnkit.cli.face_cluster import cluster as _cluster_command, name as _name_command  # noqa: E402

face.add_command(_cluster_command)
face.add_command(_name_command)
