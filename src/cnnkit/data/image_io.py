"""Reading images from disk or bytes into one predictable form: uint8 RGB, shape (H, W, 3).

Every failure a user can cause (missing file, directory, empty file, not an image, truncated data,
unsupported format, too many pixels) raises :class:`~cnnkit.core.errors.InvalidImageError` naming
the file and the cause. Pillow's global settings are never changed: the pixel limit is checked
locally from the header, before any pixel is decoded.
"""
from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from cnnkit.core.errors import InvalidImageError, no_such_file

__all__ = ["load_image", "to_rgb", "DEFAULT_MAX_PIXELS"]

#: Pillow's own decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS`` as shipped, 89,478,485).
DEFAULT_MAX_PIXELS = 89_478_485

# Leading bytes of formats people try that Pillow cannot read, for a clearer message.
_UNSUPPORTED_MAGIC: tuple[tuple[bytes, int, str], ...] = (
    (b"ftypheic", 4, "HEIC"),
    (b"ftypheix", 4, "HEIC"),
    (b"ftypmif1", 4, "HEIF"),
    (b"ftypavif", 4, "AVIF"),
    (b"%PDF", 0, "PDF"),
    (b"<svg", 0, "SVG"),
    (b"<?xml", 0, "XML/SVG"),
)


def load_image(source: str | os.PathLike[str] | bytes, *, max_pixels: int | None = None) -> np.ndarray:
    """Read an image file (or its bytes) as RGB.

    EXIF orientation is applied. Grey (``L``, ``1``), grey+alpha (``LA``), ``RGBA``, palette (``P``,
    with or without transparency), ``CMYK``, 16-bit (``I;16*``), 32-bit integer (``I``) and float
    (``F``) images are converted to 8-bit RGB; transparent pixels are composited over white. Animated
    images give their first frame.

    Args:
        source: a path, or the encoded bytes of an image.
        max_pixels: refuse images with more pixels than this (checked from the header, before
            decoding). ``None`` means Pillow's default limit, ``DEFAULT_MAX_PIXELS``. Pillow's own
            bomb check still applies, so a larger value cannot raise its limit.

    Returns:
        the image, uint8, shape (H, W, 3).

    Raises:
        InvalidImageError: naming the file and the cause.
    """
    limit = DEFAULT_MAX_PIXELS if max_pixels is None else int(max_pixels)
    name, data = _read_bytes(source)
    with warnings.catch_warnings():
        # A bomb warning from Pillow is an error here; the filter is local to this block.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise InvalidImageError(name, f"too many pixels, refused as a decompression bomb: {exc}") from None
        except UnidentifiedImageError:
            raise InvalidImageError(name, _not_an_image_reason(data)) from None
        except (OSError, ValueError, SyntaxError) as exc:  # corrupt headers
            raise InvalidImageError(name, f"cannot read image header: {exc}") from None
        width, height = img.size
        if width * height > limit:
            raise InvalidImageError(
                name,
                f"too many pixels: {width}x{height} = {width * height} pixels, more than the limit of "
                f"{limit} pixels (decompression bomb protection)",
            )
        if width == 0 or height == 0:
            raise InvalidImageError(name, f"image has no pixels ({width}x{height})")
        try:
            img.load()
            img = ImageOps.exif_transpose(img) or img
            return to_rgb(img)
        except (OSError, ValueError, SyntaxError, EOFError) as exc:
            reason = str(exc) or type(exc).__name__
            if "truncated" in reason or isinstance(exc, EOFError):
                raise InvalidImageError(name, f"truncated or corrupt image data ({reason})") from None
            raise InvalidImageError(name, f"cannot decode {img.format or 'image'}: {reason}") from None


def _read_bytes(source: str | os.PathLike[str] | bytes) -> tuple[str, bytes]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if not data:
            raise InvalidImageError("<bytes>", "empty data")
        return "<bytes>", data
    path = Path(os.fspath(source))
    if not path.exists():
        raise no_such_file(path)
    if path.is_dir():
        raise InvalidImageError(path, "is a directory, not an image file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidImageError(path, f"cannot read file: {exc.strerror or exc}") from None
    if not data:
        raise InvalidImageError(path, "empty file (0 bytes)")
    return str(path), data


def _not_an_image_reason(data: bytes) -> str:
    for magic, offset, fmt in _UNSUPPORTED_MAGIC:
        if data[offset: offset + len(magic)] == magic:
            return f"unsupported image format {fmt} (Pillow cannot decode it)"
    head = data[:512]
    if head and all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        return "not an image (the file is text)"
    return "not an image, or an image format Pillow cannot read"


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
