"""Enroll, verify and identify against a gallery: the main job, as library functions the CLI (and
any service) calls.

Distances are Euclidean between embeddings; "same person" when ``distance <= threshold``, or, with a
binary head stored for the encoder, when the head's P(same person) > 0.5. What decides is one
:class:`Decision`, resolved by :func:`resolve_decision`: the threshold, in order, an explicit value;
the value ``cnnkit face calibrate`` stored in the gallery for this encoder; otherwise one estimated
from the gallery itself (:func:`gallery_threshold`), stored in the gallery beside the gallery's
revision and reused until a face is added or removed.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from cnnkit.core.euclidean import euclidean_matrix, euclidean_rows
from cnnkit.core.errors import (
    CnnkitError,
    EncoderMismatchError,
    InvalidNameError,
    PhotoEnrolledError,
    UnknownNameError,
    printable,
)
from cnnkit.data.image_io import read_image_file
from cnnkit.store.base import FaceSource, Gallery, Match, check_tag, normalize_name

#: estimated false-positive identification rate the automatic threshold aims for
AUTO_FPIR = 0.01
#: fewer enrolled people than this: the encoder's default threshold is used as it is
AUTO_MIN_PEOPLE = 10


def sha256_of(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a photo's bytes, read as ``load_image`` reads them (a regular file, bounded):
    ``InvalidImageError`` if it cannot be read, never a hang on a FIFO or device."""
    return hashlib.sha256(read_image_file(path)).hexdigest()


# -- thresholds -------------------------------------------------------------------------------------

def gallery_threshold(gallery: Gallery, default: float, *, fpir: float = AUTO_FPIR,
                      max_people: int = 2000, seed: int = 0) -> float:
    """A threshold estimated from the gallery's own between-person distances, with no extra step.

    A stranger is accepted as someone when their distance to any of the K enrolled people falls
    below the threshold. The distances between different enrolled people stand in for a
    stranger's distances: a normal distribution is fitted to them, and the threshold is set so
    that a stranger clears all K comparisons with probability ``1 - fpir``, i.e. each comparison
    has false-acceptance rate ``1 - (1 - fpir) ** (1 / K)``. The bigger the gallery, the stricter
    the threshold, as open-set identification demands. Never above the encoder's ``default``;
    with fewer than ``AUTO_MIN_PEOPLE`` people the default is returned. At most ``max_people``
    people (a seeded random sample) enter the fit, so its cost stays bounded.
    """
    from statistics import NormalDist

    matrix, names = gallery.embeddings()
    people, labels = np.unique(np.asarray(names, dtype=object), return_inverse=True) if names else ([], None)
    k = len(people)
    if k < AUTO_MIN_PEOPLE:
        return float(default)
    if k > max_people:
        keep = np.isin(labels, np.random.default_rng(seed).choice(k, max_people, replace=False))
        matrix, labels = matrix[keep], labels[keep]
    d = euclidean_matrix(matrix, matrix)
    iu = np.triu_indices(len(matrix), 1)
    between = d[iu][labels[iu[0]] != labels[iu[1]]]
    far = 1.0 - (1.0 - fpir) ** (1.0 / k)
    tau = NormalDist(float(between.mean()), float(between.std()) or 1e-9).inv_cdf(far)
    return float(min(default, tau))


# -- the decision -----------------------------------------------------------------------------------

#: ``method`` values of :func:`resolve_decision`
METHODS = ("auto", "distance", "head")


@dataclass(frozen=True)
class Decision:
    """What decides "same person" on one gallery for one encoder.

    Attributes:
        method: ``"distance"`` (``distance <= threshold``) or ``"head"`` (P(same) > 0.5).
        threshold: the distance threshold (reported with the head too).
        threshold_source: ``"explicit"``, ``"calibrated"``, ``"gallery"`` (estimated from at least
            ``AUTO_MIN_PEOPLE`` people and stricter than the default) or ``"default"`` (the encoder's
            own: no gallery, fewer people, or the estimate was capped at it).
        head: the stored head's JSON spec when ``method == "head"``.
    """

    method: str
    threshold: float
    threshold_source: str
    head: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "threshold": round(self.threshold, 6), "threshold_source": self.threshold_source}


#: the gallery setting under which the estimated threshold is kept with the revision it holds for
GALLERY_THRESHOLD = "gallery_threshold"


