"""Typed errors. Every error a user can cause is a :class:`CnnkitError`; the CLI prints its message
on one line and exits with status 2. Messages name the file (or value) and the cause."""
from __future__ import annotations

import os


def printable(text: str) -> str:
    """``text`` safe to print on one line: undecodable bytes kept by ``os.fsdecode`` (lone
    surrogates) shown as ``\\xNN``, control characters (newline, NUL, escape...) as ``\\n``,
    ``\\x00``, ``\\x1b``; everything else, emoji and right-to-left text included, unchanged."""
    out = []
    for ch in text:
        o = ord(ch)
        if 0xDC80 <= o <= 0xDCFF:  # surrogateescape: the original byte
            out.append(f"\\x{o - 0xDC00:02x}")
        elif 0xD800 <= o <= 0xDFFF:
            out.append(f"\\u{o:04x}")
        elif o < 32 or 0x7F <= o < 0xA0 or o in (0x2028, 0x2029):
            out.append(ch.encode("unicode_escape").decode("ascii"))
        else:
            out.append(ch)
    return "".join(out)


class CnnkitError(Exception):
    """Base class of every error cnnkit raises on purpose."""


class ShapeError(CnnkitError, ValueError):
    """A tensor or array does not have the documented shape."""


class UnknownNameError(CnnkitError, ValueError):
    """A name (encoder, layer, task, person) is not known; the message lists the valid ones."""


class InvalidNameError(CnnkitError, ValueError):
    """A person's name that cannot be stored: empty, with control characters (NUL, newline...),
    or with bytes that are not valid UTF-8."""


class InvalidImageError(CnnkitError):
    """A file cannot be used as an image: missing, empty, truncated, not an image, too large."""

    def __init__(self, path: str | os.PathLike[str] | None, reason: str) -> None:
        self.path = None if path is None else os.fspath(path)
        self.reason = reason
        super().__init__(f"{printable(self.path)}: {reason}" if self.path else reason)


class UnsupportedImageError(InvalidImageError):
    """The bytes are of a format outside the allow-list (JPEG, PNG, WebP, BMP, GIF, TIFF, PGM/PPM)."""


class ImageTooLargeError(InvalidImageError):
    """The header declares more pixels (or more decode memory) than the stated limit, or the file
    is larger than the read bound; refused before any pixel is decoded."""


class ImageDecodeWarning(UserWarning):
    """The decoder complained about a file it could still read; one warning per file, naming it."""


def no_such_file(path: str | os.PathLike[str]) -> InvalidImageError:
    """The one error for a photo path that does not exist: ``PATH: no such file``."""
    return InvalidImageError(path, "no such file")


class NoFaceFoundError(CnnkitError):
    """No face was found where one was required."""

    def __init__(self, path: str | os.PathLike[str] | None, reason: str = "no face found") -> None:
        self.path = None if path is None else os.fspath(path)
        super().__init__(f"{printable(self.path)}: {reason}" if self.path else reason)


class MultipleFacesError(CnnkitError):
    """Several faces were found where exactly one was required."""

    def __init__(self, path: str | os.PathLike[str] | None, count: int) -> None:
        self.path = None if path is None else os.fspath(path)
        self.count = count
        msg = f"{count} faces found, exactly one is required (use --largest to take the largest)"
        super().__init__(f"{printable(self.path)}: {msg}" if self.path else msg)


class StoreError(CnnkitError):
    """The gallery cannot be opened, read or written."""


class RemovalPendingError(StoreError):
    """A removal is committed, but other connections still hold the gallery, so the removed bytes
    are still in its files; nothing is reported removed until they are gone. Retry when they close."""

    def __init__(self, message: str, *, readers: int | None = None) -> None:
        self.readers = readers
        super().__init__(message)


class EncoderMismatchError(StoreError):
    """Embeddings of different encoders (name, version or weights) would be mixed in one gallery."""


class PhotoEnrolledError(CnnkitError):
    """The photo (same bytes) is already enrolled as another person; the message names them."""

    def __init__(self, message: str, *, owner: str) -> None:
        super().__init__(message)
        self.owner = owner


class OutputExistsError(CnnkitError, FileExistsError):
    """The output path already holds a result that would be overwritten (``--force`` allows it)."""


class OutputPathError(CnnkitError):
    """An output cannot be written where it was asked to be (its folder does not exist)."""


class WeightsError(CnnkitError):
    """A weights file is missing, corrupt, of the wrong shape or fails its checksum."""


class ConfigError(CnnkitError, ValueError):
    """A setting or option has a value the component does not accept; the message names it."""


class DuplicateNameError(CnnkitError, ValueError):
    """A second component was registered under a name already taken."""
