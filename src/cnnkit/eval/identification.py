"""Open-set 1:K identification: rank-1 on enrolled people, rejection of never-enrolled people."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

__all__ = ["OpenSetReport", "open_set_report", "dir_at_fpir"]


@dataclass(frozen=True)
class OpenSetReport:
    rank1: float            # enrolled probes given the right name (and accepted)
    rejection: float        # never-enrolled probes declared unknown
    enrolled_probes: int
    unknown_probes: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def open_set_report(predicted: Sequence[str | None], truth: Sequence[str], enrolled: set[str]) -> OpenSetReport:
    """``predicted[i]`` is the name given to probe i (None = unknown), ``truth[i]`` its real identity."""
    known = [(p, t) for p, t in zip(predicted, truth) if t in enrolled]
    unknown = [p for p, t in zip(predicted, truth) if t not in enrolled]
    return OpenSetReport(
        rank1=sum(p == t for p, t in known) / len(known) if known else float("nan"),
        rejection=sum(p is None for p in unknown) / len(unknown) if unknown else float("nan"),
        enrolled_probes=len(known), unknown_probes=len(unknown),
    )


def dir_at_fpir(mated_distance: Any, mated_correct: Any, nonmated_distance: Any, fpir: float) -> float:
    """Open-set detection and identification rate at a false positive identification rate (NIST
    FRVT 1:N): the threshold is the loosest at which at most ``fpir`` of the never-enrolled
    (non-mated) probes come back with a candidate; DIR is the fraction of enrolled (mated) probes
    whose top candidate is right and within that threshold. FNIR = 1 - DIR.

    Args:
        mated_distance: (M,) distance to the top candidate of each mated probe (``inf`` for a probe
            that was not acquired: it is a miss).
        mated_correct: (M,) bool, the top candidate is the probe's person.
        nonmated_distance: (U,) distance to the top candidate of each non-mated probe.
        fpir: the false positive identification rate allowed, in [0, 1].
    """
    import numpy as np

    md = np.asarray(mated_distance, dtype=np.float64)
    ok = np.asarray(mated_correct, dtype=bool)
    nd = np.sort(np.asarray(nonmated_distance, dtype=np.float64))
    if not len(md):
        return float("nan")
    allowed = int(np.floor(fpir * len(nd) + 1e-9))  # false positives allowed
    cut = np.inf if allowed >= len(nd) else nd[allowed]  # accept distances strictly below the cut
    return float(np.mean(ok & (md < cut)))