def _estimated_threshold(gallery: Gallery, tag: str, default: float) -> float:
    """:func:`gallery_threshold`, computed once per gallery revision and kept in the gallery."""
    revision = gallery.revision
    cached = gallery.get_setting(tag, GALLERY_THRESHOLD)
    if isinstance(cached, dict) and cached.get("revision") == revision and cached.get("default") == default:
        return float(cached["value"])
    value = gallery_threshold(gallery, default)
    gallery.set_setting(tag, GALLERY_THRESHOLD, {"value": value, "revision": revision, "default": default,
                                                 "fpir": AUTO_FPIR})
    return value


def _stored_threshold(stored: Any) -> float:
    """The value of a ``"threshold"`` setting (:func:`calibration_setting`'s schema)."""
    if not isinstance(stored, dict) or not isinstance(stored.get("value"), (int, float)):
        raise CnnkitError(f"the stored threshold setting {stored!r} is not {{\"value\": <number>, ...}}; "
                          "run `cnnkit face calibrate` again")
    return float(stored["value"])


def calibration_setting(threshold: float, *, pairs: str, accuracy: float) -> dict[str, Any]:
    """The ``"threshold"`` setting ``cnnkit face calibrate`` stores for an encoder tag."""
    return {"value": float(threshold), "method": "calibrate", "pairs": pairs, "accuracy": float(accuracy)}


def resolve_decision(gallery: Gallery | None, encoder: Any, *, threshold: float | None = None,
                     method: str = "auto") -> Decision:
    """The :class:`Decision` for ``gallery`` and ``encoder`` (anything with ``tag`` and
    ``default_threshold``: a pipeline or a face encoder).

    Args:
        threshold: an explicit distance threshold; with ``method="auto"`` it means: decide by distance.
        method: ``"distance"``; ``"head"`` (a head must be stored for the encoder's tag); ``"auto"``:
            the head when ``cnnkit head train --db`` stored it as the better method, else distance.

    Reads a few settings rows; the gallery itself is read only to estimate a threshold, once per
    gallery revision (the estimate is stored in the gallery).

    Raises:
        UnknownNameError: ``method="head"`` and no head stored, or an unknown method.
    """
    if method not in METHODS:
        raise UnknownNameError(f"unknown --method {method!r}; known: {', '.join(METHODS)}")
    tag, default = encoder.tag, float(encoder.default_threshold)
    if threshold is not None:
        thr, source = float(threshold), "explicit"
    elif gallery is None:
        thr, source = default, "default"
    elif (stored := gallery.get_setting(tag, "threshold")) is not None:
        thr, source = _stored_threshold(stored), "calibrated"
    elif gallery.encoder_tag is not None and (estimate := _estimated_threshold(gallery, tag, default)) < default:
        thr, source = estimate, "gallery"
    else:
        thr, source = default, "default"
    if gallery is None or method == "distance" or (method == "auto" and threshold is not None):
        return Decision("distance", thr, source)
    head = gallery.get_setting(tag, "head")
    if method == "head" and head is None:
        raise UnknownNameError(f"no binary head stored for encoder {tag!r}; train one with `cnnkit head train --db`")
    if method == "auto" and (head is None or gallery.get_setting(tag, "method") != "head"):
        return Decision("distance", thr, source)
    return Decision("head", thr, source, head)


# -- enrollment --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class EnrollOutcome:
    image: str
    name: str
    status: str  # "enrolled" | "skipped" | "moved" | "error"
    error: str | None = None
    box: tuple[float, float, float, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"image": self.image, "name": self.name, "status": self.status, "error": self.error,
                "box": None if self.box is None else [round(v, 1) for v in self.box]}


def photo_owner_rule(gallery: Gallery, name: str, digest: str, *, move: bool = False, photo: str = "this photo",
                     where: str | None = None, remedy: str = "use --force to move it to {name!r}"
                     ) -> tuple[str, str | None]:
    """What enrolling the photo with SHA-256 ``digest`` as ``name`` (normalised) means for this
    gallery, decided before any encoder runs, with the photo's previous owner: ``"new"``;
    ``"enrolled"`` (this person has it already: nothing to do); ``"moved"`` (it was someone else's
    and ``move`` gave its face to ``name``). The CLI and the server both call it.

    Raises:
        PhotoEnrolledError: someone else has it and ``move`` is off (names them; ``where``, default
            the gallery's path, names the gallery; ``remedy`` says what to do, ``{name!r}`` filled in).
    """
    owner = gallery.source_owner(digest)
    if owner is None:
        return "new", None
    if owner == name:
        return "enrolled", owner
    if move:
        gallery.move_source(digest, name)
        return "moved", owner
    raise PhotoEnrolledError(f"{photo}: already enrolled as {owner!r} in {where or gallery.path}; "
                             + remedy.format(name=name), owner=owner)


