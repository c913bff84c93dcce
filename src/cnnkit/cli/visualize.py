"""``cnnkit visualize``: what the units of a ConvNet respond to (Zeiler & Fergus, 2014), for any
1D/2D/3D model: top-k patches per unit, first-layer filters, activation maps of one input."""
from __future__ import annotations

from typing import Any

import click

from cnnkit.cli._options import CommaList, device_option, emit, format_option, options, threads_option
from cnnkit.core.errors import CnnkitError
from cnnkit.core.paths import check_output_file, output_folder


def _setup(model: str, data: str | None, layers: tuple[str, ...] | None, size: int, cube: int, limit: int | None,
           device: str) -> tuple[Any, str, Any, list[str]]:
    """The model, its data source (default: a task model's own data) and the layers to draw (default:
    the model's own, else five convolutions spread from the first to the last)."""
    from cnnkit.nn.checkpoint import input_transform
    from cnnkit.nn.factory import load_model_spec
    from cnnkit.tasks.run import data_for
    from cnnkit.visualize.receptive import default_layers
    from cnnkit.visualize.sources import open_source

    net, name, config = load_model_spec(model, layers=list(layers) if layers else None, device=device)
    prepare, prepare_name = input_transform(config)
    dataset = open_source(data_for(config, data), size=size, cube=cube, limit=limit, prepare=prepare,
                          prepare_name=prepare_name)
    return net, name, dataset, list(layers or config.get("default_layers") or default_layers(net, dataset[0]))


@click.group()
def visualize() -> None:
    """What ConvNet units learn: the inputs that excite each unit most, filters, activation maps."""


_model_option = click.option(
    "--model", required=True, metavar="vgg19|FILE|MODULE:FACTORY",
    help="vgg19 (pretrained), a model saved by `cnnkit conv train` (.safetensors), a face encoder saved by `cnnkit "
         "train` (its own input size and scaling are used), or FILE.py:FACTORY / package.module:FACTORY, a function "
         "annotated `-> torch.nn.Module` that returns your model with its weights loaded. FILE.py is run as Python "
         "code, and the module is imported: use only code you trust. Pickled torch.save(model) files are refused.")
_layers_option = click.option("--layers", type=CommaList(), metavar="L1,L2,...", help="Layer names from "
                              "model.named_modules() [default: conv1_1,...,conv5_1 for vgg19, else 5 convolutions "
                              "spread from the first to the last].")
_input_options = options(
    click.option("--size", default=224, help="Images: resized and centre-cropped to SIZE x SIZE."),
    click.option("--cube", default=32, help="Volumes: cut into cubes of this side."))
_outdir_option = click.option("-o", "--output", "outdir", required=True, type=click.Path(file_okay=False),
                              help="Output folder.")


@visualize.command()
@_model_option
@click.option("--data", metavar="DIR|FILE",
              help="Folder of images, UCR .tsv series, NIfTI volume or 'mni152', or a .pt tensor (N, C, *S) "
                   "[default for task models: their training data].")
@_layers_option
@click.option("--units", "n_units", default=16, help="First N units (channels) of each layer.")
@click.option("--top", default=9, help="Inputs kept per unit.")
@_outdir_option
@_input_options
@click.option("--batch-size", default=16)
@click.option("--limit", type=int, help="Scan only the first N inputs.")
@click.option("--all-positions", is_flag=True, help="Keep the best positions overall, several per input "
                                                    "[default: one per input, its maximum].")
@click.option("--resume/--no-resume", default=True, help="Continue from OUTDIR/scan.ckpt when it matches.")
@click.option("--progress/--no-progress", default=True)
@device_option
@threads_option
@format_option
def units(model: str, data: str | None, layers: tuple[str, ...] | None, n_units: int, top: int, outdir: str,
          size: int, cube: int, batch_size: int, limit: int | None, all_positions: bool, resume: bool,
          progress: bool, device: str, fmt: str) -> None:
    """Scan the data once and draw, for each unit of each layer, its TOP inputs cropped to the unit's
    receptive field; write OUTDIR/units.json, sheets/, filters.png, activations/ and index.html."""
    from cnnkit.visualize.report import write_report
    from cnnkit.visualize.scan import scan_top_units

    out = output_folder(outdir)
    net, name, dataset, layer_list = _setup(model, data, layers, size, cube, limit, device)
    ckpt = out / "scan.ckpt"
    if not resume:
        ckpt.unlink(missing_ok=True)
    result = scan_top_units(net, dataset, layer_list, top=top, units=n_units, batch_size=batch_size,
                            distinct_inputs=not all_positions, checkpoint=ckpt, progress=progress,
                            device=device, limit=limit)
    doc = write_report(out, result, dataset, net, model_name=name, progress=progress)
    rows = [{"layer": layer, "receptive_field": v["receptive_field"], "units": len(v["units"]),
             "sheet": str(out / sheet)} for (layer, v), sheet in zip(doc["layers"].items(), doc["files"]["sheets"])]
    emit({"model": name, "inputs": result.seen, "index": str(out / "index.html"), "layers": rows}, fmt, rows=rows)


@visualize.command()
@_model_option
@click.option("--layer", help="A convolution [default: the first].")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="PNG file.")
@device_option
@threads_option
def filters(model: str, layer: str | None, output: str, device: str) -> None:
    """Draw the kernels of a convolution (by default the first) as an image grid."""
    from cnnkit.nn.factory import load_model_spec
    from cnnkit.visualize.filters import filter_image, first_conv

    path = check_output_file(output)
    net, _name, _config = load_model_spec(model, layers=[layer] if layer else None, device=device)
    filter_image(net, layer).save(path)
    click.echo(f"{output}: filters of {layer or first_conv(net)}")


@visualize.command()
@click.argument("image", metavar="INPUT")
@_model_option
@_layers_option
@click.option("--index", default=0, help="Item of INPUT when it holds several (series, cubes).")
@_outdir_option
@_input_options
@device_option
@threads_option
def activations(image: str, model: str, layers: tuple[str, ...] | None, index: int, outdir: str, size: int,
                cube: int, device: str) -> None:
    """Draw the activation maps of one INPUT (an image, or an item of a series/volume file) for
    each layer: OUTDIR/LAYER.png."""
    from cnnkit.visualize.report import write_activation_maps

    out = check_output_file(outdir)  # created once the input is known to be good
    net, _name, dataset, layer_list = _setup(model, image, layers, size, cube, None, device)
    if not 0 <= index < len(dataset):
        raise CnnkitError(f"--index {index} is outside 0..{len(dataset) - 1}")
    for path, layer, drawn, shape in write_activation_maps(output_folder(out), net, dataset[index], layer_list,
                                                           device=device):
        shown = f"{drawn} of {shape[0]} maps" if drawn < shape[0] else f"{drawn} maps"
        click.echo(f"{path}: {shown} of {layer}, shape {shape[1:]}")
