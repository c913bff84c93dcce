from collections import Counter

import pytest

from cnnkit.core.errors import CnnkitError
from cnnkit.data.folders import scan_identity_folder, select_people
from cnnkit.data.samplers import PKSampler, split_identities


def test_pk_batches():
    labels = [i // 10 for i in range(100)] + [10, 11, 11]  # person 10 has one image, 11 has two
    sampler = PKSampler(labels, p=4, k=3, seed=1)
    batches = list(sampler)
    assert len(batches) == len(sampler) == -(-103 // 12)
    for batch in batches:
        counts = Counter(labels[i] for i in batch)
        assert len(batch) == 12 and len(counts) == 4 and set(counts.values()) == {3}
        assert 10 not in counts  # a single image cannot make a positive
    assert batches == list(PKSampler(labels, p=4, k=3, seed=1))
    sampler.set_epoch(1)
    assert list(sampler) != batches


def test_pk_without_replacement_when_enough_images():
    labels = [i // 5 for i in range(50)]
    for batch in PKSampler(labels, p=5, k=5):
        assert len(set(batch)) == 25


def test_pk_needs_two_people():
    with pytest.raises(CnnkitError, match="at least 2 people"):
        PKSampler([0, 0, 0], p=2, k=2)


def test_identity_disjoint_split():
    train, val = split_identities(40, val_fraction=0.25, seed=3)
    assert len(val) == 10 and len(train) == 30
    assert not set(train) & set(val) and set(train) | set(val) == set(range(40))
    assert (train, val) == split_identities(40, val_fraction=0.25, seed=3)
    assert split_identities(5, val_fraction=0.0) == ([0, 1, 2, 3, 4], [])


def test_select_people_ranges_and_globs():
    names = [f"s{i}" for i in range(1, 41)]
    assert select_people(names, "s1..s3,s40") == ["s1", "s2", "s3", "s40"]
    assert select_people(names, "s3*") == ["s3"] + [f"s{i}" for i in range(30, 40)]
    padded = [f"subject{i:02d}" for i in range(1, 16)]
    assert select_people(padded, "subject01..subject10") == padded[:10]
    with pytest.raises(CnnkitError, match="matches no folder"):
        select_people(names, "x1")


def test_scan_drops_byte_identical_files(tmp_path, orl_dir):
    for person in ("a", "b"):
        (tmp_path / person).mkdir()
    src = (orl_dir / "s1" / "1.pgm").read_bytes()
    (tmp_path / "a" / "1.pgm").write_bytes(src)
    (tmp_path / "a" / "2.pgm").write_bytes(src)  # a copy: must not become a same-person pair
    (tmp_path / "a" / "3.pgm").write_bytes((orl_dir / "s1" / "2.pgm").read_bytes())
    (tmp_path / "b" / "1.pgm").write_bytes((orl_dir / "s2" / "1.pgm").read_bytes())
    index = scan_identity_folder(tmp_path)
    assert [p.name for p in index.paths] == ["1.pgm", "3.pgm", "1.pgm"]
    assert index.labels == (0, 0, 1) and index.duplicates_dropped == 1
    assert len(scan_identity_folder(tmp_path, dedupe=False).paths) == 4
