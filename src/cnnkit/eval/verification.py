"""Metrics for 1:1 verification from pair distances.

Convention: ``distances`` (P,) where smaller means more alike; ``same`` (P,) bool labels. A pair is
declared "same person" when ``distance <= threshold``. Pairs whose distance is NaN (no face found)
are counted as "different" decisions, which is what a deployed system would do; they are kept in
every count so that accuracy is never flattered by dropping hard pairs.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

import numpy as np

from cnnkit.core.checks import check_same_shape, check_shape


def _prepare(distances: Any, same: Any) -> tuple[np.ndarray, np.ndarray]:
    d = np.asarray(distances, dtype=np.float64)
    y = np.asarray(same, dtype=bool)
    check_shape(d, "P", name="distances")
    check_same_shape(d, y, names=("distances", "same"))
    return np.where(np.isnan(d), np.inf, d), y


def roc_curve(distances: Any, same: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False and true acceptance rates at every distinct threshold.

    Returns:
        ``(far, tar, thresholds)``, each (T,), thresholds increasing; ``far[i]`` is the fraction of
        different-person pairs with distance <= ``thresholds[i]``, ``tar[i]`` that of same-person
        pairs. The first point is (0, 0) at threshold -inf.
    """
    d, y = _prepare(distances, same)
    order = np.argsort(d, kind="mergesort")
    d, y = d[order], y[order]
    n_pos, n_neg = max(int(y.sum()), 1), max(int((~y).sum()), 1)
    # index of the last occurrence of each distinct finite distance
    finite = np.isfinite(d)
    last = np.flatnonzero(np.r_[d[1:] != d[:-1], True] & finite)
    tp = np.cumsum(y)[last]
    fp = np.cumsum(~y)[last]
    far = np.r_[0.0, fp / n_neg]
    tar = np.r_[0.0, tp / n_pos]
    return far, tar, np.r_[-np.inf, d[last]]


def auc(distances: Any, same: Any) -> float:
    """Area under the ROC curve (trapezoids), extended to (1, 1)."""
    far, tar, _ = roc_curve(distances, same)
    far, tar = np.r_[far, 1.0], np.r_[tar, 1.0]
    return float(np.sum(np.diff(far) * (tar[1:] + tar[:-1]) / 2))


def eer(distances: Any, same: Any) -> float:
    """Equal error rate: where the false acceptance rate equals the false rejection rate
    (linear interpolation between ROC points)."""
    far, tar, _ = roc_curve(distances, same)
    frr = 1.0 - tar
    diff = far - frr  # increasing from -1 towards >= 0
    i = int(np.searchsorted(diff, 0.0))
    if i == 0:
        return float(far[0])
    if i >= len(diff):
        return float((far[-1] + frr[-1]) / 2)
    t = -diff[i - 1] / (diff[i] - diff[i - 1])
    return float(far[i - 1] + t * (far[i] - far[i - 1]))


def tar_at_far(distances: Any, same: Any, far_target: float) -> float:
    """Highest true acceptance rate with false acceptance rate <= ``far_target``."""
    far, tar, _ = roc_curve(distances, same)
    ok = far <= far_target
    return float(tar[ok].max()) if ok.any() else 0.0


def best_threshold(distances: Any, same: Any) -> tuple[float, float]:
    """The threshold with the highest accuracy, and that accuracy.

    The threshold returned is the midpoint between the accepted distance and the next larger one,
    so that it generalises rather than sitting on a training sample.
    """
    d, y = _prepare(distances, same)
    order = np.argsort(d, kind="mergesort")
    d, y = d[order], y[order]
    n = len(d)
    # accepting the first i pairs (i = 0..n): correct = same among first i + different among the rest
    correct = np.r_[0, np.cumsum(y)] + np.r_[(~y).sum(), (~y).sum() - np.cumsum(~y)]
    valid = np.r_[True, np.r_[d[1:] != d[:-1], True] & np.isfinite(d)]  # cut between distinct values
    i = int(np.argmax(np.where(valid, correct, -1)))
    if i == 0:
        thr = float(d[0]) - 1e-6 if n and np.isfinite(d[0]) else 0.0
    elif i >= n or not np.isfinite(d[i]):
        thr = float(d[i - 1])
    else:
        thr = float((d[i - 1] + d[i]) / 2)
    return thr, float(correct[i] / max(n, 1))


