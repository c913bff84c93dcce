"""Real 1D/2D/3D tasks (``ecg200``, ``ecg5000``, ``fashion-mnist``, ``brain3d``): data, model,
seeded training and scoring, and trained models saved as safetensors + JSON config.

Importing this package registers the tasks (it builds nothing and reads no data)."""
from cnnkit.tasks import brain, ecg, fashion  # noqa: F401  (registers the tasks)
from cnnkit.nn.checkpoint import load_model, read_config, save_model
from cnnkit.tasks.registry import ConvTask, get_task, list_tasks, register_task
from cnnkit.tasks.run import TrainResult, evaluate_model, train_task

__all__ = ["ConvTask", "TrainResult", "evaluate_model", "get_task", "list_tasks", "load_model", "read_config",
           "register_task", "save_model", "train_task"]
