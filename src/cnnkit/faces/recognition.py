"""Enrol, verify and identify against a gallery: the main job, as library functions the CLI calls.

Distances are Euclidean between encodings; "same person" when ``distance <= threshold``. Where the
threshold comes from, in order: an explicit value; the value ``cnnkit face calibrate`` stored in the
gallery for this encoder; otherwise it is estimated from the gallery itself (:func:`gallery_threshold`).
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from cnnkit.core.euclidean import euclidean_rows
from cnnkit.core.errors import (
    CnnkitError,
    EncoderMismatchError,
    InvalidImageError,
    InvalidNameError,
    UnknownNameError,
    printable,
)
from cnnkit.data.folders import IMAGE_SUFFIXES, walk_person_folders
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


def list_images(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Expand directories (recursively, sorted) into image files; plain files are kept as given."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        else:
            out.append(p)
    return out


def person_folders(root: str | os.PathLike[str]) -> list[tuple[str, list[Path]]]:
    """``root/NAME/*.jpg`` -> [(NAME, [photos...])], in natural order: the photos of
    :func:`cnnkit.data.folders.walk_person_folders`, which also says what it did not use and why."""
    grouped: dict[str, list[Path]] = {}
    for person, photo in walk_person_folders(root).photos:
        grouped.setdefault(person, []).append(photo)
    return list(grouped.items())


# -- thresholds -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Threshold:
    value: float
    source: str  # "explicit" | "calibrated" | "gallery" | "default"


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
    m = matrix.astype(np.float64)
    sq = (m * m).sum(1)
    d = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * m @ m.T, 0.0))
    iu = np.triu_indices(len(m), 1)
    between = d[iu][labels[iu[0]] != labels[iu[1]]]
    far = 1.0 - (1.0 - fpir) ** (1.0 / k)
    tau = NormalDist(float(between.mean()), float(between.std()) or 1e-9).inv_cdf(far)
    return float(min(default, tau))


def resolve_threshold(gallery: Gallery | None, tag: str, default: float, explicit: float | None = None) -> Threshold:
    """The threshold in force and where it comes from: ``"explicit"``, ``"calibrated"``, ``"gallery"``
    (estimated from at least ``AUTO_MIN_PEOPLE`` people and stricter than the default) or
    ``"default"`` (the encoder's own: no gallery, fewer people, or the estimate was capped at it)."""
    if explicit is not None:
        return Threshold(float(explicit), "explicit")
    if gallery is not None:
        stored = gallery.get_setting(tag, "threshold")
        if stored is not None:
            return Threshold(float(stored["value"] if isinstance(stored, dict) else stored), "calibrated")
        if gallery.encoder_tag is not None:
            value = gallery_threshold(gallery, default)
            if value < default:
                return Threshold(value, "gallery")
    return Threshold(float(default), "default")


# -- enrolment --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class EnrolOutcome:
    image: str
    name: str
    status: str  # "enrolled" | "skipped" | "error"
    error: str | None = None
    box: tuple[float, float, float, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"image": self.image, "name": self.name, "status": self.status, "error": self.error,
                "box": None if self.box is None else [round(v, 1) for v in self.box]}


def enrol_photos(pipeline: Any, gallery: Gallery, items: Sequence[tuple[str, Path]], *, largest: bool = False,
                 skip_existing: bool = True, move: bool = False,
                 on_progress: Callable[[EnrolOutcome], None] | None = None) -> Iterator[EnrolOutcome]:
    """Enrol each (name, photo): one transaction per photo, so every good photo is committed and
    every bad one reported; an interruption loses at most the photo in flight. A photo already
    enrolled (same SHA-256) for the same person is skipped, which makes a rerun resume where it
    stopped; one enrolled for another person is an error naming that person, unless ``move``
    gives its face to the new name (status ``"moved"``; no second encoding is made)."""
    check_tag(gallery.encoder_tag, pipeline.tag, model=getattr(pipeline.encoder, "path", None))
    for name, photo in items:
        try:
            try:  # a name the gallery would refuse fails this photo only, naming it
                name = normalize_name(name)
            except InvalidNameError as exc:
                raise InvalidNameError(f"{printable(os.fspath(photo))}: {exc}") from None
            digest = sha256_of(photo)
            owner = gallery.source_owner(digest) if skip_existing else None
            if owner == name:
                outcome = EnrolOutcome(str(photo), name, "skipped", "already enrolled")
            elif owner is not None and move:
                gallery.move_source(digest, name)
                outcome = EnrolOutcome(str(photo), name, "moved", f"moved from {owner!r}")
            elif owner is not None:
                outcome = EnrolOutcome(str(photo), name, "error",
                                       f"{printable(os.fspath(photo))}: already enrolled as {owner!r} in {gallery.path}; "
                                       f"use --force to move it to {name!r}")
            else:
                face = pipeline.encode_one(photo, largest=largest)
                # checked again inside the write transaction: another process may have enrolled it
                added = gallery.add_faces(name, face.embedding[None, :], tag=pipeline.tag, skip_existing=True,
                                          sources=[FaceSource(Path(photo).name, digest, tuple(face.box))])
                outcome = (EnrolOutcome(str(photo), name, "enrolled", box=tuple(face.box)) if added
                           else EnrolOutcome(str(photo), name, "skipped", "already enrolled"))
        except EncoderMismatchError:
            raise
        except CnnkitError as exc:
            outcome = EnrolOutcome(str(photo), name, "error", str(exc))
        if on_progress is not None:
            on_progress(outcome)
        yield outcome


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
               "threshold": round(self.threshold, 6), "match": self.match}
        if self.probability is not None:
            out |= {"method": "head", "probability": round(self.probability, 6)}
        return out


def stored_head(gallery: Gallery, tag: str, method: str) -> dict[str, Any] | None:
    """The binary head to decide with: ``method`` is ``"distance"``, ``"head"`` (it must exist), or
    ``"auto"`` (the head when ``cnnkit head train`` stored it as this encoder's better method)."""
    if method == "distance":
        return None
    head = gallery.get_setting(tag, "head")
    if method == "head":
        if head is None:
            raise UnknownNameError(f"no binary head stored for encoder {tag!r}; train one with `cnnkit head train --db`")
        return head
    return head if head is not None and gallery.get_setting(tag, "method") == "head" else None


def verify_photo(pipeline: Any, gallery: Gallery, name: str, photo: str | os.PathLike[str], *,
                 threshold: Threshold, largest: bool = True, head: dict[str, Any] | None = None,
                 gallery_name: str | None = None) -> Verification:
    """Is the (largest) face in ``photo`` the enrolled person ``name``? One encoder pass.

    ``gallery_name`` names the gallery in errors (default: its path; a server passes its own name
    so that no file path reaches a client).

    With a binary ``head``, the decision is P(same person) > 0.5 against the person's closest
    stored encoding; otherwise ``distance <= threshold``."""
    name = normalize_name(name)
    own, _ = gallery.faces_of(name)
    if len(own) == 0:
        where = gallery_name if gallery_name is not None else gallery.path
        raise UnknownNameError(f"{name!r} is not enrolled in {where} (`cnnkit face people` lists who is)")
    check_tag(gallery.encoder_tag, pipeline.tag, model=getattr(pipeline.encoder, "path", None))
    face = pipeline.encode_one(photo, largest=largest)
    dist = float(euclidean_rows(own, face.embedding).min())
    if head is not None:
        from cnnkit.nn.heads import head_probability

        p = float(head_probability(head, face.embedding[None, :], own).max())
        return Verification(name, str(photo), dist, 0.5, p > 0.5, p)
    return Verification(name, str(photo), dist, threshold.value, dist <= threshold.value)


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
                   *, threshold: float, k: int = 5, head: dict[str, Any] | None = None) -> list[IdentifiedFace]:
    """Name each face (or None when its nearest person is farther than ``threshold``).

    With a binary ``head``, the k nearest people are re-scored by P(same person) against their
    stored encodings, and the most probable one is named when that probability exceeds 0.5. Only
    the candidates' encodings are read (``Gallery.faces_of``): O(k m) for k people of m encodings,
    whatever the gallery's size."""
    if len(embeddings) == 0:
        return []
    emb = np.asarray(embeddings, np.float32)
    if head is not None:
        from cnnkit.nn.heads import head_probability
    out = []
    for e, box, matches in zip(emb, boxes, gallery.search(emb, k=k)):
        best = matches[0] if matches else None
        name = best.name if best is not None and best.distance <= threshold else None
        if head is not None and matches:
            probs = [float(head_probability(head, e[None, :], gallery.faces_of(m.name)[0]).max()) for m in matches]
            i = int(np.argmax(probs))
            best, name = matches[i], (matches[i].name if probs[i] > 0.5 else None)
        out.append(IdentifiedFace(tuple(box), name, None if best is None else best.distance, matches))
    return out


def identify_photo(pipeline: Any, gallery: Gallery, photo: str | os.PathLike[str], *, threshold: float,
                   k: int = 5, head: dict[str, Any] | None = None) -> list[IdentifiedFace]:
    """Every face in ``photo``, each named or unknown."""
    check_tag(gallery.encoder_tag, pipeline.tag, model=getattr(pipeline.encoder, "path", None))
    faces = pipeline.faces(photo)
    emb = np.stack([f.embedding for f in faces]) if faces else np.empty((0, pipeline.dim), np.float32)
    return identify_faces(emb, [f.box for f in faces], gallery, threshold=threshold, k=k, head=head)
