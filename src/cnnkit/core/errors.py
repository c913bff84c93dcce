"""Typed errors. Every error a user can cause is a :class:`CnnkitError`; the CLI prints its message
on one line and exits with status 2. Messages name the file (or value) and the cause."""
from __future__ import annotations

import os


class CnnkitError(Exception):
    """Base class of every error cnnkit raises on purpose."""


class ShapeError(CnnkitError, ValueError):
    """A tensor or array does not have the documented shape."""


class UnknownNameError(CnnkitError, ValueError):
    """A name (encoder, layer, task, person) is not known; the message lists the valid ones."""


class InvalidImageError(CnnkitError):
    """A file cannot be used as an image: missing, empty, truncated, not an image, too large."""

    def __init__(self, path: str | os.PathLike[str] | None, reason: str) -> None:
        self.path = None if path is None else os.fspath(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}" if self.path else reason)


def no_such_file(path: str | os.PathLike[str]) -> InvalidImageError:
    """The one error for a photo path that does not exist: ``PATH: no such file``."""
    return InvalidImageError(path, "no such file")


class NoFaceFoundError(CnnkitError):
    """No face was found where one was required."""

    def __init__(self, path: str | os.PathLike[str] | None, reason: str = "no face found") -> None:
        self.path = None if path is None else os.fspath(path)
        super().__init__(f"{self.path}: {reason}" if self.path else reason)


class MultipleFacesError(CnnkitError):
    """Several faces were found where exactly one was required."""

    def __init__(self, path: str | os.PathLike[str] | None, count: int) -> None:
        self.path = None if path is None else os.fspath(path)
        self.count = count
        msg = f"{count} faces found, exactly one is required (use --largest to take the largest)"
        super().__init__(f"{self.path}: {msg}" if self.path else msg)


class StoreError(CnnkitError):
    """The gallery cannot be opened, read or written."""


class EncoderMismatchError(StoreError):
    """Encodings of different encoders (name, version or weights) would be mixed in one gallery."""


class OutputExistsError(CnnkitError, FileExistsError):
    """The output path already holds a result that would be overwritten (``--force`` allows it)."""


class OutputPathError(CnnkitError):
    """An output cannot be written where it was asked to be (its folder does not exist)."""


class WeightsError(CnnkitError):
    """A weights file is missing, corrupt, of the wrong shape or fails its checksum."""
