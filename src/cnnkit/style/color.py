"""Colour preservation (Gatys et al., "Preserving Color in Neural Artistic Style Transfer", 2016).

* ``"luminance"``: transfer on the luminance (Y of YIQ) only, with the style's luminance matched to the
  content's mean and spread, then put back the content's I and Q.
* ``"histogram"``: before the transfer, give each style image the colour mean and covariance of the
  content image (a linear map, x -> A (x - mu_s) + mu_c with A Sigma_s A^T = Sigma_c).

All functions take RGB float images in [0, 1], shape (B, 3, H, W).
"""
from __future__ import annotations

import torch
from torch import Tensor

from cnnkit.core.checks import check_shape

_RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114],
                            [0.595716, -0.274453, -0.321263],
                            [0.211456, -0.522591, 0.311135]], dtype=torch.float64)
_YIQ_TO_RGB = torch.linalg.inv(_RGB_TO_YIQ)


def _apply(matrix: Tensor, img: Tensor) -> Tensor:
    return torch.einsum("ij,bjhw->bihw", matrix.to(img.dtype).to(img.device), img)


def rgb_to_yiq(img: Tensor) -> Tensor:
    """RGB (B, 3, H, W) -> YIQ (B, 3, H, W); Y is the luminance."""
    check_shape(img, "B 3 H W", name="img")
    return _apply(_RGB_TO_YIQ, img)


def yiq_to_rgb(img: Tensor) -> Tensor:
    """YIQ (B, 3, H, W) -> RGB (B, 3, H, W) (not clamped)."""
    check_shape(img, "B 3 H W", name="img")
    return _apply(_YIQ_TO_RGB, img)


def luminance_image(img: Tensor, *, like: Tensor | None = None) -> Tensor:
    """The luminance of ``img`` repeated on 3 channels, (B, 3, H, W); with ``like``, shifted and scaled
    to the mean and standard deviation of ``like``'s luminance."""
    y = rgb_to_yiq(img)[:, :1]
    if like is not None:
        ref = rgb_to_yiq(like)[:, :1]
        y = (y - y.mean()) * (ref.std() / y.std().clamp_min(1e-8)) + ref.mean()
    return y.clamp(0, 1).expand(-1, 3, -1, -1).contiguous()


def combine_luminance(luma: Tensor, color_from: Tensor) -> Tensor:
    """RGB image with the luminance of ``luma`` (mean of its 3 channels) and the I, Q of ``color_from``."""
    check_shape(luma, "B 3 H W", name="luma")
    yiq = rgb_to_yiq(color_from)
    y = rgb_to_yiq(luma)[:, :1]
    return yiq_to_rgb(torch.cat([y, yiq[:, 1:]], dim=1)).clamp(0, 1)


def match_color(source: Tensor, target: Tensor, *, eps: float = 1e-5) -> Tensor:
    """``source`` (1, 3, H, W) with its colour mean and covariance changed to those of ``target``
    (1, 3, H', W'), by the symmetric map A = Sigma_t^(1/2) Sigma_s^(-1/2). Clamped to [0, 1]."""
    check_shape(source, "1 3 H W", name="source")
    check_shape(target, "1 3 H W", name="target")
    s = source.reshape(3, -1).double()
    t = target.reshape(3, -1).double()
    mu_s, mu_t = s.mean(1, keepdim=True), t.mean(1, keepdim=True)
    eye = torch.eye(3, dtype=torch.float64, device=s.device) * eps
    cov_s = torch.cov(s) + eye
    cov_t = torch.cov(t) + eye
    ev_s, vec_s = torch.linalg.eigh(cov_s)
    ev_t, vec_t = torch.linalg.eigh(cov_t)
    inv_sqrt_s = vec_s @ torch.diag(ev_s.clamp_min(eps).rsqrt()) @ vec_s.T
    sqrt_t = vec_t @ torch.diag(ev_t.clamp_min(eps).sqrt()) @ vec_t.T
    out = sqrt_t @ inv_sqrt_s @ (s - mu_s) + mu_t
    return out.reshape(source.shape).to(source.dtype).clamp(0, 1)


__all__ = ["combine_luminance", "luminance_image", "match_color", "rgb_to_yiq", "yiq_to_rgb"]
