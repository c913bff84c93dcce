"""load_image: bad inputs give a typed error naming the file; every mode ends up uint8 RGB."""
from __future__ import annotations

import io
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from cnnkit.core.errors import CnnkitError, InvalidImageError
from cnnkit.data.image_io import DEFAULT_MAX_PIXELS, load_image


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return np.ascontiguousarray(skdata.astronaut()[::4, ::4])  # (128, 128, 3) uint8


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _huge_png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height pixels, with almost no pixel data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 16)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


# -- bad inputs -----------------------------------------------------------------------------

def _error(path) -> InvalidImageError:
    with pytest.raises(InvalidImageError) as info:
        load_image(path)
    assert isinstance(info.value, CnnkitError)
    return info.value


def test_missing_file(tmp_path: Path) -> None:
    err = _error(tmp_path / "nobody.jpg")
    assert err.path == str(tmp_path / "nobody.jpg") and "no such file" in str(err)


def test_directory(tmp_path: Path) -> None:
    assert "is a directory" in str(_error(tmp_path))


def test_empty_file(tmp_path: Path) -> None:
    p = tmp_path / "empty.jpg"
    p.write_bytes(b"")
    err = _error(p)
    assert str(p) in str(err) and "empty file" in str(err)


def test_text_named_jpg(tmp_path: Path) -> None:
    p = tmp_path / "notes.jpg"
    p.write_text("this is not a photo\n" * 10)
    err = _error(p)
    assert str(p) in str(err) and "not an image" in str(err) and "text" in str(err)


def test_truncated_jpeg(tmp_path: Path, astronaut: np.ndarray) -> None:
    buf = io.BytesIO()
    Image.fromarray(astronaut).save(buf, format="JPEG", quality=90)
    p = tmp_path / "cut.jpg"
    p.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    err = _error(p)
    assert str(p) in str(err) and "truncated" in str(err)


def test_huge_png_refused_from_header_fast(tmp_path: Path) -> None:
    p = tmp_path / "bomb.png"
    p.write_bytes(_huge_png_header(30000, 30000))
    assert p.stat().st_size < 200
    t0 = time.perf_counter()
    err = _error(p)
    elapsed = time.perf_counter() - t0
    msg = str(err)
    assert str(p) in msg and "too many pixels" in msg and "900000000" in msg
    assert "178956970" in msg or str(DEFAULT_MAX_PIXELS) in msg  # Pillow states its limit
    assert elapsed < 1.0  # refused from the header: nothing decoded (not a timing benchmark)


def test_own_pixel_limit_names_it(tmp_path: Path, astronaut: np.ndarray) -> None:
    p = tmp_path / "a.png"
    Image.fromarray(astronaut).save(p)
    with pytest.raises(InvalidImageError, match=r"128x128 = 16384 pixels, more than the limit of 10000"):
        load_image(p, max_pixels=10_000)


def test_pillow_globals_untouched(tmp_path: Path) -> None:
    p = tmp_path / "bomb.png"
    p.write_bytes(_huge_png_header(30000, 30000))
    before = Image.MAX_IMAGE_PIXELS
    with pytest.raises(InvalidImageError):
        load_image(p)
    assert Image.MAX_IMAGE_PIXELS == before


def test_unsupported_format(tmp_path: Path) -> None:
    p = tmp_path / "photo.heic"
    p.write_bytes(b"\x00\x00\x00\x18ftypheic" + b"\x00" * 64)
    err = _error(p)
    assert "unsupported image format HEIC" in str(err)


def test_bytes_input(astronaut: np.ndarray) -> None:
    buf = io.BytesIO()
    Image.fromarray(astronaut).save(buf, format="PNG")
    np.testing.assert_array_equal(load_image(buf.getvalue()), astronaut)
    with pytest.raises(InvalidImageError, match="<bytes>: empty data"):
        load_image(b"")


# -- modes ----------------------------------------------------------------------------------

def _save(img: Image.Image, path: Path, **kw) -> Path:
    img.save(path, **kw)
    return path


def test_rgb_png_is_lossless(tmp_path: Path, astronaut: np.ndarray) -> None:
    out = load_image(_save(Image.fromarray(astronaut), tmp_path / "a.png"))
    assert out.dtype == np.uint8 and out.shape == (128, 128, 3)
    np.testing.assert_array_equal(out, astronaut)


