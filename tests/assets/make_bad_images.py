"""Write a corpus of hostile photo-folder entries, made from the real ORL photos in ``data/orl``.

    python tests/assets/make_bad_images.py OUT_DIR        # prints the counts per kind

``OUT_DIR/<person>/<entry>`` is laid out for ``cnnkit face enroll --folders OUT_DIR``, and
``OUT_DIR/manifest.json`` maps every entry (relative path, as ``os.fsdecode`` gives it) to what it
must give: ``"good"`` (an intact photo of one face: it must be enrolled), ``"error"`` (it must be
reported as an error, with a reason), ``"skip"`` (not a photo: reported as skipped) or ``"any"``
(a byte flip or truncation of a real photo, which may still decode: enrolled or reported, never a
crash). Nothing is downloaded; the same seed gives the same bytes. Kinds:

- good: ORL photos of s1..s10 re-encoded as JPEG, PNG, WebP, BMP, GIF, TIFF, PGM and PPM, some
  under the suffix of another format;
- truncations (12 cut points) and byte flips (20 per format) of those encodings;
- formats outside the allow-list under a ``.jpg`` name (DDS, AVIF, EPS, PSD-like, SGI, TGA, PCX,
  ICO, IM, QOI, SPIDER, JPEG 2000, PDF, XBM, MSP...);
- bomb headers (a 9000x9000 GIF screen, a JPEG SOF of 9000x9000, PNG/TIFF/BMP/WebP/PPM headers of
  huge sizes, a 49 MP PNG of zeros), a GIF whose second frame is huge;
- empty, one byte, random bytes, text, HTML, a ZIP, PNGs with a bad CRC, a PNG of width 0;
- file-system oddities: a FIFO, a socket, links to /dev/zero and /dev/null, a link loop, a
  dangling link, a folder named ``x.jpg``, a hidden file, a README, a file name that is not UTF-8;
  person folders with a newline in the name, with bytes that are not UTF-8, in NFD (the same
  person as its NFC twin), and one without read permission (``"error"`` unless run as root).
"""
from __future__ import annotations

import io
import json
import os
import random
import socket
import struct
import sys
import zlib
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[2]
ORL = REPO / "data" / "orl"
GOOD_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF", "PGM", "PPM")
_SUFFIX = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "BMP": ".bmp", "GIF": ".gif", "TIFF": ".tif",
           "PGM": ".pgm", "PPM": ".ppm"}
OTHER_FORMATS = ("DDS", "AVIF", "EPS", "SGI", "TGA", "PCX", "ICO", "IM", "QOI", "SPIDER", "JPEG2000", "PDF",
                 "XBM", "MSP", "BLP", "ICNS", "DIB")


