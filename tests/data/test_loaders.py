"""Each task's data loader on its real files (skipped with a reason only where the data is absent)."""
from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest

from cnnkit.core.errors import CnnkitError, ShapeError, UnknownNameError, WeightsError
from cnnkit.data.ecg import load_ucr, read_ucr_tsv, ucr_path, znormalize
from cnnkit.data.idx import DEBIAN_DIR, fashion_mnist_dir, load_fashion_mnist, read_idx
from cnnkit.data.volumes import load_mni152_tissues, random_patches, split_halves


SHARED = Path(os.environ.get("CNNKIT_SHARED_DATA", Path(__file__).resolve().parents[2].parent / "shared" / "data"))


@pytest.fixture(scope="module")
def ecg_shared() -> str:
    folder = SHARED / "ecg"
    if not (folder / "ECG5000_TRAIN.tsv").is_file():
        pytest.skip(f"ECG5000 not available at {folder} (set CNNKIT_SHARED_DATA or CNNKIT_UCR_DIR)")
    return str(folder)


@pytest.fixture(scope="module")
def fashion_dir():
    try:
        return fashion_mnist_dir()
    except CnnkitError:
        pytest.skip(f"Fashion-MNIST not installed at {DEBIAN_DIR} (apt-get install dataset-fashion-mnist, "
                    "or set CNNKIT_FASHION_MNIST)")


def test_ecg200_ships_in_the_repository():
    x, y = load_ucr("ECG200", "train")
    xt, yt = load_ucr("ECG200", "test")
    assert x.shape == (100, 96) and xt.shape == (100, 96) and x.dtype == np.float32
    assert np.bincount(y).tolist() == [31, 69] and np.bincount(yt).tolist() == [36, 64]
    assert x[0, :3].tolist() == pytest.approx([0.50205548, 0.54216265, 0.72238348])


def test_ecg5000_from_a_folder(ecg_shared):
    x, y = load_ucr("ECG5000", "train", root=ecg_shared)
    xt, yt = load_ucr("ECG5000", "test", root=ecg_shared)
    assert x.shape == (500, 140) and xt.shape == (4500, 140)
    assert np.bincount(y).tolist() == [292, 177, 10, 19, 2]
    assert np.bincount(yt).tolist() == [2627, 1590, 86, 175, 22]


def test_ecg5000_cache_is_checksummed_and_offline_by_default(ecg_shared, tmp_path, monkeypatch):
    monkeypatch.delenv("CNNKIT_UCR_DIR", raising=False)
    monkeypatch.setenv("CNNKIT_CACHE", str(tmp_path))
    monkeypatch.setenv("CNNKIT_DATA", str(tmp_path / "no-repo-data"))
    with pytest.raises(CnnkitError, match="CNNKIT_UCR_URL"):
        ucr_path("ECG5000", "train")
    cached = tmp_path / "ucr" / "ECG5000" / "ECG5000_TRAIN.tsv"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(open(f"{ecg_shared}/ECG5000_TRAIN.tsv", "rb").read())
    assert ucr_path("ECG5000", "train") == cached          # found in the cache, checksum verified
    cached.write_bytes(b"1\t0.5\n")
    with pytest.raises(WeightsError, match="checksum mismatch"):
        ucr_path("ECG5000", "train")
    monkeypatch.setenv("CNNKIT_UCR_URL", "https://example.invalid/ucr")
    with pytest.raises(WeightsError, match="downloads are off"):
        ucr_path("ECG5000", "test")


def test_ucr_errors(tmp_path):
    bad = tmp_path / "X_TRAIN.tsv"
    bad.write_text("7\t0.1\t0.2\n")
    with pytest.raises(CnnkitError, match=r"labels \[7\] are not among \[-1, 1\]"):
        read_ucr_tsv(bad, (-1, 1))
    with pytest.raises(UnknownNameError, match="ECG200"):
        load_ucr("Wafer", "train")
    z = znormalize(np.array([[1.0, 2.0, 3.0]]))
    assert z.mean() == pytest.approx(0.0) and z.std() == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ShapeError):
        znormalize(np.zeros(3))


def test_fashion_mnist_from_debian_idx_files(fashion_dir):
    x, y = load_fashion_mnist("train", root=fashion_dir)
    xt, yt = load_fashion_mnist("test", root=fashion_dir)
    assert x.shape == (60000, 28, 28) and x.dtype == np.uint8 and xt.shape == (10000, 28, 28)
    assert np.bincount(y).tolist() == [6000] * 10 and np.bincount(yt).tolist() == [1000] * 10
    assert y[:5].tolist() == [9, 0, 0, 3, 0]   # first labels of the published training file


def test_read_idx_round_trip_and_errors(tmp_path):
    data = np.arange(24, dtype=">i4").reshape(2, 3, 4)
    header = bytes([0, 0, 0x0C, 3]) + np.array([2, 3, 4], dtype=">u4").tobytes()
    path = tmp_path / "a-idx3.gz"
    with gzip.open(path, "wb") as f:
        f.write(header + data.tobytes())
    np.testing.assert_array_equal(read_idx(path), data)
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(CnnkitError, match="not an IDX file"):
        read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(header + b"\x00" * 8)
    with pytest.raises(CnnkitError, match="do not fit shape"):
        read_idx(tmp_path / "short")


def test_mni152_tissues_halves_and_patches():
    pytest.importorskip("nilearn", reason="brain3d needs nilearn (the MNI152 template ships in its wheel)")
    t1, labels = load_mni152_tissues(2)
    assert t1.shape == labels.shape == (99, 117, 95)
    assert 0.0 <= t1.min() and t1.max() <= 1.0
    counts = np.bincount(labels.ravel(), minlength=3)
    assert 130_000 < counts[1] < 140_000 and 75_000 < counts[2] < 85_000   # GM, WM voxels at 2 mm
    assert t1[labels == 2].mean() > t1[labels == 1].mean() > t1[labels == 0].mean()  # T1: WM brightest
    a, b = split_halves(t1)
    assert a.shape == (99, 58, 95) and b.shape == (99, 59, 95)
    x, y = random_patches(t1, labels, size=16, count=5, rng=np.random.default_rng(0))
    assert x.shape == (5, 1, 16, 16, 16) and y.shape == (5, 16, 16, 16)
    with pytest.raises(ShapeError, match="smaller than the patch size"):
        random_patches(t1[:10], labels[:10], size=16, count=1, rng=np.random.default_rng(0))
