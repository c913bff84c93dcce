"""Reading images from disk or bytes into one predictable form: uint8 RGB, shape (H, W, 3).

Every failure a user can cause raises :class:`~cnnkit.core.errors.InvalidImageError` (or its
subclasses :class:`~cnnkit.core.errors.UnsupportedImageError` and
:class:`~cnnkit.core.errors.ImageTooLargeError`) naming the file and the cause; no other exception
leaves :func:`load_image`. In order:

1. Only regular files are read: a FIFO, device, socket or directory is refused before a byte is
   read (so ``/dev/zero`` or a named pipe never hangs), and at most ``max_file_bytes`` are read.
2. The format is recognised from the first bytes, whatever the file is called, and only the
   formats of :data:`ALLOWED_FORMATS` reach Pillow, each only through its own plugin (an EPS,
   PSD, DDS or FITS file named ``.jpg`` is "unsupported", never handed to its decoder).
3. The header's width x height and the decode memory (width x height x bytes per pixel of the
   decoded first frame, at least 3 for the RGB result) are checked against ``max_pixels`` and
   ``max_decode_bytes`` before any pixel is decoded; both defaults are below Pillow's bomb limit.
4. Any exception of the decoder becomes an ``InvalidImageError``; decoder warnings become one
   :class:`~cnnkit.core.errors.ImageDecodeWarning` naming the file.

Pillow's global settings are never changed.
"""
from __future__ import annotations

import contextlib
import errno
import io
import logging
import os
import stat
import sys
import tempfile
import warnings
from typing import Iterator

import numpy as np
from PIL import Image, ImageOps

from cnnkit.core.errors import (
    ImageDecodeWarning,
    ImageTooLargeError,
    InvalidImageError,
    UnsupportedImageError,
    no_such_file,
    printable,
)

__all__ = ["load_image", "read_image_file", "sniff_format", "to_rgb", "ALLOWED_FORMATS", "DEFAULT_MAX_PIXELS",
           "DEFAULT_MAX_DECODE_BYTES", "DEFAULT_MAX_FILE_BYTES"]

#: The formats load_image decodes (Pillow format names). PPM is Pillow's reader of PGM and PPM.
ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF", "PPM")

#: Pixel limit checked from the header: 40 MP (Pillow's own bomb limit is 89,478,485 pixels).
DEFAULT_MAX_PIXELS = 40_000_000
#: Decode memory limit checked from the header: 40 MP of 8-bit RGB.
DEFAULT_MAX_DECODE_BYTES = 3 * DEFAULT_MAX_PIXELS
#: Read bound: larger files are refused from their size, unread.
DEFAULT_MAX_FILE_BYTES = 128 * 2**20

# Leading bytes (offset, magic) of every allowed format.
_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\xff\xd8\xff", "JPEG"),
    (0, b"\x89PNG\r\n\x1a\n", "PNG"),
    (0, b"GIF87a", "GIF"),
    (0, b"GIF89a", "GIF"),
    (0, b"BM", "BMP"),
    (0, b"II*\x00", "TIFF"),
    (0, b"MM\x00*", "TIFF"),
    (0, b"II+\x00", "TIFF"),
    (0, b"MM\x00+", "TIFF"),
    (0, b"P2", "PPM"),
    (0, b"P3", "PPM"),
    (0, b"P5", "PPM"),
    (0, b"P6", "PPM"),
)

# Leading bytes of formats people try that load_image does not read, for a clearer message.
_UNSUPPORTED_MAGIC: tuple[tuple[bytes, int, str], ...] = (
    (b"ftypheic", 4, "HEIC"),
    (b"ftypheix", 4, "HEIC"),
    (b"ftypmif1", 4, "HEIF"),
    (b"ftypavif", 4, "AVIF"),
    (b"%PDF", 0, "PDF"),
    (b"%!PS", 0, "PostScript/EPS"),
    (b"\xc5\xd0\xd3\xc6", 0, "EPS"),
    (b"8BPS", 0, "PSD"),
    (b"DDS ", 0, "DDS"),
    (b"SIMPLE  =", 0, "FITS"),
    (b"\x00\x00\x00\x0cjP  ", 0, "JPEG 2000"),
    (b"\xff\x4f\xff\x51", 0, "JPEG 2000"),
    (b"qoif", 0, "QOI"),
    (b"<svg", 0, "SVG"),
    (b"<?xml", 0, "XML/SVG"),
)

