"""``cnnkit conv``: train and evaluate the 1D/2D/3D convolution tasks, list them, and print a model
summary (every layer's output shape, parameters and multiply-adds)."""
from __future__ import annotations

import click

from cnnkit.cli._options import emit, format_option, options, threads_option

_data_options = options(click.option(
    "--data", type=click.Path(exists=True, file_okay=False),
    help="Folder with the task's data files (UCR TSV files, Fashion-MNIST IDX files) [default: the "
         "repository's data/, $CNNKIT_UCR_DIR / $CNNKIT_FASHION_MNIST, the cache, Debian's package]."),
    threads_option, format_option)


@click.group()
def conv() -> None:
    """1D, 2D and 3D convolutions on real signals (ECG), images (Fashion-MNIST) and volumes (MNI152)."""


@conv.command("tasks")
@format_option
def tasks_cmd(fmt: str) -> None:
    """List the tasks."""
    from cnnkit.tasks import get_task, list_tasks

    emit([{"task": n, "metric": (t := get_task(n)).metric, "model": t.model, "epochs": t.epochs,
           "input_shape": "x".join(map(str, t.input_shape))} for n in list_tasks()], fmt)


@conv.command()
@click.argument("task")
@click.option("--epochs", type=click.IntRange(min=1), help="Epochs [default: the task's].")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Model file to write (MODEL.safetensors + MODEL.json).")
@click.option("--seed", default=0)
@click.option("--progress/--no-progress", default=True, help="Progress bar on stderr.")
@_data_options
def train(task: str, epochs: int | None, output: str, seed: int, progress: bool, data: str | None,
          fmt: str) -> None:
    """Train TASK from a seeded init, save it to OUTPUT and print its test score."""
    from cnnkit.core.paths import check_output_file
    from cnnkit.tasks import get_task, save_model, train_task
    from cnnkit.tasks.run import score_report

    get_task(task)  # unknown names fail before any data is read
    check_output_file(output)  # before minutes of work, and no folder is created
    result = train_task(task, epochs=epochs, seed=seed, data=data, progress=progress)
    path = save_model(output, result.model, result.config)
    emit(score_report(task, result.config["metric"], result.config["metrics"], result.seconds), fmt)
    click.echo(f"saved {path}", err=True)


@conv.command()
@click.argument("model_path", metavar="MODEL", type=click.Path(exists=True, dir_okay=False))
@_data_options
def evaluate(model_path: str, data: str | None, fmt: str) -> None:
    """Score a MODEL saved by ``conv train`` on its task's test data."""
    from cnnkit.tasks import evaluate_model, load_model
    from cnnkit.tasks.run import score_report

    model, config = load_model(model_path)
    metrics, seconds = evaluate_model(model, config, data=data)
    emit(score_report(config["task"], config["metric"], metrics, seconds), fmt)


@conv.command()
@click.argument("target", metavar="TASK|MODEL")
@click.option("--batch", type=click.IntRange(min=1), default=1)
@format_option
def summary(target: str, batch: int, fmt: str) -> None:
    """Every layer of a task's model (or a saved MODEL): output shape, parameters, multiply-adds."""
    from cnnkit.nn.shapes import model_summary, summary_table
    from cnnkit.tasks.run import model_for

    model, shape = model_for(target)
    rows = summary_table(model_summary(model, (batch, *shape)))
    emit(rows[:-1], fmt, rows=rows)  # the total in tables only