def _before_embedding(gallery: Gallery, name: str, photo: str | os.PathLike[str], *, skip_existing: bool,
                      move: bool) -> tuple[str, str, EnrollOutcome | None]:
    """``(normalised name, SHA-256, outcome)`` of one photo before any encoder runs: the outcome is
    set when nothing is left to embed (already enrolled, moved to ``name``, or refused)."""
    try:  # a name the gallery would refuse fails this photo only, naming it
        name = normalize_name(name)
    except InvalidNameError as exc:
        raise InvalidNameError(f"{printable(os.fspath(photo))}: {exc}") from None
    digest = sha256_of(photo)
    if not skip_existing:
        return name, digest, None
    try:
        rule, owner = photo_owner_rule(gallery, name, digest, move=move, photo=printable(os.fspath(photo)))
    except PhotoEnrolledError as exc:
        return name, digest, EnrollOutcome(str(photo), name, "error", str(exc))
    if rule == "enrolled":
        return name, digest, EnrollOutcome(str(photo), name, "skipped", "already enrolled")
    if rule == "moved":
        return name, digest, EnrollOutcome(str(photo), name, "moved", f"moved from {owner!r}")
    return name, digest, None


def enroll_photos(pipeline: Any, gallery: Gallery, items: Sequence[tuple[str, str | os.PathLike[str]]], *,
                  largest: bool = False, skip_existing: bool = True, move: bool = False,
                  on_progress: Callable[[EnrollOutcome], None] | None = None) -> Iterator[EnrollOutcome]:
    """Enroll each (name, photo), embedding in batches (``pipeline.encode_many``) and writing one
    transaction per photo, so every good photo is committed and every bad one reported; an
    interruption loses at most the batch in flight. A photo already enrolled (same SHA-256) for the
    same person is skipped, which makes a rerun resume where it stopped; one enrolled for another
    person is an error naming that person, unless ``move`` gives its face to the new name (status
    ``"moved"``; no second embedding is made)."""
    check_tag(gallery.encoder_tag, pipeline.tag, model=getattr(pipeline.encoder, "path", None))
    todo: dict[int, tuple[str, str]] = {}
    ready: dict[int, EnrollOutcome] = {}
    for i, (name, photo) in enumerate(items):
        try:
            name, digest, outcome = _before_embedding(gallery, name, photo, skip_existing=skip_existing, move=move)
        except CnnkitError as exc:
            ready[i] = EnrollOutcome(str(photo), str(name), "error", str(exc))
            continue
        if outcome is not None:
            ready[i] = outcome
        else:
            todo[i] = (name, digest)
    encoded = pipeline.encode_many((items[i][1] for i in todo), largest=largest)
    pending = iter(todo.values())
    for i in range(len(items)):
        if i in todo:
            name, digest = next(pending)
            photo, face = next(encoded)
            if isinstance(face, EncoderMismatchError):
                raise face
            if isinstance(face, CnnkitError):
                outcome = EnrollOutcome(str(photo), name, "error", str(face))
            else:
                # checked again inside the write transaction: another process (or an earlier item
                # of this batch) may have enrolled it
                added = gallery.add_faces(name, face.embedding[None, :], tag=pipeline.tag, skip_existing=True,
                                          sources=[FaceSource(Path(photo).name, digest, tuple(face.box))])
                outcome = (EnrollOutcome(str(photo), name, "enrolled", box=tuple(face.box)) if added
                           else EnrollOutcome(str(photo), name, "skipped", "already enrolled"))
        else:
            outcome = ready[i]
        if on_progress is not None:
            on_progress(outcome)
        yield outcome


def folder_items(root: str | os.PathLike[str]) -> tuple[list[tuple[str, Path]], list[EnrollOutcome]]:
    """``ROOT/PERSON/photo`` as :func:`enroll_photos` items, and an outcome for every entry that is
    not a photo (``"error"`` when it was meant to be one, else ``"skipped"``), with its reason
    (:func:`cnnkit.data.folders.walk_person_folders`)."""
    from cnnkit.data.folders import walk_person_folders

    walk = walk_person_folders(root)
    not_used = [EnrollOutcome(e.path, e.person or "", "error" if e.error else "skipped", e.reason)
                for e in walk.skipped]
    return list(walk.photos), not_used


