"""Illumination normalisation for faces in bad light: CLAHE and automatic gamma, in numpy.

Used by the pipeline to retry detection on an enhanced copy when the photo itself gives no face
(``FacePipeline(retry_enhance="clahe")``; boxes and landmarks stay in the original's pixels, as the
copy has the same size), and optionally on the aligned chip (``chip_enhance``).
``benchmarks/illumination.py`` measures both on dark and side-lit faces.
"""
from __future__ import annotations

import numpy as np

from cnnkit.core.errors import UnknownNameError
from cnnkit.faces.detect import as_rgb_uint8

__all__ = ["ENHANCERS", "clahe", "auto_gamma", "enhance"]

#: the enhancement names accepted by :func:`enhance` (``"none"``: no change)
ENHANCERS = ("none", "clahe", "gamma", "gamma_clahe")

_LUMA = np.array([0.299, 0.587, 0.114])


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(np.float64) @ _LUMA


def _with_luma(rgb: np.ndarray, y_old: np.ndarray, y_new: np.ndarray) -> np.ndarray:
    """``rgb`` with its luminance replaced: every channel scaled by ``y_new / y_old`` (grey stays grey)."""
    gain = (y_new + 1.0) / (y_old + 1.0)
    return np.clip(rgb.astype(np.float64) * gain[..., None], 0, 255).round().astype(np.uint8)


def clahe(image: np.ndarray, *, clip_limit: float = 2.0, tiles: int = 8) -> np.ndarray:
    """Contrast-limited adaptive histogram equalisation of the luminance (Zuiderveld 1994).

    The image is cut into ``tiles`` x ``tiles`` regions; each region's histogram is clipped at
    ``clip_limit`` times its mean bin (the excess spread over all bins) and turned into a mapping;
    every pixel's new value interpolates bilinearly between the mappings of the four nearest
    region centres.

    Args:
        image: uint8, (H, W, 3) RGB or (H, W) grey.

    Returns:
        uint8 (H, W, 3) RGB.
    """
    rgb = as_rgb_uint8(image)
    y = _luma(rgb)
    v = np.clip(y.round(), 0, 255).astype(np.int64)
    h, w = v.shape
    th, tw = -(-h // tiles), -(-w // tiles)
    padded = np.pad(v, ((0, th * tiles - h), (0, tw * tiles - w)), mode="reflect" if min(h, w) > 1 else "edge")
    blocks = padded.reshape(tiles, th, tiles, tw).transpose(0, 2, 1, 3).reshape(tiles * tiles, th * tw)
    offsets = (np.arange(tiles * tiles) * 256)[:, None]
    hist = np.bincount((blocks + offsets).ravel(), minlength=tiles * tiles * 256).reshape(tiles * tiles, 256)
    hist = hist.astype(np.float64)
    limit = max(clip_limit * th * tw / 256.0, 1.0)
    excess = np.clip(hist - limit, 0, None).sum(1, keepdims=True)
    hist = np.minimum(hist, limit) + excess / 256.0
    lut = (np.cumsum(hist, 1) / (th * tw) * 255.0).reshape(tiles, tiles, 256)
    # region coordinates of every pixel, measured between region centres
    fy = np.clip((np.arange(h) + 0.5) / th - 0.5, 0, tiles - 1)
    fx = np.clip((np.arange(w) + 0.5) / tw - 0.5, 0, tiles - 1)
    y0, x0 = np.floor(fy).astype(int), np.floor(fx).astype(int)
    y1, x1 = np.minimum(y0 + 1, tiles - 1), np.minimum(x0 + 1, tiles - 1)
    wy, wx = (fy - y0)[:, None], (fx - x0)[None, :]
    top = lut[y0[:, None], x0[None, :], v] * (1 - wx) + lut[y0[:, None], x1[None, :], v] * wx
    bottom = lut[y1[:, None], x0[None, :], v] * (1 - wx) + lut[y1[:, None], x1[None, :], v] * wx
    return _with_luma(rgb, y, top * (1 - wy) + bottom * wy)


def auto_gamma(image: np.ndarray, *, target: float = 0.5) -> np.ndarray:
    """Gamma correction chosen so that the mean luminance becomes ``target`` (in [0, 1]).

    Args:
        image: uint8, (H, W, 3) RGB or (H, W) grey.

    Returns:
        uint8 (H, W, 3) RGB.
    """
    rgb = as_rgb_uint8(image)
    y = _luma(rgb)
    mean = float(np.clip(y.mean() / 255.0, 1e-3, 0.999))
    gamma = np.log(target) / np.log(mean)
    return _with_luma(rgb, y, 255.0 * (y / 255.0) ** gamma)


def enhance(image: np.ndarray, method: str) -> np.ndarray:
    """``image`` (uint8 (H, W, 3) or (H, W)) enhanced by one of :data:`ENHANCERS`, uint8 (H, W, 3).

    Raises:
        UnknownNameError: ``method`` is not one of :data:`ENHANCERS`.
    """
    if method == "clahe":
        return clahe(image)
    if method == "gamma":
        return auto_gamma(image)
    if method == "gamma_clahe":
        return clahe(auto_gamma(image))
    if method == "none":
        return as_rgb_uint8(image)
    raise UnknownNameError(f"unknown illumination enhancement {method!r}; known: {', '.join(ENHANCERS)}")
