"""Run folders for display: summary figures, the history table, and sample retrievals.

Both web apps show a training run the same way; they only lay these values out.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.fileio import sha256_file
from core.ssl import RunInfo, read_run

HISTORY_COLUMNS = ("epoch", "loss", "pos_top1", "emb_std", "precision_at_k", "seconds")

__all__ = ["HISTORY_COLUMNS", "RunInfo", "RunSummary", "SampleRetrieval", "history_rows",
           "index_for_run", "read_run", "run_summary", "sample_retrievals", "weights_sha256"]


@dataclass(frozen=True)
class RunSummary:
    """The figures a run's page shows at the top."""

    path: Path  # the run folder
    epochs: Any  # last epoch number in history.json (None: no history)
    loss: float | None  # last epoch's training loss
    loss_change: float | None  # last minus first epoch's loss (negative = learning)
    pos_top1: float | None  # last epoch's positive-pair top-1
    emb_std: float | None  # last epoch's embedding spread (near 0 = collapsed)
    precision_label: str  # "held-out P@k" with the run's k
    precision: str  # its value as text, "-" when not measured
    settings: str  # "backbone conv, 32 px, batch 8, temperature 0.5, epochs 2/2" ("" if unknown)
    problems: tuple[str, ...]  # missing or broken files


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def run_summary(info: RunInfo) -> RunSummary:
    """The top-of-page figures of a run (``info`` from :func:`read_run`)."""
    epochs = [h for h in info.history if isinstance(h, dict)]
    last, first = (epochs[-1], epochs[0]) if epochs else ({}, {})
    loss, first_loss = _number(last.get("loss")), _number(first.get("loss"))
    prec = _number(last.get("precision_at_k"))
    cfg = info.config.get("ssl_config") if isinstance(info.config, dict) else None
    settings = ""
    if isinstance(cfg, dict):
        settings = (f"backbone {cfg.get('backbone')}, {cfg.get('img_size')} px, batch {cfg.get('batch_size')}, "
                    f"temperature {cfg.get('temperature')}, epochs {info.config.get('epoch')}/{cfg.get('num_epochs')}")
    return RunSummary(
        path=info.path, epochs=last.get("epoch"), loss=loss,
        loss_change=None if loss is None or first_loss is None else loss - first_loss,
        pos_top1=_number(last.get("pos_top1")), emb_std=_number(last.get("emb_std")),
        precision_label=f"held-out P@{last.get('eval_k', 'k')}",
        precision="-" if prec is None or math.isnan(prec) else f"{prec:.3f}",
        settings=settings, problems=tuple(info.problems),
    )


def history_rows(info: RunInfo) -> list[list[Any]]:
    """history.json as table rows in :data:`HISTORY_COLUMNS` order (floats to 4 places, gaps "")."""
    def cell(value: Any) -> Any:
        if isinstance(value, float):
            return round(value, 4)
        return "" if value is None else value

    return [[cell(h.get(c)) for c in HISTORY_COLUMNS] for h in info.history if isinstance(h, dict)]


@functools.lru_cache(maxsize=64)
def _sha256_cached(path: str, mtime_ns: int, size: int) -> str:
    return sha256_file(path)


def weights_sha256(path: str | Path) -> str:
    """sha256 of a weights file, computed once per (path, modification time, size)."""
    stat = Path(path).stat()
    return _sha256_cached(str(path), stat.st_mtime_ns, stat.st_size)


def index_for_run(info: RunInfo, indexes: Iterable[Path], load: Callable[[Path], Any]) -> Any:
    """The first of ``indexes`` built from exactly this run's weights (same sha256), or None.

    Args:
        info: the run (``info.weights`` is its ``checkpoint.safetensors``).
        indexes: the configured index folders.
        load: the app's (cached) index loader; folders it cannot load are passed over.
    """
    if info.weights is None:
        return None
    digest = weights_sha256(info.weights)
    for path in indexes:
        try:
            index = load(path)
        except (OSError, ValueError):  # missing or broken index (CheckpointError is a ValueError)
            continue
        if index.checkpoint.sha256 == digest:
            return index
    return None


@dataclass(frozen=True)
class SampleRetrieval:
    """One indexed query image and its nearest neighbours (``SearchResult``s, itself left out)."""

    image_id: Any
    path: Path
    hits: list[Any]


def sample_retrievals(index: Any, queries: int = 3, k: int = 4) -> list[SampleRetrieval]:
    """The first ``queries`` images of ``index`` and each one's top ``k``."""
    out = []
    for image_id in index.image_ids[:queries]:
        row = index.row_of_id(image_id)
        out.append(SampleRetrieval(image_id, Path(index.paths[row]), index.find_similar(image_id, k=k)))
    return out
