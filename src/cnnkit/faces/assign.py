"""One subject at most once per photo: when two faces of one image pick the same person, the
closer face keeps the name and the other takes its next candidate within the threshold, or none."""
from __future__ import annotations

from dataclasses import replace
from typing import Sequence

from cnnkit.faces.recognition import IdentifiedFace

__all__ = ["assign_once"]


def assign_once(faces: Sequence[IdentifiedFace], threshold: float, *, reassign: bool = True) -> list[IdentifiedFace]:
    """Re-name ``faces`` (all of one image) so that no person is named twice.

    Args:
        faces: as :func:`~cnnkit.faces.recognition.identify_faces` returns them.
        threshold: the distance threshold the faces were named with.
        reassign: take (face, candidate) pairs with ``distance <= threshold``, closest first, and
            assign each when neither its face nor its person is taken yet, so that a face that
            loses its nearest person may get its next candidate. ``False`` (names decided by a
            binary head): a face keeps its own name only if no closer face has it, else none.

    Faces left without a person get ``name=None`` and keep the distance of their nearest candidate.
    """
    if reassign:
        pairs = [(c.distance, i, c.name) for i, f in enumerate(faces) for c in f.candidates if c.distance <= threshold]
    else:
        pairs = [(f.distance if f.distance is not None else 0.0, i, f.name) for i, f in enumerate(faces)
                 if f.name is not None]
    pairs.sort(key=lambda p: (p[0], p[1]))
    chosen: dict[int, tuple[str, float]] = {}
    taken: set[str] = set()
    for dist, i, name in pairs:
        if i not in chosen and name not in taken:
            chosen[i] = (name, dist)
            taken.add(name)
    return [replace(f, name=chosen[i][0], distance=chosen[i][1]) if i in chosen else replace(f, name=None)
            for i, f in enumerate(faces)]
