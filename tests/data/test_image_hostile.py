"""load_image on hostile input (issue 14, items 1, 3 and 7): a format outside the allow-list, a
FIFO, a device, a bomb header under Pillow's limit and noisy decoders each give one typed error or
one warning naming the file; no other exception escapes."""
from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from PIL import Image

from cnnkit.core.errors import ImageDecodeWarning, ImageTooLargeError, InvalidImageError, UnsupportedImageError
from cnnkit.data.image_io import load_image, read_image_file

REPO = Path(__file__).resolve().parents[2]
PHOTO = REPO / "data" / "orl" / "s1" / "1.pgm"


def _encoded(fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    Image.open(PHOTO).convert("RGB").save(buf, format=fmt, **kw)
    return buf.getvalue()


def _dds_unknown_pixel_format() -> bytes:
    """A DDS file whose pixel-format flags are 1 (alpha only): Pillow's DDS reader raises
    NotImplementedError, which the old load_image let escape."""
    b = bytearray(_encoded("DDS"))
    b[80] = 1
    return bytes(b)


@pytest.mark.parametrize("kind", ["DDS", "AVIF", "EPS", "SGI", "TGA", "PCX", "ICO", "IM", "QOI"])
def test_format_outside_allow_list_is_unsupported_whatever_its_name(tmp_path: Path, kind: str) -> None:
    data = _dds_unknown_pixel_format() if kind == "DDS" else _encoded(kind)
    p = tmp_path / "photo.jpg"  # the name says JPEG; the bytes decide
    p.write_bytes(data)
    with pytest.raises(UnsupportedImageError) as info:
        load_image(p)
    assert str(info.value).startswith(f"{p}: ") and "cnnkit reads JPEG, PNG, WebP" in str(info.value)


@pytest.mark.parametrize(("fmt", "name"), [("JPEG", "a.png"), ("PNG", "a.jpg"), ("WEBP", "a.bmp"), ("BMP", "a"),
                                           ("GIF", "a.tif"), ("TIFF", "a.gif"), ("PPM", "a.jpeg")])
def test_every_allowed_format_decodes_whatever_its_name(tmp_path: Path, fmt: str, name: str) -> None:
    p = tmp_path / name
    p.write_bytes(_encoded(fmt))
    out = load_image(p)
    assert out.shape == (112, 92, 3) and out.dtype.name == "uint8"


def test_pgm_decodes() -> None:
    assert load_image(PHOTO).shape == (112, 92, 3)


def test_fifo_refused_without_hanging(tmp_path: Path) -> None:
    fifo = tmp_path / "camera.jpg"
    os.mkfifo(fifo)
    code = ("import sys; from cnnkit.data.image_io import load_image\n"
            "try:\n    load_image(sys.argv[1])\nexcept Exception as e:\n    print(type(e).__name__, e)\n")
    # a hang guard, not a timing assertion: the old code blocked in open() forever
    out = subprocess.run([sys.executable, "-c", code, str(fifo)], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    assert out.stdout.strip() == f"InvalidImageError {fifo}: is a FIFO (named pipe), not a regular file"


def test_device_refused_before_reading(tmp_path: Path) -> None:
    link = tmp_path / "zero.jpg"
    link.symlink_to("/dev/zero")
    with pytest.raises(InvalidImageError, match=r"zero\.jpg: is a character device, not a regular file"):
        load_image(link)


@pytest.mark.parametrize(("make", "reason"), [
    (lambda p: p.symlink_to(p), "symbolic link loop"),
    (lambda p: p.symlink_to(p.parent / "gone.jpg"), "dangling symbolic link"),
    (lambda p: p.mkdir(), "is a directory, not an image file"),
])
def test_links_and_folders_named_as_photos(tmp_path: Path, make, reason: str) -> None:
    p = tmp_path / "x.jpg"
    make(p)
    with pytest.raises(InvalidImageError) as info:
        load_image(p)
    assert str(info.value) == f"{p}: {reason}"


def test_read_bound(tmp_path: Path) -> None:
    p = tmp_path / "big.jpg"
    p.write_bytes(_encoded("JPEG") + b"\0" * 5000)
    with pytest.raises(ImageTooLargeError, match=r"more than the read limit of 4096 bytes"):
        read_image_file(p, max_bytes=4096)


def _gif_screen(width: int, height: int) -> bytes:
    """A tiny GIF whose logical screen is width x height with a 1x1 frame (the 32 KB GIF of the
    issue decoded a 9000x9000 canvas, 1.42 GB peak)."""
    head = b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\0\0\0\xff\xff\xff"
    frame = b"," + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02\x02\x44\x01\x00"
    return head + frame + b";"


def _jpeg_sof(width: int, height: int) -> bytes:
    """A real JPEG with its SOF0 dimensions rewritten (the 6.9 KB JPEG of the issue, 1.02 GB peak)."""
    b = bytearray(_encoded("JPEG"))
    i = b.index(b"\xff\xc0")
    b[i + 5:i + 9] = struct.pack(">HH", height, width)
    return bytes(b)


@pytest.mark.parametrize("make", [_gif_screen, _jpeg_sof])
def test_bomb_under_pillows_limit_refused_from_header(tmp_path: Path, make) -> None:
    p = tmp_path / "bomb.img"
    p.write_bytes(make(9000, 9000))
    assert p.stat().st_size < 40_000 and 9000 * 9000 < Image.MAX_IMAGE_PIXELS
    with pytest.raises(ImageTooLargeError, match=r"9000x9000 = 81000000 pixels, more than the limit of 40000000"):
        load_image(p)


def test_decode_memory_budget_names_mode_and_bytes(tmp_path: Path) -> None:
    p = tmp_path / "a.png"
    Image.open(PHOTO).convert("RGBA").save(p)
    with pytest.raises(ImageTooLargeError, match=r"decoding 92x112 RGBA needs 41216 bytes, more than the limit of 40000"):
        load_image(p, max_decode_bytes=40_000)


def _noisy_tiff() -> bytes:
    """A TIFF whose ImageLength tag (257) holds 2 SHORTs instead of 1: Pillow warns, then decodes it."""
    b = bytearray(_encoded("TIFF"))
    ifd = struct.unpack("<I", b[4:8])[0]
    for k in range(struct.unpack("<H", b[ifd:ifd + 2])[0]):
        e = ifd + 2 + 12 * k
        if struct.unpack("<H", b[e:e + 2])[0] == 257:  # ImageLength: count 2 -> Pillow warns, keeps the first
            b[e + 4:e + 8] = struct.pack("<I", 2)
            b[e + 2:e + 4] = struct.pack("<H", 3)
    return bytes(b)


def test_decoder_warnings_become_one_line_naming_the_file(tmp_path: Path) -> None:
    p = tmp_path / "noisy.tif"
    p.write_bytes(_noisy_tiff())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_image(p)
    assert [w.category for w in caught] == [ImageDecodeWarning]
    assert str(caught[0].message).startswith(f"{p}: decoder warning: ")


def test_undecodable_path_shown_escaped(tmp_path: Path) -> None:
    raw = os.fsencode(tmp_path) + b"/caf\xe9\n.jpg"
    with open(raw, "wb") as f:
        f.write(b"not an image at all")
    with pytest.raises(UnsupportedImageError) as info:
        load_image(os.fsdecode(raw))
    msg = str(info.value)
    assert "caf\\xe9\\n.jpg: " in msg and "\n" not in msg
    msg.encode("utf-8")  # printable: no lone surrogate left


def test_photo_behind_a_folder_without_search_permission(shared_dir: Path, as_nobody) -> None:
    folder = shared_dir / "private"
    folder.mkdir()
    (folder / "a.pgm").write_bytes(PHOTO.read_bytes())
    folder.chmod(0o666)  # readable listing, no search (x) permission
    code = """
        import sys
        from cnnkit.core.errors import InvalidImageError
        from cnnkit.data.folders import walk_person_folders
        from cnnkit.data.image_io import load_image
        try:
            load_image(sys.argv[1] + "/private/a.pgm")
        except InvalidImageError as e:
            print(e)
        print([(e.path, e.reason, e.error) for e in walk_person_folders(sys.argv[1]).skipped])
    """
    out = as_nobody(code, str(shared_dir))
    assert "Traceback" not in out.stderr, out.stderr
    first, second = out.stdout.splitlines()
    assert first == f"{folder}/a.pgm: permission denied"
    assert "permission denied" in second and "True" in second
