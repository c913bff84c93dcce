"""Training the binary "same person" head (:class:`~cnnkit.nn.heads.PairClassifierHead`) on
labelled pairs with the encoder frozen, and comparing it with a calibrated distance threshold.

Pairs come from an LFW-format pairs file (images under ``root``), or are sampled from a folder of
identities. Images are encoded once: by a face pipeline (detection + alignment + a face encoder
name) or, for a saved model whose config says ``"align": false``, by the whole image.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from cnnkit.core.errors import CnnkitError
from cnnkit.data.folders import IdentityFolder, scan_identity_folder
from cnnkit.eval.verification import accuracy_at, best_threshold
from cnnkit.nn.checkpoint import is_model_path
from cnnkit.nn.heads import fit_pair_head, head_probability


def _pairs_from_file(path: str, root: str | None, encoder: str, device: str, progress: bool
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """Encodings of both sides (T, D) x 2 and labels (T,) of the pairs whose images both gave a face."""
    from cnnkit.faces import FacePipeline
    from cnnkit.faces.pairs import encode_files, lfw_image_path, read_pairs

    pairs = read_pairs(path)
    root = root or str(Path(path).parent)
    pipe = FacePipeline(encoder, device=device)
    files = {key: lfw_image_path(root, *key) for key in pairs.images()}
    enc = encode_files(pipe, files.values(), progress=progress)
    a, b, y = [], [], []
    for p in pairs.pairs:
        ea, eb = enc[files[(p.name_a, p.index_a)]], enc[files[(p.name_b, p.index_b)]]
        if isinstance(ea, np.ndarray) and isinstance(eb, np.ndarray):
            a.append(ea)
            b.append(eb)
            y.append(p.same)
    if not y:
        raise CnnkitError(f"{path}: no pair with a face found in both images")
    return np.stack(a), np.stack(b), np.array(y, dtype=bool), pipe.tag


def _pairs_from_folder(folder_path: str, encoder: str, pairs_per_person: int, seed: int, device: str
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """Sampled pairs of a folder of identities: per person ``pairs_per_person`` same-person pairs
    and as many different-person pairs. Byte-identical files are dropped first."""
    index = scan_identity_folder(folder_path)
    labels = np.array(index.labels)
    if is_model_path(encoder):
        from cnnkit.nn.checkpoint import encode_images, load_encoder

        model, config = load_encoder(encoder, device=device)
        emb = encode_images(model, config, IdentityFolder(index).images)
        tag = f"{config['encoder']}:{config.get('weights_sha256', '')[:16]}"
    else:
        from cnnkit.faces import FacePipeline
        from cnnkit.faces.pairs import encode_files

        pipe = FacePipeline(encoder, device=device)
        enc = encode_files(pipe, index.paths, progress=False)
        found = [i for i, f in enumerate(index.paths) if isinstance(enc[f], np.ndarray)]
        emb = np.stack([enc[index.paths[i]] for i in found])
        labels, tag = labels[found], pipe.tag
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
    i_arr, j_arr = np.array(i_idx), np.array(j_idx)
    return emb[i_arr], emb[j_arr], labels[i_arr] == labels[j_arr], tag


def load_pairs(pairs: str, *, root: str | None = None, encoder: str = "dlib_resnet", pairs_per_person: int = 20,
               seed: int = 0, device: str = "cpu", progress: bool = True
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """``(emb_a (T, D), emb_b (T, D), same (T,), encoder tag)`` from a pairs file or a folder."""
    if os.path.isdir(pairs):
        return _pairs_from_folder(pairs, encoder, pairs_per_person, seed, device)
    return _pairs_from_file(pairs, root, encoder, device, progress)


def compare_head_and_threshold(head_json: str, threshold: float, emb_a: np.ndarray, emb_b: np.ndarray,
                               same: np.ndarray) -> dict[str, float]:
    """Accuracy of the head (probability > 0.5) and of ``distance <= threshold`` on pairs (T, D) x 2."""
    prob = np.array([head_probability(head_json, a[None], b[None])[0, 0] for a, b in zip(emb_a, emb_b)])
    dist = np.linalg.norm(emb_a.astype(np.float64) - emb_b.astype(np.float64), axis=1)
    return {"head_accuracy": float(((prob > 0.5) == same).mean()), "threshold_accuracy": accuracy_at(dist, same, threshold)}


def train_head_on_pairs(pairs: str, *, root: str | None = None, encoder: str = "dlib_resnet",
                        features: Sequence[str] = ("abs",), pairs_per_person: int = 20, seed: int = 0,
                        out: str | None = None, test: str | None = None, test_root: str | None = None,
                        db: str | None = None, device: str = "cpu", progress: bool = True) -> dict[str, Any]:
    """Fit the head on ``pairs``; report its training accuracy beside the threshold calibrated on
    the same pairs, and on ``test`` pairs when given. Writes the head JSON to ``out`` and, with
    ``db``, stores it in the gallery as the setting ``"head"`` of the encoder's tag (plus
    ``"method"``: ``"head"`` or ``"threshold"``, whichever is more accurate on the test pairs, or on
    the training pairs without ``test``).
    """
    ea, eb, same, tag = load_pairs(pairs, root=root, encoder=encoder, pairs_per_person=pairs_per_person, seed=seed,
                                   device=device, progress=progress)
    feats = tuple(features)
    if "chi2" in feats and (ea.min() < 0 or eb.min() < 0):
        raise CnnkitError("the chi2 feature needs non-negative encodings; this encoder's have negative entries")
    head = fit_pair_head(torch.from_numpy(ea), torch.from_numpy(eb), torch.from_numpy(same), features=feats)
    dist = np.linalg.norm(ea.astype(np.float64) - eb.astype(np.float64), axis=1)
    threshold, _ = best_threshold(dist, same)
    head_json = head.to_json(encoder_tag=tag, trained_on=os.path.basename(os.path.normpath(pairs)))
    train = compare_head_and_threshold(head_json, threshold, ea, eb, same)
    result: dict[str, Any] = {"encoder_tag": tag, "train_pairs": int(len(same)), "features": list(feats),
                              "threshold": threshold, "train_head_accuracy": train["head_accuracy"],
                              "train_threshold_accuracy": train["threshold_accuracy"]}
    decide = train
    if test:
        ta, tb, tsame, _ = load_pairs(test, root=test_root or root, encoder=encoder, pairs_per_person=pairs_per_person,
                                      seed=seed + 1, device=device, progress=progress)
        decide = compare_head_and_threshold(head_json, threshold, ta, tb, tsame)
        result.update({"test_pairs": int(len(tsame)), "test_head_accuracy": decide["head_accuracy"],
                       "test_threshold_accuracy": decide["threshold_accuracy"]})
    result["better"] = "head" if decide["head_accuracy"] > decide["threshold_accuracy"] else "threshold"
    if out:
        Path(out).write_text(head_json)
        result["head"] = out
    if db:
        from cnnkit.store import open_gallery

        with open_gallery(db) as gallery:
            gallery.set_setting(tag, "head", json.loads(head_json))
            gallery.set_setting(tag, "method", result["better"])
        result["db"] = db
    return result
