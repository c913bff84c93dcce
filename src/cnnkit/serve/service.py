"""What the HTTP layer calls: one :class:`Service` holding the face pipeline (loaded once), the
galleries, the API keys and two thread pools.

Inference (decode, detect, align, encode, search) runs in a bounded pool of ``workers`` threads; at
most ``workers + queue`` jobs are admitted at once, and a job beyond that is refused at once with
``rate-limited`` (429 with ``Retry-After``) instead of piling up. Gallery-only work (listings,
deletions, export) runs in a second small pool so that it never waits behind inference.

Every operation is a plain method that calls ``cnnkit.faces`` and ``cnnkit.store``; the decision
(threshold, its source, the binary head) is the same resolver the CLI uses.

With ``capture_unknown``, every face that identify names nobody is kept
(:class:`~cnnkit.serve.unknown.UnknownFaces`), clustered as ``cnnkit face cluster`` clusters a
collection, and a cluster named once is enrolled as ``cnnkit face name`` enrolls it.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import logging
import math
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from cnnkit import __version__
from cnnkit.core.euclidean import euclidean_rows
from cnnkit.core.errors import EncoderMismatchError, UnknownNameError
from cnnkit.data.image_io import load_image
from cnnkit.serve.galleries import SERVE_NS, GalleryRegistry
from cnnkit.serve.keys import KeyStore
from cnnkit.serve.problems import Problem
from cnnkit.serve.unknown import RETENTION_DAYS, UnknownFace, UnknownFaces
from cnnkit.store.base import FaceSource, normalize_name

log = logging.getLogger("cnnkit.serve")

EXPORT_FORMAT = "cnnkit-gallery-export"
THUMB_SIZE = 112


@dataclass(frozen=True)
class ServeConfig:
    """Settings of one server process.

    Args:
        db: a data directory (one SQLite file per gallery) or a ``postgresql://`` URL.
        workers: inference threads.
        queue: jobs admitted beyond the running ones before 429.
        max_upload: largest request body, bytes (413 above).
        max_pixels: pixel limit of :func:`~cnnkit.data.image_io.load_image` (None: its default).
        encoder, detector: as for :class:`~cnnkit.faces.FacePipeline` (``encoder=None``: the default
            encoder, :data:`cnnkit.faces.encoders.DEFAULT_ENCODER`).
        capture_unknown: keep each face identify names nobody (chip + embedding, per gallery).
        capture_retention_days: captured faces last seen longer ago are deleted (whether or not
            capture is on now).
    """
    db: str
    workers: int = 2
    queue: int = 32
    max_upload: int = 10 * 1024 * 1024
    max_pixels: int | None = None
    encoder: str | None = None
    detector: str = "retinaface"
    capture_unknown: bool = False
    capture_retention_days: float = RETENTION_DAYS


def _round_box(box: Sequence[float]) -> list[float]:
    return [round(float(v), 1) for v in box]


class Service:
    def __init__(self, config: ServeConfig, *, pipeline: Any = None, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.galleries = GalleryRegistry(config.db)
        self.keys = KeyStore(config.db)
        self.unknown = UnknownFaces(config.db, retention_days=config.capture_retention_days, clock=clock)
        self._stop = threading.Event()
        self._purger: threading.Thread | None = None
        self.pipeline = pipeline  # the default encoder's (new galleries, /embed, pair verification)
        self._fixed = pipeline is not None  # one pipeline handed in serves every gallery
        self._pipelines: dict[str, Any] = {}
        self._pool = ThreadPoolExecutor(max(1, config.workers), thread_name_prefix="cnnkit-infer")
        self._io = ThreadPoolExecutor(4, thread_name_prefix="cnnkit-io")
        self._slots = threading.BoundedSemaphore(max(1, config.workers) + max(0, config.queue))
        self._pending = 0
        self._lock = threading.Lock()  # the admission counters; the event loop takes it, so held briefly
        self._load_lock = threading.Lock()  # loading another encoder's models (seconds)
        self._mean_s = 0.1  # running mean of one inference job, for Retry-After
        self.rejected = 0
        self.started = time.time()

    # -- life cycle ----------------------------------------------------------------------------
    def load(self) -> "Service":
        """Load the models and run them once, so the first request pays nothing."""
        if self.pipeline is None:
            from cnnkit.faces.encoders import choose_encoder

            self.pipeline = self._warm(choose_encoder(self.config.encoder))
        if self._purger is None:
            self._purger = threading.Thread(target=self._purge_unknown, name="cnnkit-purge", daemon=True)
            self._purger.start()
        return self

    def _purge_unknown(self) -> None:
        """Delete the captured faces past their retention now, then hourly, until :meth:`close`."""
        while True:
            try:
                self.unknown.purge()
            except Exception:  # the store is down for now: the next round, or a request, retries
                log.exception("purging the captured unknown faces failed")
            if self._stop.wait(3600):
                return

    def _warm(self, spec: str) -> Any:
        """A pipeline of encoder ``spec`` with its models loaded and run once."""
        from cnnkit.faces import FacePipeline

        pipe = FacePipeline(spec, detector=self.config.detector, threads=1)
        pipe.faces(np.full((64, 64, 3), 128, np.uint8))  # detector session

        def blank(encoder: Any) -> np.ndarray:
            return np.zeros((encoder.chip_size,) * 2 + (3,), np.uint8)

        parts = getattr(pipe.encoder, "parts", None)  # a fused encoder: one chip per part
        pipe.encode([tuple(blank(p) for p in parts) if parts else blank(pipe.encoder)])
        self._pipelines[spec] = pipe
        return pipe

    def pipeline_for(self, gallery_name: str | None, *, tag: str | None = None) -> Any:
        """The pipeline of a gallery's own encoder, chosen as the CLI chooses it
        (:func:`~cnnkit.faces.encoders.choose_encoder`: ``--encoder`` if given, else the encoder
        whose tag the gallery's embeddings carry, else the default), so that a change of the default
        never makes the server refuse a gallery's own people (``tag``: the one an empty gallery is about
        to get, e.g. an import's). Each encoder's models load once."""
        if self._fixed or gallery_name is None:
            return self.pipeline
        from cnnkit.faces.encoders import choose_encoder

        try:
            spec = choose_encoder(self.config.encoder, self.galleries.get(gallery_name).encoder_tag or tag)
        except UnknownNameError:  # e.g. a trained model's gallery: the default, and its clear mismatch error
            return self.pipeline
        pipe = self._pipelines.get(spec)
        if pipe is None:
            with self._load_lock:  # not self._lock: infer() takes that on the event loop
                pipe = self._pipelines.get(spec) or self._warm(spec)
        return pipe

    @property
    def ready(self) -> bool:
        return self.pipeline is not None

    def close(self) -> None:
        self._stop.set()
        if self._purger is not None:
            self._purger.join()
        self._pool.shutdown(wait=True, cancel_futures=False)
        self._io.shutdown(wait=True)
        self.galleries.close()
        self.keys.close()
        self.unknown.close()

    # -- running jobs ----------------------------------------------------------------------------
    def retry_after(self) -> int:
        with self._lock:
            pending = self._pending
        return max(1, math.ceil(self._mean_s * pending / max(1, self.config.workers)))

    async def infer(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(*args)`` in the inference pool, or refuse with 429 when the queue is full."""
        if not self.ready:
            raise Problem("not-ready", "the models are still loading")
        if not self._slots.acquire(blocking=False):
            self.rejected += 1
            raise Problem("rate-limited", f"{self.config.workers + self.config.queue} requests are already "
                          "running or queued; retry later", {"Retry-After": str(self.retry_after())})
        with self._lock:
            self._pending += 1

        def job() -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args)
            finally:
                dt = time.perf_counter() - t0
                with self._lock:
                    self._pending -= 1
                    self._mean_s = 0.9 * self._mean_s + 0.1 * dt
                self._slots.release()  # released when the job ends, even if its client went away

        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, job)
        except RuntimeError as exc:  # the pool is shutting down
            raise Problem("not-ready", "the server is shutting down") from exc

    async def io(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run gallery-only work in its own pool."""
        return await asyncio.get_running_loop().run_in_executor(self._io, lambda: fn(*args))

    # -- the decision ----------------------------------------------------------------------------
    def decision(self, gallery_name: str | None) -> Any:
        """The :class:`~cnnkit.faces.Decision` in force for a gallery (or none: the encoder default),
        the CLI's own (:func:`~cnnkit.faces.recognition.resolve_decision`, ``method="auto"``): its
        gallery estimate is kept in the gallery until a face is added or removed, so this reads a
        few settings rows, not the embeddings."""
        from cnnkit.faces.recognition import resolve_decision

        g = None if gallery_name is None else self.galleries.get(gallery_name)
        return resolve_decision(g, self.pipeline_for(gallery_name), method="distance" if g is None else "auto")

    def info(self, gallery_name: str | None = None) -> dict[str, Any]:
        d = self.decision(gallery_name)
        pipe = self.pipeline_for(gallery_name)
        return {"version": __version__, "encoder_tag": pipe.tag, "dimension": pipe.dim,
                "metric": "euclidean", "gallery": gallery_name, "threshold": round(d.threshold, 6),
                "threshold_source": d.threshold_source, "method": d.method,
                "workers": self.config.workers, "queue": self.config.queue, "max_upload_bytes": self.config.max_upload,
                "capture_unknown": self.config.capture_unknown,
                "capture_retention_days": self.config.capture_retention_days, "liveness_check": False}

    # -- images ---------------------------------------------------------------------------------
    def image(self, data: bytes) -> np.ndarray:
        """Decode an upload (type sniffed from the bytes; the pixel limit applies)."""
        if len(data) > self.config.max_upload:
            raise Problem("image-too-large", f"the image has {len(data)} bytes, more than the limit of "
                          f"{self.config.max_upload}")
        return load_image(data, max_pixels=self.config.max_pixels)

    def _one_face(self, rgb: np.ndarray, face: str, pipeline: Any = None) -> Any:
        return (pipeline or self.pipeline).encode_one(rgb, largest=(face == "largest"))

    # -- enrollment --------------------------------------------------------------------------------
    def enroll(self, gallery_name: str, subject: str, data: bytes, face: str = "single",
              file_name: str | None = None) -> tuple[int, dict[str, Any]]:
        """Enroll one photo (one transaction). Returns (HTTP status, body): 201, or 200 when these
        exact bytes are already enrolled for this subject; the same bytes enrolled for another
        subject are refused (:class:`~cnnkit.core.errors.PhotoEnrolledError`, 409), by the rule
        ``cnnkit face enroll`` follows (:func:`~cnnkit.faces.recognition.photo_owner_rule`)."""
        from cnnkit.faces.recognition import photo_owner_rule

        g = self.galleries.get(gallery_name)
        digest = hashlib.sha256(data).hexdigest()
        rgb = self.image(data)
        rule, _ = photo_owner_rule(g, normalize_name(subject), digest, where=gallery_name,
                                   remedy="delete that subject's photo first to enroll it as {name!r}")
        if rule == "enrolled":
            return 200, {"gallery": gallery_name, "subject": subject, "enrolled": False,
                         "detail": "this photo is already enrolled for this subject"}
        pipe = self.pipeline_for(gallery_name)
        res = self._one_face(rgb, face, pipe)
        name = os.path.basename(file_name or "")[:200] or None
        ids = g.add_faces(subject, res.embedding[None, :], tag=pipe.tag,
                          sources=[FaceSource(name, digest, tuple(res.box))])
        self._first_thumbnail(gallery_name, g, subject, lambda: face_chip(rgb, res.box))
        return 201, {"gallery": gallery_name, "subject": subject, "enrolled": True, "face_id": ids[0],
                     "box": _round_box(res.box)}

    # -- verification and identification ----------------------------------------------------------
    def verify_subject(self, gallery_name: str, subject: str, data: bytes, face: str = "single") -> dict[str, Any]:
        from cnnkit.faces.recognition import verify_photo

        d = self.decision(gallery_name)
        g = self.galleries.get(gallery_name)
        rgb = self.image(data)
        v = verify_photo(self.pipeline_for(gallery_name), g, subject, rgb, d, largest=(face == "largest"),
                         gallery_name=gallery_name)
        out = {"subject": subject, "gallery": gallery_name, "match": v.match, "distance": round(v.distance, 6),
               "threshold": round(d.threshold, 6), "threshold_source": d.threshold_source, "method": d.method}
        if v.probability is not None:
            out["probability"] = round(v.probability, 6)
        return out

    def verify_pair(self, data_a: bytes, data_b: bytes, face: str = "single") -> dict[str, Any]:
        d = self.decision(None)
        a = self._one_face(self.image(data_a), face)
        b = self._one_face(self.image(data_b), face)
        dist = float(euclidean_rows(a.embedding, b.embedding))
        return {"match": dist <= d.threshold, "distance": round(dist, 6), "threshold": round(d.threshold, 6),
                "threshold_source": d.threshold_source, "method": "distance",
                "box_a": _round_box(a.box), "box_b": _round_box(b.box)}

    def identify(self, gallery_name: str, data: bytes, top_k: int = 5) -> dict[str, Any]:
        from cnnkit.faces.assign import assign_once
        from cnnkit.faces.recognition import identify_faces

        d = self.decision(gallery_name)
        g = self.galleries.get(gallery_name)
        pipe = self.pipeline_for(gallery_name)
        if g.encoder_tag is not None and g.encoder_tag != pipe.tag:
            raise EncoderMismatchError(f"gallery {gallery_name!r} holds embeddings of encoder {g.encoder_tag!r}, "
                                       f"this server encodes with {pipe.tag!r}")
        rgb = self.image(data)
        found = pipe.faces(rgb)
        emb = np.stack([f.embedding for f in found]) if found else np.empty((0, pipe.dim), np.float32)
        named = identify_faces(emb, [f.box for f in found], g, d, k=top_k)
        named = assign_once(named, d.threshold, reassign=d.head is None)
        captured = 0
        if self.config.capture_unknown:
            nobody = [(f.box, e, face_chip(rgb, f.box)) for f, e in zip(named, emb) if f.name is None]
            if nobody:
                captured = len(self.unknown.add(gallery_name, pipe.tag, hashlib.sha256(data).hexdigest(), nobody))
        return {"gallery": gallery_name, "threshold": round(d.threshold, 6),
                "threshold_source": d.threshold_source, "method": d.method,
                "width": int(rgb.shape[1]), "height": int(rgb.shape[0]),
                "faces": [f.to_dict() for f in named], "captured": captured}

    def embed(self, data: bytes) -> dict[str, Any]:
        rgb = self.image(data)
        found = self.pipeline.faces(rgb)
        return {"encoder_tag": self.pipeline.tag, "dimension": self.pipeline.dim,
                "faces": [{"box": _round_box(f.box), "score": round(float(f.score), 4),
                           "embedding": [float(v) for v in f.embedding]} for f in found]}

    # -- galleries --------------------------------------------------------------------------------
    def create_gallery(self, name: str, *, thumbnails: bool = False) -> dict[str, Any]:
        out = self.galleries.create(name, thumbnails=thumbnails)
        self.unknown.drop_gallery(name)  # left by a gallery of this name deleted behind the server's back
        return out

    def drop_gallery(self, name: str) -> None:
        """Delete the gallery, then the unknown faces captured for it."""
        self.galleries.drop(name)
        self.unknown.drop_gallery(name)

    # -- unknown faces ------------------------------------------------------------------------------
    def unknown_clusters(self, gallery_name: str) -> dict[str, Any]:
        """The captured faces of a gallery, clustered as ``cnnkit face cluster`` clusters a
        collection (:func:`~cnnkit.faces.cluster.collection.cluster_faces`, this gallery's encoder
        and threshold): clusters largest first, most central face first, then the faces alone, then
        ``known``: faces that now match an enrolled person. Each face is given by its capture id,
        and naming takes those ids, so a click names the faces that were shown."""
        from cnnkit.faces.cluster.collection import cluster_faces

        g = self.galleries.get(gallery_name)
        pipe = self.pipeline_for(gallery_name)
        faces = self.unknown.faces(gallery_name, pipe.tag)
        data = cluster_faces(_unknown_table(faces, pipe.tag, pipe.dim), pipe, gallery=g)

        def listed(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [{"id": faces[f["face"]].id, "seen_at": faces[f["face"]].seen, "box": f["box"]} for f in rows]

        clusters = [{"id": _cluster_id([faces[f["face"]].id for f in c["faces"]]), "size": c["size"],
                     "faces": listed(c["faces"])} for c in data["clusters"]]
        return {"gallery": gallery_name, "capture": self.config.capture_unknown,
                "retention_days": self.config.capture_retention_days, "faces": len(faces),
                "threshold": data["threshold"], "threshold_source": data["threshold_source"],
                "clusters": clusters, "known": [{"name": k["name"], "faces": listed(k["faces"])} for k in data["known"]]}

    def unknown_chip(self, gallery_name: str, face_id: int) -> bytes:
        self.galleries.get(gallery_name)
        chip = self.unknown.chip(gallery_name, face_id)
        if chip is None:
            raise Problem("not-found", f"no unknown face {face_id} in gallery {gallery_name!r}")
        return chip

    def discard_unknown(self, gallery_name: str, face_id: int) -> None:
        self.galleries.get(gallery_name)
        if not self.unknown.discard(gallery_name, face_id):
            raise Problem("not-found", f"no unknown face {face_id} in gallery {gallery_name!r}")

    def name_unknown(self, gallery_name: str, name: str, face_ids: Sequence[int]) -> tuple[int, dict[str, Any]]:
        """Enroll the captured faces ``face_ids`` as ``name`` in one transaction, as ``cnnkit face
        name`` enrolls a cluster (:func:`~cnnkit.faces.cluster.collection.name_faces`: a face already
        stored is not stored twice), then delete them from the capture store. A face no longer
        captured (named, discarded or purged since it was listed) refuses the whole request
        (:class:`~cnnkit.serve.unknown.StaleUnknownFaces`, 409). Returns (201 or 200, body)."""
        from cnnkit.faces.cluster.collection import name_faces

        g = self.galleries.get(gallery_name)
        name = normalize_name(name)
        pipe = self.pipeline_for(gallery_name)
        with self.unknown.claim(gallery_name, face_ids) as faces:
            other = {f.encoder_tag for f in faces} - {pipe.tag}
            if other:
                raise EncoderMismatchError(f"these faces were captured with encoder {min(other)!r}; gallery "
                                           f"{gallery_name!r} is served with {pipe.tag!r}")
            result = name_faces(_unknown_table(faces, pipe.tag, pipe.dim), list(range(len(faces))), name, g, pipe.tag)
            self._first_thumbnail(gallery_name, g, name, lambda: self.unknown.chip(gallery_name, faces[0].id))
        conflicts = [{"id": faces[c["face"]].id, "enrolled_as": c["enrolled_as"]} for c in result["enrolled_as_someone_else"]]
        body = {"gallery": gallery_name, "name": name, "enrolled": result["enrolled"],
                "already_enrolled": result["already_enrolled"], "enrolled_as_someone_else": conflicts,
                "removed": len(faces)}
        return (201 if result["enrolled"] else 200), body

    def _first_thumbnail(self, gallery_name: str, g: Any, name: str, chip: Callable[[], bytes | None]) -> None:
        """A gallery created with thumbnails keeps the first chip of each person: ``chip()`` (JPEG
        bytes, made only when needed) is stored when ``name`` has none yet."""
        if self.galleries.options(gallery_name).get("thumbnails") and g.get_setting(SERVE_NS, _thumb_key(name)) is None:
            data = chip()
            if data is not None:
                g.set_setting(SERVE_NS, _thumb_key(name), base64.b64encode(data).decode())

    # -- subjects -------------------------------------------------------------------------------
    def subjects(self, gallery_name: str, limit: int, cursor: str | None) -> dict[str, Any]:
        people = self.galleries.get(gallery_name).people()  # sorted by name
        after = _decode_cursor(cursor) if cursor else None
        if after is not None:
            people = [p for p in people if p.name > after]
        page = people[:limit]
        more = len(people) > limit
        return {"subjects": [{"name": p.name, "faces": p.faces, "created_at": p.created_at} for p in page],
                "next_cursor": _encode_cursor(page[-1].name) if more and page else None}

    def subject(self, gallery_name: str, name: str) -> dict[str, Any]:
        g = self.galleries.get(gallery_name)
        for p in g.people():
            if p.name == name:
                return {"name": p.name, "faces": p.faces, "created_at": p.created_at,
                        "thumbnail": g.get_setting(SERVE_NS, _thumb_key(name)) is not None}
        raise UnknownNameError(f"no subject named {name!r} in gallery {gallery_name!r}")

    def thumbnail(self, gallery_name: str, name: str) -> bytes:
        self.subject(gallery_name, name)
        b64 = self.galleries.get(gallery_name).get_setting(SERVE_NS, _thumb_key(name))
        if b64 is None:
            raise Problem("not-found", f"no thumbnail stored for {name!r} (the gallery was created without "
                          "thumbnails, or the subject was enrolled by the CLI)")
        return base64.b64decode(b64)

    def delete_subject(self, gallery_name: str, name: str) -> int:
        """Delete every embedding and the thumbnail of a subject; returns the embeddings removed."""
        g = self.galleries.get(gallery_name)
        self.subject(gallery_name, name)
        if g.get_setting(SERVE_NS, _thumb_key(name)) is not None:
            g.set_setting(SERVE_NS, _thumb_key(name), None)  # overwritten (secure_delete), before the vectors
        return g.remove_person(name)

    # -- export and import -----------------------------------------------------------------------
    def export_lines(self, gallery_name: str) -> Iterator[bytes]:
        g = self.galleries.get(gallery_name)
        matrix, names = g.embeddings()
        header = {"format": EXPORT_FORMAT, "version": 1, "gallery": gallery_name,
                  "encoder_tag": g.encoder_tag, "dimension": g.dim, "faces": len(names)}
        yield (json.dumps(header) + "\n").encode()
        for name, vec in zip(names, matrix):
            yield (json.dumps({"name": name, "embedding": [float(v) for v in vec]}) + "\n").encode()

    def import_lines(self, gallery_name: str, body: bytes) -> dict[str, Any]:
        g = self.galleries.get(gallery_name)
        lines = [ln for ln in body.decode("utf-8", errors="strict").splitlines() if ln.strip()]
        if not lines:
            raise Problem("invalid-request", "the body is empty; send the NDJSON of GET .../export")
        try:
            header = json.loads(lines[0])
            rows = [json.loads(ln) for ln in lines[1:]]
        except json.JSONDecodeError as exc:
            raise Problem("invalid-request", f"not NDJSON: {exc}") from None
        if not isinstance(header, dict) or header.get("format") != EXPORT_FORMAT:
            raise Problem("invalid-request", f"the first line must be the export header (format {EXPORT_FORMAT!r})")
        tag = header.get("encoder_tag")
        pipe = self.pipeline_for(gallery_name, tag=tag if isinstance(tag, str) else None)
        if tag != pipe.tag:
            raise EncoderMismatchError(f"the export holds embeddings of encoder {tag!r}; this server encodes with "
                                       f"{pipe.tag!r}, so they cannot be compared")
        by_name: dict[str, list[list[float]]] = {}
        for i, row in enumerate(rows, start=2):
            if not isinstance(row, dict) or not isinstance(row.get("name"), str) or not row["name"].strip() \
                    or not isinstance(row.get("embedding"), list) or len(row["embedding"]) != pipe.dim:
                raise Problem("invalid-request", f"line {i}: expected {{\"name\": str, \"embedding\": "
                              f"[{pipe.dim} numbers]}}")
            by_name.setdefault(row["name"], []).append(row["embedding"])
        try:
            arrays = {n: np.asarray(v, dtype=np.float32) for n, v in by_name.items()}
        except (TypeError, ValueError):
            raise Problem("invalid-request", "embeddings must be lists of numbers") from None
        if any(not np.all(np.isfinite(a)) for a in arrays.values()):
            raise Problem("invalid-request", "embeddings must be finite numbers")
        added = 0
        for name, emb in arrays.items():  # one transaction per subject
            added += len(g.add_faces(name, emb, tag=tag))
        return {"gallery": gallery_name, "subjects": len(arrays), "faces": added}


def _thumb_key(name: str) -> str:
    """The settings key of a subject's thumbnail. The store has no way to delete a setting, so a
    deleted subject leaves a null row behind: keyed by a hash, that row does not name them."""
    return "thumbnail:" + hashlib.blake2b(name.encode(), digest_size=16, person=b"cnnkit-thumb").hexdigest()


def _unknown_table(faces: Sequence[UnknownFace], tag: str, dim: int) -> Any:
    """Captured faces as the face table of a collection (row i: ``faces[i]``; file ``unknown-ID``)."""
    from cnnkit.faces.cluster.collection import FaceTable

    table = FaceTable(f"{tag}|unknown", dim)
    for f in faces:
        table.add_photo(f"unknown-{f.id}", f.photo_sha256, [(list(f.box), f.embedding)], None)
    return table


def _cluster_id(ids: Sequence[int]) -> str:
    """A name for the set of faces ``ids``: another set, another name."""
    return "u" + hashlib.blake2b(",".join(map(str, sorted(ids))).encode(), digest_size=6).hexdigest()


def face_chip(rgb: np.ndarray, box: Sequence[float]) -> bytes:
    """A THUMB_SIZE px square JPEG chip around the face box (thumbnails and unknown faces)."""
    from PIL import Image

    x1, y1, x2, y2 = (float(v) for v in box)
    cx, cy, side = (x1 + x2) / 2, (y1 + y2) / 2, max(x2 - x1, y2 - y1) * 1.3
    h, w = rgb.shape[:2]
    l, t = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
    r, b = int(min(w, cx + side / 2)), int(min(h, cy + side / 2))
    img = Image.fromarray(rgb[t:max(b, t + 1), l:max(r, l + 1)]).resize((THUMB_SIZE, THUMB_SIZE), Image.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def _encode_cursor(name: str) -> str:
    return base64.urlsafe_b64encode(name.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> str:
    try:
        name = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        name = ""
    if not name:
        raise Problem("invalid-request", "cursor is not one this server returned")
    return name


__all__ = ["Service", "ServeConfig"]
