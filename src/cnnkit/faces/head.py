"""Training the binary "same person" head (:class:`~cnnkit.nn.heads.PairClassifierHead`) on
labelled pairs with the encoder frozen, and comparing it with a calibrated distance threshold.

Pairs come from an LFW-format pairs file (images under ``root``), or are sampled from a folder of
identities. Every image is embedded by one :class:`~cnnkit.faces.FacePipeline` (detection +
alignment, or the whole image for a model trained on whole photos), so the head is stored under
the same encoder tag that enroll, verify and identify use.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from cnnkit.core.errors import CnnkitError
from cnnkit.core.euclidean import euclidean_rows
from cnnkit.data.folders import scan_identity_folder
from cnnkit.eval.verification import accuracy_at, best_threshold, kfold_decision_accuracy
from cnnkit.nn.heads import PairClassifierHead, fit_pair_head, head_probability
from cnnkit.store.base import Gallery

__all__ = ["fit_head", "load_pairs", "sample_pairs", "compare_head_and_threshold", "train_head", "store_head", "pair_embeddings",
           "head_decider"]


def fit_head(emb_a: np.ndarray, emb_b: np.ndarray, same: np.ndarray, *, features: Sequence[str],
             blocks: Sequence[int], stored_weights: Sequence[float] | None = None) -> PairClassifierHead:
    """The binary head on frozen embeddings (T, D) x 2 and labels (T,).

    ``("block_sq",)`` over a fusion of two parts is fitted for accuracy: the fusion weights and
    threshold of :func:`~cnnkit.faces.fused.fit_fusion` (a logistic fit of two distances settles
    where the likelihood is best, which was less accurate on LFW pairsDevTrain: 0.9959 against
    0.9986), with the scale of the logit fitted by logistic regression. Other features: a logistic
    unit by L-BFGS (:func:`~cnnkit.nn.heads.fit_pair_head`).
    """
    feats, blocks = tuple(features), tuple(int(b) for b in blocks)
    if feats != ("block_sq",) or len(blocks) != 2:
        return fit_pair_head(torch.from_numpy(emb_a), torch.from_numpy(emb_b), torch.from_numpy(same), features=feats,
                             blocks=blocks)
    from cnnkit.faces.fused import fit_fusion

    stored = np.asarray(stored_weights if stored_weights is not None else (1.0, 1.0), dtype=np.float64)
    diff2 = (emb_a.astype(np.float64) - emb_b.astype(np.float64)) ** 2
    stored_d2 = np.stack([diff2[:, :blocks[0]].sum(1), diff2[:, blocks[0]:].sum(1)], 1)
    (w1, w2), thr, _ = fit_fusion(stored_d2 / stored, same)
    coef = np.array([w1, w2]) / stored  # margin = thr^2 - sum_k coef_k D_k, D_k the stored blocks
    margin = thr**2 - stored_d2 @ coef
    scale = _logistic_scale(margin, np.asarray(same, dtype=np.float64))
    head = PairClassifierHead(emb_a.shape[1], features=feats, blocks=blocks)
    with torch.no_grad():
        head.linear.weight.copy_(torch.tensor(-scale * coef, dtype=torch.float32)[None])
        head.linear.bias.fill_(float(scale * thr**2))
    return head


def _logistic_scale(margin: np.ndarray, y: np.ndarray, steps: int = 50) -> float:
    """The s > 0 that maximises the likelihood of ``sigmoid(s * margin)`` for labels ``y`` (Newton)."""
    s = 1.0 / max(float(np.std(margin)), 1e-6)
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-np.clip(s * margin, -50, 50)))
        grad, hess = float(((y - p) * margin).sum()), float((p * (1 - p) * margin**2).sum()) + 1e-9
        s = max(s + grad / hess, 1e-6)
    return s


def _pairs_from_file(path: str, root: str | None, pipeline: Any, progress: bool
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Embeddings of both sides (T, D) x 2 and labels (T,) of the pairs whose images both gave a face."""
    from cnnkit.faces.pairs import encode_files, lfw_image_path, read_pairs

    pairs = read_pairs(path)
    root = root or str(Path(path).parent)
    files = {key: lfw_image_path(root, *key) for key in pairs.images()}
    emb = encode_files(pipeline, files.values(), progress=progress)
    a, b, y = [], [], []
    for p in pairs.pairs:
        ea, eb = emb[files[(p.name_a, p.index_a)]], emb[files[(p.name_b, p.index_b)]]
        if isinstance(ea, np.ndarray) and isinstance(eb, np.ndarray):
            a.append(ea)
            b.append(eb)
            y.append(p.same)
    if not y:
        raise CnnkitError(f"{path}: no pair with a face found in both images")
    return np.stack(a), np.stack(b), np.array(y, dtype=bool)


