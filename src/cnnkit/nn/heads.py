"""Heads on top of encoders: the L2-normalised embedding head, and the binary "same person" head.

:class:`PairClassifierHead` is the logistic unit of DeepFace (Taigman et al. 2014):
``y = sigmoid(sum_k w_k phi_k(f_i, f_j) + b)`` over element-wise features of two embeddings,
``|f_i - f_j|``, ``(f_i - f_j)^2`` and, for non-negative embeddings only, the chi-squared form
``(f_i - f_j)^2 / (f_i + f_j)``; and ``block_sq``, the squared distance of each block of the
embedding (``blocks``: the lengths of a fused embedding's parts), with which the head learns the
weights and the threshold of a weighted sum of the parts' squared distances. It is serialised to plain JSON (:meth:`PairClassifierHead.to_json`)
so that the gallery can store it, and :func:`head_probability` evaluates that JSON with numpy.
"""
from __future__ import annotations

import json
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cnnkit.core.checks import check_shape
from cnnkit.core.errors import ShapeError, UnknownNameError

FEATURES = ("abs", "sq", "chi2", "block_sq")
_EPS = 1e-8


class EmbeddingHead(nn.Module):
    """Linear projection to ``dim``, optional batch norm, then L2 normalisation.
    (B, C) -> (B, dim), unit rows.

    The batch norm (``batch_norm=True``) centres the projections over the batch, so pooled ReLU
    features, which all point the same way at initialisation, do not start as nearly one vector.
    """

    def __init__(self, in_features: int, dim: int = 128, *, batch_norm: bool = False) -> None:
        super().__init__()
        self.proj = nn.Linear(in_features, dim, bias=not batch_norm)
        self.norm: nn.Module = nn.BatchNorm1d(dim) if batch_norm else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return F.normalize(self.norm(self.proj(x)), p=2, dim=1)


def _feature_width(name: str, dim: int, blocks: tuple[int, ...]) -> int:
    return len(blocks) if name == "block_sq" else dim


def _check_blocks(dim: int, blocks: Sequence[int] | None) -> tuple[int, ...]:
    out = tuple(int(b) for b in blocks) if blocks else (dim,)
    if sum(out) != dim:
        raise ShapeError(f"blocks {list(out)} do not add up to the embedding length {dim}")
    return out


def pair_features(emb_a: Tensor, emb_b: Tensor, features: Sequence[str] = ("abs",),
                  blocks: Sequence[int] | None = None) -> Tensor:
    """Pair features, concatenated: (T, D), (T, D) -> (T, F), F = D per element-wise feature plus
    one per block for ``"block_sq"`` (``blocks`` sum to D; default one block).

    Raises:
        UnknownNameError: a feature other than ``"abs"``, ``"sq"`` or ``"chi2"``.
        ShapeError: ``"chi2"`` asked for embeddings that have negative entries.
    """
    check_shape(emb_a, "T D", name="emb_a")
    check_shape(emb_b, f"{emb_a.shape[0]} {emb_a.shape[1]}", name="emb_b")
    out = []
    for name in features:
        if name == "abs":
            out.append((emb_a - emb_b).abs())
        elif name == "sq":
            out.append((emb_a - emb_b).pow(2))
        elif name == "chi2":
            if bool((emb_a < 0).any() or (emb_b < 0).any()):
                raise ShapeError("the chi2 feature needs non-negative embeddings; use features=('abs',)")
            out.append((emb_a - emb_b).pow(2) / (emb_a + emb_b + _EPS))
        elif name == "block_sq":
            sq = (emb_a - emb_b).pow(2)
            out.append(torch.stack([c.sum(1) for c in sq.split(list(_check_blocks(sq.shape[1], blocks)), 1)], 1))
        else:
            raise UnknownNameError(f"unknown pair feature {name!r}; available: {list(FEATURES)}")
    return torch.cat(out, dim=1)