def enroll_counts(outcomes: Sequence[EnrollOutcome]) -> dict[str, int]:
    """How many photos were ``enrolled``, ``moved``, ``skipped`` and failed (``errors``)."""
    statuses = [o.status for o in outcomes]
    return {"enrolled": statuses.count("enrolled"), "moved": statuses.count("moved"),
            "skipped": statuses.count("skipped"), "errors": statuses.count("error")}


# -- verification and identification ---------------------------------------------------------------

@dataclass(frozen=True)
class Verification:
    name: str
    image: str
    distance: float
    threshold: float
    match: bool
    probability: float | None = None  # P(same person) of the binary head, when it decided

    def to_dict(self) -> dict[str, Any]:
        out = {"name": self.name, "image": self.image, "distance": round(self.distance, 6),
               "threshold": round(self.threshold, 6), "match": self.match,
               "method": "distance" if self.probability is None else "head"}
        if self.probability is not None:
            out["probability"] = round(self.probability, 6)
        return out


def _own_embeddings(gallery: Gallery, name: str, gallery_name: str | None = None) -> np.ndarray:
    """The embeddings of ``name`` (normalised as the gallery stores names); ``gallery_name`` names
    the gallery in the error (default: its path; a server passes its own name so that no file path
    reaches a client)."""
    own, _ = gallery.faces_of(normalize_name(name))
    if len(own) == 0:
        where = gallery_name if gallery_name is not None else gallery.path
        raise UnknownNameError(f"{name!r} is not enrolled in {where} (`cnnkit face people` lists who is)")
    return own


def verify_embedding(gallery: Gallery, name: str, embedding: np.ndarray, decision: Decision, *,
                     image: str = "", own: np.ndarray | None = None) -> Verification:
    """Is ``embedding`` (D,) the enrolled person ``name``? Reads only that person's embeddings
    (:meth:`Gallery.faces_of`; or ``own`` (N, D) when the caller has them). With a head decision,
    P(same person) > 0.5 against the person's most probable stored embedding; otherwise
    ``distance <= threshold`` to the closest one."""
    own = _own_embeddings(gallery, name) if own is None else own
    emb = np.asarray(embedding, dtype=np.float32)
    dist = float(euclidean_rows(own, emb).min())
    if decision.head is not None:
        from cnnkit.nn.heads import head_probability

        p = float(head_probability(decision.head, emb[None, :], own).max())
        return Verification(name, image, dist, decision.threshold, p > 0.5, p)
    return Verification(name, image, dist, decision.threshold, dist <= decision.threshold)


def verify_photo(pipeline: Any, gallery: Gallery, name: str, photo: str | os.PathLike[str], decision: Decision, *,
                 largest: bool = True, gallery_name: str | None = None) -> Verification:
    """:func:`verify_embedding` of the (main) face in ``photo``: one encoder pass."""
    own = _own_embeddings(gallery, name, gallery_name)  # before the encoder runs
    check_tag(gallery.encoder_tag, pipeline.tag, model=getattr(pipeline.encoder, "path", None))
    face = pipeline.encode_one(photo, largest=largest)
    return verify_embedding(gallery, name, face.embedding, decision, image=str(photo), own=own)


@dataclass(frozen=True)
class IdentifiedFace:
    box: tuple[float, float, float, float]
    name: str | None
    distance: float | None
    candidates: list[Match] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"box": [round(v, 1) for v in self.box], "name": self.name,
                "distance": None if self.distance is None else round(self.distance, 6),
                "candidates": [{"name": c.name, "distance": round(c.distance, 6)} for c in self.candidates]}


def identify_faces(embeddings: np.ndarray, boxes: Sequence[tuple[float, float, float, float]], gallery: Gallery,
                   decision: Decision, *, k: int = 5) -> list[IdentifiedFace]:
    """Name each face (or None when its nearest person is farther than the threshold).

    With a head decision, the k nearest people are re-scored by P(same person) against their
    stored embeddings, and the most probable one is named when that probability exceeds 0.5. Only
    the candidates' embeddings are read (``Gallery.faces_of``): O(k m) for k people of m embeddings,
    whatever the gallery's size."""
    if len(embeddings) == 0:
        return []
    emb = np.asarray(embeddings, np.float32)
    out = []
    for e, box, matches in zip(emb, boxes, gallery.search(emb, k=k)):
        best = matches[0] if matches else None
        name = best.name if best is not None and best.distance <= decision.threshold else None
        if decision.head is not None and matches:
            from cnnkit.nn.heads import head_probability

            probs = [float(head_probability(decision.head, e[None, :], gallery.faces_of(m.name)[0]).max())
                     for m in matches]
            i = int(np.argmax(probs))
            best, name = matches[i], (matches[i].name if probs[i] > 0.5 else None)
        out.append(IdentifiedFace(tuple(box), name, None if best is None else best.distance, matches))
    return out


