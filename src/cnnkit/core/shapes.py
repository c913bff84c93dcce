"""Shape arithmetic for convolutions and pooling in 1D, 2D and 3D (plain integers: no torch).

Along each axis a conv or pool with kernel ``f``, stride ``s``, padding ``p`` and dilation ``d`` maps
``n`` samples to::

    n_out = floor((n + 2p - d(f - 1) - 1) / s) + 1

(``ceil`` instead of ``floor`` for pools in ``ceil_mode``, dropping a last window that would start in
the right padding, as torch does). A transposed conv inverts it:
``(n - 1)s - 2p + d(f - 1) + output_padding + 1``.
"""
from __future__ import annotations

from typing import Sequence

from cnnkit.core.errors import ShapeError

IntOrTuple = int | Sequence[int]

__all__ = ["conv_output_size", "conv_transpose_output_size", "pool_output_size", "conv_output_shape", "per_axis",
           "pool_output_shape"]


def conv_output_size(n: int, kernel_size: int, *, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """Output length of a conv along one axis: floor((n + 2p - d(f - 1) - 1) / s) + 1.

    Raises:
        ShapeError: the (padded) input is shorter than the dilated kernel.
    """
    span = dilation * (kernel_size - 1) + 1
    if n + 2 * padding < span:
        raise ShapeError(f"input of size {n} (+2*{padding} padding) is smaller than the dilated kernel ({span})")
    return (n + 2 * padding - span) // stride + 1


def pool_output_size(n: int, kernel_size: int, *, stride: int | None = None, padding: int = 0,
                     dilation: int = 1, ceil_mode: bool = False) -> int:
    """Output length of a max/avg pool along one axis (stride defaults to the kernel size)."""
    stride = kernel_size if stride is None else stride
    if not ceil_mode:
        return conv_output_size(n, kernel_size, stride=stride, padding=padding, dilation=dilation)
    span = dilation * (kernel_size - 1) + 1
    if n + 2 * padding < span:
        raise ShapeError(f"input of size {n} (+2*{padding} padding) is smaller than the pooling window ({span})")
    out = -(-(n + 2 * padding - span) // stride) + 1
    if (out - 1) * stride >= n + padding:   # the last window would start in the right padding
        out -= 1
    return out


def conv_transpose_output_size(n: int, kernel_size: int, *, stride: int = 1, padding: int = 0,
                               dilation: int = 1, output_padding: int = 0) -> int:
    """Output length of a transposed conv along one axis."""
    return (n - 1) * stride - 2 * padding + dilation * (kernel_size - 1) + output_padding + 1


def per_axis(value: IntOrTuple, nd: int, what: str) -> tuple[int, ...]:
    """``value`` as one int per axis (an int is repeated ``nd`` times)."""
    if isinstance(value, int):
        return (value,) * nd
    value = tuple(int(v) for v in value)
    if len(value) != nd:
        raise ShapeError(f"{what} {value} does not have {nd} entries")
    return value


def conv_output_shape(spatial: Sequence[int], kernel_size: IntOrTuple, *, stride: IntOrTuple = 1,
                      padding: IntOrTuple = 0, dilation: IntOrTuple = 1) -> tuple[int, ...]:
    """:func:`conv_output_size` along each axis of ``spatial`` (L), (H, W) or (D, H, W)."""
    nd = len(spatial)
    ks, ss, ps, ds = (per_axis(v, nd, w) for v, w in
                      ((kernel_size, "kernel_size"), (stride, "stride"), (padding, "padding"), (dilation, "dilation")))
    return tuple(conv_output_size(n, k, stride=s, padding=p, dilation=d)
                 for n, k, s, p, d in zip(spatial, ks, ss, ps, ds))


def pool_output_shape(spatial: Sequence[int], kernel_size: IntOrTuple, *, stride: IntOrTuple | None = None,
                      padding: IntOrTuple = 0, dilation: IntOrTuple = 1, ceil_mode: bool = False) -> tuple[int, ...]:
    """:func:`pool_output_size` along each axis of ``spatial``."""
    nd = len(spatial)
    ks = per_axis(kernel_size, nd, "kernel_size")
    ss = ks if stride is None else per_axis(stride, nd, "stride")
    ps, ds = per_axis(padding, nd, "padding"), per_axis(dilation, nd, "dilation")
    return tuple(pool_output_size(n, k, stride=s, padding=p, dilation=d, ceil_mode=ceil_mode)
                 for n, k, s, p, d in zip(spatial, ks, ss, ps, ds))
