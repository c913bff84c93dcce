"""LFW-format pairs files and the distances a face pipeline gives on them.

A pairs file starts with a header line, either ``N`` (View 1: N matched then N mismatched pairs)
or ``F N`` (View 2: F folds, each N matched then N mismatched). A matched line is
``name i j``, a mismatched one ``name1 i name2 j``; image ``i`` of a person is
``ROOT/name/name_%04d.jpg``.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cnnkit.core.download import sha256_file
from cnnkit.core.euclidean import euclidean_rows
from cnnkit.core.errors import CnnkitError, InvalidImageError, printable
from cnnkit.core.paths import cache_dir as default_cache_dir

__all__ = ["PairsFormatError", "Pair", "PairsFile", "read_pairs", "lfw_image_path", "pair_distances", "EmbeddingCache",
           "evaluate_pairs", "calibrate_pairs"]


class PairsFormatError(CnnkitError, ValueError):
    """A pairs file is missing or does not follow the LFW format; the message names the file."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path, self.reason = os.fspath(path), reason
        super().__init__(f"{printable(self.path)}: {reason}")


@dataclass(frozen=True)
class Pair:
    """Two images, by person name and 1-based image number."""

    name_a: str
    index_a: int
    name_b: str
    index_b: int
    fold: int

    @property
    def same(self) -> bool:
        return self.name_a == self.name_b


@dataclass(frozen=True)
class PairsFile:
    """A parsed pairs file.

    Attributes:
        path: where it was read from.
        n_folds: 1 for View 1 files, 10 for View 2.
        per_fold: matched pairs per fold (and as many mismatched).
        pairs: all pairs in file order.
    """

    path: str
    n_folds: int
    per_fold: int
    pairs: tuple[Pair, ...]

    def __len__(self) -> int:
        return len(self.pairs)

    @property
    def labels(self) -> np.ndarray:
        """True for same-person pairs, bool shape (P,)."""
        return np.array([p.same for p in self.pairs], dtype=bool)

    @property
    def folds(self) -> np.ndarray:
        """Fold of each pair, int64 shape (P,)."""
        return np.array([p.fold for p in self.pairs], dtype=np.int64)

    def images(self) -> list[tuple[str, int]]:
        """Every distinct (name, index) used, in first-use order."""
        seen: dict[tuple[str, int], None] = {}
        for p in self.pairs:
            seen.setdefault((p.name_a, p.index_a))
            seen.setdefault((p.name_b, p.index_b))
        return list(seen)


def lfw_image_path(root: str | os.PathLike[str], name: str, index: int) -> Path:
    """``root/name/name_%04d.jpg``."""
    return Path(root) / name / f"{name}_{index:04d}.jpg"


def read_pairs(path: str | os.PathLike[str]) -> PairsFile:
    """Parse an LFW pairs file (View 1 ``N`` header or View 2 ``F N`` header).

    Raises:
        PairsFormatError: naming the file and the line that is wrong.
    """
    p = Path(path)
    if not p.is_file():
        raise PairsFormatError(p, "no such pairs file")
    try:
        text = p.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PairsFormatError(p, f"not UTF-8 text (undecodable byte at offset {exc.start})") from None
    except OSError as exc:
        raise PairsFormatError(p, f"cannot read: {exc.strerror or exc}") from None
    lines = [ln.split() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln]
    if not lines:
        raise PairsFormatError(p, "empty pairs file")
    try:
        header = [int(t) for t in lines[0]]
    except ValueError:
        raise PairsFormatError(p, f"line 1: expected 'N' or 'FOLDS N', got {' '.join(lines[0])!r}") from None
    if len(header) == 1:
        n_folds, per_fold = 1, header[0]
    elif len(header) == 2:
        n_folds, per_fold = header
    else:
        raise PairsFormatError(p, f"line 1: expected 'N' or 'FOLDS N', got {' '.join(lines[0])!r}")
    body = lines[1:]
    expected = 2 * n_folds * per_fold
    if len(body) != expected:
        raise PairsFormatError(p, f"header promises {expected} pairs, the file has {len(body)}")
    pairs = []
    for k, tokens in enumerate(body):
        fold, pos = divmod(k, 2 * per_fold)
        matched = pos < per_fold
        if len(tokens) != (3 if matched else 4):
            kind = "matched 'name i j'" if matched else "mismatched 'name1 i name2 j'"
            raise PairsFormatError(p, f"line {k + 2}: expected a {kind} pair, got {' '.join(tokens)!r}")
        try:
            if matched:
                pairs.append(Pair(tokens[0], int(tokens[1]), tokens[0], int(tokens[2]), fold))
            else:
                pairs.append(Pair(tokens[0], int(tokens[1]), tokens[2], int(tokens[3]), fold))
        except ValueError:
            raise PairsFormatError(p, f"line {k + 2}: image numbers must be integers: {' '.join(tokens)!r}") from None
    return PairsFile(path=str(p), n_folds=n_folds, per_fold=per_fold, pairs=tuple(pairs))


