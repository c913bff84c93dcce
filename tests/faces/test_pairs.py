"""LFW pairs files and cached pair distances."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnkit.faces import FacePipeline, read_pairs
from cnnkit.faces.pairs import PairsFormatError, lfw_image_path, pair_distances


def test_view1_format(tmp_path: Path) -> None:
    p = tmp_path / "pairs.txt"
    p.write_text("2\nAnn\t1\t2\nBob 1 3\nAnn 1 Bob 2\nCid 4 Ann 2\n")
    pf = read_pairs(p)
    assert (pf.n_folds, pf.per_fold, len(pf)) == (1, 2, 4)
    assert pf.labels.tolist() == [True, True, False, False]
    assert pf.pairs[3].name_a == "Cid" and pf.pairs[3].index_a == 4 and pf.pairs[3].index_b == 2
    assert pf.images() == [("Ann", 1), ("Ann", 2), ("Bob", 1), ("Bob", 3), ("Bob", 2), ("Cid", 4)]
    assert lfw_image_path("/r", "Ann", 7) == Path("/r/Ann/Ann_0007.jpg")


def test_view2_folds(tmp_path: Path) -> None:
    lines = ["3 1"]
    for f in range(3):
        lines += [f"P{f} 1 2", f"P{f} 1 Q{f} 1"]
    p = tmp_path / "pairs.txt"
    p.write_text("\n".join(lines) + "\n")
    pf = read_pairs(p)
    assert (pf.n_folds, pf.per_fold) == (3, 1)
    assert pf.folds.tolist() == [0, 0, 1, 1, 2, 2] and pf.labels.tolist() == [True, False] * 3


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "empty pairs file"),
        ("x\n", "line 1: expected 'N' or 'FOLDS N'"),
        ("2\nA 1 2\n", "header promises 4 pairs, the file has 1"),
        ("1\nA 1 B 2\nA 1 B 2\n", "line 2: expected a matched 'name i j' pair"),
        ("1\nA 1 2\nA 1 2\n", "line 3: expected a mismatched 'name1 i name2 j' pair"),
        ("1\nA one 2\nA 1 B 2\n", "line 2: image numbers must be integers"),
    ],
)
def test_bad_pairs_files(tmp_path: Path, text: str, match: str) -> None:
    p = tmp_path / "pairs.txt"
    p.write_text(text)
    with pytest.raises(PairsFormatError, match=match) as info:
        read_pairs(p)
    assert str(p) in str(info.value)
    with pytest.raises(PairsFormatError, match="no such pairs file"):
        read_pairs(tmp_path / "missing.txt")


class CountingPipeline(FacePipeline):
    """The real pipeline, counting the files it is asked to encode."""

    encoded = 0

    def encode_many(self, paths, *, largest=False):
        paths = list(paths)
        CountingPipeline.encoded += len(paths)
        return super().encode_many(paths, largest=largest)


def test_pair_distances_on_orl_with_cache(orl_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "lfw_like"
    for person in ("s1", "s2", "s3"):
        (root / person).mkdir(parents=True)
        for i in (1, 2):
            Image.open(orl_dir / person / f"{i}.pgm").save(lfw_image_path(root, person, i))
    (root / "s4").mkdir()
    Image.fromarray(np.full((112, 92), 200, np.uint8)).save(lfw_image_path(root, "s4", 1))  # no face
    pairs_file = tmp_path / "pairs.txt"
    pairs_file.write_text("3\ns1 1 2\ns2 1 2\ns3 1 2\ns1 1 s2 1\ns2 2 s3 1\ns4 1 s1 2\n")
    pf = read_pairs(pairs_file)
    pipe = CountingPipeline("dlib_resnet")
    dist, labels, no_face = pair_distances(pipe, pf, root, cache_dir=tmp_path / "cache", progress=False)
    assert CountingPipeline.encoded == 7 and no_face == ["s4/s4_0001.jpg"]
    assert labels.tolist() == [True, True, True, False, False, False]
    assert np.isnan(dist[5]) and not np.isnan(dist[:5]).any()
    assert dist[:3].max() < dist[3:5].min()
    again = pair_distances(pipe, pf, root, cache_dir=tmp_path / "cache", progress=False)
    assert CountingPipeline.encoded == 7  # the second run encodes nothing
    np.testing.assert_array_equal(again[0], dist)
    assert again[2] == no_face
    other = CountingPipeline("dlib_resnet", min_face_size=30)  # other settings: other cache entry
    pair_distances(other, pf, root, cache_dir=tmp_path / "cache", progress=False)
    assert CountingPipeline.encoded == 14
