"""Short, seeded Hypothesis runs in the normal suite (issue 14): on any bytes, ``load_image``
raises nothing but cnnkit's typed image errors; on any text, the person-name normalisation and
the LFW pairs-file parser either accept or raise their typed error. The 50,000-example run of
``load_image`` is ``tests/fuzz/test_fuzz_long.py`` (marker ``fuzz``)."""
from __future__ import annotations

import io
import unicodedata
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from PIL import Image

from cnnkit.core.errors import InvalidImageError, InvalidNameError
from cnnkit.data.image_io import load_image
from cnnkit.faces.pairs import PairsFormatError, read_pairs
from cnnkit.store.base import normalize_name

REPO = Path(__file__).resolve().parents[1]
SHORT = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                 suppress_health_check=[HealthCheck.too_slow])


def seeds() -> list[bytes]:
    """Real encodings of one ORL photo in every allowed format and a few others, to mutate."""
    img = Image.open(REPO / "data" / "orl" / "s1" / "1.pgm")
    out = []
    for fmt in ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF", "PPM", "DDS", "TGA", "PCX", "SGI"):
        buf = io.BytesIO()
        img.convert("RGB").save(buf, format=fmt)
        out.append(buf.getvalue())
    return out


def mutated(pool: list[bytes]) -> st.SearchStrategy[bytes]:
    """A real file with up to 8 bytes overwritten in its first 512 bytes, then maybe truncated."""
    def build(args: tuple[int, list[tuple[int, int]], int]) -> bytes:
        which, flips, cut = args
        b = bytearray(pool[which % len(pool)])
        for pos, val in flips:
            b[pos % min(len(b), 512)] = val
        return bytes(b[: max(1, len(b) - cut)]) if cut else bytes(b)
    return st.tuples(st.integers(0, 10**6), st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)),
                                                     max_size=8), st.integers(0, 4000)).map(build)


def image_bytes() -> st.SearchStrategy[bytes]:
    return st.one_of(st.binary(max_size=2048), mutated(seeds()))


def check_load_image(data: bytes) -> None:
    try:
        out = load_image(data)
    except InvalidImageError as exc:
        assert str(exc).startswith("<bytes>: ") and "\n" not in str(exc)
    else:
        assert out.ndim == 3 and out.shape[2] == 3 and out.dtype.name == "uint8"


@seed(14)
@SHORT
@given(image_bytes())
def test_load_image_raises_only_typed_errors(data: bytes) -> None:
    check_load_image(data)


@seed(14)
@settings(max_examples=500, deadline=None, derandomize=True, database=None)
@given(st.text(alphabet=st.characters(codec=None), max_size=40))
def test_normalize_name_accepts_or_refuses_typed(name: str) -> None:
    try:
        out = normalize_name(name)
    except InvalidNameError as exc:
        assert "\n" not in str(exc)
        bad = any(unicodedata.category(c) in ("Cc", "Zl", "Zp", "Cs") for c in name) or not name.strip()
        assert bad
    else:
        assert out == unicodedata.normalize("NFC", name) and normalize_name(out) == out
        assert not any(unicodedata.category(c) in ("Cc", "Cs") for c in out)


def test_nfc_and_nfd_are_one_name() -> None:
    assert normalize_name("Jose\u0301") == normalize_name("Jos\u00e9") == "Jos\u00e9"


@pytest.mark.parametrize("bad", ["a\x00b", "two\nlines", "tab\tname", "esc\x1b[31m", "sep\u2028x", "caf\udce9", "", "  "])
def test_names_refused(bad: str) -> None:
    with pytest.raises(InvalidNameError):
        normalize_name(bad)


@seed(14)
@settings(max_examples=300, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(st.binary(max_size=300),
                 st.lists(st.lists(st.one_of(st.from_regex(r"[A-Za-z_]{1,6}", fullmatch=True),
                                             st.integers(-3, 3).map(str)), min_size=0, max_size=5),
                          max_size=8).map(lambda ls: "\n".join(" ".join(x) for x in ls).encode())))
def test_pairs_parser_accepts_or_refuses_typed(tmp_path_factory, data: bytes) -> None:
    p = tmp_path_factory.mktemp("pairs") / "pairs.txt"
    p.write_bytes(data)
    try:
        pairs = read_pairs(p)
    except PairsFormatError as exc:
        assert str(exc).startswith(f"{p}: ")
    else:
        assert len(pairs.pairs) == 2 * pairs.n_folds * pairs.per_fold
