"""Seeded training and prediction loops shared by the tasks (tqdm progress on stderr)."""
from __future__ import annotations

import random
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

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


def fit(model: nn.Module, x: Tensor, y: Tensor, *, epochs: int, batch_size: int, lr: float, seed: int,
        weight_decay: float = 1e-4, label_smoothing: float = 0.0, augment: Augment | None = None,
        class_weight: Tensor | None = None, progress: bool = True, desc: str = "train") -> list[float]:
    """Train ``model`` with AdamW and a one-cycle learning rate on inputs ``x`` (N, C, *spatial) and
    targets ``y``: (N,) class indices for a classifier, or (N, *spatial) for a per-position segmenter.

    Returns:
        the mean training loss of each epoch.
    """
    gen = seed_everything(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps = epochs * ((len(x) + batch_size - 1) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(steps, 1), pct_start=0.25)
    losses = []
    model.train()
    bar = tqdm(total=steps, desc=desc, disable=not progress, leave=False)
    for _ in range(epochs):
        total, count = 0.0, 0
        for idx in _batches(len(x), batch_size, gen):
            xb, yb = x[idx], y[idx]
            if augment is not None:
                xb = augment(xb, gen)
            loss = F.cross_entropy(model(xb), yb, weight=class_weight, label_smoothing=label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total, count = total + float(loss.detach()) * len(idx), count + len(idx)
            bar.update(1)
        losses.append(total / count)
        bar.set_postfix(loss=f"{losses[-1]:.4f}")
    bar.close()
    model.eval()
    return losses


@torch.no_grad()
def predict_logits(model: nn.Module, x: Tensor, *, batch_size: int = 512) -> Tensor:
    """Logits of ``model`` in eval mode for ``x`` (N, C, *spatial), computed in batches."""
    was_training = model.training
    model.eval()
    out = torch.cat([model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])
    model.train(was_training)
    return out


def accuracy(pred: Tensor, target: Tensor) -> float:
    """Fraction of equal entries of two (N,) index tensors, k/N computed exactly (no float32 mean:
    88 of 100 is 0.88, not 0.8799999952316284)."""
    return int((pred == target).sum()) / max(int(target.numel()), 1)


def dice(pred: Tensor, target: Tensor, label: int) -> float:
    """Dice overlap 2|P∩T| / (|P| + |T|) of ``label`` in two label volumes of the same shape."""
    p, t = pred == label, target == label
    denom = int(p.sum() + t.sum())
    return 1.0 if denom == 0 else 2.0 * int((p & t).sum()) / denom
