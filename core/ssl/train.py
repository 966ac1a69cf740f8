"""SimCLR training loop: seeded, resumable to the exact same losses, atomic files per epoch.

Reproducibility: weights come from ``torch.manual_seed(seed)``; the shuffle order of epoch e
from a ``torch.Generator`` seeded with ``(seed, e)``; each image's augmentations from
``(seed, e, index)`` (see :mod:`core.ssl.views`). Resuming therefore needs only the weights, the
optimizer state and the epoch, and continues exactly where an uninterrupted run would be.
The caller's global RNG state is restored on return.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from core.devices import resolve_device
from core.errors import CheckpointError
from core.ssl.checkpoint import (
    CONFIG_NAME,
    OPTIMIZER_NAME,
    WEIGHTS_NAME,
    atomic_write_json,
    load_state_into,
    read_config,
    read_weights,
    save_checkpoint,
)
from core.ssl.config import SSLConfig
from core.ssl.data import TwoViewDataset, collate_views, find_dataset, sibling_split
from core.ssl.gpu_augment import two_views
from core.ssl.loss import DistributedGather, NTXentLoss, distributed_gather, positive_top1
from core.ssl.metrics import HeldOutEval, embedding_std, plot_history
from core.ssl.models import build_model
from core.ssl.views import DecodedDataset, collate_decoded

HISTORY_NAME = "history.json"
PLOT_NAME = "loss.png"
# Settings that may change between a run and its resumption without changing the results.
# channels_last only changes float rounding, not the maths.
RESUMABLE_CHANGES = {"num_epochs", "resume", "device", "workers", "data_dir", "out_dir", "channels_last"}


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
    except (FileNotFoundError, NotADirectoryError, ValueError):
        return None
    if info.layout != layout or not any(r.categories for r in info.records):
        return None  # e.g. a plain-folder fallback: no labels to judge neighbours by
    return HeldOutEval(info.records, config.img_size, config.eval_k)


def _resume_state(config: SSLConfig, model: nn.Module, optimizer: torch.optim.Optimizer) -> int:
    """Load the last checkpoint of ``config.out_dir`` into model/optimizer; returns its epoch."""
    run_dir = config.out_dir
    saved = read_config(run_dir)
    old = SSLConfig.from_dict(saved["ssl_config"]).to_dict()
    if config.augment == "auto":  # keep the run's pipeline even if the device changed
        config = dataclasses.replace(config, augment=old["augment"])
    new = config.to_dict()
    diff = sorted(k for k in new if k not in RESUMABLE_CHANGES and new[k] != old.get(k))
    if diff:
        details = ", ".join(f"{k}: {old.get(k)!r} -> {new[k]!r}" for k in diff)
        raise CheckpointError(f"{run_dir / CONFIG_NAME}: cannot resume with changed settings ({details})")
    epoch = int(saved["epoch"])
    tensors, meta, _ = read_weights(run_dir / WEIGHTS_NAME)
    if meta.get("epoch") != str(epoch):
        raise CheckpointError(
            f"{run_dir / WEIGHTS_NAME}: holds epoch {meta.get('epoch')} but {CONFIG_NAME} says "
            f"{epoch} (interrupted write?)"
        )
    load_state_into(model, tensors, run_dir / WEIGHTS_NAME)
    opt_path = run_dir / OPTIMIZER_NAME
    try:
        state = torch.load(opt_path, map_location="cpu", weights_only=True)
        if int(state["epoch"]) != epoch:
            raise ValueError(f"holds epoch {state['epoch']}, {CONFIG_NAME} says {epoch}")
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])
    except FileNotFoundError as exc:
        raise CheckpointError(f"{opt_path}: optimizer state not found") from exc
    except Exception as exc:  # unpickling errors come in many types; all mean "unusable file"
        raise CheckpointError(f"{opt_path}: unreadable optimizer state ({exc})") from exc
    return epoch


def _load_history(run_dir: Path, epochs: int) -> list[dict[str, Any]]:
    try:
        data = json.loads((run_dir / HISTORY_NAME).read_text())
    except (OSError, ValueError):
        return []
    # history.json is written before the checkpoint, so it may hold one epoch too many.
    return [h for h in data if isinstance(h, dict) and int(h.get("epoch", 0)) <= epochs]


def train(config: SSLConfig, resume: bool | None = None, *, progress: bool = True) -> Path:
    """Train a SimCLR model as ``config`` says; returns the run folder (``config.out_dir``).

    Args:
        config: all settings; ``config.resume`` continues from the run folder's last checkpoint.
        resume: overrides ``config.resume`` when given.
        progress: show a tqdm bar per epoch (rank 0 only).

    Raises:
        FileNotFoundError / ValueError: no usable data, or a finished-run folder without resume.
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
        return _train(config, device, progress)


