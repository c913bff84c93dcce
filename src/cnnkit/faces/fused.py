"""Two (or more) face encoders fused into one embedding: the weighted concatenation of their
L2-normalised embeddings.

With weights w_k summing to 1, the fused vector ``[sqrt(w_1) e_1, sqrt(w_2) e_2]`` is a unit
vector and its squared Euclidean distance is ``sum_k w_k d_k^2``, the weighted sum of the parts'
squared distances. So the gallery, exact search and the one-matrix-product identification work
on fused vectors unchanged.

Specs: ``"dlib_resnet+sface"`` (the weights fitted on LFW pairsDevTrain, :data:`FUSIONS`),
``"dlib_resnet*0.4+sface*0.6"`` or ``"dlib_resnet,sface"`` (equal weights unless listed in
:data:`FUSIONS`). The tag names every part's tag and weight, so the spec can be read back from a
gallery (:func:`spec_from_tag`).
"""
from __future__ import annotations

import re
from typing import Any

import numpy as np

from cnnkit.core.errors import UnknownNameError

__all__ = ["FUSIONS", "FusedEncoder", "is_fused_spec", "parse_fused_spec", "spec_from_tag", "fusion_from_head",
           "fit_fusion"]

#: parts -> (weights, Euclidean threshold on the fused vector, mirror averaging per part), the weights
#: and threshold fitted for accuracy by the binary head over the parts' squared distances
#: (``--features block_sq``) on LFW pairsDevTrain with the default pipeline (RetinaFace; dlib's chip
#: by its 5-point predictor for dlib_resnet, OpenCV's template for sface) and those flips: see
#: ``benchmarks/lfw_view1.py``.
#: the clustering threshold rule's false-accept rate for a fitted fusion (cnnkit.faces.cluster):
#: chosen like dlib's CLUSTER_FAR, on LFW pairsDevTrain's 3,443 photos, the best of the sweep
#: 1e-5 / 3e-6 / 1e-6 / 5e-7 / 3e-7 / 2e-7 / 1e-7 / 5e-8 / 3e-8 / 1e-8 (``benchmarks/cluster_lfw.py
#: --tune``): F 0.965 / 0.981 / 0.987 / 0.990 / 0.9917 / 0.9920 / **0.9921** / 0.9918 / 0.9913 /
#: 0.990; the fusion's impostor tail is thinner than the normal model says.
FITTED_CLUSTER_FAR = 1e-7

FUSIONS: dict[tuple[str, ...], tuple[tuple[float, ...], float, tuple[bool, ...]]] = {
    # SFace on the chip alone: its mirror pass cost the most (about 20 of 80 ms per face) and
    # LFW View 1 pairsDevTest went 0.995 -> 0.994 without it (mirroring dlib's instead: 0.995, 7 ms)
    ("dlib_resnet", "sface"): ((0.8, 0.2), 0.6337, (True, False)),
}

_PART = re.compile(r"^\s*([A-Za-z0-9_]+)\s*(?:\*\s*([0-9.eE+-]+))?\s*$")


def is_fused_spec(spec: str) -> bool:
    return "+" in spec or "," in spec


def parse_fused_spec(spec: str) -> tuple[tuple[str, ...], tuple[float, ...] | None]:
    """``"a*0.4+b*0.6"`` -> (("a", "b"), (0.4, 0.6)); weights ``None`` when none are given.

    Raises:
        UnknownNameError: a malformed spec, some weights missing, or a weight not positive.
    """
    names, weights = [], []
    for item in re.split(r"[+,]", spec):
        m = _PART.match(item)
        if not m:
            raise UnknownNameError(f"bad fused encoder spec {spec!r}; expected e.g. 'dlib_resnet+sface' or "
                                   "'dlib_resnet*0.4+sface*0.6'")
        names.append(m.group(1))
        weights.append(None if m.group(2) is None else float(m.group(2)))
    if len(names) < 2:
        raise UnknownNameError(f"a fused encoder needs two or more parts, got {spec!r}")
    if all(w is None for w in weights):
        return tuple(names), None
    if any(w is None or not w > 0 for w in weights):
        raise UnknownNameError(f"{spec!r}: give a positive weight for every part, or none")
    return tuple(names), tuple(float(w) for w in weights)  # type: ignore[arg-type]


def spec_from_tag(tag: str) -> str | None:
    """The encoder spec that makes ``tag`` (``"dlib_resnet"``, ``"dlib_resnet*0.5+sface*0.5"``), or
    ``None`` when the tag is not a registered encoder's or a fusion of them."""
    parts = tag.split("+")
    out = []
    for part in parts:
        inner, _, weight = part.rpartition("*") if len(parts) > 1 else (part, "", "")
        name = inner.split(":")[0]
        if not re.fullmatch(r"[A-Za-z0-9_]+", name):
            return None
        out.append(f"{name}*{weight}" if weight else name)
    return "+".join(out)


