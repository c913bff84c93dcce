"""``cnnkit conv``: train and evaluate the 1D/2D/3D convolution tasks, list them, and print a model
summary (every layer's output shape, parameters and multiply-adds)."""
from __future__ import annotations

import click

from cnnkit.cli._options import format_option, threads_option
from cnnkit.cli._output import emit, round_metric

_data_option = click.option(
    "--data", "data", default=None, type=click.Path(exists=True, file_okay=False),
    help="Folder with the task's data files (UCR TSV files, Fashion-MNIST IDX files) [default: the "
         "repository's data/, $CNNKIT_UCR_DIR / $CNNKIT_FASHION_MNIST, the cache, Debian's package].")


@click.group()
def conv() -> None:
    """1D, 2D and 3D convolutions on real signals (ECG), images (Fashion-MNIST) and volumes (MNI152)."""


@conv.command("tasks")
@format_option
def tasks_cmd(fmt: str) -> None:
    """List the tasks."""
    from cnnkit.tasks import get_task, list_tasks

    rows = [{"task": n, "metric": (t := get_task(n)).metric, "model": t.model, "epochs": t.epochs,
             "input_shape": "x".join(map(str, t.input_shape))} for n in list_tasks()]
    emit(rows, fmt)


@conv.command()
@click.argument("task")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Epochs [default: the task's].")
@click.option("-o", "--output", "output", required=True, type=click.Path(dir_okay=False),
              help="Model file to write (MODEL.safetensors + MODEL.json).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress bar on stderr.")
@_data_option
@threads_option
@format_option
def train(task: str, epochs: int | None, output: str, seed: int, progress: bool, data: str | None,
          fmt: str) -> None:
    """Train TASK from a seeded init, save it to OUTPUT and print its test score."""
    from cnnkit.core.paths import check_output_file
    from cnnkit.tasks import get_task, save_model, train_task

    get_task(task)  # unknown names fail before any data is read
    check_output_file(output)  # before minutes of work, and no folder is created
    result = train_task(task, epochs=epochs, seed=seed, data=data, progress=progress)
    path = save_model(output, result.model, result.config)
    emit(_score(task, result.config["metric"], result.config["metrics"], result.seconds), fmt)
    click.echo(f"saved {path}", err=True)


@conv.command()
@click.argument("model_path", metavar="MODEL", type=click.Path(exists=True, dir_okay=False))
@_data_option
@threads_option
@format_option
def evaluate(model_path: str, data: str | None, fmt: str) -> None:
    """Score a MODEL saved by ``conv train`` on its task's test data."""
    from cnnkit.tasks import evaluate_model, load_model

    model, config = load_model(model_path)
    metrics, seconds = evaluate_model(model, config, data=data)
    emit(_score(config["task"], config["metric"], metrics, seconds), fmt)


def _score(task: str, metric: str, metrics: dict, seconds: float) -> dict:
    """The printed result: the metric rounded by :func:`round_metric`, with the number of test items."""
    out = {"task": task, "metric": metric, "value": round_metric(float(metrics[metric]))}
    if "n_test" in metrics:
        out["n"] = int(metrics["n_test"])
    return out | {"seconds": round(seconds, 2)}


@conv.command()
@click.argument("target", metavar="TASK|MODEL")
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True)
@format_option
def summary(target: str, batch: int, fmt: str) -> None:
    """Every layer of a task's model (or a saved MODEL): output shape, parameters, multiply-adds."""
    from pathlib import Path

    from cnnkit.nn.shapes import model_summary
    from cnnkit.tasks import get_task, load_model

    if Path(target).is_file():
        model, config = load_model(target)
        shape = tuple(config["input_shape"])
    else:
        task = get_task(target)
        model, shape = task.build(), task.input_shape
    rows = [{"layer": r.name, "type": r.kind, "output_shape": "x".join(map(str, r.output_shape)),
             "params": r.params, "mult_adds": r.mult_adds} for r in model_summary(model, (batch, *shape))]
    if fmt == "json":
        emit(rows, fmt)
        return
    rows.append({"layer": "total", "params": sum(r["params"] for r in rows),
                 "mult_adds": sum(r["mult_adds"] for r in rows)})
    emit(rows, fmt)