def sample_pairs(labels: np.ndarray, pairs_per_person: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (i, j) over ``labels`` (N,): per person ``pairs_per_person`` same-person pairs
    and as many different-person pairs (people with one photo give none)."""
    rng = np.random.default_rng(seed)
    i_idx, j_idx = [], []
    for person in np.unique(labels):
        mine, others = np.flatnonzero(labels == person), np.flatnonzero(labels != person)
        if len(mine) < 2:
            continue
        for _ in range(pairs_per_person):
            i, j = rng.choice(mine, 2, replace=False)
            i_idx += [i, i]
            j_idx += [j, rng.choice(others)]
    return np.array(i_idx, dtype=np.int64), np.array(j_idx, dtype=np.int64)


def _pairs_from_folder(folder_path: str, pipeline: Any, pairs_per_person: int, seed: int
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sampled pairs of a folder of identities (byte-identical files are dropped first)."""
    index = scan_identity_folder(folder_path)
    labels = np.array(index.labels)
    found, emb = [], []
    for i, (_, res) in enumerate(pipeline.encode_many(index.paths, largest=True)):
        if not isinstance(res, CnnkitError):
            found.append(i)
            emb.append(res.embedding)
    if not emb:
        raise CnnkitError(f"{folder_path}: no face found in any photo")
    matrix, labels = np.stack(emb), labels[found]
    i, j = sample_pairs(labels, pairs_per_person, seed)
    return matrix[i], matrix[j], labels[i] == labels[j]


def load_pairs(pairs: str, pipeline: Any, *, root: str | None = None, pairs_per_person: int = 20, seed: int = 0,
               progress: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(emb_a (T, D), emb_b (T, D), same (T,))`` from a pairs file or a folder of identities."""
    if os.path.isdir(pairs):
        return _pairs_from_folder(pairs, pipeline, pairs_per_person, seed)
    return _pairs_from_file(pairs, root, pipeline, progress)


def compare_head_and_threshold(head_json: str, threshold: float, emb_a: np.ndarray, emb_b: np.ndarray,
                               same: np.ndarray) -> dict[str, float]:
    """Accuracy of the head (probability > 0.5) and of ``distance <= threshold`` on pairs (T, D) x 2."""
    prob = np.array([head_probability(head_json, a[None], b[None])[0, 0] for a, b in zip(emb_a, emb_b)])
    return {"head_accuracy": float(((prob > 0.5) == same).mean()),
            "threshold_accuracy": accuracy_at(euclidean_rows(emb_a, emb_b), same, threshold)}


def train_head(pipeline: Any, pairs: str, *, root: str | None = None, features: Sequence[str] = ("abs",),
               pairs_per_person: int = 20, seed: int = 0, test: str | None = None, test_root: str | None = None,
               progress: bool = True) -> tuple[str, dict[str, Any]]:
    """Fit the head on ``pairs`` embedded by ``pipeline``; report its training accuracy beside the
    threshold calibrated on the same pairs, and on ``test`` pairs when given.

    Returns:
        ``(head JSON, report)``; the report's ``"better"`` is ``"head"`` or ``"threshold"``,
        whichever is more accurate on the test pairs (on the training pairs without ``test``), and
        its ``"encoder_tag"`` is the pipeline's.
    """
    ea, eb, same = load_pairs(pairs, pipeline, root=root, pairs_per_person=pairs_per_person, seed=seed,
                              progress=progress)
    feats = tuple(features)
    if "chi2" in feats and (ea.min() < 0 or eb.min() < 0):
        raise CnnkitError("--features chi2 needs non-negative embeddings; this encoder's have negative entries")
    blocks = tuple(getattr(pipeline.encoder, "blocks", (ea.shape[1],)))
    head = fit_head(ea, eb, same, features=feats, blocks=blocks, stored_weights=getattr(pipeline.encoder, "weights", None))
    threshold, _ = best_threshold(euclidean_rows(ea, eb), same)
    head_json = head.to_json(encoder_tag=pipeline.tag, trained_on=os.path.basename(os.path.normpath(pairs)))
    train = compare_head_and_threshold(head_json, threshold, ea, eb, same)
    result: dict[str, Any] = {"encoder_tag": pipeline.tag, "train_pairs": int(len(same)), "features": list(feats),
                              "threshold": threshold, "train_head_accuracy": train["head_accuracy"],
                              "train_threshold_accuracy": train["threshold_accuracy"]}
    if feats == ("block_sq",):  # the weighted sum of the parts' squared distances it decides by
        from cnnkit.faces.fused import fusion_from_head

        stored = getattr(pipeline.encoder, "weights", (1.0,) * len(blocks))
        result.update(fusion_from_head(json.loads(head_json), stored))
    decide = train
    if test:
        ta, tb, tsame = load_pairs(test, pipeline, root=test_root or root, pairs_per_person=pairs_per_person,
                                   seed=seed + 1, progress=progress)
        decide = compare_head_and_threshold(head_json, threshold, ta, tb, tsame)
        result.update({"test_pairs": int(len(tsame)), "test_head_accuracy": decide["head_accuracy"],
                       "test_threshold_accuracy": decide["threshold_accuracy"]})
    result["better"] = "head" if decide["head_accuracy"] > decide["threshold_accuracy"] else "threshold"
    return head_json, result


def pair_embeddings(pipeline: Any, pairs: Any, root: str | os.PathLike[str], *, progress: bool = True
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Embeddings of both images of every pair of a :class:`~cnnkit.faces.pairs.PairsFile`,
    (P, D) x 2, and (P,) bool: both images gave a face (NaN rows where not)."""
    from cnnkit.faces.pairs import encode_files, lfw_image_path

    files = {key: lfw_image_path(root, *key) for key in pairs.images()}
    emb = encode_files(pipeline, files.values(), progress=progress)
    dim = next((len(v) for v in emb.values() if isinstance(v, np.ndarray)), pipeline.dim)
    ea, eb = np.full((len(pairs), dim), np.nan, np.float32), np.full((len(pairs), dim), np.nan, np.float32)
    for k, p in enumerate(pairs.pairs):
        a, b = emb[files[(p.name_a, p.index_a)]], emb[files[(p.name_b, p.index_b)]]
        if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
            ea[k], eb[k] = a, b
    return ea, eb, ~np.isnan(ea).any(1) & ~np.isnan(eb).any(1)


def head_decider(pipeline: Any, emb_a: np.ndarray, emb_b: np.ndarray, same: np.ndarray, found: np.ndarray, *,
                 features: Sequence[str]) -> Any:
    """A ``decide(train_mask, test_mask)`` for :func:`~cnnkit.eval.verification.kfold_decision_accuracy`:
    fits the head on the training pairs with a face in both images, and says "same" for a test pair
    when its probability is above 0.5 (never for a pair without a face)."""
    blocks = tuple(getattr(pipeline.encoder, "blocks", (emb_a.shape[1],)))

    def decide(train: np.ndarray, test: np.ndarray) -> np.ndarray:
        fit = train & found
        head = fit_head(emb_a[fit], emb_b[fit], same[fit], features=features, blocks=blocks,
                        stored_weights=getattr(pipeline.encoder, "weights", None))
        spec = json.loads(head.to_json())
        out = np.zeros(int(test.sum()), dtype=bool)
        ok = found[test]
        a, b = emb_a[test][ok], emb_b[test][ok]
        out[ok] = np.array([head_probability(spec, x[None], y[None])[0, 0] > 0.5 for x, y in zip(a, b)], dtype=bool)
        return out

    return decide


def head_fold_accuracy(pipeline: Any, pairs: Any, root: str | os.PathLike[str], *, train: Any = None,
                       features: str = "auto", progress: bool = True) -> list[float]:
    """Accuracy per scored fold of the binary head fitted like the LFW threshold: on the other
    folds of a View 2 ``pairs`` file, or on the ``train`` pairs (View 1), never on the pairs scored.
    ``features="auto"``: ``block_sq`` for a fused encoder (fusion weights + threshold), else ``abs``."""
    feats = (("block_sq",) if getattr(pipeline.encoder, "parts", None) else ("abs",)) if features == "auto" \
        else tuple(features.split(","))
    ea, eb, found = pair_embeddings(pipeline, pairs, root, progress=progress)
    same, folds, score = pairs.labels, pairs.folds, None
    if train is not None:  # View 1: fold 0 = the training file, fold 1 = the pairs scored
        ta, tb, tfound = pair_embeddings(pipeline, train, root, progress=progress)
        ea, eb, found = np.vstack([ta, ea]), np.vstack([tb, eb]), np.r_[tfound, found]
        same, folds, score = np.r_[train.labels, same], np.r_[np.zeros(len(train)), np.ones(len(pairs))], [1]
    return kfold_decision_accuracy(same, folds, head_decider(pipeline, ea, eb, same, found, features=feats),
                                   score=score)


def store_head(gallery: Gallery, tag: str, head_json: str, method: str) -> None:
    """Store the head as the setting ``"head"`` of encoder ``tag`` and ``method`` (``"head"`` or
    ``"threshold"``) as the one ``--method auto`` uses."""
    gallery.set_setting(tag, "head", json.loads(head_json))
    gallery.set_setting(tag, "method", method)
