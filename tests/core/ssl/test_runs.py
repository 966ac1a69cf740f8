"""`read_run` shows what a run folder holds and lists what is missing or broken."""

from __future__ import annotations

import json
from pathlib import Path

from core.ssl.runs import read_run


def test_complete_run(tmp_path: Path) -> None:
    (tmp_path / "history.json").write_text(json.dumps([{"epoch": 1, "loss": 4.5}]))
    (tmp_path / "config.json").write_text(json.dumps({"epoch": 1}))
    (tmp_path / "loss.png").write_bytes(b"png")
    (tmp_path / "checkpoint.safetensors").write_bytes(b"w")
    info = read_run(tmp_path)
    assert info.problems == []
    assert info.history == [{"epoch": 1, "loss": 4.5}] and info.config == {"epoch": 1}
    assert info.loss_png == tmp_path / "loss.png" and info.weights == tmp_path / "checkpoint.safetensors"


def test_missing_and_broken_files_are_listed(tmp_path: Path) -> None:
    (tmp_path / "history.json").write_text("{not json")
    info = read_run(tmp_path)
    assert any("history.json is unreadable" in p for p in info.problems)
    assert "config.json is missing" in info.problems
    assert info.history == [] and info.weights is None
    (tmp_path / "history.json").write_text(json.dumps({"loss": 1}))
    assert "history.json is not a list of epochs" in read_run(tmp_path).problems
    assert "run folder not found" in read_run(tmp_path / "nope").problems[0]
