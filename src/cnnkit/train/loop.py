"""Training a Siamese encoder with the triplet (or contrastive) loss on a folder of identities.

:func:`train_encoder` is what ``cnnkit train`` runs, on the one loop :func:`cnnkit.train.fit.fit`. One global batch is P people x K images; under
``torchrun`` each of the N processes encodes its contiguous 1/N of that batch, the embeddings are
gathered, and every process mines and computes the same loss on the whole batch. Only the local
slice carries gradients, so the loss is scaled by N before ``backward`` and DDP's gradient average
gives exactly the single-process gradient (with batch statistics per process when the encoder
uses batch norm; ``norm="group"`` makes the two runs equal up to rounding).
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn

from cnnkit import __version__
from cnnkit.core.errors import CnnkitError, OutputExistsError, UnknownNameError
from cnnkit.data.folders import IdentityFolder, augment, scan_identity_folder
from cnnkit.data.samplers import PKSampler, split_identities
from cnnkit.distances.functional import pairwise_distance
from cnnkit.losses.functional import contrastive_loss, triplet_loss_from_distances
from cnnkit.mining.functional import MINERS, all_pairs, batch_all, mine_triplets
from cnnkit.nn.checkpoint import is_model_path, model_files, prepare_images, save_encoder
from cnnkit.nn.registry import create_encoder, list_encoders
from cnnkit.train.fit import fit
from cnnkit.eval.embedding import embedding_report

LOSSES = ("triplet", "contrastive")


@dataclass(frozen=True)
class TrainConfig:
    """Every option of a training run (all keyword, immutable). ``margin=None`` means 0.2 for the
    triplet loss and 1.0 for the contrastive loss."""

    encoder: str = "small_cnn"
    encoder_kwargs: dict[str, Any] = field(default_factory=dict)
    embedding_dim: int = 128
    loss: str = "triplet"
    mining: str = "semihard"
    margin: float | None = None
    squared: bool = True
    reduction: str = "sum"
    epochs: int = 15
    p: int = 8
    k: int = 4
    lr: float = 1e-3
    weight_decay: float = 5e-4
    val_fraction: float = 0.1
    people: str | None = None
    channels: int | None = None
    size: tuple[int, int] | None = None
    augment: bool = True
    crop: float = 0.1
    rotate: float = 0.0
    brightness: float = 0.2
    seed: int = 0

    def resolved_margin(self) -> float:
        return self.margin if self.margin is not None else (0.2 if self.loss == "triplet" else 1.0)

    def check(self) -> None:
        if self.loss not in LOSSES:
            raise UnknownNameError(f"unknown loss {self.loss!r}; available: {list(LOSSES)}")
        if self.mining not in MINERS:
            raise UnknownNameError(f"unknown mining {self.mining!r}; available: {list(MINERS)}")
        if self.encoder not in list_encoders():
            raise UnknownNameError(f"unknown encoder {self.encoder!r}; available: {list_encoders()}")
        if self.epochs < 1 or self.p < 2 or self.k < 2:
            raise CnnkitError("need epochs >= 1, p >= 2 people and k >= 2 images per batch")


@dataclass
class _Dist:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def _init_distributed() -> _Dist:
    """Join the process group when started by ``torchrun`` (gloo on CPU, nccl on CUDA)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return _Dist(dist.get_rank(), dist.get_world_size())


def _gather(emb: Tensor, d: _Dist) -> Tensor:
    """All processes' embeddings in rank order; only the local slice keeps its gradient."""
    if d.world == 1:
        return emb
    parts = [torch.empty_like(emb) for _ in range(d.world)]
    dist.all_gather(parts, emb.detach().contiguous())
    parts[d.rank] = emb
    return torch.cat(parts, dim=0)


