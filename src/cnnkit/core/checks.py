"""Shape checks at public boundaries. Work on anything with a ``.shape`` (torch tensors, numpy
arrays) without importing either library."""
from __future__ import annotations

from typing import Any

from cnnkit.core.errors import ShapeError


def check_shape(x: Any, spec: str, *, name: str = "input") -> dict[str, int]:
    """Check that ``x.shape`` matches ``spec`` (space-separated names or integers, e.g. ``"B 3 H W"``).

    The same name used twice must have the same size. ``"*"`` as the first token allows any number
    of leading dimensions. Returns the sizes bound to the names.

    Raises:
        ShapeError: naming ``name``, the expected spec and the actual shape.
    """
    shape = tuple(int(s) for s in getattr(x, "shape", ()))
    tokens = spec.split()
    if tokens and tokens[0] == "*":
        tokens = tokens[1:]
        shape_tail = shape[len(shape) - len(tokens):] if len(shape) >= len(tokens) else None
    else:
        shape_tail = shape if len(shape) == len(tokens) else None
    if shape_tail is None:
        raise ShapeError(f"{name} must have shape ({', '.join(spec.split())}), got {shape}")
    bound: dict[str, int] = {}
    for token, size in zip(tokens, shape_tail):
        if token.isdigit():
            if size != int(token):
                raise ShapeError(f"{name} must have shape ({', '.join(spec.split())}), got {shape}")
        elif bound.setdefault(token, size) != size:
            raise ShapeError(
                f"{name} must have shape ({', '.join(spec.split())}) with equal {token!r} sizes, got {shape}"
            )
    return bound


def check_same_shape(*xs: Any, names: tuple[str, ...] | None = None) -> None:
    """Raise :class:`ShapeError` unless every argument has the same shape."""
    shapes = [tuple(getattr(x, "shape", ())) for x in xs]
    if len(set(shapes)) > 1:
        labels = names or tuple(f"arg{i}" for i in range(len(xs)))
        detail = ", ".join(f"{n}={tuple(s)}" for n, s in zip(labels, shapes))
        raise ShapeError(f"inputs must have the same shape, got {detail}")