class EmbeddingCache:
    """Embeddings on disk, keyed by (file SHA-256, pipeline configuration).

    One ``.npz`` per pipeline configuration (the encoder tag plus the detector settings and the
    alignment, so that changing any of them never reuses a stale embedding) under
    ``cache_dir()/face_encodings``. A file without a usable face is remembered as such.
    """

    def __init__(self, config_key: str, folder: str | os.PathLike[str] | None = None) -> None:
        base = Path(folder) if folder is not None else default_cache_dir() / "face_encodings"
        digest = hashlib.sha256(config_key.encode()).hexdigest()[:20]
        self.path = base / f"{digest}.npz"
        self.config_key = config_key
        self.entries: dict[str, np.ndarray | None] = {}
        self._dirty = False
        if self.path.is_file():
            with np.load(self.path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                if meta.get("config_key") == config_key:
                    vecs = data["vectors"]
                    for sha, row in zip(meta["shas"], meta["rows"]):
                        self.entries[sha] = None if row < 0 else vecs[row]

    def get(self, sha: str) -> tuple[bool, np.ndarray | None]:
        """(known, embedding or None when the file had no face)."""
        return (sha in self.entries, self.entries.get(sha))

    def put(self, sha: str, vec: np.ndarray | None) -> None:
        self.entries[sha] = None if vec is None else np.asarray(vec, dtype=np.float32)
        self._dirty = True

    def save(self) -> None:
        if not self._dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        shas, rows, vecs = [], [], []
        for sha, vec in self.entries.items():
            shas.append(sha)
            rows.append(-1 if vec is None else len(vecs))
            if vec is not None:
                vecs.append(vec)
        dim = vecs[0].shape[0] if vecs else 0
        meta = json.dumps({"config_key": self.config_key, "shas": shas, "rows": rows})
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, suffix=".npz")
        os.close(fd)
        with open(tmp, "wb") as fh:
            np.savez(fh, meta=np.array(meta), vectors=np.array(vecs, dtype=np.float32).reshape(-1, dim))
        os.replace(tmp, self.path)
        self._dirty = False