def _batch_loss(emb: Tensor, labels: Tensor, cfg: TrainConfig, gen: torch.Generator) -> tuple[Tensor, float]:
    """Loss of one batch and the fraction of its valid triplets that are active (loss > 0).

    Shapes: emb (B, D), labels (B,).
    """
    margin = cfg.resolved_margin()
    dmat = pairwise_distance(emb, squared=cfg.squared)  # with gradients; mined on a detached view
    with torch.no_grad():
        same = labels[:, None] == labels[None, :]
        n_pos = same.sum(1) - 1
        n_valid = int((n_pos * (~same).sum(1)).sum())
        active = len(batch_all(labels, dmat.detach(), margin=0.2 if cfg.loss == "contrastive" else margin))
    if cfg.loss == "triplet":
        idx = mine_triplets(cfg.mining, dmat.detach(), labels, margin=margin, generator=gen)
        loss = triplet_loss_from_distances(dmat, idx, margin=margin, reduction=cfg.reduction)
    else:
        pairs = all_pairs(labels)
        first = torch.cat([pairs.a1, pairs.a2])
        second = torch.cat([pairs.p, pairs.n])
        same_pair = torch.cat([torch.ones_like(pairs.a1), torch.zeros_like(pairs.a2)])
        loss = contrastive_loss(emb[first], emb[second], same_pair, margin=margin, reduction="mean")
    return loss, active / max(n_valid, 1)


@torch.no_grad()
def _encode_all(model: nn.Module, x: Tensor, batch: int = 128) -> np.ndarray:
    model.eval()
    out = [model(x[i:i + batch]) for i in range(0, len(x), batch)]
    model.train()
    return torch.cat(out).numpy() if out else np.zeros((0, 0), np.float32)


def _state_path(out: str | os.PathLike[str]) -> Path:
    weights, _ = model_files(out)
    return weights.with_name(weights.name.replace(".safetensors", "") + ".state.pt")


