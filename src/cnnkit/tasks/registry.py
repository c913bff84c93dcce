"""The task registry: each task names its model, its metric and how to fit and score it.

A task is a class registered with :func:`register_task`; :func:`get_task` returns its instance.
"""
from __future__ import annotations

import os
from typing import Any, ClassVar, Mapping

import torch
from torch import nn

from cnnkit.core.errors import ConfigError
from cnnkit.core.registry import Registry
from cnnkit.nn.models import create_model

DataPath = str | os.PathLike[str] | None


class ConvTask:
    """Base contract of a task. Subclasses set the class attributes and implement :meth:`fit` and
    :meth:`score`; ``score`` returns a dict holding at least the key ``metric``."""

    name: ClassVar[str]
    metric: ClassVar[str]
    model: ClassVar[str]                       # a name registered in cnnkit.nn.models
    model_kwargs: ClassVar[Mapping[str, Any]]
    epochs: ClassVar[int]
    input_shape: ClassVar[tuple[int, ...]]     # one example, without the batch dimension
    classes: ClassVar[tuple[str, ...]]
    preprocessing: ClassVar[Mapping[str, Any]] = {}

    def build(self) -> nn.Module:
        """A fresh model for this task (random weights)."""
        return create_model(self.model, **self.model_kwargs)

    def train(self, model: nn.Module, *, epochs: int, seed: int, data: DataPath, progress: bool) -> list[float]:
        """Train ``model`` on this task's data (through :func:`cnnkit.train.classify.fit_classifier`);
        the mean loss of each epoch."""
        raise NotImplementedError

    def score(self, model: nn.Module, *, data: DataPath) -> dict[str, float]:
        raise NotImplementedError

    def default_data(self) -> str:
        """The data ``cnnkit visualize`` scans for a model of this task when no ``--data`` is given.

        Raises:
            ConfigError: the task has none (its data must be named).
        """
        raise ConfigError(f"task {self.name!r}: --data is required for its models")

    def example_input(self, batch: int = 1) -> torch.Tensor:
        """Zeros of the task's input shape with a batch dimension, e.g. for a model summary."""
        return torch.zeros((batch, *self.input_shape))


#: task name -> the task's instance
TASKS: Registry[ConvTask] = Registry("task")


def register_task(cls: type[ConvTask]) -> type[ConvTask]:
    """Class decorator: register an instance of ``cls`` under ``cls.name``."""
    TASKS.add(cls.name, cls())
    return cls


def get_task(name: str) -> ConvTask:
    """The registered task called ``name``.

    Raises:
        UnknownNameError: listing the known tasks.
    """
    return TASKS.get(name)


def list_tasks() -> list[str]:
    return TASKS.names()
