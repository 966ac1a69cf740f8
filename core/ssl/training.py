"""SimCLR training loop: seeded, resumable to the exact same losses, atomic files per epoch.

Reproducibility: weights come from ``torch.manual_seed(seed)``; the shuffle order of epoch e
from a ``torch.Generator`` seeded with ``(seed, e)``; each image's augmentations from
``(seed, e, index)`` (see :mod:`core.ssl.two_views`). Resuming therefore needs only the weights, the
optimizer state and the epoch, and continues exactly where an uninterrupted run would be.
The caller's global RNG state is restored on return.

Structure: :func:`_setup` builds (or restores) everything a run needs once, :func:`_train_epoch`
runs one epoch (one :func:`_step` per batch) and :func:`_finish_epoch` writes its files.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from core.datasets import find_dataset, sibling_split
from core.devices import resolve_device
from core.errors import ConfigError, DatasetError
from core.fileio import atomic_write_json
from core.ssl.backbone_model import make_optimizer, set_backbone_frozen
from core.ssl.checkpoint import CONFIG_NAME, save_checkpoint
from core.ssl.config import SSLConfig
from core.ssl.gpu_augment import two_views
from core.ssl.loss import DistributedGather, NTXentLoss, distributed_gather, positive_top1
from core.ssl.metrics import HeldOutEval, embedding_std, plot_history
from core.ssl.models import SimCLRModel, build_model
from core.ssl.resume import HISTORY_NAME, load_history, resume_state
from core.ssl.two_views import DecodedDataset, TwoViewDataset, collate_decoded, collate_views

PLOT_NAME = "loss.png"


def _dist_info() -> tuple[int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _held_out(config: SSLConfig, layout: str) -> HeldOutEval | None:
    """Precision@k data from the sibling split (val2017 for train2017), when labelled."""
    other = sibling_split(config.split)
    if other is None:
        return None
    try:
        info = find_dataset(config.data_dir, other)
    except (FileNotFoundError, ValueError):  # DatasetError / DatasetNotFoundError: no held-out split
        return None
    if info.layout != layout or not any(r.categories for r in info.records):
        return None  # e.g. a plain-folder fallback: no labels to judge neighbours by
    return HeldOutEval(info.records, config.img_size, config.eval_k)


def train(config: SSLConfig, resume: bool | None = None, *, progress: bool = True) -> Path:
    """Train a SimCLR model as ``config`` says; returns the run folder (``config.out_dir``).

    Args:
        config: all settings; ``config.resume`` continues from the run folder's last checkpoint.
        resume: overrides ``config.resume`` when given.
        progress: show a tqdm bar per epoch (rank 0 only).

    Raises:
        DatasetError / DatasetNotFoundError: no usable data (too few or unreadable images).
        ConfigError: a run folder that already holds a run, without resume.
        CheckpointError: the checkpoint to resume from is corrupt or does not fit the config.
    """
    if resume is not None:
        config = dataclasses.replace(config, resume=resume)
    device = resolve_device(config.device)
    if config.augment == "auto":
        # Batched augmentation pays where the device is much faster than the CPU's PIL pipeline
        # (measured: no gain on a 2-core CPU, docs/benchmarks.md).
        config = dataclasses.replace(config, augment="batched" if device.type == "cuda" else "loader")
    with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
        run = _setup(config, device)
        for epoch in range(run.start, config.num_epochs):
            row = _train_epoch(run, epoch, progress)
            _finish_epoch(run, epoch, row, progress)
        return config.out_dir


@dataclass
class _Run:
    """What one training run builds once and every epoch uses."""

    config: SSLConfig  # with augment resolved ("loader" or "batched")
    device: torch.device
    rank: int  # this process under DDP (0 alone)
    world: int  # number of DDP processes (1 alone)
    model: SimCLRModel  # the model whose weights are saved
    net: nn.Module  # what runs the forward pass: model, or its DDP wrapper
    optimizer: torch.optim.Optimizer
    criterion: NTXentLoss
    gather: DistributedGather | None  # cross-rank row gathering under DDP
    dataset: TwoViewDataset | DecodedDataset
    share: int  # images per rank per epoch (n // world)
    held_out: HeldOutEval | None  # labelled sibling split for precision@k, if any
    start: int  # first epoch to run (0-based; > 0 when resumed)
    history: list[dict[str, Any]]  # one row per finished epoch

    @property
    def batched(self) -> bool:
        return self.config.augment == "batched"

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.config.channels_last else torch.contiguous_format


def _setup(config: SSLConfig, device: torch.device) -> _Run:
    """Data, model, optimizer (restored when resuming), loss and held-out check of a run.

    Raises:
        DatasetError: fewer than two images (per process under DDP).
        ConfigError: the run folder holds a run and ``config.resume`` is off.
    """
    rank, world = _dist_info()
    info = find_dataset(config.data_dir, config.split)
    paths = [r.path for r in info.records]
    if len(paths) < 2:
        raise DatasetError(f"{config.data_dir}: found {len(paths)} image(s); contrastive training needs >= 2")
    run_dir = config.out_dir
    torch.manual_seed(config.seed)
    model = build_model(config, pretrained_weights=not (run_dir / CONFIG_NAME).exists())
    optimizer = make_optimizer(model, config)  # a pretrained backbone learns at a lower rate
    start, history = 0, []
    if (run_dir / CONFIG_NAME).exists():
        if not config.resume:
            raise ConfigError(f"{run_dir} already holds a training run; pass --resume or choose another --out")
        start = resume_state(config, model, optimizer)
        history = load_history(run_dir, start)
    elif config.resume:
        warnings.warn(f"nothing to resume in {run_dir}; starting a new run", stacklevel=3)
    _to_device(model, optimizer, device, config.channels_last)
    net: nn.Module = model
    gather: DistributedGather | None = None
    if world > 1:
        net = nn.parallel.DistributedDataParallel(model)
        gather = distributed_gather()
    batched = config.augment == "batched"
    dataset: TwoViewDataset | DecodedDataset = (
        DecodedDataset(paths) if batched else TwoViewDataset(paths, config.img_size, config.seed))
    # Under DDP every rank must run the same steps (the loss all-gathers z), so each epoch uses
    # n // world images per rank; the n % world left over differ per epoch. Batches may still
    # differ in size when images turn out unreadable: the gather and the loss allow that.
    share = len(dataset) // world
    if share < 2:
        raise DatasetError(f"{config.data_dir}: {len(dataset)} image(s) for {world} processes; each needs >= 2")
    if rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
    return _Run(config, device, rank, world, model, net, optimizer,
                NTXentLoss(config.temperature, config.loss, gather=gather, rank=rank), gather,
                dataset, share, _held_out(config, info.layout), start, history)


def _to_device(model: nn.Module, optimizer: torch.optim.Optimizer, device: torch.device,
               channels_last: bool) -> None:
    """Move the model (in its memory layout) and any restored optimizer state to ``device``."""
    model.to(device)
    model.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    for st in optimizer.state.values():  # no-op on CPU
        for key, val in st.items():
            if isinstance(val, torch.Tensor) and key != "step":
                st[key] = val.to(device)


def _epoch_loader(run: _Run, epoch: int) -> DataLoader:
    """This rank's share of epoch ``epoch``, in the order seeded by ``(seed, epoch)``."""
    config = run.config
    run.dataset.set_epoch(epoch)
    gen = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
    n = len(run.dataset)
    order = torch.randperm(n, generator=gen).tolist()[: run.share * run.world][run.rank :: run.world]
    return DataLoader(
        run.dataset,
        batch_size=config.batch_size,
        sampler=order,
        # SimCLR likes equal batches, but never drop the only batch (50 images with batch 64).
        drop_last=run.share >= config.batch_size,
        num_workers=config.workers,
        collate_fn=collate_decoded if run.batched else collate_views,
    )


