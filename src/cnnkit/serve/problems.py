"""Errors as RFC 9457 ``application/problem+json``: ``{type, title, status, detail, code}``.

:data:`ERRORS` is the one table from cnnkit's typed errors to an HTTP status and a stable ``code``;
every handler of the app goes through :func:`problem_for`. Nothing the client sends can produce a
traceback in a response body: unexpected exceptions become a 500 ``internal-error`` whose detail
says only that it was logged.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cnnkit.core import errors as E
from cnnkit.serve.galleries import BadGalleryName, GalleryExists, GalleryNotFound
from cnnkit.serve.unknown import StaleUnknownFaces

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://cnnkit.dev/problems/"

#: code -> (status, title). Codes are stable: clients may switch on them.
CODES: dict[str, tuple[int, str]] = {
    "bad-request": (400, "Malformed request"),
    "unauthorized": (401, "Missing, wrong or revoked API key"),
    "forbidden": (403, "This key may not do that"),
    "not-found": (404, "No such resource"),
    "gallery-not-found": (404, "No such gallery"),
    "subject-not-found": (404, "No such subject"),
    "method-not-allowed": (405, "Method not allowed"),
    "gallery-exists": (409, "The gallery already exists"),
    "encoder-mismatch": (409, "Embeddings of another encoder"),
    "photo-enrolled": (409, "This photo is enrolled as another subject"),
    "unknown-changed": (409, "Those unknown faces were named, discarded or purged since they were listed"),
    "image-too-large": (413, "Image or upload too large"),
    "unsupported-image": (415, "Not an image of a supported format"),
    "unsupported-media-type": (415, "Wrong content type"),
    "invalid-image": (422, "Corrupt or truncated image"),
    "no-face": (422, "No face found"),
    "multiple-faces": (422, "Several faces found where one is required"),
    "invalid-request": (422, "Invalid or missing field"),
    "rate-limited": (429, "Too many requests in flight"),
    "internal-error": (500, "Internal error"),
    "not-ready": (503, "Not ready"),
    "store-unavailable": (503, "The gallery store cannot be reached"),
}


@dataclass
class Problem(Exception):
    """Raised anywhere in the app to answer with a problem document."""
    code: str
    detail: str
    headers: dict[str, str] | None = None

    @property
    def status(self) -> int:
        return CODES[self.code][0]

    def body(self) -> dict[str, Any]:
        status, title = CODES[self.code]
        return {"type": TYPE_BASE + self.code, "title": title, "status": status, "detail": self.detail,
                "code": self.code}


def _image_code(exc: E.InvalidImageError) -> str:
    """By type: issue 14's load_image says which kind of bad image it is."""
    if isinstance(exc, E.UnsupportedImageError):
        return "unsupported-image"
    if isinstance(exc, E.ImageTooLargeError):
        return "image-too-large"
    if exc.reason.startswith(("truncated", "cannot decode", "cannot read", "image has no pixels")):
        return "invalid-image"  # a supported format whose bytes are corrupt
    return "unsupported-image"  # empty data


#: cnnkit error type -> code (or a function of the error); the first isinstance match wins.
ERRORS: tuple[tuple[type[BaseException], Any], ...] = (
    (GalleryNotFound, "gallery-not-found"),
    (GalleryExists, "gallery-exists"),
    (BadGalleryName, "invalid-request"),
    (E.InvalidImageError, _image_code),
    (E.NoFaceFoundError, "no-face"),
    (E.MultipleFacesError, "multiple-faces"),
    (E.EncoderMismatchError, "encoder-mismatch"),
    (E.PhotoEnrolledError, "photo-enrolled"),
    (StaleUnknownFaces, "unknown-changed"),
    (E.InvalidNameError, "invalid-request"),
    (E.UnknownNameError, "subject-not-found"),
    (E.ShapeError, "invalid-request"),
    (E.StoreError, "store-unavailable"),
)


def _strip_path(message: str) -> str:
    """cnnkit messages name the file; an upload has none, and server paths are not the client's business."""
    return message.replace("<bytes>: ", "")


def problem_for(exc: BaseException) -> Problem:
    """The problem document for any exception (``internal-error`` for the unexpected)."""
    if isinstance(exc, Problem):
        return exc
    for kind, code in ERRORS:
        if isinstance(exc, kind):
            code = code(exc) if callable(code) else code
            detail = exc.reason if isinstance(exc, E.InvalidImageError) else _strip_path(str(exc))
            if isinstance(exc, E.MultipleFacesError):
                detail = f"{exc.count} faces found, exactly one is required (send face=largest to take the main one)"
            if isinstance(exc, E.StoreError) and not isinstance(exc, E.EncoderMismatchError):
                detail = "the gallery store cannot be read or written; see the server log"
            return Problem(code, detail)
    return Problem("internal-error", "an unexpected error; it was logged on the server")
