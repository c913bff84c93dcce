"""A photo collection's faces on disk, their clusters, and naming a cluster into a gallery.

``OUT/faces.npz`` holds every face found (file, SHA-256, box, embedding) and is saved every
``save_every`` photos, so an interrupted run resumes: photos already there (same bytes, same
pipeline configuration) are not embedded again. ``OUT/clusters.json`` is what people read and what
``cnnkit face name`` acts on.
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from cnnkit.core.download import sha256_file
from cnnkit.core.errors import CnnkitError, InvalidImageError, UnknownNameError

__all__ = ["FaceTable", "embed_photos", "cluster_table", "cluster_faces", "cluster_collection", "build_clusters",
           "write_json", "read_clusters", "name_cluster", "name_faces", "merge_clusters", "split_face", "FACES_FILE",
           "CLUSTERS_FILE"]

FACES_FILE = "faces.npz"
CLUSTERS_FILE = "clusters.json"
#: two embeddings closer than this are the same stored face (a rerun of ``face name``)
SAME_FACE = 1e-5


@dataclass
class FaceTable:
    """Every face of a collection: row ``i`` is face ``i``. ``photos`` maps a file's SHA-256 to
    ``{"file", "faces": [rows], "error"}`` (``error`` is None, or why no face could be used)."""

    config_key: str
    dim: int
    files: list[str] = field(default_factory=list)
    shas: list[str] = field(default_factory=list)
    boxes: list[list[float]] = field(default_factory=list)
    vectors: list[np.ndarray] = field(default_factory=list)
    photos: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def embeddings(self) -> np.ndarray:
        return np.stack(self.vectors).astype(np.float32) if self.vectors else np.empty((0, self.dim), np.float32)

    def add_photo(self, file: str, sha: str, faces: list[tuple[list[float], np.ndarray]], error: str | None) -> None:
        rows = []
        for box, vec in faces:
            rows.append(len(self.vectors))
            self.files.append(file)
            self.shas.append(sha)
            self.boxes.append([round(float(v), 1) for v in box])
            self.vectors.append(np.asarray(vec, np.float32))
        self.photos[sha] = {"file": file, "faces": rows, "error": error}

    def save(self, path: str | os.PathLike[str]) -> None:
        path = Path(path)
        meta = json.dumps({"config_key": self.config_key, "dim": self.dim, "files": self.files, "shas": self.shas,
                           "boxes": self.boxes, "photos": self.photos})
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz")
        os.close(fd)
        with open(tmp, "wb") as fh:
            np.savez(fh, meta=np.array(meta), vectors=self.embeddings)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "FaceTable":
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                vecs = data["vectors"]
        except (OSError, ValueError, KeyError) as exc:
            raise CnnkitError(f"{path}: not a face table written by `cnnkit face cluster` ({exc})") from exc
        return cls(meta["config_key"], int(meta["dim"]), meta["files"], meta["shas"], meta["boxes"],
                   list(vecs), meta["photos"])


def embed_photos(pipeline: Any, photos: Iterable[Path], out_dir: str | os.PathLike[str], *,
                 save_every: int = 100, on_photo: Callable[[str, str | None], None] | None = None) -> FaceTable:
    """Detect and embed every face of every photo, batching the encoder across photos.

    A photo that cannot be read or shows no face is recorded with its error (and reported through
    ``on_photo(file, error)``); it never stops the run. Byte-identical photos are embedded once.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / FACES_FILE
    table = FaceTable(pipeline.config_key, pipeline.dim)
    if path.is_file():
        old = FaceTable.load(path)
        if old.config_key == pipeline.config_key:
            table = old
    pending: list[tuple[str, str, list[Any], list[np.ndarray]]] = []
    n_chips, done = 0, 0

    def flush() -> None:
        nonlocal pending, n_chips
        chips = [c for _, _, _, cs in pending for c in cs]
        emb = iter(pipeline.encode(chips)) if chips else iter(())
        for file, sha, dets, _ in pending:
            faces = [(list(d.box), next(emb)) for d in dets]
            error = None if faces else f"{file}: no face found"
            table.add_photo(file, sha, faces, error)
            if on_photo is not None:
                on_photo(file, error)
        pending, n_chips = [], 0

    for photo in photos:
        file = str(photo)
        try:
            sha = sha256_file(photo)
        except OSError as exc:
            err = str(InvalidImageError(photo, exc.strerror or str(exc)))
            if on_photo is not None:
                on_photo(file, err)
            continue
        if sha in table.photos or any(sha == s for _, s, _, _ in pending):
            if on_photo is not None:
                on_photo(file, table.photos.get(sha, {}).get("error"))
            continue
        try:
            rgb, _ = pipeline.load(photo)
            dets = pipeline.detect(rgb)
            chips = [pipeline.align(rgb, d) for d in dets]
        except CnnkitError as exc:
            table.add_photo(file, sha, [], str(exc))
            if on_photo is not None:
                on_photo(file, str(exc))
            continue
        pending.append((file, sha, dets, chips))
        n_chips += len(chips)
        if n_chips >= pipeline.batch_size:
            flush()
        done += 1
        if done % save_every == 0:
            flush()
            table.save(path)
    flush()
    table.save(path)
    return table