def _train_epoch(run: _Run, epoch: int, progress: bool) -> dict[str, Any]:
    """One pass over this rank's share; returns the epoch's history row (all ranks' figures).

    Raises:
        DatasetError: no batch of the epoch was usable (every image unreadable).
    """
    config, device = run.config, run.device
    t0, c0 = time.perf_counter(), time.process_time()
    # Batched views: one device RNG stream per (seed, epoch), so a resumed run sees the same views.
    aug_gen = torch.Generator(device=device).manual_seed(config.seed * 100_003 + epoch) if run.batched else None
    run.model.train()
    set_backbone_frozen(run.model, epoch < config.freeze_backbone_epochs)
    sums = {"loss": 0.0, "pos_top1": 0.0, "emb_std": 0.0}
    seen = skipped = 0
    bar = tqdm(_epoch_loader(run, epoch), desc=f"epoch {epoch + 1}/{config.num_epochs}",
               disable=not progress or run.rank != 0, leave=False)
    for batch in bar:
        skipped += batch[-1]
        figures = _step(run, batch, aug_gen)
        if figures is None:  # too few pairs to learn from: skipped, counted
            skipped += len(batch[0])
            continue
        for key, value in figures.items():
            if key in sums:
                sums[key] += value
        seen += int(figures["pairs"])
        bar.set_postfix(loss=f"{sums['loss'] / seen:.4f}")
    if run.world > 1:  # epoch figures over all ranks: pair-weighted means, summed counts
        import torch.distributed as dist

        totals = torch.tensor([*sums.values(), seen, skipped], dtype=torch.float64, device=device)
        dist.all_reduce(totals)
        sums = dict(zip(sums, totals[:3].tolist(), strict=True))
        seen, skipped = int(totals[3].item()), int(totals[4].item())
    if seen == 0:
        raise DatasetError(f"epoch {epoch + 1}: no usable batch ({skipped} image(s) unreadable)")
    row: dict[str, Any] = {"epoch": epoch + 1, **{k: v / seen for k, v in sums.items()}}
    row["precision_at_k"] = run.held_out(run.model.encoder, device) if run.held_out is not None else None
    row["eval_k"] = config.eval_k
    row["skipped_images"] = skipped
    row["seconds"] = round(time.perf_counter() - t0, 3)
    # CPU time of this process: a fairer speed figure than wall time on a shared machine.
    row["cpu_seconds"] = round(time.process_time() - c0, 3)
    return row