class FusedEncoder:
    """Face encoders used together; each aligns its own chip (see ``FacePipeline``).

    Args:
        parts: the encoders.
        weights: one positive weight per part, normalised to sum to 1.
        default_threshold: Euclidean distance on the fused vector.
        part_flips: per part, whether the pipeline averages its embedding with the mirror
            image's by default (``None``: every part does). A pipeline's explicit ``flip`` overrides it.
    """

    version = "1"
    normalized = True
    whole_image = False
    flip = True

    def __init__(self, parts: list[Any], weights: tuple[float, ...], default_threshold: float,
                 part_flips: tuple[bool, ...] | None = None) -> None:
        if len(parts) != len(weights) or (part_flips is not None and len(part_flips) != len(parts)):
            raise UnknownNameError(f"{len(parts)} encoders but {len(weights)} weights"
                                   + ("" if part_flips is None else f" and {len(part_flips)} flips"))
        total = float(sum(weights))
        self.part_flips = tuple(True for _ in parts) if part_flips is None else tuple(bool(f) for f in part_flips)
        self.parts = list(parts)
        self.weights = tuple(float(w) / total for w in weights)
        self.default_threshold = float(default_threshold)
        self.name = "+".join(p.name for p in self.parts)
        self.dim = sum(p.dim for p in self.parts)
        self.blocks = tuple(p.dim for p in self.parts)

    @classmethod
    def from_spec(cls, spec: str, *, device: str = "cpu", part_flips: tuple[bool, ...] | None = None
                  ) -> "FusedEncoder":
        """The fusion a spec names; the weights, threshold and per-part flips of :data:`FUSIONS`
        when the spec gives no weights (or the fitted ones) and no ``part_flips``."""
        from cnnkit.faces.encoders import load_face_encoder

        names, weights = parse_fused_spec(spec)
        fitted = FUSIONS.get(names)
        if weights is None:
            weights = fitted[0] if fitted else tuple(1.0 for _ in names)
        parts = [load_face_encoder(n, device=device) for n in names]
        same = fitted is not None and np.allclose(np.asarray(weights) / sum(weights), fitted[0])
        if same and part_flips in (None, fitted[2]):
            fused = cls(parts, weights, fitted[1], fitted[2])
            fused.cluster_far = FITTED_CLUSTER_FAR
            return fused
        # unfitted weights: from the parts' thresholds on unit vectors, sqrt(sum_k w_k t_k^2)
        w = np.asarray(weights) / sum(weights)
        units = [float(getattr(p, "unit_threshold", p.default_threshold)) for p in parts]
        threshold = float(np.sqrt(sum(wk * t**2 for wk, t in zip(w, units))))
        return cls(parts, weights, threshold, part_flips)

    @property
    def weights_sha256(self) -> str:
        import hashlib

        return hashlib.sha256("+".join(p.weights_sha256 for p in self.parts).encode()).hexdigest()

    @property
    def tag(self) -> str:
        return "+".join(f"{p.tag}*{w:.4g}" for p, w in zip(self.parts, self.weights))

    def combine(self, embeddings: list[np.ndarray]) -> np.ndarray:
        """Each part's embeddings (N, D_k) -> the fused (N, sum D_k) float32: every block
        L2-normalised and scaled by the square root of its weight."""
        out = []
        for emb, w in zip(embeddings, self.weights):
            emb = np.asarray(emb, dtype=np.float64)
            out.append(np.sqrt(w) * emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12))
        return np.concatenate(out, axis=1).astype(np.float32)

    def __repr__(self) -> str:
        return f"FusedEncoder({self.tag!r}, threshold={self.default_threshold}, part_flips={self.part_flips})"



def fusion_from_head(spec: dict[str, Any], stored_weights: Any) -> dict[str, Any]:
    """The weighted sum of squared distances that a ``block_sq`` head decides by.

    The head says "same" when ``b + sum_k a_k D_k > 0``, with D_k the squared distance of stored
    block k, which is ``stored_weights[k]`` times part k's own squared distance d_k^2 (unit
    embeddings). So it decides ``sum_k w_k d_k^2 < t^2`` with ``w_k = -a_k stored_weights[k] / S``
    (S makes them sum to 1) and ``t^2 = b / S``.

    Returns:
        ``{"fusion_weights": [w_k], "fusion_threshold": t}``, t Euclidean on the fused vector.

    Raises:
        UnknownNameError: the head does not weigh distance against "same person".
    """
    v = -np.asarray(spec["weights"], dtype=np.float64) * np.asarray(stored_weights, dtype=np.float64)
    total = float(v.sum())
    if total <= 0 or float(spec["bias"]) <= 0:
        raise UnknownNameError("this head does not count distance against 'same person'; no fusion weights")
    return {"fusion_weights": [round(float(x) / total, 4) for x in v],
            "fusion_threshold": round(float(np.sqrt(float(spec["bias"]) / total)), 4)}


def fit_fusion(part_d2: np.ndarray, same: np.ndarray, *, step: float = 0.01) -> tuple[tuple[float, float], float, float]:
    """The weights and threshold of two parts' fusion with the highest accuracy on labelled pairs.

    Every weight ``w`` of the first part in [0, 1] (in ``step``s) is tried with its best threshold
    on ``sqrt(w d_1^2 + (1 - w) d_2^2)``; among the most accurate weights, the middle of the widest
    run of them is taken (the choice farthest from where accuracy drops).

    Args:
        part_d2: (T, 2) squared distances between the unit embeddings of each part.
        same: (T,) bool labels.

    Returns:
        ``((w, 1 - w), threshold on the fused vector, training accuracy)``.
    """
    from cnnkit.core.checks import check_shape
    from cnnkit.eval.verification import best_threshold

    d2 = np.asarray(part_d2, dtype=np.float64)
    check_shape(d2, "T 2", name="part_d2")
    grid = np.round(np.arange(0.0, 1.0 + 1e-9, step), 6)
    fits = [best_threshold(np.sqrt(w * d2[:, 0] + (1 - w) * d2[:, 1]), same) for w in grid]
    acc = np.array([a for _, a in fits])
    best = np.flatnonzero(acc >= acc.max() - 1e-12)
    runs = np.split(best, np.flatnonzero(np.diff(best) > 1) + 1)
    widest = max(runs, key=len)
    i = int(widest[len(widest) // 2])
    return (float(grid[i]), float(1 - grid[i])), float(fits[i][0]), float(acc[i])