def cluster_table(table: FaceTable, verification_threshold: float, *, verification_source: str = "verification",
                  gallery: Any = None, encoder: str = "", far: float | None = None) -> dict[str, Any]:
    """The clusters document of a collection: faces whose nearest enrolled person is within
    ``verification_threshold`` are ``known`` (named after them), the others are clustered
    (:func:`~cnnkit.faces.cluster.cluster_embeddings`, 3 faces at least) and ordered by
    representativeness; see :func:`build_clusters` for the layout. ``far``: the threshold rule's
    false-accept rate (:func:`~cnnkit.faces.cluster.encoder_cluster_far` of the encoder; default
    :data:`~cnnkit.faces.cluster.CLUSTER_FAR`)."""
    from cnnkit.faces.cluster import CLUSTER_FAR, cluster_embeddings, representatives

    emb = table.embeddings
    known: dict[int, str] = {}
    if gallery is not None and gallery.encoder_tag is not None and len(emb):
        for i, matches in enumerate(gallery.search(emb, k=1)):
            if matches and matches[0].distance <= verification_threshold:
                known[i] = matches[0].name
    rest = np.array([i for i in range(len(emb)) if i not in known], dtype=np.int64)
    labels = np.full(len(emb), -1, dtype=np.int64)
    threshold, source = float(verification_threshold), verification_source
    if len(rest) >= 3:
        res = cluster_embeddings(emb[rest], verification_threshold=verification_threshold, gallery=gallery,
                                 far=CLUSTER_FAR if far is None else far)
        labels[rest] = res.labels
        threshold, source = res.threshold, res.source
    order = {c: rest[rows] for c, rows in representatives(emb[rest], labels[rest]).items()} if len(rest) else {}
    data = build_clusters(table, labels, order=order, threshold=threshold, source=source,
                          verification_threshold=verification_threshold, known=known, encoder=encoder)
    return data


def cluster_collection(pipeline: Any, photos: Iterable[Path], out_dir: str | os.PathLike[str], *, gallery: Any = None,
                       on_photo: Callable[[str, str | None], None] | None = None
                       ) -> tuple[dict[str, Any], dict[str, Any]]:
    """``cnnkit face cluster``: embed every face of ``photos`` into ``out_dir`` (:func:`embed_photos`,
    resumable), name the faces of people enrolled in ``gallery`` and cluster the rest
    (:func:`cluster_faces`: the encoder's own threshold rule), then write OUT/clusters.json and
    OUT/index.html.

    Returns:
        ``(summary, clusters document)``; the summary counts photos, faces, clusters of two faces or
        more, faces left alone, faces recognised and photos without a usable face, and names the files.

    Raises:
        EncoderMismatchError: ``gallery`` holds embeddings of another encoder.
    """
    from cnnkit.faces.cluster.sheets import write_index
    from cnnkit.store.base import check_tag

    if gallery is not None:
        check_tag(gallery.encoder_tag, pipeline.tag)
    table = embed_photos(pipeline, photos, out_dir, on_photo=on_photo)
    data = cluster_faces(table, pipeline, gallery)
    clusters_json = Path(out_dir) / CLUSTERS_FILE
    write_json(clusters_json, data)
    index = write_index(data, out_dir)
    groups = sum(c["size"] > 1 for c in data["clusters"])
    summary = {"photos": data["photos"], "faces": data["faces"], "clusters": groups,
               "alone": len(data["clusters"]) - groups, "known": sum(len(k["faces"]) for k in data["known"]),
               "threshold": data["threshold"], "threshold_source": data["threshold_source"],
               "errors": len(data["errors"]), "clusters_json": str(clusters_json), "index_html": str(index)}
    return summary, data