def train_encoder(data_dir: str | os.PathLike[str], out: str | os.PathLike[str], config: TrainConfig = TrainConfig(),
                  *, resume: bool = False, overwrite: bool = False, progress: bool = True,
                  log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train an encoder on ``data_dir`` (one sub-folder per person) through the one loop
    (:func:`cnnkit.train.fit.fit`) and save it to ``out``.

    After every epoch (on the main process) the model and its config are saved, with the
    validation metrics of :func:`~cnnkit.eval.embedding.embedding_report` on the held-out people,
    the mean training loss and the fraction of active triplets; a warning is logged when the
    embeddings collapse. ``resume=True`` continues from the saved optimiser state.

    Raises:
        OutputExistsError: ``out`` already holds a model and neither ``resume`` nor ``overwrite``
            is set (a gallery enrolled with that model would stop matching new embeddings).

    Returns:
        the config written (``metrics`` = last epoch, ``history`` = every epoch).
    """
    cfg = config
    cfg.check()
    if is_model_path(out) and not (resume or overwrite):
        raise OutputExistsError(
            f"{out}: a model is already saved there; galleries enrolled with it would refuse the new one. "
            "Use --force to overwrite it, --resume to continue training it, or another -o")
    d = _init_distributed()
    torch.manual_seed(cfg.seed)
    folder = IdentityFolder(scan_identity_folder(data_dir, people=cfg.people, min_images=1))
    train_people, val_people = split_identities(len(folder.people), val_fraction=cfg.val_fraction, seed=cfg.seed)
    kwargs = {"embedding_dim": cfg.embedding_dim, **cfg.encoder_kwargs}
    if cfg.channels is not None:
        kwargs["in_channels"] = cfg.channels
    if cfg.size is not None:
        kwargs["input_size"] = list(cfg.size)
    model = create_encoder(cfg.encoder, **kwargs)
    size, channels = list(model.input_size), int(model.in_channels)
    x_all = prepare_images(folder.images, size=size, channels=channels)
    labels_all = folder.labels
    train_idx = torch.tensor([i for i, y in enumerate(labels_all.tolist()) if y in set(train_people)])
    val_idx = torch.tensor([i for i, y in enumerate(labels_all.tolist()) if y in set(val_people)], dtype=torch.long)
    sampler = PKSampler(labels_all[train_idx].tolist(), p=cfg.p, k=cfg.k, seed=cfg.seed)
    batch_size = sampler.p * sampler.k
    if batch_size % d.world:
        raise CnnkitError(f"batch of {batch_size} images does not split over {d.world} processes")
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    total_steps = cfg.epochs * len(sampler)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total_steps) / total_steps)))
    history: list[dict[str, Any]] = []
    start = 0
    state_file = _state_path(out)
    if resume and state_file.is_file():
        state = torch.load(state_file, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        start, history = state["epoch"] + 1, state["history"]
        log(f"resuming after epoch {start}")
    net: nn.Module = model
    if d.world > 1:
        net = nn.parallel.DistributedDataParallel(model)

    def batches(epoch: int) -> Any:
        sampler.set_epoch(epoch)
        return iter(sampler)

    def loss_fn(batch: Any, epoch: int, step: int) -> tuple[Tensor, int, dict[str, float]]:
        gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch * 10_007 + step)
        idx = train_idx[batch]
        x = x_all[idx]
        if cfg.augment:
            x = augment(x, generator=gen, crop=cfg.crop, rotate=cfg.rotate, brightness=cfg.brightness)
        lo, hi = d.rank * batch_size // d.world, (d.rank + 1) * batch_size // d.world
        loss, active = _batch_loss(_gather(net(x[lo:hi]), d), labels_all[idx], cfg, gen)
        return loss, len(idx), {"active_triplets": active}

    def on_epoch(record: dict[str, Any]) -> None:
        if not d.main:
            return
        if len(val_idx):
            record.update(embedding_report(_encode_all(model, x_all[val_idx]), labels_all[val_idx].numpy()))
            if record["collapsed"]:
                log("warning: the embeddings collapsed (all validation distances nearly equal); "
                    "try a smaller learning rate or another mining strategy")
        history.append(record)
        log(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()))
        _save(out, model, opt, sched, cfg, record["epoch"] - 1, history, size, channels, folder, train_people,
              val_people)

    records = fit(net, batches, loss_fn, opt, epochs=cfg.epochs, scheduler=sched, start_epoch=start,
                  loss_scale=d.world, steps_per_epoch=len(sampler), on_epoch=on_epoch, progress=progress and d.main)
    record: dict[str, Any] = records[-1] if records else {}
    if d.world > 1:
        spread = _replica_spread(model, d)
        if d.main and history:
            history[-1]["replica_max_diff"] = spread
            _save(out, model, opt, sched, cfg, cfg.epochs - 1, history, size, channels, folder, train_people,
                  val_people)
        dist.barrier()
    return {"metrics": history[-1] if history else record, "history": history}


@torch.no_grad()
def _replica_spread(model: nn.Module, d: _Dist) -> float:
    """Largest absolute difference between any parameter of any process and that of process 0."""
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])
    ref = flat.clone()
    dist.broadcast(ref, src=0)
    diff = (flat - ref).abs().max().reshape(1)
    dist.all_reduce(diff, op=dist.ReduceOp.MAX)
    return float(diff)


def _save(out: str | os.PathLike[str], model: nn.Module, opt: torch.optim.Optimizer, sched: Any,
          cfg: TrainConfig, epoch: int, history: list[dict[str, Any]], size: list[int], channels: int,
          folder: IdentityFolder, train_people: list[int], val_people: list[int]) -> None:
    kwargs = {"embedding_dim": cfg.embedding_dim, **cfg.encoder_kwargs, "in_channels": channels, "input_size": size}
    config = {
        "encoder": cfg.encoder, "kwargs": kwargs, "input": {"size": size, "channels": channels, "align": False, "flip_tta": cfg.augment},
        "metrics": history[-1], "history": history, "version": f"cnnkit-{__version__}/epoch-{epoch + 1}",
        "train": {**asdict(cfg), "data": str(folder.index.root),
                  "train_people": [folder.people[i] for i in train_people],
                  "val_people": [folder.people[i] for i in val_people]},
    }
    save_encoder(out, model, json.loads(json.dumps(config)))
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                "epoch": epoch, "history": history}, _state_path(out))
