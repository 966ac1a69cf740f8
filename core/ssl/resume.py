"""Resuming a SimCLR run: which settings may change, and restoring weights, optimizer and history.

A run folder holds the weights of its last finished epoch, ``optimizer.pt`` (optimizer and torch
RNG state of that epoch) and ``history.json``. :func:`resume_state` checks that the new settings
would give the same results (only :data:`RESUMABLE_CHANGES` may differ) and loads the state back,
so the resumed run continues exactly where an uninterrupted one would be.
"""

from __future__ import annotations

import dataclasses
import json
import pickle
from pathlib import Path
from typing import Any

import torch
from torch import nn

from core.errors import CheckpointError
from core.ssl.checkpoint import (
    CONFIG_NAME,
    OPTIMIZER_NAME,
    WEIGHTS_NAME,
    load_state_into,
    read_config,
    read_weights,
)
from core.ssl.config import SSLConfig

HISTORY_NAME = "history.json"
# Settings that may change between a run and its resumption without changing the results.
# channels_last only changes float rounding, not the maths.
# keep_optimizer only decides what is kept after the last epoch.
RESUMABLE_CHANGES = {
    "num_epochs", "resume", "device", "workers", "data_dir", "out_dir", "channels_last", "keep_optimizer",
}


# What torch.load(weights_only=True) and load_state_dict raise for a damaged or foreign
# optimizer.pt: refused pickles, corrupt zips, truncation, wrong structure or types.
_OPTIMIZER_FILE_ERRORS = (
    pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, KeyError, TypeError,
    IndexError, AttributeError,
)


def _check_resumable(config: SSLConfig, saved: dict[str, Any]) -> None:
    """Refuse a resume whose settings would change the results (the message lists them)."""
    old = SSLConfig.from_dict(saved["ssl_config"]).to_dict()
    if config.augment == "auto":  # keep the run's pipeline even if the device changed
        config = dataclasses.replace(config, augment=old["augment"])
    new = config.to_dict()
    diff = sorted(k for k in new if k not in RESUMABLE_CHANGES and new[k] != old.get(k))
    if diff:
        details = ", ".join(f"{k}: {old.get(k)!r} -> {new[k]!r}" for k in diff)
        raise CheckpointError(f"{config.out_dir / CONFIG_NAME}: cannot resume with changed settings ({details})")


def _load_optimizer(run_dir: Path, optimizer: torch.optim.Optimizer, epoch: int, saved: dict[str, Any]) -> None:
    """Restore optimizer and torch RNG state of ``epoch`` from ``optimizer.pt``."""
    opt_path = run_dir / OPTIMIZER_NAME
    if not opt_path.is_file() and saved.get("optimizer", OPTIMIZER_NAME) is None:
        raise CheckpointError(
            f"{opt_path}: this run finished at epoch {epoch} and kept no optimizer state (it was "
            f"trained with --no-keep-optimizer, or before the state was kept by default), so it "
            f"cannot be extended exactly; train it again without --no-keep-optimizer to be able "
            f"to extend it, or start a new run in another --out folder"
        )
    try:
        state = torch.load(opt_path, map_location="cpu", weights_only=True)
        if int(state["epoch"]) != epoch:
            raise ValueError(f"holds epoch {state['epoch']}, {CONFIG_NAME} says {epoch}")
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])
    except FileNotFoundError as exc:
        raise CheckpointError(f"{opt_path}: optimizer state not found") from exc
    except _OPTIMIZER_FILE_ERRORS as exc:
        raise CheckpointError(f"{opt_path}: unreadable optimizer state ({exc})") from exc


def resume_state(config: SSLConfig, model: nn.Module, optimizer: torch.optim.Optimizer) -> int:
    """Load the last checkpoint of ``config.out_dir`` into model/optimizer; returns its epoch.

    The optimizer state is only read when there are epochs left to run.
    """
    run_dir = config.out_dir
    saved = read_config(run_dir)
    _check_resumable(config, saved)
    epoch = int(saved["epoch"])
    tensors, meta, _ = read_weights(run_dir / WEIGHTS_NAME)
    if meta.get("epoch") != str(epoch):
        raise CheckpointError(
            f"{run_dir / WEIGHTS_NAME}: holds epoch {meta.get('epoch')} but {CONFIG_NAME} says "
            f"{epoch} (interrupted write?)"
        )
    load_state_into(model, tensors, run_dir / WEIGHTS_NAME)
    if epoch < config.num_epochs:
        _load_optimizer(run_dir, optimizer, epoch, saved)
    return epoch


def load_history(run_dir: Path, epochs: int) -> list[dict[str, Any]]:
    try:
        data = json.loads((run_dir / HISTORY_NAME).read_text())
    except (OSError, ValueError):
        return []
    # history.json is written before the checkpoint, so it may hold one epoch too many.
    return [h for h in data if isinstance(h, dict) and int(h.get("epoch", 0)) <= epochs]
