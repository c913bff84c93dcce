"""Open-set 1:K identification: rank-1 on enrolled people, rejection of never-enrolled people."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence


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