def _step(run: _Run, batch: tuple, aug_gen: torch.Generator | None) -> dict[str, float] | None:
    """One optimisation step on a batch; its summed figures, or None when it must be skipped.

    Returns:
        ``{"loss": loss * weight, "pos_top1": ... * B, "emb_std": ... * B, "pairs": B}`` (sums,
        so the epoch means are pair-weighted), or ``None`` for a batch with no negatives.
    """
    b = len(batch[0])
    weight: float = b  # loss.item() * weight = this rank's summed per-pair loss
    sizes: list[int] | None = None  # every rank's pair count, under DDP
    if run.gather is None:
        if b < 2:  # one view pair has no negatives: nothing to learn
            return None
    else:
        # Every rank must agree to skip, or one would wait in the step's collectives. A single
        # local pair is fine here (the other ranks' rows are its negatives); an empty batch (all
        # unreadable) skips the step on every rank.
        sizes = run.gather.sizes(b, run.device)
        if min(sizes) < 1:
            return None
        weight = sum(sizes) / run.world  # the loss is scaled by b * world / sum(sizes)
    if run.batched:
        v1, v2 = two_views(batch[0], run.config.img_size, run.device, aug_gen)
    else:
        v1, v2 = batch[0], batch[1]
    x = torch.cat([v1, v2]).to(run.device, non_blocking=True)  # (2B, 3, S, S): one pass
    x = x.contiguous(memory_format=run.memory_format)
    with torch.autocast(device_type=run.device.type, dtype=torch.bfloat16, enabled=run.device.type == "cuda"):
        h, z = run.net(x)  # bf16 autocast only where it is fast and supported
    h, z = h.float(), z.float()
    loss = run.criterion(z[:b], z[b:], sizes=sizes)
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    run.optimizer.step()
    return {"loss": loss.item() * weight, "pos_top1": positive_top1(z[:b], z[b:]) * b,
            "emb_std": embedding_std(h) * b, "pairs": b}


def _finish_epoch(run: _Run, epoch: int, row: dict[str, Any], progress: bool) -> None:
    """Record the epoch: history, checkpoint (written last), loss plot, one progress line.

    After the last epoch the optimizer state is kept unless ``config.keep_optimizer`` is off.
    """
    config = run.config
    run.history.append(row)
    if run.rank != 0:
        return
    run_dir = config.out_dir
    # History first, checkpoint last: config.json marks a complete epoch.
    atomic_write_json(run_dir / HISTORY_NAME, run.history)
    last = epoch + 1 == config.num_epochs
    save_checkpoint(run_dir, run.model, run.optimizer, config, epoch + 1, torch.get_rng_state(),
                    keep_optimizer=config.keep_optimizer or not last)
    bs = min(config.batch_size, run.share)  # chance level of a full batch
    chance = math.log(2 * bs - 1) if config.loss == "nt_xent" else math.log(bs)
    plot_history(run.history, run_dir / PLOT_NAME, chance=chance)
    if progress:
        prec = row["precision_at_k"]
        tqdm.write(
            f"epoch {epoch + 1}/{config.num_epochs} loss {row['loss']:.4f} "
            f"pos_top1 {row['pos_top1']:.3f} emb_std {row['emb_std']:.4f} "
            f"P@{config.eval_k} {'-' if prec is None else f'{prec:.3f}'} ({row['seconds']:.1f}s)"
        )
