"""The one training loop of cnnkit: metric learning (``cnnkit train``, :mod:`cnnkit.train.loop`) and
classification or segmentation (``cnnkit conv train``, :mod:`cnnkit.train.classify`) both run it.

:func:`fit` owns what every training shares: train mode, one optimiser (and scheduler) step per
batch, the loss scaled before ``backward`` (for gathered distributed batches), progress on stderr,
the mean loss and per-batch statistics of each epoch, resuming at an epoch, and a callback after
every epoch (validation, checkpoints, logs). What a batch is and how its loss is computed is the
caller's.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
from torch import Tensor, nn

#: ``loss_fn(batch, epoch, step) -> (loss, items in the batch, {statistic: value})``
LossFn = Callable[[Any, int, int], tuple[Tensor, int, dict[str, float]]]


def fit(model: nn.Module, batches: Callable[[int], Iterable[Any]], loss_fn: LossFn, optimizer: Any, *,
        epochs: int, scheduler: Any = None, start_epoch: int = 0, loss_scale: float = 1.0,
        steps_per_epoch: int | None = None, on_epoch: Callable[[dict[str, Any]], None] | None = None,
        progress: bool = True, desc: str = "epoch") -> list[dict[str, Any]]:
    """Train ``model`` for epochs ``start_epoch .. epochs - 1``.

    Args:
        batches: ``batches(epoch)`` yields the batches of one epoch, in order.
        loss_fn: the loss of one batch with the number of items in it (the epoch's loss is the
            item-weighted mean) and statistics averaged over the epoch's batches.
        loss_scale: ``backward`` runs on ``loss * loss_scale`` (the reported loss is unscaled).
        steps_per_epoch: the progress bar's length.
        on_epoch: called with each epoch's record ``{"epoch" (1-based), "loss", statistics...,
            "lr", "seconds"}``; it may add keys (validation metrics) before the record is returned.

    Returns:
        the records of the epochs run.
    """
    records = []
    for epoch in range(start_epoch, epochs):
        model.train()
        t0 = time.time()
        total, count, stats = 0.0, 0, {}
        items: Iterable[Any] = batches(epoch)
        if progress:
            from tqdm import tqdm

            items = tqdm(items, total=steps_per_epoch, desc=f"{desc} {epoch + 1}/{epochs}", leave=False)
        for step, batch in enumerate(items):
            loss, n, extra = loss_fn(batch, epoch, step)
            optimizer.zero_grad(set_to_none=True)
            (loss * loss_scale if loss_scale != 1.0 else loss).backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            total, count = total + float(loss.detach()) * n, count + n
            for key, value in extra.items():
                stats.setdefault(key, []).append(value)
        record: dict[str, Any] = {"epoch": epoch + 1, "loss": total / max(count, 1)}
        record.update({key: float(np.mean(values)) for key, values in stats.items()})
        record["lr"] = float(optimizer.param_groups[0]["lr"])
        record["seconds"] = round(time.time() - t0, 2)
        if on_epoch is not None:
            on_epoch(record)
        records.append(record)
    model.eval()
    return records
