"""Batches of P identities x K images, and identity-disjoint splits."""
from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np

from cnnkit.core.errors import CnnkitError


def split_identities(n_people: int, *, val_fraction: float = 0.2, seed: int = 0,
                     min_val: int = 2) -> tuple[list[int], list[int]]:
    """Split person indices ``0..n_people-1`` into disjoint (train, validation) lists.

    ``val_fraction`` of the people (at least ``min_val`` when the fraction is > 0, at least 2 left to
    train) go to validation, chosen by ``seed``. Both lists are sorted.
    """
    if val_fraction <= 0:
        return list(range(n_people)), []
    n_val = max(min_val, int(round(n_people * val_fraction)))
    if n_people - n_val < 2:
        raise CnnkitError(f"{n_people} people are too few to hold out {n_val} for validation")
    perm = np.random.default_rng(seed).permutation(n_people)
    return sorted(int(i) for i in perm[n_val:]), sorted(int(i) for i in perm[:n_val])


class PKSampler:
    """Index batches of ``p`` people x ``k`` images each (the person's images drawn without
    replacement when it has at least ``k``, with replacement otherwise).

    Every batch has exactly ``p * k`` indices, ``p`` distinct labels and ``k`` indices per label, so
    every anchor has a positive and a negative. People with a single image are never chosen (they
    cannot make a positive). One epoch is ``ceil(n_images / (p * k))`` batches. Deterministic for a
    given ``seed`` and epoch (:meth:`set_epoch`).
    """

    def __init__(self, labels: Sequence[int], *, p: int = 8, k: int = 4, seed: int = 0,
                 batches_per_epoch: int | None = None) -> None:
        labels = np.asarray(labels, dtype=np.int64)
        self.by_label = {int(y): np.flatnonzero(labels == y) for y in np.unique(labels)}
        self.by_label = {y: idx for y, idx in self.by_label.items() if len(idx) >= 2}
        if len(self.by_label) < 2:
            raise CnnkitError("P x K sampling needs at least 2 people with 2 or more images each")
        self.p = min(p, len(self.by_label))
        self.k, self.seed, self.epoch = k, seed, 0
        self.n_batches = batches_per_epoch or max(1, -(-len(labels) // (self.p * self.k)))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n_batches

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        people = np.array(sorted(self.by_label))
        for _ in range(self.n_batches):
            batch: list[int] = []
            for y in rng.choice(people, size=self.p, replace=False):
                idx = self.by_label[int(y)]
                batch += rng.choice(idx, size=self.k, replace=len(idx) < self.k).tolist()
            yield batch
