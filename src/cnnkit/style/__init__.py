"""Neural style transfer (Gatys et al.): J(G) = alpha J_content(C, G) + beta J_style(S, G).

``transfer(content, style, size=..., steps=...)`` returns a PIL image; ``run`` also returns the costs.
The costs live in :mod:`cnnkit.style.functional`, the total in :mod:`cnnkit.style.loss`, colour
preservation in :mod:`cnnkit.style.color`, the memory estimate in :mod:`cnnkit.style.memory`.
"""
from cnnkit.style.functional import (
    ContentCost,
    GramMatrix,
    StyleCost,
    TotalVariation,
    content_cost,
    gram_matrix,
    style_cost,
    total_variation,
)
from cnnkit.style.loss import PerceptualLoss, parse_layer_weights
from cnnkit.style.optimize import StyleOptions, TransferResult, run, transfer

__all__ = [
    "ContentCost",
    "GramMatrix",
    "PerceptualLoss",
    "StyleCost",
    "StyleOptions",
    "TotalVariation",
    "TransferResult",
    "content_cost",
    "gram_matrix",
    "parse_layer_weights",
    "run",
    "style_cost",
    "total_variation",
    "transfer",
]
