"""Read a training run folder for display (apps, reports): history, config, curve, weights."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class RunInfo:
    """What a run folder written by :func:`core.ssl.train` holds.

    Missing or broken files don't raise: they are listed in ``problems`` so a viewer can show
    what is there and say what is not.
    """

    path: Path
    history: list[dict[str, Any]] = field(default_factory=list)  # one dict per epoch
    config: dict[str, Any] = field(default_factory=dict)  # config.json as written
    loss_png: Path | None = None
    weights: Path | None = None  # checkpoint.safetensors
    problems: list[str] = field(default_factory=list)


def read_run(path: str | Path) -> RunInfo:
    """Collect a run folder's files; missing or broken ones are listed in ``problems``."""
    info = RunInfo(Path(path))
    if not info.path.is_dir():
        info.problems.append(f"{info.path}: run folder not found")
        return info
    for name, attr in (("history.json", "history"), ("config.json", "config")):
        try:
            setattr(info, attr, json.loads((info.path / name).read_text()))
        except FileNotFoundError:
            info.problems.append(f"{name} is missing")
        except (OSError, ValueError) as exc:
            info.problems.append(f"{name} is unreadable ({exc})")
    if not isinstance(info.history, list):
        info.problems.append("history.json is not a list of epochs")
        info.history = []
    if not isinstance(info.config, dict):
        info.problems.append("config.json is not an object")
        info.config = {}
    if (info.path / "loss.png").is_file():
        info.loss_png = info.path / "loss.png"
    if (info.path / "checkpoint.safetensors").is_file():
        info.weights = info.path / "checkpoint.safetensors"
    return info