def encode_files(
    pipeline: Any,
    files: Iterable[Path],
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> dict[Path, np.ndarray | CnnkitError]:
    """Encode the main face (``largest=True``) of every file, through the on-disk cache.

    Returns:
        file -> embedding (D,) float32, or the error (no face, unreadable file).
    """
    files = list(dict.fromkeys(files))
    parts = pipeline.part_pipelines() if getattr(pipeline.encoder, "parts", None) else []
    if parts:  # a fused encoder: each part through its own cache, then combined
        per_part = [encode_files(p, files, cache_dir=cache_dir, progress=progress) for p in parts]
        fused: dict[Path, np.ndarray | CnnkitError] = {}
        for f in files:
            got = [pp[f] for pp in per_part]
            bad = next((g for g in got if not isinstance(g, np.ndarray)), None)
            fused[f] = bad if bad is not None else pipeline.encoder.combine([g[None] for g in got])[0]
        return fused
    cache = EmbeddingCache(pipeline.config_key, cache_dir)
    without_retry = getattr(pipeline, "config_key_without_retry", pipeline.config_key)
    # embeddings made without the detection retry stand when they found a face
    found = EmbeddingCache(without_retry, cache_dir) if without_retry != pipeline.config_key else None
    out: dict[Path, np.ndarray | CnnkitError] = {}
    todo: list[Path] = []
    shas: dict[Path, str] = {}
    for f in files:
        if not f.is_file():
            out[f] = InvalidImageError(f, "no such file")
            continue
        shas[f] = sha256_file(f)
        known, vec = cache.get(shas[f])
        if not known and found is not None and found.get(shas[f])[1] is not None:
            known, vec = True, found.get(shas[f])[1]
            cache.put(shas[f], vec)
        if not known:
            todo.append(f)
        else:
            out[f] = vec if vec is not None else CnnkitError(f"{f}: no face found (cached)")
    if todo:
        items = pipeline.encode_many(todo, largest=True)
        if progress:
            from tqdm import tqdm

            items = tqdm(items, total=len(todo), desc="embedding", unit="img")
        try:
            for n, (f, res) in enumerate(items, 1):
                if isinstance(res, CnnkitError):
                    out[f] = res
                    cache.put(shas[f], None)
                else:
                    out[f] = res.embedding
                    cache.put(shas[f], res.embedding)
                if n % 500 == 0:
                    cache.save()
        finally:
            cache.save()
    cache.save()
    return out


def pair_distances(
    pipeline: Any,
    pairs: PairsFile,
    root: str | os.PathLike[str],
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Euclidean distance between the main faces of each pair's two images.

    Args:
        pipeline: a :class:`~cnnkit.faces.FacePipeline` (anything with ``encode_many`` and
            ``config_key``).
        pairs: from :func:`read_pairs`.
        root: the folder holding one sub-folder per person.
        cache_dir: where embeddings are cached (default ``cache_dir()/face_encodings``).

    Returns:
        distances float64 (P,) with NaN where either image has no face; labels bool (P,);
        the images (relative to ``root``) where no face was found or that could not be read.
    """
    root = Path(root)
    images = {key: lfw_image_path(root, *key) for key in pairs.images()}
    enc = encode_files(pipeline, images.values(), cache_dir=cache_dir, progress=progress)
    dist = np.full(len(pairs), np.nan, dtype=np.float64)
    for k, p in enumerate(pairs.pairs):
        a, b = enc[images[(p.name_a, p.index_a)]], enc[images[(p.name_b, p.index_b)]]
        if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
            dist[k] = float(euclidean_rows(a, b))
    no_face = sorted(str(f.relative_to(root)) for f, v in enc.items() if not isinstance(v, np.ndarray))
    return dist, pairs.labels, no_face


def evaluate_pairs(pipeline: Any, pairs_file: str | os.PathLike[str], root: str | os.PathLike[str], *,
                   train_file: str | os.PathLike[str] | None = None, method: str = "distance", features: str = "auto",
                   progress: bool = True) -> dict[str, Any]:
    """The LFW protocol on a pairs file: 10-fold accuracy for a View 2 file, or for a View 1 file
    the accuracy at the threshold chosen on ``train_file`` (:func:`~cnnkit.eval.verification.lfw_accuracy`),
    with the ROC summary of the pairs and the images without a face. ``method="head"`` scores the
    binary head fitted the same way instead (:func:`~cnnkit.faces.head.head_fold_accuracy`).

    Raises:
        PairsFormatError: a View 1 file without ``train_file`` (or a malformed file).
    """
    from cnnkit.eval.verification import lfw_accuracy, verification_report

    pairs = read_pairs(pairs_file)
    distances, same, no_face = pair_distances(pipeline, pairs, root, progress=progress)
    train = train_pairs = None
    if pairs.n_folds == 1:
        if train_file is None:
            raise PairsFormatError(pairs_file, "a View 1 pairs file needs --train PAIRS_TRAIN to choose the threshold on")
        train_pairs = read_pairs(train_file)
        d_train, y_train, nf_train = pair_distances(pipeline, train_pairs, root, progress=progress)
        train, no_face = (d_train, y_train), list(no_face) + list(nf_train)
    accs, threshold = lfw_accuracy(distances, same, folds=pairs.folds, train=train)
    if method == "head":
        from cnnkit.faces.head import head_fold_accuracy

        accs = head_fold_accuracy(pipeline, pairs, root, train=train_pairs, features=features, progress=progress)
    report = verification_report(distances, same)
    return {"method": method, "accuracy": float(np.mean(accs)), "accuracy_std": float(np.std(accs)),
            "folds": len(accs), "auc": report.auc, "eer": report.eer, "tar_at_far": report.tar_at_far,
            "far_supported_down_to": report.far_supported_down_to, "threshold": threshold,
            "no_face": len(set(no_face)), "no_face_files": sorted(set(no_face)), "pairs": report.pairs,
            "encoder": pipeline.tag}


def calibrate_pairs(pipeline: Any, pairs_file: str | os.PathLike[str], root: str | os.PathLike[str], *,
                    gallery: Any = None, plot: str | os.PathLike[str] | None = None, progress: bool = True
                    ) -> dict[str, Any]:
    """Choose the threshold on labelled pairs: ROC, AUC, EER, TAR@FAR and the best-accuracy
    threshold; with ``gallery``, store it as this encoder's ``"threshold"`` setting
    (:func:`~cnnkit.faces.recognition.calibration_setting`); with ``plot``, write the ROC PNG."""
    from cnnkit.eval.plot import plot_roc
    from cnnkit.eval.verification import roc_curve, verification_report
    from cnnkit.faces.recognition import calibration_setting

    distances, same, no_face = pair_distances(pipeline, read_pairs(pairs_file), root, progress=progress)
    report = verification_report(distances, same)
    if plot is not None:
        far, tar, _ = roc_curve(distances, same)
        plot_roc(far, tar, plot, title=f"{pipeline.tag}  AUC {report.auc:.4f}  EER {report.eer:.4f}")
    if gallery is not None:
        gallery.set_setting(pipeline.tag, "threshold", calibration_setting(
            report.threshold, pairs=Path(pairs_file).name, accuracy=report.accuracy))
    return report.to_dict() | {"encoder": pipeline.tag, "no_face": len(no_face),
                               "roc_png": None if plot is None else os.fspath(plot), "stored": gallery is not None}