# bytes per pixel of a decoded frame, by Pillow mode
_BYTES_PER_PIXEL = {"1": 1, "L": 1, "P": 1, "LA": 2, "La": 2, "PA": 2, "RGB": 3, "YCbCr": 3, "LAB": 3, "HSV": 3,
                    "RGBA": 4, "RGBa": 4, "RGBX": 4, "CMYK": 4, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2,
                    "I": 4, "F": 4}


def sniff_format(head: bytes) -> str | None:
    """The allowed format (a name of :data:`ALLOWED_FORMATS`) the leading bytes announce, or None."""
    for offset, magic, fmt in _MAGIC:
        if head[offset: offset + len(magic)] == magic:
            return fmt
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    return None


def load_image(source: str | os.PathLike[str] | bytes, *, max_pixels: int | None = None,
               max_decode_bytes: int | None = None, max_file_bytes: int | None = None) -> np.ndarray:
    """Read an image file (or its bytes) as RGB.

    EXIF orientation is applied. Grey (``L``, ``1``), grey+alpha (``LA``), ``RGBA``, palette (``P``,
    with or without transparency), ``CMYK``, 16-bit (``I;16*``), 32-bit integer (``I``) and float
    (``F``) images are converted to 8-bit RGB; transparent pixels are composited over white. Animated
    and multi-page images give their first frame.

    Args:
        source: a path, or the encoded bytes of an image.
        max_pixels: refuse images with more pixels than this (from the header, before decoding);
            ``None``: :data:`DEFAULT_MAX_PIXELS`. Pillow's own bomb check still applies, so a
            larger value cannot raise its limit.
        max_decode_bytes: refuse images whose first frame would need more memory than this,
            width x height x max(bytes per pixel of the decoded mode, 3); ``None``:
            :data:`DEFAULT_MAX_DECODE_BYTES`.
        max_file_bytes: refuse files larger than this, unread; ``None``: :data:`DEFAULT_MAX_FILE_BYTES`.

    Returns:
        the image, uint8, shape (H, W, 3).

    Raises:
        UnsupportedImageError: a format outside :data:`ALLOWED_FORMATS`.
        ImageTooLargeError: more pixels, decode memory or file bytes than the limits.
        InvalidImageError: any other reason (missing, not a regular file, unreadable, corrupt).
    """
    limit = DEFAULT_MAX_PIXELS if max_pixels is None else int(max_pixels)
    budget = DEFAULT_MAX_DECODE_BYTES if max_decode_bytes is None else int(max_decode_bytes)
    if isinstance(source, (bytes, bytearray, memoryview)):
        name, data = "<bytes>", bytes(source)
        if not data:
            raise InvalidImageError(name, "empty data")
    else:
        name, data = os.fspath(source), read_image_file(source, max_bytes=max_file_bytes)
    fmt = sniff_format(data[:16])
    if fmt is None:
        raise UnsupportedImageError(name, _not_an_image_reason(data))
    with _decoder_messages(capture_stderr=fmt == "TIFF") as caught:
        try:
            img = Image.open(io.BytesIO(data), formats=[fmt])
            width, height = img.size
            mode = img.mode
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageTooLargeError(name, f"too many pixels, refused as a decompression bomb: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - any failure of a decoder is this file's fault
            raise InvalidImageError(name, f"cannot read {fmt} header: {_describe(exc)}") from None
        if width * height > limit:
            raise ImageTooLargeError(
                name,
                f"too many pixels: {width}x{height} = {width * height} pixels, more than the limit of "
                f"{limit} pixels (decompression bomb protection)",
            )
        if width <= 0 or height <= 0:
            raise InvalidImageError(name, f"image has no pixels ({width}x{height})")
        need = width * height * max(_BYTES_PER_PIXEL.get(mode, 4), 3)
        if need > budget:
            raise ImageTooLargeError(
                name, f"decoding {width}x{height} {mode} needs {need} bytes, more than the limit of {budget} bytes")
        try:
            img.load()
            img = ImageOps.exif_transpose(img) or img
            rgb = to_rgb(img)
        except Exception as exc:  # noqa: BLE001 - see above
            reason = _describe(exc)
            if "truncated" in reason or isinstance(exc, EOFError):
                raise InvalidImageError(name, f"truncated or corrupt image data ({reason})") from None
            raise InvalidImageError(name, f"cannot decode {fmt}: {reason}") from None
    if caught:
        more = f" (and {len(caught) - 1} more)" if len(caught) > 1 else ""
        warnings.warn(f"{printable(name)}: decoder warning: {caught[0]}{more}", ImageDecodeWarning, stacklevel=2)
    return rgb


@contextlib.contextmanager
def _fd2_lines(enabled: bool) -> Iterator[list[str]]:
    lines: list[str] = []
    if not enabled:
        yield lines
        return
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all: nothing to capture
        yield lines
        return
    with tempfile.TemporaryFile() as tmp:
        try:
            sys.stderr.flush()
        except (AttributeError, OSError, ValueError):
            pass
        os.dup2(tmp.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            lines += [ln for ln in tmp.read(1 << 16).decode("utf-8", "replace").splitlines() if ln.strip()]


class _Collect(logging.Handler):
    def __init__(self, into: list[str]) -> None:
        super().__init__(logging.WARNING)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(record.getMessage())


@contextlib.contextmanager
def _decoder_messages(*, capture_stderr: bool = False) -> Iterator[list[str]]:
    """Collect, as one-line texts, the warnings Pillow's decoders raise and the records they log at
    WARNING or above (which Python would otherwise print, unnamed, on stderr). A bomb warning
    becomes an error. With ``capture_stderr``, what C code (libtiff) writes to file descriptor 2
    meanwhile is collected too; the descriptor is process-wide, so another thread's stderr output
    in that moment lands here as well. Filters, handler and descriptor are restored at the end."""
    messages: list[str] = []
    handler = _Collect(messages)
    pil_logger = logging.getLogger("PIL")
    pil_logger.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught, _fd2_lines(capture_stderr) as c_lines:
            warnings.simplefilter("always")
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            try:
                yield messages
            finally:
                messages[:0] = [str(w.message) for w in caught]
        messages += c_lines
    finally:
        pil_logger.removeHandler(handler)
    messages[:] = [printable(m.strip().splitlines()[0]) if m.strip() else "(empty message)" for m in messages]


def read_image_file(path: str | os.PathLike[str], *, max_bytes: int | None = None) -> bytes:
    """The bytes of a regular file, at most ``max_bytes`` (``None``: :data:`DEFAULT_MAX_FILE_BYTES`).

    A FIFO, device, socket or directory is refused from ``stat`` before it is opened, and again
    from ``fstat`` after a non-blocking open (so a file swapped in between cannot hang the read).

    Raises:
        InvalidImageError: naming the file: missing, dangling or looping link, not a regular file,
            permission denied, empty, or (:class:`ImageTooLargeError`) larger than the bound.
    """
    bound = DEFAULT_MAX_FILE_BYTES if max_bytes is None else int(max_bytes)
    try:
        _check_regular(path, os.stat(path))
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        reason = os_reason(path, exc)
        if reason == "no such file":
            raise no_such_file(path) from None  # the one wording for a missing photo
        raise InvalidImageError(path, reason) from None
    try:
        st = os.fstat(fd)
        _check_regular(path, st)
        if st.st_size > bound:
            raise ImageTooLargeError(path, f"file of {st.st_size} bytes, more than the read limit of {bound} bytes")
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(bound + 1)
    except OSError as exc:
        raise InvalidImageError(path, f"cannot read file: {os_reason(path, exc)}") from None
    finally:
        os.close(fd)
    if len(data) > bound:
        raise ImageTooLargeError(path, f"file grew past the read limit of {bound} bytes while read")
    if not data:
        raise InvalidImageError(path, "empty file (0 bytes)")
    return data


def _check_regular(path: str | os.PathLike[str], st: os.stat_result) -> None:
    reason = not_regular_reason(st)
    if reason is not None:
        raise InvalidImageError(path, reason)


def not_regular_reason(st: os.stat_result) -> str | None:
    """Why a file of this ``stat`` cannot be read as a photo (a folder, FIFO, device, socket), or
    None for a regular file."""
    mode = st.st_mode
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "is a directory, not an image file"
    kind = ("a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a character device" if stat.S_ISCHR(mode)
            else "a block device" if stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "not a regular file")
    return f"is {kind}, not a regular file"


def os_reason(path: str | os.PathLike[str], exc: OSError) -> str:
    """An OSError met while reaching ``path``, in words (link loop, dangling link, permission...)."""
    if exc.errno == errno.ENOENT:
        return "dangling symbolic link" if os.path.islink(path) else "no such file"
    if exc.errno == errno.ELOOP:
        return "symbolic link loop"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if exc.errno == errno.ENOTDIR:
        return "a parent of this path is not a directory"
    if exc.errno == errno.ENAMETOOLONG:
        return "file name too long"
    return exc.strerror or str(exc)


def _describe(exc: BaseException) -> str:
    """One line: the message of an OSError/ValueError/SyntaxError, else the type and its message."""
    lines = str(exc).strip().splitlines()
    text = printable(lines[0]) if lines else ""
    if isinstance(exc, (OSError, ValueError, SyntaxError)) and text:
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _not_an_image_reason(data: bytes) -> str:
    for magic, offset, fmt in _UNSUPPORTED_MAGIC:
        if data[offset: offset + len(magic)] == magic:
            return f"unsupported image format {fmt} (cnnkit reads {', '.join(_format_names())})"
    head = data[:512]
    if head and all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        return "not an image (the file is text)"
    return f"not an image, or an unsupported image format (cnnkit reads {', '.join(_format_names())})"


def _format_names() -> list[str]:
    return ["JPEG", "PNG", "WebP", "BMP", "GIF", "TIFF", "PGM/PPM"]


def to_rgb(img: Image.Image) -> np.ndarray:
    """Convert a loaded Pillow image of any mode to uint8 RGB, shape (H, W, 3).

    Alpha is composited over white. 16-bit and 32-bit integer images are scaled down to 8 bits
    (``I;16*`` by 257, ``I`` by 257 when its values fit 16 bits, else by its own range); float
    images in [0, 1] are multiplied by 255, other float ranges are stretched to [0, 255].
    """
    mode = img.mode
    if mode == "RGB":
        return np.asarray(img, dtype=np.uint8).copy()
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        grey = _high_depth_to_uint8(np.asarray(img), mode)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    elif mode == "P":
        img = img.convert("RGB")
    if img.mode in ("LA", "La", "PA", "RGBA", "RGBa"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()


def _high_depth_to_uint8(arr: np.ndarray, mode: str) -> np.ndarray:
    a = arr.astype(np.float64)
    if mode.startswith("I;16"):
        out = a / 257.0
    elif mode == "I":
        lo, hi = float(a.min()), float(a.max())
        if lo >= 0 and hi <= 255:
            out = a
        elif lo >= 0 and hi <= 65535:
            out = a / 257.0
        else:
            out = (a - lo) * (255.0 / max(hi - lo, 1.0))
    else:  # "F"
        finite = a[np.isfinite(a)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        a = np.nan_to_num(a, nan=lo, posinf=hi, neginf=lo)
        if lo >= 0 and hi <= 1.0:
            out = a * 255.0
        elif lo >= 0 and hi <= 255:
            out = a
        else:
            out = (a - lo) * (255.0 / max(hi - lo, 1e-12))
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