def accuracy_at(distances: Any, same: Any, threshold: float) -> float:
    """Fraction of pairs decided correctly with ``distance <= threshold``."""
    d, y = _prepare(distances, same)
    return float(np.mean((d <= threshold) == y)) if len(d) else float("nan")


def kfold_accuracy(distances: Any, same: Any, folds: Sequence[int] | np.ndarray) -> tuple[list[float], list[float]]:
    """LFW protocol: for each fold, choose the threshold on the other folds and score this one.

    Args:
        folds: (P,) fold index of every pair.

    Returns:
        (accuracy per fold, threshold per fold).
    """
    d, y = _prepare(distances, same)
    f = np.asarray(folds)
    check_same_shape(d, f, names=("distances", "folds"))
    accs, thrs = [], []
    for k in np.unique(f):
        train, test = f != k, f == k
        thr, _ = best_threshold(d[train], y[train])
        accs.append(accuracy_at(d[test], y[test], thr))
        thrs.append(thr)
    return accs, thrs


def kfold_decision_accuracy(same: Any, folds: Any, decide: Callable[[np.ndarray, np.ndarray], np.ndarray],
                            *, score: Sequence[int] | None = None) -> list[float]:
    """The LFW protocol for a fitted decision rule (a binary head, fusion weights): for each fold,
    ``decide(train_mask, test_mask)`` is fitted on the other folds' pairs only and returns its
    "same person" decisions (bool, one per test pair); the accuracy on the fold is returned.

    Args:
        same: (P,) bool labels.
        folds: (P,) fold index of every pair.
        score: the folds to score (default all); e.g. ``[1]`` for View 1 with fold 0 = pairsDevTrain.
    """
    y = np.asarray(same, dtype=bool)
    f = np.asarray(folds)
    check_same_shape(y, f, names=("same", "folds"))
    accs = []
    for k in (np.unique(f) if score is None else score):
        train, test = f != k, f == k
        decided = np.asarray(decide(train, test), dtype=bool)
        check_shape(decided, f"{int(test.sum())}", name="decisions")
        accs.append(float(np.mean(decided == y[test])))
    return accs


@dataclass(frozen=True)
class VerificationReport:
    auc: float
    eer: float
    tar_at_far: dict[str, float]
    threshold: float
    accuracy: float
    pairs: int
    impostor_pairs: int
    far_supported_down_to: float  # rule of 30: FAR claims below 30 / impostor pairs are not supported

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def verification_report(distances: Any, same: Any, *, fars: Sequence[float] = (1e-2, 1e-3)) -> VerificationReport:
    """ROC summary of a set of pairs, with the best-accuracy threshold."""
    d, y = _prepare(distances, same)
    thr, acc = best_threshold(d, y)
    n_imp = int((~y).sum())
    return VerificationReport(
        auc=auc(d, y), eer=eer(d, y),
        tar_at_far={f"{f:g}": tar_at_far(d, y, f) for f in fars},
        threshold=thr, accuracy=acc, pairs=len(d), impostor_pairs=n_imp,
        far_supported_down_to=30.0 / n_imp if n_imp else float("inf"),
    )


def lfw_accuracy(distances: Any, same: Any, *, folds: Sequence[int] | np.ndarray | None = None,
                 train: tuple[Any, Any] | None = None) -> tuple[list[float], float]:
    """The LFW protocol's accuracy: with several ``folds`` (View 2), :func:`kfold_accuracy`; else
    (View 1) the threshold chosen on the ``train`` pairs ``(distances, same)`` scores these pairs.

    Returns:
        (accuracy per fold, the threshold: the folds' mean for View 2).

    Raises:
        ValueError: one fold and no ``train`` pairs.
    """
    if folds is not None and len(np.unique(folds)) > 1:
        accs, thrs = kfold_accuracy(distances, same, folds)
        return accs, float(np.mean(thrs))
    if train is None:
        raise ValueError("a View 1 pairs file needs training pairs to choose the threshold on")
    threshold, _ = best_threshold(*train)
    return [accuracy_at(distances, same, threshold)], threshold