class PairClassifierHead(nn.Module):
    """Logistic unit over pair features. ``forward(emb_a (T, D), emb_b (T, D)) -> logits (T,)``;
    the probability "same person" is ``sigmoid`` of it."""

    def __init__(self, dim: int, *, features: Sequence[str] = ("abs",), blocks: Sequence[int] | None = None) -> None:
        super().__init__()
        self.dim, self.features = dim, tuple(features)
        self.blocks = _check_blocks(dim, blocks)
        self.linear = nn.Linear(sum(_feature_width(f, dim, self.blocks) for f in self.features), 1)

    def forward(self, emb_a: Tensor, emb_b: Tensor) -> Tensor:
        return self.linear(pair_features(emb_a, emb_b, self.features, self.blocks)).squeeze(1)

    def to_json(self, **extra: Any) -> str:
        """The head as JSON: ``{"features", "dim", "blocks", "weights", "bias", ...extra}``."""
        return json.dumps({
            "features": list(self.features), "dim": self.dim, "blocks": list(self.blocks),
            "weights": self.linear.weight.detach().double().squeeze(0).tolist(),
            "bias": float(self.linear.bias.detach()), **extra,
        })

    @classmethod
    def from_json(cls, text: str | dict[str, Any]) -> "PairClassifierHead":
        spec = json.loads(text) if isinstance(text, str) else text
        head = cls(int(spec["dim"]), features=spec["features"], blocks=spec.get("blocks"))
        with torch.no_grad():
            head.linear.weight.copy_(torch.tensor(spec["weights"], dtype=torch.float32)[None])
            head.linear.bias.fill_(float(spec["bias"]))
        return head


def fit_pair_head(
    emb_a: Tensor, emb_b: Tensor, same: Tensor, *, features: Sequence[str] = ("abs",),
    blocks: Sequence[int] | None = None, weight_decay: float = 1e-4, steps: int = 200,
) -> PairClassifierHead:
    """Fit a :class:`PairClassifierHead` on frozen embeddings by L-BFGS on the mean binary
    cross-entropy plus ``weight_decay * |w|^2``.

    Args:
        emb_a: embeddings of the first images, shape (T, D).
        emb_b: embeddings of the second images, shape (T, D).
        same: 1 for same-person pairs, shape (T,).
    """
    emb_a, emb_b = emb_a.detach().float(), emb_b.detach().float()
    y = torch.as_tensor(same, dtype=torch.float32)
    check_shape(y, f"{emb_a.shape[0]}", name="same")
    head = PairClassifierHead(emb_a.shape[1], features=features, blocks=blocks)
    feats = pair_features(emb_a, emb_b, head.features, head.blocks)
    opt = torch.optim.LBFGS(head.parameters(), lr=1.0, max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        opt.zero_grad()
        logits = head.linear(feats).squeeze(1)
        loss = F.binary_cross_entropy_with_logits(logits, y) + weight_decay * head.linear.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return head


def head_probability(head_json: str | dict[str, Any], emb_a: np.ndarray, emb_b: np.ndarray) -> np.ndarray:
    """Probability "same person" of every pair (a_i, b_j), with numpy only.

    Args:
        head_json: :meth:`PairClassifierHead.to_json` output (text or parsed).
        emb_a: embeddings, shape (N, D).
        emb_b: embeddings, shape (M, D).

    Returns:
        probabilities, shape (N, M), float64.
    """
    spec = json.loads(head_json) if isinstance(head_json, str) else head_json
    a = np.asarray(emb_a, dtype=np.float64)
    b = np.asarray(emb_b, dtype=np.float64)
    d = int(spec["dim"])
    check_shape(a, f"N {d}", name="emb_a")
    check_shape(b, f"M {d}", name="emb_b")
    blocks = _check_blocks(d, spec.get("blocks"))
    w_all = np.asarray(spec["weights"], dtype=np.float64)
    logits = np.full((len(a), len(b)), float(spec["bias"]))
    start = 0
    for name in spec["features"]:
        width = _feature_width(name, d, blocks)
        w, start = w_all[start:start + width], start + width
        if name == "block_sq":  # squared distance per block: |a|^2 + |b|^2 - 2 a.b, one matrix product
            lo = 0
            for k, size in enumerate(blocks):
                ab, bb = a[:, lo:lo + size], b[:, lo:lo + size]
                sq = (ab**2).sum(1)[:, None] + (bb**2).sum(1)[None, :] - 2 * ab @ bb.T
                logits += w[k] * np.clip(sq, 0, None)
                lo += size
            continue
        diff = a[:, None, :] - b[None, :, :]
        if name == "abs":
            logits += np.abs(diff) @ w
        elif name == "sq":
            logits += (diff**2) @ w
        elif name == "chi2":
            logits += (diff**2 / (a[:, None, :] + b[None, :, :] + _EPS)) @ w
        else:
            raise UnknownNameError(f"unknown pair feature {name!r}; available: {list(FEATURES)}")
    return 1.0 / (1.0 + np.exp(-logits))
