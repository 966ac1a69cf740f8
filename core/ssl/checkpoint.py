"""Checkpoint files of a run folder, written atomically, and loading a trained encoder.

A run folder holds ``checkpoint.safetensors`` (model weights; the config is also in its metadata
so the file stands alone), ``optimizer.pt`` (optimizer + RNG state, plain tensors and numbers,
read back with ``weights_only=True``; dropped after the last epoch only when ``keep_optimizer`` is off),
and ``config.json`` (config, preprocessing, epoch), which is written last and so marks a
complete checkpoint. Weights are only ever read with safetensors,
and only up to ``MAX_WEIGHTS_BYTES``.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

from core.errors import CheckpointError
from core.fileio import atomic_write_bytes, atomic_write_json, sha256_bytes
from core.ssl.config import SSLConfig
from core.ssl.models import SimCLRModel, build_model
from core.ssl.transforms import eval_transform, preprocessing_settings

WEIGHTS_NAME = "checkpoint.safetensors"
OPTIMIZER_NAME = "optimizer.pt"
CONFIG_NAME = "config.json"
FORMAT_VERSION = 1
# Largest weights file read_weights accepts: the file is read whole into memory. The biggest
# checkpoint this project writes (ResNet-18 SimCLR) is ~45 MB, so 2 GiB leaves ample room while
# bounding what a wrong or hostile path can make us allocate.
MAX_WEIGHTS_BYTES = 2 << 30
_HEADER_LEN_BYTES = 8  # safetensors: little-endian u64 header length, then the JSON header


def save_checkpoint(
    run_dir: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    config: SSLConfig,
    epoch: int,
    rng_state: torch.Tensor,
    *,
    keep_optimizer: bool = True,
) -> None:
    """Write weights, optimizer/RNG state and, last, ``config.json`` for ``epoch`` (1-based).

    Args:
        run_dir: the run folder.
        model: the SimCLR model (encoder + projection head).
        optimizer: its optimizer; its state goes to ``optimizer.pt``.
        config: the run's settings (in ``config.json`` and the weights' metadata).
        epoch: number of complete epochs.
        rng_state: the torch CPU RNG state to restore on resume.
        keep_optimizer: ``False`` writes no optimizer state and removes the previous
            ``optimizer.pt`` once ``config.json`` is written (``"optimizer": null`` in it): the run
            can then be loaded but not resumed.
    """
    meta = {
        "format_version": str(FORMAT_VERSION),
        "epoch": str(epoch),
        "ssl_config": json.dumps(config.to_dict()),
        "preprocessing": json.dumps(preprocessing_settings(config.img_size)),
    }
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write_bytes(run_dir / WEIGHTS_NAME, st_save(state, metadata=meta))
    if keep_optimizer:
        buf = io.BytesIO()
        torch.save({"epoch": epoch, "optimizer": optimizer.state_dict(), "rng": rng_state}, buf)
        atomic_write_bytes(run_dir / OPTIMIZER_NAME, buf.getvalue())
    atomic_write_json(
        run_dir / CONFIG_NAME,
        {
            "format_version": FORMAT_VERSION,
            "epoch": epoch,
            "ssl_config": config.to_dict(),
            "preprocessing": preprocessing_settings(config.img_size),
            "weights": WEIGHTS_NAME,
            "optimizer": OPTIMIZER_NAME if keep_optimizer else None,
        },
    )
    if not keep_optimizer:
        # After config.json: until then the previous epoch's state still pairs with it.
        (run_dir / OPTIMIZER_NAME).unlink(missing_ok=True)


def read_weights(
    path: Path, *, max_bytes: int = MAX_WEIGHTS_BYTES
) -> tuple[dict[str, torch.Tensor], dict[str, str], str]:
    """Tensors, metadata and sha256 of a safetensors file; any problem is a CheckpointError.

    Files over ``max_bytes`` are refused before anything is read.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: weights file not found")
    try:
        with path.open("rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size > max_bytes:
                raise CheckpointError(
                    f"{path}: weights file is {size:,} bytes, over the cap of {max_bytes:,} bytes "
                    f"(an SSL checkpoint of this project is well under 100 MB); check that the path "
                    f"is the right checkpoint, or for a larger trusted file pass a bigger "
                    f"max_bytes to read_weights"
                )
            # Read at most one byte past the cap: a file growing after fstat cannot exceed it.
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read weights file ({exc})") from exc
    if len(data) > max_bytes:
        raise CheckpointError(f"{path}: weights file grew past the cap of {max_bytes:,} bytes while being read")
    _check_header_length(path, data)
    try:
        tensors = st_load(data)
        metadata = _metadata(data)
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file, truncated or corrupt ({exc})") from exc
    return tensors, metadata, sha256_bytes(data)


def _check_header_length(path: Path, data: bytes) -> None:
    """Refuse a file whose 8-byte header length does not fit in it, before parsing anything."""
    if len(data) < _HEADER_LEN_BYTES:
        raise CheckpointError(
            f"{path}: not a safetensors file: {len(data)} bytes, shorter than the "
            f"{_HEADER_LEN_BYTES}-byte header length (truncated or empty)"
        )
    n = int.from_bytes(data[:_HEADER_LEN_BYTES], "little")
    if n > len(data) - _HEADER_LEN_BYTES:
        raise CheckpointError(
            f"{path}: not a readable safetensors file: its header claims {n:,} bytes but the file "
            f"has only {len(data) - _HEADER_LEN_BYTES:,} after the length field (truncated or corrupt)"
        )


def _metadata(data: bytes) -> dict[str, str]:
    """Metadata of in-memory safetensors bytes (8-byte header length, then a JSON header)."""
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    return {str(k): str(v) for k, v in (header.get("__metadata__") or {}).items()}


def read_config(run_dir: Path) -> dict[str, Any]:
    """The parsed ``config.json`` of a run folder (CheckpointError when unreadable)."""
    path = Path(run_dir) / CONFIG_NAME
    try:
        data = json.loads(path.read_text())
        SSLConfig.from_dict(data["ssl_config"])
        int(data["epoch"])
    except FileNotFoundError as exc:
        raise CheckpointError(f"{path}: config file not found") from exc
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{path}: unreadable or invalid checkpoint config ({exc})") from exc
    return data


def load_state_into(model: nn.Module, tensors: dict[str, torch.Tensor], path: Path) -> None:
    """Strictly load ``tensors`` into ``model``; key or shape mismatches name the file."""
    check_state_fits(model, tensors, path)
    model.load_state_dict(tensors)


def check_state_fits(model: nn.Module, tensors: dict[str, torch.Tensor], path: Path) -> None:
    """Raise `CheckpointError` naming ``path`` unless ``tensors`` has exactly ``model``'s keys and shapes.

    Works on a model built on the ``meta`` device, so a config can be checked without allocating it.
    """
    own = model.state_dict()
    missing = sorted(set(own) - set(tensors))
    unexpected = sorted(set(tensors) - set(own))
    wrong = sorted(k for k in set(own) & set(tensors) if own[k].shape != tensors[k].shape)
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing keys {missing[:5]}")
        if unexpected:
            parts.append(f"unexpected keys {unexpected[:5]}")
        if wrong:
            parts.append(f"shape mismatch for {wrong[:5]}")
        raise CheckpointError(f"{path}: weights do not fit the configured model ({'; '.join(parts)})")


@dataclass
class LoadedEncoder:
    """A trained (or randomly initialised) encoder ready for embedding."""

    encoder: nn.Module  # in eval mode
    config: SSLConfig
    sha256: str  # hex digest of the weights file ("random-init-seed-N" for random_encoder)
    weights_path: Path
    transform: Callable[[Image.Image], torch.Tensor]  # the eval transform

    @torch.no_grad()
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Embed preprocessed images.

        Shape:
            (B, 3, S, S) -> (B, embedding_dim), not normalised.
        """
        device = next(self.encoder.parameters()).device
        return self.encoder(images.to(device)).float()


def _resolve_weights(checkpoint: Path) -> tuple[Path, Path | None]:
    if checkpoint.is_dir():
        return checkpoint / WEIGHTS_NAME, checkpoint / CONFIG_NAME
    return checkpoint, checkpoint.parent / CONFIG_NAME


def load_encoder(checkpoint: str | os.PathLike, device: str | torch.device | None = None) -> LoadedEncoder:
    """Load the encoder of a run folder or of a ``.safetensors`` file (safetensors only).

    The config comes from the file's metadata, falling back to ``config.json`` beside it.

    Raises:
        CheckpointError: missing, truncated or corrupt file, or weights that do not fit the config.
    """
    from core.devices import resolve_device

    weights_path, config_path = _resolve_weights(Path(checkpoint))
    tensors, meta, digest = read_weights(weights_path)
    try:
        if "ssl_config" in meta:
            config = SSLConfig.from_dict(json.loads(meta["ssl_config"]))
        elif config_path is not None and config_path.is_file():
            config = SSLConfig.from_dict(read_config(config_path.parent)["ssl_config"])
        else:
            raise CheckpointError(f"{weights_path}: no SSL config in the file metadata nor in {config_path}")
    except (ValueError, TypeError) as exc:
        if isinstance(exc, CheckpointError):
            raise
        raise CheckpointError(f"{weights_path}: invalid SSL config ({exc})") from exc
    # The config comes from the file: check it against the tensors on the meta device first, so a
    # few-byte file claiming a huge model is refused before anything is allocated.
    try:
        with torch.device("meta"):
            shape_only = build_model(config)
    except (ValueError, TypeError, RuntimeError, OverflowError) as exc:  # sizes torch refuses
        raise CheckpointError(f"{weights_path}: cannot build the configured model ({exc})") from exc
    check_state_fits(shape_only, tensors, weights_path)
    model: SimCLRModel = build_model(config)
    model.load_state_dict(tensors)
    encoder = model.encoder.to(resolve_device(device)).eval()
    return LoadedEncoder(encoder, config, digest, weights_path, eval_transform(config.img_size))


def random_encoder(config: SSLConfig, seed: int = 0, device: str | torch.device | None = None) -> LoadedEncoder:
    """A randomly initialised encoder: the baseline that a trained one must beat."""
    from core.devices import resolve_device

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(config)
    encoder = model.encoder.to(resolve_device(device)).eval()
    name = f"random-init-seed-{seed}"
    return LoadedEncoder(encoder, config, name, Path(name), eval_transform(config.img_size))
