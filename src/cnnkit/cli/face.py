"""``cnnkit face ...``: enroll, verify, identify, compare, people, calibrate, evaluate."""
from __future__ import annotations

import functools
import sys
from pathlib import Path

import click

from cnnkit.cli._options import current_threads, db_option, device_option, format_option, threads_option
from cnnkit.cli._output import emit, progress_bar
from cnnkit.core.errors import printable


def encoder_option(fn, *, gallery: bool = True):
    """--encoder, --detector and --threads: every command that runs the face pipeline (``gallery``:
    whether the command has a gallery whose encoder is the default)."""
    fn = threads_option(fn)
    fn = click.option("--detector", default="retinaface", show_default=True,
                      help="Face detector: retinaface or hog (dlib's, as face_recognition).")(fn)
    default = ("the one the gallery's embeddings come from, else cnnkit.faces.encoders.DEFAULT_ENCODER" if gallery
               else "cnnkit.faces.encoders.DEFAULT_ENCODER")
    return click.option("--encoder", default=None,
                        help="Encoder name (a fusion: dlib_resnet+sface), or the path of a model trained with "
                             f"`cnnkit train` [default: {default}].")(fn)


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


def _pipeline(encoder: str | None, detector: str, device: str, gallery=None):
    """The pipeline of ``encoder``, or (None) of the gallery's own encoder, else the default."""
    from cnnkit.faces import FacePipeline
    from cnnkit.faces.encoders import choose_encoder

    tag = gallery.encoder_tag if gallery is not None else None
    return FacePipeline(choose_encoder(encoder, tag), detector=detector, device=device, threads=current_threads())


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
@click.option("--force", is_flag=True, help="A photo already enrolled as someone else is moved to NAME "
                                            "(without it, that is an error naming the person).")
@click.option("--shard", default=None, metavar="I/N", help="Only enroll the photos of shard I of N (0-based).")
@click.option("--index", "index", type=click.Choice(["hnsw", "none"]), default=None,
              help="PostgreSQL galleries: search through an HNSW index (approximate) or exactly (none).")
@click.option("--m", "hnsw_m", type=int, default=16, show_default=True, help="HNSW: links per node.")
@click.option("--ef-construction", type=int, default=64, show_default=True, help="HNSW: build candidate list.")
@encoder_option
@device_option
@db_option
@format_option
def enroll(name: str | None, photos: tuple[str, ...], folders: str | None, largest: bool, force: bool,
           shard: str | None,
           index: str | None, hnsw_m: int, ef_construction: int, encoder: str, detector: str, device: str,
           db: str | None, fmt: str) -> None:
    """Enroll NAME from one or more PHOTOS (one is enough), or every person under --folders DIR.

    Each photo is committed on its own: good photos are kept, bad ones reported; a rerun skips
    photos already enrolled, so an interrupted enrollment resumes where it stopped. A photo enrolled
    as another person is an error naming them (--force moves it)."""
    from cnnkit.data.folders import walk_person_folders
    from cnnkit.faces.recognition import EnrollOutcome, enroll_photos

    not_used: list[EnrollOutcome] = []  # every entry of --folders that is not a photo, and why
    if folders:
        if name or photos:
            raise click.UsageError("give either NAME PHOTO... or --folders DIR, not both")
        walk = walk_person_folders(folders)
        items = list(walk.photos)
        not_used = [EnrollOutcome(e.path, e.person or "", "error" if e.error else "skipped", e.reason)
                    for e in walk.skipped]
        for o in not_used:
            if o.status == "error":
                click.echo(f"error: {printable(o.image)}: {o.error}", err=True)
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
    pipeline = _pipeline(encoder, detector, device, gallery)
    outcomes = []
    bar = progress_bar(len(items), "enrolling")
    try:
        for outcome in enroll_photos(pipeline, gallery, items, largest=largest, move=force):
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
    outcomes += not_used
    rows = [o.to_dict() for o in outcomes]
    counts = {s: sum(o.status == s for o in outcomes) for s in ("enrolled", "moved", "skipped", "error")}
    emit({"enrolled": counts["enrolled"], "moved": counts["moved"], "skipped": counts["skipped"],
          "errors": counts["error"], "gallery": gallery.path, "photos": rows},
         fmt, rows=rows, columns=["image", "name", "status", "error"])
    click.echo(f"gallery: {gallery.path}", err=True)
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
    pipeline = _pipeline(encoder, detector, device, gallery)
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
    pipeline = _pipeline(encoder, detector, device, gallery)
    decision = resolve_decision(gallery, pipeline, threshold=threshold, method=method)
    images = list_images(photos)
    results = []
    with progress_bar(len(images), "identifying") as bar:
        for result in identify_photos(pipeline, gallery, images, decision, k=k):
            results.append(result)
            if "error" in result:
                bar.write(f"error: {result['error']}", file=sys.stderr)
            bar.update(1)
    rows = [row for r in results for row in _identify_rows(r)]
    emit(decision.to_dict() | {"results": results}, fmt,
         rows=rows, columns=["image", "box", "name", "distance"])
    if any("error" in r for r in results):
        sys.exit(2)