def _train(config: SSLConfig, device: torch.device, progress: bool) -> Path:
    rank, world = _dist_info()
    info = find_dataset(config.data_dir, config.split)
    paths = [r.path for r in info.records]
    if len(paths) < 2:
        raise ValueError(f"{config.data_dir}: found {len(paths)} image(s); contrastive training needs >= 2")
    run_dir = config.out_dir
    torch.manual_seed(config.seed)
    model = build_model(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    start, history = 0, []
    if (run_dir / CONFIG_NAME).exists():
        if not config.resume:
            raise ValueError(f"{run_dir} already holds a training run; pass --resume or choose another --out")
        start = _resume_state(config, model, optimizer)
        history = _load_history(run_dir, start)
    elif config.resume:
        warnings.warn(f"nothing to resume in {run_dir}; starting a new run", stacklevel=2)
    model.to(device)
    layout = torch.channels_last if config.channels_last else torch.contiguous_format
    model.to(memory_format=layout)
    # Move restored optimizer state along with the parameters (no-op on CPU).
    for st in optimizer.state.values():
        for key, val in st.items():
            if isinstance(val, torch.Tensor) and key != "step":
                st[key] = val.to(device)
    net: nn.Module = model
    gather: DistributedGather | None = None
    if world > 1:
        net = nn.parallel.DistributedDataParallel(model)
        gather = distributed_gather()
    criterion = NTXentLoss(config.temperature, config.loss, gather=gather, rank=rank)
    held_out = _held_out(config, info.layout)
    batched = config.augment == "batched"
    dataset: TwoViewDataset | DecodedDataset = (
        DecodedDataset(paths) if batched else TwoViewDataset(paths, config.img_size, config.seed))
    n = len(dataset)
    # Under DDP every rank must run the same steps (the loss all-gathers z), so each epoch uses
    # n // world images per rank; the n % world left over differ per epoch. Batches may still
    # differ in size when images turn out unreadable: the gather and the loss allow that.
    share = n // world
    if share < 2:
        raise ValueError(f"{config.data_dir}: {n} image(s) for {world} processes; each needs >= 2")
    # SimCLR likes equal batches, but never drop the only batch (50 images with batch 64).
    drop_last = share >= config.batch_size
    use_amp = device.type == "cuda"  # bf16 autocast only where it is fast and supported
    if rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
    for epoch in range(start, config.num_epochs):
        t0, c0 = time.perf_counter(), time.process_time()
        dataset.set_epoch(epoch)
        gen = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
        order = torch.randperm(n, generator=gen).tolist()[: share * world][rank::world]
        loader = DataLoader(
            dataset,
            batch_size=config.batch_size,
            sampler=order,
            drop_last=drop_last,
            num_workers=config.workers,
            collate_fn=collate_decoded if batched else collate_views,
        )
        # Batched views: one device RNG stream per (seed, epoch), so a resumed run sees the same views.
        aug_gen = torch.Generator(device=device).manual_seed(config.seed * 100_003 + epoch) if batched else None
        model.train()
        sums = {"loss": 0.0, "pos_top1": 0.0, "emb_std": 0.0}
        seen = skipped = 0
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{config.num_epochs}", disable=not progress or rank != 0,
                   leave=False)
        for batch in bar:
            skipped += batch[-1]
            b = len(batch[0])
            weight: float = b  # loss.item() * weight = this rank's summed per-pair loss
            sizes: list[int] | None = None  # every rank's pair count, under DDP
            if gather is None:
                if b < 2:  # one view pair has no negatives: nothing to learn, skip (counted)
                    skipped += b
                    continue
            else:
                # Every rank must agree to skip, or one would wait in the step's collectives. A
                # single local pair is fine here (the other ranks' rows are its negatives); an
                # empty batch (all unreadable) skips the step on every rank (counted).
                sizes = gather.sizes(b, device)
                if min(sizes) < 1:
                    skipped += b
                    continue
                weight = sum(sizes) / world  # the loss is scaled by b * world / sum(sizes)
            if batched:
                v1, v2 = two_views(batch[0], config.img_size, device, aug_gen)
            else:
                v1, v2 = batch[0], batch[1]
            x = torch.cat([v1, v2]).to(device, non_blocking=True)  # (2B, 3, S, S): one pass
            x = x.contiguous(memory_format=layout)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp):
                h, z = net(x)
            h, z = h.float(), z.float()
            loss = criterion(z[:b], z[b:], sizes=sizes)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            sums["loss"] += loss.item() * weight
            sums["pos_top1"] += positive_top1(z[:b], z[b:]) * b
            sums["emb_std"] += embedding_std(h) * b
            seen += b
            bar.set_postfix(loss=f"{sums['loss'] / seen:.4f}")
        if world > 1:  # epoch figures over all ranks: pair-weighted means, summed counts
            import torch.distributed as dist

            totals = torch.tensor([*sums.values(), seen, skipped], dtype=torch.float64, device=device)
            dist.all_reduce(totals)
            sums = dict(zip(sums, totals[:3].tolist(), strict=True))
            seen, skipped = int(totals[3].item()), int(totals[4].item())
        if seen == 0:
            raise ValueError(f"epoch {epoch + 1}: no usable batch ({skipped} image(s) unreadable)")
        row: dict[str, Any] = {"epoch": epoch + 1, **{k: v / seen for k, v in sums.items()}}
        row["precision_at_k"] = held_out(model.encoder, device) if held_out is not None else None
        row["eval_k"] = config.eval_k
        row["skipped_images"] = skipped
        row["seconds"] = round(time.perf_counter() - t0, 3)
        # CPU time of this process: a fairer speed figure than wall time on a shared machine.
        row["cpu_seconds"] = round(time.process_time() - c0, 3)
        history.append(row)
        if rank == 0:
            # History first, checkpoint last: config.json marks a complete epoch.
            atomic_write_json(run_dir / HISTORY_NAME, history)
            save_checkpoint(run_dir, model, optimizer, config, epoch + 1, torch.get_rng_state())
            bs = min(config.batch_size, share)  # chance level of a full batch
            chance = math.log(2 * bs - 1) if config.loss == "nt_xent" else math.log(bs)
            plot_history(history, run_dir / PLOT_NAME, chance=chance)
            if progress:
                prec = row["precision_at_k"]
                tqdm.write(
                    f"epoch {epoch + 1}/{config.num_epochs} loss {row['loss']:.4f} "
                    f"pos_top1 {row['pos_top1']:.3f} emb_std {row['emb_std']:.4f} "
                    f"P@{config.eval_k} {'-' if prec is None else f'{prec:.3f}'} ({row['seconds']:.1f}s)"
                )
    return run_dir
