"""When a stylised picture is done: its style cost is low and the photo's content is still there.

``content_kept`` is the Pearson correlation between the luminance of the picture and of the photo,
both blurred by a Gaussian of ``max(H, W) / 64`` px (4 px at 256, 8 px at 512), so that the style's
brush strokes are averaged away and what is compared is the layout of light and dark.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from cnnkit.core.checks import check_shape

#: ITU-R BT.601 luma weights
_LUMA = (0.299, 0.587, 0.114)


def blurred_luminance(img: Tensor) -> Tensor:
    """(1, 3, H, W) RGB in [0, 1] -> (1, 1, H, W) luminance blurred by sigma = max(H, W) / 64."""
    dims = check_shape(img, "1 3 H W", name="img")
    luma = (img * img.new_tensor(_LUMA).view(1, 3, 1, 1)).sum(1, keepdim=True)
    sigma = max(dims["H"], dims["W"]) / 64.0
    radius = max(1, int(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=img.dtype, device=img.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    padded = F.pad(luma, (radius, radius, radius, radius), mode="replicate")
    out = F.conv2d(padded, k.view(1, 1, 1, -1))
    return F.conv2d(out, k.view(1, 1, -1, 1))


@torch.no_grad()
def content_kept(img: Tensor, photo: Tensor) -> float:
    """Correlation of the blurred luminances of ``img`` and ``photo`` (both (1, 3, H, W)); 1 = same layout."""
    a, b = blurred_luminance(img).flatten(), blurred_luminance(photo).flatten()
    a, b = a - a.mean(), b - b.mean()
    den = float(a.norm() * b.norm())
    return float((a * b).sum()) / den if den > 0 else 0.0
