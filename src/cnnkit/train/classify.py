"""Classification and per-position segmentation (the tasks of ``cnnkit conv train``) through the one
loop, :func:`cnnkit.train.fit.fit`: cross-entropy, AdamW with a one-cycle learning rate, seeded
data order and augmentation."""
from __future__ import annotations

import random
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cnnkit.train.fit import fit

Augment = Callable[[Tensor, torch.Generator], Tensor]


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch; return a torch generator for data order and augmentation."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def _batches(n: int, batch_size: int, gen: torch.Generator) -> Iterator[Tensor]:
    order = torch.randperm(n, generator=gen)
    for start in range(0, n, batch_size):
        yield order[start:start + batch_size]


def fit_classifier(model: nn.Module, x: Tensor, y: Tensor, *, epochs: int, batch_size: int, lr: float, seed: int,
                   weight_decay: float = 1e-4, label_smoothing: float = 0.0, augment: Augment | None = None,
                   class_weight: Tensor | None = None, progress: bool = True, desc: str = "train") -> list[float]:
    """Train ``model`` on inputs ``x`` (N, C, *spatial) and targets ``y``: (N,) class indices for a
    classifier, or (N, *spatial) for a per-position segmenter.

    Returns:
        the mean training loss of each epoch.
    """
    gen = seed_everything(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps = (len(x) + batch_size - 1) // batch_size
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(epochs * steps, 1), pct_start=0.25)

    def loss_fn(idx: Tensor, epoch: int, step: int) -> tuple[Tensor, int, dict[str, float]]:
        xb, yb = x[idx], y[idx]
        if augment is not None:
            xb = augment(xb, gen)
        return F.cross_entropy(model(xb), yb, weight=class_weight, label_smoothing=label_smoothing), len(idx), {}

    records = fit(model, lambda epoch: _batches(len(x), batch_size, gen), loss_fn, opt, epochs=epochs,
                  scheduler=sched, steps_per_epoch=steps, progress=progress, desc=desc)
    return [r["loss"] for r in records]


@torch.no_grad()
def predict_logits(model: nn.Module, x: Tensor, *, batch_size: int = 512) -> Tensor:
    """Logits of ``model`` in eval mode for ``x`` (N, C, *spatial), computed in batches."""
    was_training = model.training
    model.eval()
    out = torch.cat([model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])
    model.train(was_training)
    return out
