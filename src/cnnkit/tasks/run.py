"""Train and evaluate a registered task: the library side of ``cnnkit conv train/evaluate``."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnkit import __version__
from cnnkit.core.errors import CnnkitError
from cnnkit.core.numbers import round_metric
from cnnkit.nn.checkpoint import load_model
from cnnkit.tasks.registry import DataPath, get_task


@dataclass(frozen=True)
class TrainResult:
    """A trained model, its config (saved beside the weights) and the training wall time. The config
    also holds the process CPU time of training (``train_cpu_seconds``): on a machine shared with
    other work it tells what the run costs, whatever the wall time."""

    model: nn.Module
    config: dict[str, Any]
    seconds: float


def train_task(name: str, *, epochs: int | None = None, seed: int = 0, data: DataPath = None,
               progress: bool = True, evaluate: bool = True) -> TrainResult:
    """Train task ``name`` from a seeded random init for ``epochs`` (default: the task's), then score
    it on the task's test data when ``evaluate``.

    The same seed, data and thread count give the same model."""
    task = get_task(name)
    epochs = task.epochs if epochs is None else epochs
    torch.manual_seed(seed)
    model = task.build()
    start, cpu_start = time.perf_counter(), time.process_time()
    losses = task.train(model, epochs=epochs, seed=seed, data=data, progress=progress)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    config: dict[str, Any] = {
        "task": task.name, "metric": task.metric, "model": task.model, "model_kwargs": dict(task.model_kwargs),
        "input_shape": list(task.input_shape), "classes": list(task.classes),
        "preprocessing": dict(task.preprocessing), "epochs": epochs, "seed": seed,
        "train_seconds": round(seconds, 2), "train_cpu_seconds": round(cpu_seconds, 2), "losses": [round(v, 5) for v in losses],
        "torch_threads": torch.get_num_threads(), "cnnkit_version": __version__,
    }
    if evaluate:
        config["metrics"] = task.score(model, data=data)
    return TrainResult(model, config, seconds)


def data_for(config: dict[str, Any], data: DataPath = None) -> DataPath:
    """``data`` when given, else the data of the task a model saved by ``cnnkit conv train`` was
    trained on (its config's ``task``).

    Raises:
        CnnkitError: no ``data`` and the model names no task.
    """
    if data is not None:
        return data
    if "task" not in config:
        raise CnnkitError("--data is required for this model (it names no task whose data could be used)")
    return get_task(config["task"]).default_data()


def evaluate_model(model: nn.Module, config: dict[str, Any], *, data: DataPath = None) -> tuple[dict[str, float], float]:
    """Score a trained model on its task's test data. Returns (metrics, seconds)."""
    task = get_task(config["task"])
    start = time.perf_counter()
    metrics = task.score(model.eval(), data=data)
    return metrics, time.perf_counter() - start


def score_report(task: str, metric: str, metrics: dict[str, Any], seconds: float) -> dict[str, Any]:
    """A model's score as ``cnnkit conv train/evaluate`` print it: the task, its metric's value
    (rounded by :func:`~cnnkit.core.numbers.round_metric`), the number of test items ``n`` when the
    task counts them, and the seconds taken."""
    out: dict[str, Any] = {"task": task, "metric": metric, "value": round_metric(float(metrics[metric]))}
    if "n_test" in metrics:
        out["n"] = int(metrics["n_test"])
    return out | {"seconds": round(seconds, 2)}


def model_for(target: str | os.PathLike[str]) -> tuple[nn.Module, tuple[int, ...]]:
    """``(model, shape of one input without the batch dimension)`` of a saved model file, or of a
    task's fresh model when ``target`` is a task name.

    Raises:
        UnknownNameError: neither a file nor a task name.
    """
    if Path(target).is_file():
        model, config = load_model(target)
        return model, tuple(config["input_shape"])
    task = get_task(str(target))
    return task.build(), tuple(task.input_shape)