def encode(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    if fmt == "PGM":
        img.convert("L").save(buf, format="PPM")
    elif fmt == "PPM":
        img.convert("RGB").save(buf, format="PPM")
    elif fmt in ("XBM", "MSP"):
        img.convert("1").save(buf, format=fmt)
    elif fmt == "SPIDER":
        img.convert("F").save(buf, format=fmt)
    elif fmt == "BLP":
        img.convert("P").save(buf, format=fmt)
    else:
        img.convert("RGB").save(buf, format=fmt)
    return buf.getvalue()


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def bomb_headers(jpeg: bytes) -> dict[str, bytes]:
    png = (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0))
           + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64)) + _png_chunk(b"IEND", b""))
    gif = (b"GIF89a" + struct.pack("<HHBBB", 9000, 9000, 0x80, 0, 0) + b"\0\0\0\xff\xff\xff"
           + b"," + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02\x02\x44\x01\x00;")
    sof = bytearray(jpeg)
    i = sof.index(b"\xff\xc0")
    sof[i + 5:i + 9] = struct.pack(">HH", 9000, 9000)
    tiff = b"II*\0" + struct.pack("<I", 8) + struct.pack("<H", 4) + b"".join(
        struct.pack("<HHII", tag, 4, 1, val) for tag, val in ((256, 60000), (257, 60000), (258, 8), (273, 100)))
    bmp = b"BM" + struct.pack("<IHHI", 54, 0, 0, 54) + struct.pack("<IiiHHIIiiII", 40, 50000, 50000, 1, 24, 0, 0,
                                                                   0, 0, 0, 0)
    webp_payload = b"VP8X" + struct.pack("<I", 10) + b"\0\0\0\0" + (16382).to_bytes(3, "little") * 2
    webp = b"RIFF" + struct.pack("<I", 4 + len(webp_payload)) + b"WEBP" + webp_payload
    big = io.BytesIO()
    Image.new("L", (7000, 7000)).save(big, format="PNG")  # 49 MP of zeros, 50 KB compressed
    return {"gif-screen-9000.gif": gif, "jpeg-sof-9000.jpg": bytes(sof), "png-30000.png": png,
            "tiff-60000.tif": tiff, "bmp-50000.bmp": bmp, "webp-16382.webp": webp,
            "ppm-50000.ppm": b"P6\n50000 50000\n255\n" + b"\0" * 64, "png-49mp-zeros.png": big.getvalue()}


def misc(rng: random.Random, png: bytes) -> dict[str, bytes]:
    out = {"empty.jpg": b"", "one-byte.jpg": b"\xff", "text.jpg": b"this is not a photo\n" * 20,
           "page.png": b"<!doctype html><html><body>hello</body></html>\n",
           "archive.jpg": b"PK\x03\x04" + bytes(rng.randrange(256) for _ in range(200)),
           "soi-only.jpg": b"\xff\xd8\xff", "png-magic-only.png": b"\x89PNG\r\n\x1a\n",
           "png-width-0.png": b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 0, 10, 8, 2, 0, 0, 0))
           + _png_chunk(b"IEND", b"")}
    for k in range(10):
        out[f"random-{k}.jpg"] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 5000)))
    for k in range(3):  # a PNG whose chunk CRC is wrong
        b = bytearray(png)
        pos = png.index(b"IDAT") + 4 + 10 * k
        b[pos] ^= 0xFF
        out[f"bad-crc-{k}.png"] = bytes(b)
    frames = [Image.new("L", (100, 100), 90), Image.new("L", (100, 100), 10)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    b = bytearray(buf.getvalue())
    second = b.index(b",", b.index(b",") + 1)  # the second image descriptor: 9000x9000 at (0, 0)
    b[second + 5:second + 9] = struct.pack("<HH", 9000, 9000)
    out["gif-second-frame-huge.gif"] = bytes(b)
    return out


def write_corpus(out: Path, *, seed: int = 0) -> dict[str, str]:
    """Write the corpus under ``out`` (created); returns the manifest (also in manifest.json)."""
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, str] = {}

    def put(rel: str, data: bytes, kind: str) -> None:
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        manifest[rel] = kind

    seeds: dict[str, bytes] = {}
    for s in range(1, 11):
        for i in range(1, 4):
            img = Image.open(ORL / f"s{s}" / f"{i}.pgm")
            fmt = GOOD_FORMATS[(s * 3 + i) % len(GOOD_FORMATS)]
            data = encode(img, fmt)
            seeds.setdefault(fmt, data)
            suffix = _SUFFIX[fmt] if i != 3 else ".jpg"  # the third photo of each: another format's suffix
            put(f"s{s}/{i}{suffix}", data, "good")
    for fmt, data in sorted(seeds.items()):
        for k in range(12):
            cut = max(1, int(len(data) * (k + 1) / 13))
            put(f"truncated/{fmt.lower()}-{k:02d}{_SUFFIX[fmt]}", data[:cut], "any")
        for k in range(20):
            b = bytearray(data)
            for _ in range(rng.randint(1, 6)):
                b[rng.randrange(min(len(b), 512))] = rng.randrange(256)
            put(f"flipped/{fmt.lower()}-{k:02d}{_SUFFIX[fmt]}", bytes(b), "any")
    photo = Image.open(ORL / "s11" / "1.pgm")
    for fmt in OTHER_FORMATS:
        try:
            data = encode(photo, fmt)
        except (OSError, ValueError, KeyError) as exc:  # a writer this Pillow lacks
            print(f"no {fmt} writer here: {exc}", file=sys.stderr)
            continue
        put(f"other-formats/{fmt.lower()}.jpg", data, "error")
    dds = bytearray(encode(photo, "DDS"))
    dds[80] = 1  # pixel-format flags 1: Pillow's DDS reader raises NotImplementedError
    put("other-formats/dds-flags-1.jpg", bytes(dds), "error")
    put("other-formats/eps-text.jpg", b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n", "error")
    put("other-formats/psd.jpg", b"8BPS\0\1" + b"\0" * 6 + struct.pack(">HIIHH", 3, 10, 10, 8, 3) + b"\0" * 64, "error")
    put("other-formats/fits.jpg", b"SIMPLE  =                    T" + b" " * 50 + b"END" + b" " * 2797, "error")
    jpeg = seeds["JPEG"]
    for name, data in bomb_headers(jpeg).items():
        put(f"bombs/{name}", data, "error")
    for name, data in misc(rng, seeds["PNG"]).items():
        put(f"misc/{name}", data, "any" if name == "gif-second-frame-huge.gif" else "error")
    _special(out, manifest)
    manifest["manifest.json"] = "skip"  # itself: a file at the top level
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=True, sort_keys=True))
    return manifest