def build_clusters(table: FaceTable, labels: np.ndarray, *, order: dict[int, np.ndarray], threshold: float,
                   source: str, verification_threshold: float, known: dict[int, str] | None = None,
                   encoder: str = "") -> dict[str, Any]:
    """``clusters.json``: clusters largest first (faces most central first), then the faces left
    alone (one cluster each), then the faces recognised as enrolled people (``known``)."""
    known = known or {}

    def face(i: int) -> dict[str, Any]:
        return {"face": int(i), "file": table.files[i], "box": table.boxes[i], "sha256": table.shas[i]}

    clusters = []
    for c in sorted(order):
        rows = [int(i) for i in order[c]]
        clusters.append({"id": len(clusters), "size": len(rows), "representative": face(rows[0]),
                         "faces": [face(i) for i in rows]})
    for i in np.flatnonzero(labels < 0):
        if int(i) not in known:
            clusters.append({"id": len(clusters), "size": 1, "representative": face(i), "faces": [face(i)]})
    named: dict[str, list[int]] = {}
    for i, name in sorted(known.items()):
        named.setdefault(name, []).append(i)
    errors = [{"file": p["file"], "error": p["error"]} for p in table.photos.values() if p["error"]]
    return {"encoder": encoder, "threshold": round(float(threshold), 6), "threshold_source": source,
            "verification_threshold": round(float(verification_threshold), 6), "faces_file": FACES_FILE,
            "photos": len(table.photos), "faces": len(table.vectors), "errors": errors,
            "known": [{"name": n, "faces": [face(i) for i in rows]} for n, rows in sorted(named.items())],
            "clusters": clusters, "next_id": len(clusters)}


def write_json(path: str | os.PathLike[str], data: dict[str, Any]) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".json")
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=1)
    os.replace(tmp, path)