def identify_photo(pipeline: Any, gallery: Gallery, photo: str | os.PathLike[str], decision: Decision, *,
                   k: int = 5) -> list[IdentifiedFace]:
    """Every face in ``photo``, each named or unknown."""
    check_tag(gallery.encoder_tag, pipeline.tag, model=getattr(pipeline.encoder, "path", None))
    faces = pipeline.faces(photo)
    emb = np.stack([f.embedding for f in faces]) if faces else np.empty((0, pipeline.dim), np.float32)
    return identify_faces(emb, [f.box for f in faces], gallery, decision, k=k)


def identify_photos(pipeline: Any, gallery: Gallery, photos: Sequence[str | os.PathLike[str]], decision: Decision,
                    *, k: int = 5) -> Iterator[dict[str, Any]]:
    """``{"image", "faces": [...]}`` per photo, in order; a photo that fails gets ``"error"`` (its
    message) and no faces instead of stopping the run (an encoder mismatch still raises)."""
    check_tag(gallery.encoder_tag, pipeline.tag, model=getattr(pipeline.encoder, "path", None))
    for photo in photos:
        try:
            faces = identify_photo(pipeline, gallery, photo, decision, k=k)
        except EncoderMismatchError:
            raise
        except CnnkitError as exc:
            yield {"image": str(photo), "faces": [], "error": str(exc)}
        else:
            yield {"image": str(photo), "faces": [f.to_dict() for f in faces]}


# -- the public face API (face_recognition's names) -------------------------------------------------

@dataclass(frozen=True)
class Comparison:
    image_a: str
    image_b: str
    distance: float
    threshold: float

    @property
    def match(self) -> bool:
        return self.distance <= self.threshold

    def to_dict(self) -> dict[str, Any]:
        return {"image_a": self.image_a, "image_b": self.image_b, "distance": round(self.distance, 6),
                "threshold": self.threshold, "match": self.match}


def _default_pipeline(pipeline: Any) -> Any:
    if pipeline is not None:
        return pipeline
    from cnnkit.faces.pipeline import FacePipeline

    return FacePipeline()


def compare(image_a: Any, image_b: Any, *, pipeline: Any = None, threshold: float | None = None) -> Comparison:
    """Do two photos (paths or RGB arrays) show the same person? The main face of each is taken;
    ``threshold`` defaults to the encoder's. No gallery."""
    pipeline = _default_pipeline(pipeline)
    a, b = pipeline.encode_one(image_a, largest=True), pipeline.encode_one(image_b, largest=True)
    thr = float(pipeline.default_threshold if threshold is None else threshold)
    return Comparison(str(image_a), str(image_b), float(euclidean_rows(a.embedding, b.embedding)), thr)


def enroll(gallery: Gallery, name: str, photos: Sequence[str | os.PathLike[str]], *, pipeline: Any = None,
           largest: bool = False, move: bool = False) -> list[EnrollOutcome]:
    """Enroll ``name`` from photos (one is enough); see :func:`enroll_photos`."""
    return list(enroll_photos(_default_pipeline(pipeline), gallery, [(name, p) for p in photos], largest=largest,
                              move=move))


def verify(gallery: Gallery, name: str, photo: Any, *, pipeline: Any = None, decision: Decision | None = None
           ) -> Verification:
    """Is the face in ``photo`` the enrolled ``name``? ``decision`` defaults to :func:`resolve_decision`'s
    (resolve it once and pass it in to verify many photos)."""
    pipeline = _default_pipeline(pipeline)
    return verify_photo(pipeline, gallery, name, photo, decision or resolve_decision(gallery, pipeline))


def identify(gallery: Gallery, photo: Any, *, pipeline: Any = None, decision: Decision | None = None, k: int = 5
             ) -> list[IdentifiedFace]:
    """Every face in ``photo``, named or unknown (``name is None``)."""
    pipeline = _default_pipeline(pipeline)
    return identify_photo(pipeline, gallery, photo, decision or resolve_decision(gallery, pipeline), k=k)
