"""The total cost J(G) = alpha J_content(C, G) + beta sum_l lambda_l J_style^[l](S, G) + tv TV(G).

:class:`PerceptualLoss` takes any encoder with ``forward_layers(img, layers) -> {name: (B, C, H, W)}``
(VGG19 in practice, a one-conv stand-in in tests). Targets are computed once under ``no_grad`` and
kept as buffers; each call runs the encoder once for all layers.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Protocol, Sequence

import torch
from torch import Tensor, nn

from cnnkit.core.checks import check_shape
from cnnkit.core.errors import CnnkitError, UnknownNameError
from cnnkit.style.functional import content_cost, gram_matrix, style_cost_from_gram, total_variation

DEFAULT_CONTENT_LAYERS: tuple[tuple[str, float], ...] = (("conv4_2", 1.0),)
DEFAULT_STYLE_LAYERS: tuple[tuple[str, float], ...] = tuple(
    (f"conv{i}_1", 1.0) for i in range(1, 6)
)


class LayerEncoder(Protocol):
    def forward_layers(self, img: Tensor, layers: Sequence[str]) -> dict[str, Tensor]: ...


def parse_layer_weights(spec: str | Sequence[str] | Sequence[tuple[str, float]] | Mapping[str, float],
                        ) -> tuple[tuple[str, float], ...]:
    """``"conv1_1:0.2,conv2_1"`` (or a list/mapping of the same) -> ``(("conv1_1", 0.2), ("conv2_1", 1.0))``.

    A layer without a weight gets 1. Raises :class:`CnnkitError` on a malformed weight or an empty list.
    """
    if isinstance(spec, Mapping):
        items: list[object] = list(spec.items())
    elif isinstance(spec, str):
        items = [s for s in (p.strip() for p in spec.split(",")) if s]
    else:
        items = list(spec)
    out: list[tuple[str, float]] = []
    for item in items:
        if isinstance(item, tuple):
            name, weight = str(item[0]), float(item[1])
        else:
            name, _, w = str(item).partition(":")
            try:
                weight = float(w) if w else 1.0
            except ValueError:
                raise CnnkitError(f"layer weight {w!r} of {name!r} is not a number (use name:weight)") from None
        if weight < 0:
            raise CnnkitError(f"layer weight of {name!r} must be >= 0, got {weight}")
        out.append((name.strip(), weight))
    if not out:
        raise CnnkitError("the layer list is empty")
    return tuple(out)


@dataclass(frozen=True)
class Costs:
    """One evaluation: the weighted total and its unweighted parts (all scalar tensors)."""

    total: Tensor
    content: Tensor
    style: Tensor
    tv: Tensor


class PerceptualLoss(nn.Module):
    """alpha * content + beta * style + tv_weight * total variation, on the layers of ``encoder``.

    Args:
        encoder: module with ``forward_layers``; frozen (its parameters need no gradient).
        content_layers, style_layers: ``((name, weight), ...)``; style weights are the lambda_l.
        content_weight, style_weight, tv_weight: alpha, beta and the TV weight.
        encoder_dtype: run the encoder under ``torch.autocast`` in this dtype (``torch.bfloat16``);
            targets, Gram matrices and costs stay float32. ``None``: all float32.
        memory_format: the layout images are given to the encoder in (``torch.channels_last`` for
            an encoder converted to it); the costs do not depend on it.

    After :meth:`set_targets`, ``content_style`` is the unweighted style cost of the content image
    itself (float32), from the pass that took its content activations.
    """

    def __init__(self, encoder: nn.Module, *,
                 content_layers: Sequence[tuple[str, float]] = DEFAULT_CONTENT_LAYERS,
                 style_layers: Sequence[tuple[str, float]] = DEFAULT_STYLE_LAYERS,
                 content_weight: float = 1.0, style_weight: float = 1.0, tv_weight: float = 0.0,
                 encoder_dtype: torch.dtype | None = None,
                 memory_format: torch.memory_format = torch.contiguous_format) -> None:
        super().__init__()
        self.encoder_dtype = encoder_dtype
        self.memory_format = memory_format
        self.content_style: float | None = None
        self.encoder = encoder
        self.content_layers = tuple(content_layers)
        self.style_layers = tuple(style_layers)
        self.content_weight, self.style_weight, self.tv_weight = content_weight, style_weight, tv_weight
        names = [n for n, _ in self.content_layers] + [n for n, _ in self.style_layers]
        self.layers = tuple(dict.fromkeys(names))  # union, in order, without repeats
        self._has_targets = False

    @torch.no_grad()
    def set_targets(self, content: Tensor, styles: Sequence[Tensor], blend: Sequence[float] | None = None) -> None:
        """Compute the content activations and the blended style Gram matrices once.

        Args:
            content: content image, shape (1, 3, H, W), RGB in [0, 1].
            styles: style images, each (1, 3, H_s, W_s); sizes may differ.
            blend: one weight per style image (normalised to sum 1); default equal.

        Style Grams are stored per position (divided by H_l W_l of the style activations) and
        rescaled to the generated image's positions at each call.
        """
        check_shape(content, "1 3 H W", name="content")
        if not styles:
            raise CnnkitError("at least one style image is needed")
        blend = [1.0] * len(styles) if blend is None else list(blend)
        if len(blend) != len(styles) or any(w < 0 for w in blend) or sum(blend) <= 0:
            raise CnnkitError(f"need {len(styles)} non-negative blend weights with a positive sum, got {blend}")
        total = float(sum(blend))
        feats = self.encoder.forward_layers(self._layout(content), self.layers)
        for name, _ in self.content_layers:
            self.register_buffer(f"content_{name}", feats[name].detach().clone())
        grams: dict[str, Tensor] = {}
        for img, w in zip(styles, blend):
            check_shape(img, "1 3 H W", name="style")
            sfeats = self.encoder.forward_layers(self._layout(img), [n for n, _ in self.style_layers])
            for name, _ in self.style_layers:
                f = sfeats[name]
                g = gram_matrix(f)[0] * (w / total / (f.shape[-2] * f.shape[-1]))
                grams[name] = grams[name] + g if name in grams else g
        for name, g in grams.items():
            self.register_buffer(f"style_{name}", g)
        self._has_targets = True
        self.content_style = float(self._style(feats))

    def _layout(self, img: Tensor) -> Tensor:
        return img.contiguous(memory_format=self.memory_format)

    def _style(self, feats: Mapping[str, Tensor]) -> Tensor:
        """sum_l lambda_l J_style^[l] of these activations against the style targets."""
        style = next(iter(feats.values())).new_zeros((), dtype=torch.float32)
        for name, w in self.style_layers:
            f = feats[name]
            target = getattr(self, f"style_{name}") * (f.shape[-2] * f.shape[-1])
            style = style + w * style_cost_from_gram(f, target)
        return style

    def forward(self, img: Tensor, *, exact: bool = False) -> Costs:
        """Costs of the generated image ``img`` (1, 3, H, W); ``exact``: float32 even with ``encoder_dtype``."""
        if not self._has_targets:
            raise CnnkitError("call set_targets(content, styles) before computing the loss")
        low = self.encoder_dtype is not None and not exact
        with torch.autocast(img.device.type, dtype=self.encoder_dtype or torch.bfloat16, enabled=low):
            feats = self.encoder.forward_layers(self._layout(img), self.layers)
        # low-precision features stay so for the Gram products (float32 accumulation, a third of
        # an evaluation in float32); every difference with a float32 target is taken in float32
        zero = img.new_zeros(())
        content = zero
        for name, w in self.content_layers:
            content = content + w * content_cost(feats[name], getattr(self, f"content_{name}"))
        style = self._style(feats)
        tv = total_variation(img) if self.tv_weight else zero
        total = self.content_weight * content + self.style_weight * style + self.tv_weight * tv
        return Costs(total=total, content=content, style=style, tv=tv)

    def extra_repr(self) -> str:
        return (f"content_layers={self.content_layers}, style_layers={self.style_layers}, "
                f"content_weight={self.content_weight}, style_weight={self.style_weight}, "
                f"tv_weight={self.tv_weight}, encoder_dtype={self.encoder_dtype}")


def check_layers(encoder_layers: Sequence[str], *groups: Sequence[tuple[str, float]]) -> None:
    """Raise :class:`UnknownNameError` (listing the valid names) for a layer the encoder lacks."""
    unknown = [n for group in groups for n, _ in group if n not in encoder_layers]
    if unknown:
        raise UnknownNameError(
            f"unknown layer{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
            f"valid names: {', '.join(encoder_layers)}"
        )


__all__ = [
    "Costs",
    "DEFAULT_CONTENT_LAYERS",
    "DEFAULT_STYLE_LAYERS",
    "PerceptualLoss",
    "check_layers",
    "parse_layer_weights",
]
