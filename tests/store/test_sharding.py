"""Sharded enrollment: a stable, disjoint, covering partition, and reruns that skip enrolled photos."""
import hashlib
import subprocess
import sys

import numpy as np
import pytest

from cnnkit.core.errors import CnnkitError
from cnnkit.store import FaceSource, SQLiteGallery
from cnnkit.store.sharding import parse_shard, photo_key, select_shard, shard_of, shard_sizes


def test_shard_of_golden_values():
    # fixed forever: machines running different cnnkit versions must agree on the partition
    assert [shard_of(k, 4) for k in ["ada/1.jpg", "bob/2.jpg", "zoë/x.png", ""]] == [1, 3, 0, 0]
    assert [shard_of(k, 1000) for k in ["ada/1.jpg", "bob/2.jpg", "zoë/x.png", ""]] == [797, 527, 784, 652]
    assert all(shard_of(f"k{i}", 1) == 0 for i in range(50))


def test_shard_of_does_not_depend_on_the_hash_seed():
    code = "from cnnkit.store.sharding import shard_of; print([shard_of(f'p/{i}.jpg', 7) for i in range(30)])"
    runs = {subprocess.run([sys.executable, "-c", code], env={"PYTHONHASHSEED": seed}, capture_output=True,
                           text=True, check=True).stdout for seed in ("1", "2")}
    assert runs == {str([shard_of(f"p/{i}.jpg", 7) for i in range(30)]) + "\n"}


def test_shards_partition_the_collection():
    items = [(f"person{i % 37}", f"/mnt/photos/person{i % 37}/img{i}.jpg") for i in range(3000)]
    parts = [select_shard(items, f"{i}/4") for i in range(4)]
    assert sum(len(p) for p in parts) == len(items)
    assert set().union(*map(set, parts)) == set(items)
    assert all(abs(len(p) - 750) < 120 for p in parts), [len(p) for p in parts]
    assert parts[2] == [it for it in items if it in set(parts[2])]  # order kept
    # the mount point does not matter, only person/file name
    moved = [(p, path.replace("/mnt/photos", "/data")) for p, path in items]
    assert [photo_key(*it) for it in select_shard(moved, (2, 4))] == [photo_key(*it) for it in parts[2]]
    assert shard_sizes([photo_key(*it) for it in items], 4) == [len(p) for p in parts]


@pytest.mark.parametrize("spec,match", [("4/4", "0 <= I < N"), ("-1/3", "0 <= I < N"), ("1", "expected I/N"),
                                        ("a/b", "expected I/N"), ("1/2/3", "expected I/N")])
def test_parse_shard_errors(spec, match):
    with pytest.raises(CnnkitError, match=match):
        parse_shard(spec)
    assert parse_shard("3/8") == (3, 8)
    with pytest.raises(CnnkitError, match=">= 1"):
        shard_of("x", 0)


def test_rerunning_a_shard_skips_enrolled_photos(tmp_path):
    """Two shards enroll; shard 0 is interrupted and rerun: only its missing photos are added."""
    g = SQLiteGallery(tmp_path / "g.sqlite")
    items = [(f"p{i % 5}", f"p{i % 5}/img{i}.jpg") for i in range(40)]
    rng = np.random.default_rng(0)
    vec = {path: rng.normal(size=(1, 8)).astype(np.float32) for _, path in items}

    def enroll(shard, limit=None):
        added = 0
        for person, path in select_shard(items, shard)[:limit]:
            sha = hashlib.sha256(path.encode()).hexdigest()
            if g.has_source(sha):
                continue
            g.add_faces(person, vec[path], tag="t", sources=[FaceSource(path, sha)])
            added += 1
        return added

    n0, n1 = len(select_shard(items, "0/2")), len(select_shard(items, "1/2"))
    assert enroll("0/2", limit=3) == 3  # interrupted after 3 photos
    assert enroll("1/2") == n1
    assert enroll("0/2") == n0 - 3  # the rerun resumes
    assert enroll("0/2") == 0 and enroll("1/2") == 0
    assert len(g) == 40 and sum(p.faces for p in g.people()) == 40
