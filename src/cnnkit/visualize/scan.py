"""Streaming top-k scan: for each unit (channel) of each chosen layer, the k largest activations
over a whole data set, with the input index and the position in the feature map.

One pass, batched, bounded memory: per layer only a (units, k) table is kept; each batch's candidates
are merged into it with one ``torch.topk`` over the concatenation. Ties are broken deterministically
by (activation descending, input index ascending, position ascending): the top-k is ordered that way
and every key packs the activation's order-preserving bits with the rank of the candidate.
The forward pass stops as soon as the last chosen layer has run. A checkpoint file makes the scan
resumable.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from cnnkit.core.errors import CnnkitError, UnknownNameError

from .activations import capture_activations
from .receptive import ReceptiveField, receptive_fields

__all__ = ["LayerTop", "ScanResult", "scan_top_units", "TopK"]

_LOW = (1 << 32) - 1


@dataclass
class LayerTop:
    """The top-k table of one layer.

    ``activation`` float32 (U, K), ``index`` int64 (U, K) data-set index, ``position`` int64 (U, K, N)
    unit position in the feature map (tensor order), ``units`` int64 (U,) channel numbers. ``K`` may
    be smaller than the requested k for a data set with fewer candidates.
    """

    units: Tensor
    activation: Tensor
    index: Tensor
    position: Tensor
    feature_shape: tuple[int, ...] = ()
    receptive_field: ReceptiveField | None = None


@dataclass
class ScanResult:
    """Result of :func:`scan_top_units`: per layer its :class:`LayerTop`; ``seen`` inputs scanned."""

    layers: dict[str, LayerTop]
    seen: int
    input_shape: tuple[int, ...] = ()  # (C, *S) of one input
    meta: dict[str, Any] = field(default_factory=dict)


def _ordered_bits(values: Tensor) -> Tensor:
    """int64 keys that sort like the float32 ``values`` (NaN lowest, -0.0 == +0.0)."""
    v = torch.nan_to_num(values.float(), nan=float("-inf")) + 0.0
    bits = v.view(torch.int32)
    return torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits).to(torch.int64)


class TopK:
    """Running top-k per unit for one layer. ``update`` takes a batch of activations."""

    def __init__(self, units: Tensor, k: int, *, distinct_inputs: bool = True) -> None:
        self.units, self.k, self.distinct = units, int(k), distinct_inputs
        n = len(units)
        self.activation = torch.empty(n, 0)
        self.index = torch.empty(n, 0, dtype=torch.int64)
        self.flat = torch.empty(n, 0, dtype=torch.int64)  # flat position in the feature map
        self.feature_shape: tuple[int, ...] = ()

    def update(self, act: Tensor, first_index: int) -> None:
        """Merge a batch. ``act``: (B, C, *S) activations of inputs ``first_index .. first_index+B-1``."""
        if act.ndim < 3:
            raise CnnkitError(f"layer output must be (B, C, *S), got shape {tuple(act.shape)}")
        self.feature_shape = tuple(act.shape[2:])
        act = act.detach()
        sel = act.index_select(1, self.units.to(act.device)).flatten(2).float()  # (B, U, P)
        b, u, p = sel.shape
        if self.distinct:  # one candidate per input: its maximum (first position on ties)
            val, flat = sel.max(dim=2)                                            # (B, U)
            val, flat = val.T.cpu(), flat.T.cpu()
            idx = (torch.arange(b) + first_index).expand(u, b)
            rank = torch.arange(b).expand(u, b)
        elif (survivors := self._survivors(sel)) is not None:  # only what can still enter the table
            val, flat, batch_i, rank = survivors
            idx = batch_i + first_index
        else:  # k best positions of every input, ranked by (input, position)
            kk = min(self.k, p)
            key = (_ordered_bits(sel) << 32) | (_LOW - torch.arange(p, device=sel.device))
            top = key.topk(kk, dim=2).indices                                    # (B, U, kk)
            val = sel.gather(2, top).permute(1, 0, 2).reshape(u, b * kk).cpu()
            flat = top.permute(1, 0, 2).reshape(u, b * kk).cpu()
            idx = (torch.arange(b) + first_index).repeat_interleave(kk).expand(u, b * kk)
            rank = torch.arange(b).repeat_interleave(kk) * p + flat
        self._merge(val, idx, flat, rank)

    def _survivors(self, sel: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor] | None:
        """Once the table is full, the candidates of a batch are the activations >= each unit's
        k-th best (ties included: their rank decides). Returns them padded per unit as (U, M)
        value, flat position, batch item and rank tensors, or None when too many survive (then
        every input's own top-k is taken instead)."""
        b, u, p = sel.shape
        if self.activation.shape[1] < self.k:
            return None
        threshold = self.activation[:, -1].to(sel.device)
        b_i, u_i, p_i = (sel >= threshold[None, :, None]).nonzero(as_tuple=True)  # (b, u, p) order
        if len(u_i) > 4 * self.k * u:
            return None
        counts = torch.bincount(u_i, minlength=u)
        width = max(1, int(counts.max()) if len(u_i) else 1)
        order = torch.sort(u_i, stable=True).indices                  # group by unit, keep (b, p) order
        b_i, u_i, p_i = b_i[order], u_i[order], p_i[order]
        starts = torch.cumsum(counts, 0) - counts
        col = torch.arange(len(u_i), device=sel.device) - starts[u_i]
        val = torch.full((u, width), float("-inf"), device=sel.device)
        flat = torch.zeros((u, width), dtype=torch.int64, device=sel.device)
        batch_i = torch.zeros((u, width), dtype=torch.int64, device=sel.device)
        rank = torch.full((u, width), _LOW // 2, dtype=torch.int64, device=sel.device)  # padding loses
        val[u_i, col] = sel[b_i, u_i, p_i]
        flat[u_i, col], batch_i[u_i, col], rank[u_i, col] = p_i, b_i, b_i * p + p_i
        return val.cpu(), flat.cpu(), batch_i.cpu(), rank.cpu()

    def _merge(self, val: Tensor, idx: Tensor, flat: Tensor, rank: Tensor) -> None:
        kept = self.activation.shape[1]
        cur_rank = torch.arange(kept).expand(len(self.units), kept)  # the table is already in tie order
        val_all = torch.cat([self.activation, val], 1)
        rank_all = torch.cat([cur_rank, rank + kept], 1)
        key = (_ordered_bits(val_all) << 32) | (_LOW - rank_all)
        top = key.topk(min(self.k, key.shape[1]), dim=1).indices
        self.activation = val_all.gather(1, top)
        self.index = torch.cat([self.index, idx], 1).gather(1, top)
        self.flat = torch.cat([self.flat, flat], 1).gather(1, top)

    def result(self, rf: ReceptiveField | None = None) -> LayerTop:
        coords, rest = [], self.flat  # unravel by hand: torch.unravel_index imports sympy (seconds)
        for n in reversed(self.feature_shape):
            coords.append(rest % n)
            rest = rest // n
        position = torch.stack(coords[::-1], -1) if coords else torch.empty(*self.flat.shape, 0, dtype=torch.int64)
        return LayerTop(self.units.clone(), self.activation.clone(), self.index.clone(), position,
                        self.feature_shape, rf)

    def state_dict(self) -> dict[str, Any]:
        return {"activation": self.activation, "index": self.index, "flat": self.flat,
                "feature_shape": list(self.feature_shape)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.activation, self.index, self.flat = state["activation"], state["index"], state["flat"]
        self.feature_shape = tuple(state["feature_shape"])


class _Stop(Exception):
    """Raised by a hook once every chosen layer has run: the rest of the forward pass is skipped."""


def _item(sample: Any) -> Tensor:
    while isinstance(sample, (tuple, list)):
        sample = sample[0]
    if not isinstance(sample, Tensor):
        raise CnnkitError(f"data set items must be tensors (C, *S) or tuples starting with one, got "
                          f"{type(sample).__name__}")
    return sample


def _fingerprint(model: nn.Module, dataset: Any, layers: Sequence[str], units: dict[str, list[int]],
                 k: int, distinct: bool, batch_size: int) -> dict[str, Any]:
    n_params = sum(p.numel() for p in model.parameters())
    checksum = float(sum(p.detach().double().sum() for p in model.parameters())) if n_params else 0.0
    return {"model": type(model).__name__, "params": n_params, "checksum": round(checksum, 6),
            "layers": list(layers), "units": units, "k": k, "distinct": distinct,
            "batch_size": batch_size, "n": len(dataset),
            "data": str(getattr(dataset, "description", type(dataset).__name__))}


@torch.no_grad()
def scan_top_units(model: nn.Module, dataset: Any, layers: Sequence[str], *, top: int = 9,
                   units: int | Sequence[int] | None = None, batch_size: int = 16,
                   distinct_inputs: bool = True, checkpoint: str | os.PathLike[str] | None = None,
                   checkpoint_every: int = 20, progress: bool = True, device: str | torch.device = "cpu",
                   limit: int | None = None) -> ScanResult:
    """One streaming pass of ``model`` over ``dataset``, keeping the ``top`` largest activations of
    each unit of each layer.

    Args:
        model: any module; put in eval mode. Layers are names from ``model.named_modules()``.
        dataset: indexable, ``len()``; items are tensors (C, *S) of one fixed shape, or tuples whose
            first element is one. A ``source(i)`` method, if present, names an item.
        top: k.
        units: the first N channels of every layer, or these channel numbers; default all.
        distinct_inputs: at most one entry per input and unit (its maximum), as Zeiler & Fergus show
            nine different images; False keeps the k best positions overall.
        checkpoint: a file; written every ``checkpoint_every`` batches and at the end. If it exists
            and matches this scan, the scan resumes after the inputs it already covers.
        limit: scan only the first ``limit`` items.

    Returns:
        :class:`ScanResult` with per layer the (U, K) tables in (activation desc, index asc,
        position asc) order.
    """
    model = model.eval()
    modules = dict(model.named_modules())
    unknown = [name for name in layers if name not in modules or not name]
    if unknown:
        names = [n for n, m in modules.items() if n and not list(m.children())]
        raise UnknownNameError(f"unknown layer(s) {unknown}; available: {names}")
    if top < 1:
        raise CnnkitError(f"top must be at least 1, got {top}")
    n_total = len(dataset) if limit is None else min(limit, len(dataset))
    if n_total == 0:
        raise CnnkitError("the data set is empty")
    first = _item(dataset[0]).unsqueeze(0).to(device)
    ndim = first.ndim - 2
    fields = receptive_fields(model, ndim=ndim, example=first, layers=layers)
    out_channels = {n: a.shape[1] for n, a in capture_activations(model, first, layers).items()}
    chosen: dict[str, list[int]] = {}
    for name in layers:
        c = out_channels[name]
        if units is None:
            chosen[name] = list(range(c))
        elif isinstance(units, int):
            chosen[name] = list(range(min(units, c)))
        else:
            chosen[name] = [u for u in units if 0 <= u < c]
    tables = {name: TopK(torch.tensor(chosen[name], dtype=torch.int64), top, distinct_inputs=distinct_inputs)
              for name in layers}
    fingerprint = _fingerprint(model, dataset, layers, chosen, top, distinct_inputs, batch_size)
    fingerprint["n"] = n_total
    seen = 0
    ckpt = Path(checkpoint) if checkpoint is not None else None
    if ckpt is not None and ckpt.exists():
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        if state.get("fingerprint") != fingerprint:
            raise CnnkitError(f"{ckpt}: checkpoint of a different scan (model, data or options differ); "
                              "delete it or choose another file")
        seen = int(state["seen"])
        for name in layers:
            tables[name].load_state_dict(state["tables"][name])

    order = {name: i for i, name in enumerate(layers)}
    done: set[str] = set()
    batch_start = [0]

    def hook_for(name: str):
        def hook(_m: nn.Module, _args: tuple, out: Any) -> None:
            if name in done:
                return
            tables[name].update(_item(out), batch_start[0])
            done.add(name)
            if len(done) == len(order):
                raise _Stop
        return hook

    handles = [modules[name].register_forward_hook(hook_for(name)) for name in layers]
    bar = _progress(total=n_total, initial=seen, disable=not progress)
    try:
        batches = 0
        for start in range(seen, n_total, batch_size):
            stop = min(start + batch_size, n_total)
            x = torch.stack([_item(dataset[i]) for i in range(start, stop)]).to(device)
            batch_start[0] = start
            done.clear()
            try:
                model(x)
            except _Stop:
                pass
            if len(done) != len(order):
                raise CnnkitError(f"layer(s) {sorted(set(order) - done)} did not run in the forward pass")
            seen = stop
            batches += 1
            bar.update(stop - start)
            if ckpt is not None and batches % checkpoint_every == 0:
                _save(ckpt, fingerprint, seen, tables)
    finally:
        for h in handles:
            h.remove()
        bar.close()
    if ckpt is not None:
        _save(ckpt, fingerprint, seen, tables)
    return ScanResult({name: tables[name].result(fields[name]) for name in layers}, seen,
                      tuple(first.shape[1:]))


def _save(path: Path, fingerprint: dict[str, Any], seen: int, tables: dict[str, TopK]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"fingerprint": fingerprint, "seen": seen,
                "tables": {n: t.state_dict() for n, t in tables.items()}}, tmp)
    os.replace(tmp, path)


def _progress(*, total: int, initial: int, disable: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=disable, unit="input", desc="scan")