def read_clusters(path: str | os.PathLike[str]) -> tuple[dict[str, Any], FaceTable]:
    """``clusters.json`` and the face table next to it."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
        faces_file = path.parent / data["faces_file"]
    except (OSError, ValueError, KeyError) as exc:
        raise CnnkitError(f"{path}: not a clusters.json written by `cnnkit face cluster` ({exc})") from exc
    return data, FaceTable.load(faces_file)


def _cluster(data: dict[str, Any], cluster_id: int) -> dict[str, Any]:
    for c in data["clusters"]:
        if c["id"] == cluster_id:
            return c
    raise UnknownNameError(f"no cluster {cluster_id} (ids 0..{len(data['clusters']) - 1})")


def cluster_faces(table: FaceTable, pipeline: Any, gallery: Any = None) -> dict[str, Any]:
    """:func:`cluster_table` with the thresholds ``cnnkit face cluster`` uses for ``pipeline``'s
    embeddings: the verification threshold in force for ``gallery`` (by distance:
    :func:`~cnnkit.faces.recognition.resolve_decision`) and the encoder's false-accept rate
    (:func:`~cnnkit.faces.cluster.encoder_cluster_far`)."""
    from cnnkit.faces.cluster import encoder_cluster_far
    from cnnkit.faces.recognition import resolve_decision

    verification = resolve_decision(gallery, pipeline, method="distance")
    return cluster_table(table, verification.threshold, verification_source=verification.threshold_source,
                         gallery=gallery, encoder=pipeline.tag, far=encoder_cluster_far(pipeline.encoder))


def name_cluster(data: dict[str, Any], table: FaceTable, cluster_id: int, name: str, gallery: Any, tag: str, *,
                 max_faces: int | None = None) -> dict[str, Any]:
    """Enroll a cluster's faces (all, or the ``max_faces`` most central) as ``name``, in one
    transaction (:func:`name_faces`)."""
    rows = [f["face"] for f in _cluster(data, cluster_id)["faces"]]
    if max_faces is not None:
        rows = rows[:max_faces]
    return {"cluster": cluster_id, **name_faces(table, rows, name, gallery, tag)}


def name_faces(table: FaceTable, rows: list[int], name: str, gallery: Any, tag: str) -> dict[str, Any]:
    """Enroll the faces ``rows`` of ``table`` as ``name``, in one transaction. Faces already stored
    (the same embedding) are skipped, so a rerun adds nothing; a face already stored under another
    name is left there and reported."""
    from cnnkit.store.base import FaceSource, check_tag

    check_tag(gallery.encoder_tag, tag)
    if table.config_key.split("|")[0] != tag:
        raise CnnkitError(f"the clusters were made with encoder {table.config_key.split('|')[0]!r}, the gallery "
                          f"needs {tag!r}")
    emb = table.embeddings[rows]
    skipped, conflicts, todo = 0, [], []
    found = gallery.search(emb, k=1) if gallery.encoder_tag is not None else [[] for _ in rows]
    for row, matches in zip(rows, found):
        if matches and matches[0].distance <= SAME_FACE:
            if matches[0].name == name:
                skipped += 1
            else:
                conflicts.append({"face": row, "file": table.files[row], "enrolled_as": matches[0].name})
            continue
        todo.append(row)
    added = 0
    if todo:
        sources = [FaceSource(Path(table.files[r]).name, table.shas[r], tuple(table.boxes[r])) for r in todo]
        added = len(gallery.add_faces(name, table.embeddings[todo], tag=tag, sources=sources))
    # a face of a photo already stored for this person is kept once (the store's unique index)
    return {"name": name, "enrolled": added, "already_enrolled": skipped + len(todo) - added,
            "enrolled_as_someone_else": conflicts}


def merge_clusters(data: dict[str, Any], table: FaceTable, keep: int, other: int) -> dict[str, Any]:
    """Move every face of cluster ``other`` into ``keep`` (faces re-ordered by centrality)."""
    if keep == other:
        raise CnnkitError("cannot merge a cluster with itself")
    a, b = _cluster(data, keep), _cluster(data, other)
    rows = [f["face"] for f in a["faces"] + b["faces"]]
    _set_faces(a, table, rows)
    data["clusters"] = [c for c in data["clusters"] if c["id"] != other]
    return a


def split_face(data: dict[str, Any], table: FaceTable, face: int) -> dict[str, Any]:
    """Move one face (its row in the face table) out of its cluster into a new cluster of its own."""
    for c in data["clusters"]:
        rows = [f["face"] for f in c["faces"]]
        if face in rows:
            if len(rows) == 1:
                raise CnnkitError(f"face {face} is already alone (cluster {c['id']})")
            _set_faces(c, table, [r for r in rows if r != face])
            new = {"id": data["next_id"], "size": 1, "faces": []}
            data["next_id"] += 1
            _set_faces(new, table, [face])
            data["clusters"].append(new)
            return new
    raise UnknownNameError(f"no face {face} in any cluster")


def _set_faces(cluster: dict[str, Any], table: FaceTable, rows: list[int]) -> None:
    from cnnkit.faces.cluster.linkage import representatives

    rows = [rows[i] for i in representatives(table.embeddings[rows], np.zeros(len(rows), np.int64))[0]]
    cluster["faces"] = [{"face": r, "file": table.files[r], "box": table.boxes[r], "sha256": table.shas[r]}
                        for r in rows]
    cluster["size"] = len(rows)
    cluster["representative"] = cluster["faces"][0]
