"""Activations of named layers, captured with forward hooks that are removed afterwards."""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor, nn

from cnnkit.core.errors import CnnkitError, UnknownNameError

__all__ = ["capture_activations"]


class _Done(Exception):
    """Every requested layer has run; the rest of the forward pass is skipped."""


@torch.no_grad()
def capture_activations(model: nn.Module, x: Tensor, layers: Sequence[str]) -> dict[str, Tensor]:
    """Outputs of ``layers`` (names from ``model.named_modules()``) for the input ``x`` (B, C, *S).

    Returns ``{name: (B, C_l, *S_l)}`` in the order of ``layers``; the forward pass stops after the
    last of them. A module called several times gives its first output.

    Raises:
        UnknownNameError: a name is not a module of ``model``.
    """
    modules = dict(model.named_modules())
    unknown = [n for n in layers if n not in modules or not n]
    if unknown:
        raise UnknownNameError(f"unknown layer(s) {unknown}; available: "
                               f"{[n for n, m in modules.items() if n and not list(m.children())]}")
    found: dict[str, Tensor] = {}

    def hook_for(name: str):
        def hook(_m: nn.Module, _a: tuple, out: Any) -> None:
            if name not in found:
                found[name] = (out[0] if isinstance(out, (tuple, list)) else out).detach().clone()
            if len(found) == len(set(layers)):
                raise _Done
        return hook

    handles = [modules[n].register_forward_hook(hook_for(n)) for n in dict.fromkeys(layers)]
    try:
        model.eval()(x)
    except _Done:
        pass
    finally:
        for h in handles:
            h.remove()
    missing = [n for n in layers if n not in found]
    if missing:
        raise CnnkitError(f"layer(s) {missing} did not run in the forward pass")
    return {n: found[n] for n in layers}
