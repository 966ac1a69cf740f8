"""`img2text ssl train` end to end on Tiny COCO, and its error exits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.cli import main


@pytest.mark.slow
def test_ssl_train_end_to_end_on_tiny_coco(
    tiny_coco_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    code = main(["ssl", "train", "--data", str(tiny_coco_dir), "--split", "train2017", "--out", str(out),
                 "--epochs", "1", "--img-size", "32", "--device", "cpu", "--quiet"])
    assert code == 0
    for name in ("checkpoint.safetensors", "config.json", "history.json", "loss.png"):
        assert (out / name).is_file(), name
    history = json.loads((out / "history.json").read_text())
    assert len(history) == 1 and history[0]["loss"] > 0
    # Labelled data with a val2017 sibling: the held-out precision@k is measured.
    assert 0.0 <= history[0]["precision_at_k"] <= 1.0
    config = json.loads((out / "config.json").read_text())
    assert config["ssl_config"]["img_size"] == 32 and config["preprocessing"]["img_size"] == 32
    # A corrupt checkpoint on --resume is a clear error and exit status 2.
    (out / "checkpoint.safetensors").write_bytes(b"\x00" * 10)
    code = main(["ssl", "train", "--data", str(tiny_coco_dir), "--out", str(out), "--epochs", "2",
                 "--img-size", "32", "--device", "cpu", "--quiet", "--resume"])
    assert code == 2
    assert "checkpoint.safetensors" in capsys.readouterr().err


def test_ssl_train_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ssl", "train", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "r")]) == 2
    assert "data folder not found" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["ssl", "train", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "r")]) == 2
    assert "instances_train2017.json" in capsys.readouterr().err
    assert main(["ssl", "train", "--data", str(tmp_path), "--out", str(tmp_path / "r"), "--batch-size", "1"]) == 2
    assert "batch_size" in capsys.readouterr().err


def test_ssl_help_lists_train(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["ssl", "--help"])
    assert "train" in capsys.readouterr().out


def test_ssl_train_maps_augment_and_layout_flags(tmp_path: Path) -> None:
    from tests.core.ssl.conftest import make_folder

    make_folder(tmp_path / "imgs", 4, size=40)
    out = tmp_path / "run"
    code = main(["ssl", "train", "--data", str(tmp_path / "imgs"), "--out", str(out), "--epochs", "1",
                 "--img-size", "32", "--batch-size", "4", "--device", "cpu", "--quiet",
                 "--augment", "batched", "--no-channels-last"])
    assert code == 0
    saved = json.loads((out / "config.json").read_text())["ssl_config"]
    assert saved["augment"] == "batched" and saved["channels_last"] is False