def _special(out: Path, manifest: dict[str, str]) -> None:
    odd = out / "odd"
    odd.mkdir(exist_ok=True)
    good = (ORL / "s12" / "1.pgm").read_bytes()
    (odd / "ok.pgm").write_bytes(good)
    manifest["odd/ok.pgm"] = "good"
    os.mkfifo(odd / "camera.jpg")
    manifest["odd/camera.jpg"] = "error"
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(odd / "socket.jpg"))
        manifest["odd/socket.jpg"] = "error"
    except OSError:  # path too long for a socket address
        pass
    finally:
        sock.close()
    for name, target in (("zero.jpg", "/dev/zero"), ("null.jpg", "/dev/null")):
        (odd / name).symlink_to(target)
        manifest[f"odd/{name}"] = "error"
    (odd / "loop.jpg").symlink_to(odd / "loop.jpg")
    manifest["odd/loop.jpg"] = "error"
    (odd / "dangling.jpg").symlink_to(odd / "not-there.jpg")
    manifest["odd/dangling.jpg"] = "error"
    (odd / "x.jpg").mkdir()
    manifest["odd/x.jpg"] = "error"
    (odd / ".hidden.jpg").write_bytes(good)
    manifest["odd/.hidden.jpg"] = "skip"
    (odd / "README.txt").write_text("not a photo\n")
    manifest["odd/README.txt"] = "skip"
    with open(os.fsencode(odd) + b"/caf\xe9.pgm", "wb") as f:  # a file name that is not UTF-8
        f.write((ORL / "s12" / "2.pgm").read_bytes())
    manifest[os.fsdecode(b"odd/caf\xe9.pgm")] = "good"
    for folder, src, kind in (("new\nline", "s13/1.pgm", "error"), (os.fsdecode(b"bad\xffname"), "s14/1.pgm", "error"),
                              ("Jos\u00e9", "s15/1.pgm", "good"), ("Jose\u0301", "s15/2.pgm", "good")):
        (out / folder).mkdir(exist_ok=True)
        (out / folder / "1.pgm").write_bytes((ORL / src).read_bytes())
        manifest[f"{folder}/1.pgm"] = kind
    locked = out / "locked"
    locked.mkdir(exist_ok=True)
    (locked / "1.pgm").write_bytes((ORL / "s16" / "1.pgm").read_bytes())
    locked.chmod(0)
    if os.geteuid() == 0:  # root reads it anyway
        manifest["locked/1.pgm"] = "good"
    else:
        manifest["locked"] = "error"
    (out / "stray.jpg").write_bytes(good)
    manifest["stray.jpg"] = "skip"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.splitlines()[2].strip(), file=sys.stderr)
        return 2
    manifest = write_corpus(Path(argv[0]))
    counts: dict[str, int] = {}
    for kind in manifest.values():
        counts[kind] = counts.get(kind, 0) + 1
    print(json.dumps({"entries": len(manifest), **counts}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