def _identify_rows(result: dict) -> list[dict]:
    """Table/CSV rows of one photo: one per face, or one saying "(no face)" / "(error)", so that
    every photo looked at appears."""
    if not result["faces"]:
        return [{"image": result["image"], "box": None, "name": "(error)" if "error" in result else "(no face)",
                 "distance": None}]
    return [{"image": result["image"], "box": f["box"], "name": f["name"] if f["name"] is not None else "unknown",
             "distance": f["distance"]} for f in result["faces"]]


@face.command()
@click.argument("photo_a", type=click.Path())
@click.argument("photo_b", type=click.Path())
@click.option("--threshold", type=float, default=None,
              help="Distance threshold [default: the encoder's own default].")
@functools.partial(encoder_option, gallery=False)
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
@click.option("--method", type=click.Choice(["distance", "head"]), default="distance", show_default=True,
              help="Decide by a distance threshold, or by a binary head fitted like the threshold: on the "
                   "other 9 folds (View 2) or on --train (View 1), never on the pairs scored.")
@click.option("--features", default="auto", show_default=True,
              help="--method head: pair features (see `cnnkit head train`); auto: block_sq for a fused "
                   "encoder (fusion weights + threshold), abs otherwise.")
@encoder_option
@device_option
@format_option
def evaluate(pairs_file: str, root: str, train_file: str | None, method: str, features: str, encoder: str | None,
             detector: str, device: str, fmt: str) -> None:
    """The LFW protocol: 10-fold accuracy for a View 2 file, or train/test for View 1 files."""
    from cnnkit.faces.pairs import evaluate_pairs

    out = evaluate_pairs(_pipeline(encoder, detector, device), pairs_file, root, train_file=train_file,
                         method=method, features=features)
    _report_no_face(out["no_face_files"])
    emit(out, fmt, rows=[{k: v for k, v in out.items() if k != "no_face_files"}])


@face.command()
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--seeds", default=10, show_default=True, help="Random one-shot galleries.")
@click.option("--people", default=None, help="Only these sub-folders: names, globs or ranges (s31..s40).")
@click.option("--unknown", default=None, metavar="PEOPLE",
              help="Sub-folders never enrolled (same forms as --people): open-set DIR at FPIR 0.01 and 0.1.")
@encoder_option
@device_option
@format_option
def oneshot(data_dir: str, seeds: int, people: str | None, unknown: str | None, encoder: str, detector: str,
            device: str, fmt: str) -> None:
    """One-shot identification on DATA_DIR (one sub-folder per person): per seed, enroll one random
    photo per person in a fresh in-memory gallery and identify all the others; rank-1 mean and std.
    Photos without a face are skipped, counted and listed (no_face, no_face_files);
    rank1_no_face_as_miss scores them as misses. A model trained with `cnnkit train` encodes whole
    images as it was trained to."""
    from cnnkit.faces.oneshot import oneshot_eval

    result = oneshot_eval(data_dir, _pipeline(encoder, detector, device), seeds=seeds, people=people, unknown=unknown)
    _report_no_face(result["no_face_files"])
    emit(result, fmt, rows=[{k: v for k, v in result.items() if k != "no_face_files"}])


def _report_no_face(files: list[str]) -> None:
    """One stderr line per photo that gave no face, then the count."""
    for f in files:
        click.echo(f"no face: {f}", err=True)
    if files:
        click.echo(f"{len(files)} photo(s) without a face skipped (failure to acquire)", err=True)


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