@pytest.mark.parametrize("mode", ["L", "1", "P", "CMYK", "LA", "RGBA"])
def test_mode_to_rgb(tmp_path: Path, astronaut: np.ndarray, mode: str) -> None:
    src = Image.fromarray(astronaut).convert(mode)
    fmt = {"CMYK": ("cmyk.jpg", "JPEG"), "1": ("bw.png", "PNG")}.get(mode, (f"{mode}.png", "PNG"))
    if mode == "CMYK":
        src.save(tmp_path / fmt[0], format="JPEG", quality=98)
    else:
        src.save(tmp_path / fmt[0])
    out = load_image(tmp_path / fmt[0])
    assert out.dtype == np.uint8 and out.shape == (128, 128, 3)
    expected = np.asarray(src.convert("RGB"), dtype=np.int16)
    tol = 12 if mode == "CMYK" else 0  # JPEG is lossy
    assert np.abs(out.astype(np.int16) - expected).mean() <= tol
    if mode in ("L", "1", "LA"):
        assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()


def test_alpha_composited_over_white(tmp_path: Path, astronaut: np.ndarray) -> None:
    rgba = np.dstack([astronaut, np.full(astronaut.shape[:2], 255, np.uint8)])
    rgba[:64, :, 3] = 0  # top half fully transparent
    rgba[64:, :, 3] = 128  # bottom half half transparent
    out = load_image(_save(Image.fromarray(rgba, "RGBA"), tmp_path / "a.png")).astype(np.int16)
    assert (out[:64] == 255).all()
    expected = (astronaut[64:].astype(np.float64) * 128 + 255 * 127) / 255
    assert np.abs(out[64:] - expected).max() <= 1


def test_palette_with_transparency(tmp_path: Path) -> None:
    img = Image.new("P", (8, 8), 0)
    img.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    img.paste(1, (0, 0, 4, 8))
    img.info["transparency"] = 1
    out = load_image(_save(img, tmp_path / "p.png", transparency=1))
    assert (out[:, :4] == 255).all()  # transparent blue -> white
    assert (out[:, 4:] == [255, 0, 0]).all()


def test_sixteen_bit_grey(tmp_path: Path) -> None:
    ramp = (np.arange(64 * 64, dtype=np.uint32).reshape(64, 64) * 16).astype(np.uint16)
    p = tmp_path / "g16.png"
    Image.fromarray(ramp).save(p)
    assert Image.open(p).mode.startswith("I")
    out = load_image(p)
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[..., 0], np.clip(np.rint(ramp / 257.0), 0, 255).astype(np.uint8))


@pytest.mark.parametrize(("mode", "values"), [("I", np.arange(0, 64 * 64 * 1000, 1000)), ("F", np.linspace(0, 1, 64 * 64))])
def test_int32_and_float_images(tmp_path: Path, mode: str, values: np.ndarray) -> None:
    arr = values.reshape(64, 64).astype(np.int32 if mode == "I" else np.float32)
    p = tmp_path / f"{mode}.tif"
    Image.fromarray(arr, mode).save(p)
    out = load_image(p)
    assert out.dtype == np.uint8 and out.shape == (64, 64, 3)
    assert out[0, 0, 0] == 0 and out[-1, -1, 0] == 255  # full range kept, monotone
    assert (np.diff(out[..., 0].ravel().astype(int)) >= 0).all()


# EXIF orientation tag -> the transpose that undoes it
_EXIF_UNDO = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation(tmp_path: Path, orientation: int) -> None:
    upright = Image.fromarray(np.ascontiguousarray(skdata.astronaut()[::4, ::8]))  # 128 x 64, not square
    undo = _EXIF_UNDO[orientation]
    # store the pixels as a camera would (so that applying the tag gives the upright image)
    inverse = {Image.Transpose.ROTATE_270: Image.Transpose.ROTATE_90,
               Image.Transpose.ROTATE_90: Image.Transpose.ROTATE_270}.get(undo, undo)
    stored = upright if inverse is None else upright.transpose(inverse)
    exif = Image.Exif()
    exif[0x0112] = orientation
    p = tmp_path / f"o{orientation}.png"
    stored.save(p, exif=exif.tobytes())
    out = load_image(p)
    np.testing.assert_array_equal(out, np.asarray(upright))
