"""`img2text ssl train` end to end on Tiny COCO, and its error exits."""

from __future__ import annotations

import dataclasses
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


def test_ssl_train_resume_extends_a_finished_run_by_default(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Issue 24: `ssl train --resume --epochs 4` on a finished 3-epoch run was refused ("kept no
    # optimizer state ... --keep-optimizer"); dropping the state is now the opt-in.
    from tests.core.ssl.conftest import make_folder

    make_folder(tmp_path / "imgs", 4, size=40)
    out, drop = tmp_path / "run", tmp_path / "dropped"
    common = ["--data", str(tmp_path / "imgs"), "--img-size", "32", "--batch-size", "4", "--device", "cpu",
              "--quiet"]
    assert main(["ssl", "train", *common, "--out", str(out), "--epochs", "1"]) == 0
    assert main(["ssl", "train", *common, "--out", str(out), "--epochs", "2", "--resume"]) == 0
    assert [h["epoch"] for h in json.loads((out / "history.json").read_text())] == [1, 2]
    assert main(["ssl", "train", *common, "--out", str(drop), "--epochs", "1", "--no-keep-optimizer"]) == 0
    assert not (drop / "optimizer.pt").exists()
    capsys.readouterr()
    assert main(["ssl", "train", *common, "--out", str(drop), "--epochs", "2", "--resume"]) == 2
    err = capsys.readouterr().err
    assert "trained with --no-keep-optimizer" in err and "keep_optimizer=" not in err


def _other_value(name: str, default: object) -> object:
    """A valid value different from ``default`` for an SSLConfig field."""
    from core.ssl.config import SSLConfig

    choices = next(f for f in dataclasses.fields(SSLConfig) if f.name == name).metadata.get("choices")
    if name == "backbone":  # conv, resnet18, or any pretrained id/folder: no fixed choices
        return "resnet18"
    if choices:
        return next(c for c in choices if c != default)
    if isinstance(default, bool):
        return not default
    if isinstance(default, (int, float)):
        return default * 2 + 1
    if isinstance(default, Path):
        return Path("elsewhere") / default.name
    return f"{default}-other"


def test_every_ssl_config_field_is_a_train_flag_that_sets_it(capsys: pytest.CaptureFixture[str]) -> None:
    from core.cli import build_parser
    from core.cli.config_options import config_from_args, flag_name
    from core.ssl import SSLConfig

    with pytest.raises(SystemExit):
        main(["ssl", "train", "--help"])
    help_text = capsys.readouterr().out
    parser = build_parser()
    base = ["ssl", "train", "--data", "d", "--out", "o"]
    baseline = config_from_args(SSLConfig, parser.parse_args(base))
    assert baseline == SSLConfig(data_dir=Path("d"), out_dir=Path("o"))
    for f in dataclasses.fields(SSLConfig):
        flag = flag_name(f.name)
        assert f"{flag} " in help_text or f"{flag}\n" in help_text, f"no {flag} in ssl train --help"
        assert f.metadata.get("help"), f"SSLConfig.{f.name} has no metadata help"
        value = _other_value(f.name, getattr(baseline, f.name))
        if isinstance(value, bool):
            argv = [*base, flag if value else f"--no-{flag[2:]}"]
        else:
            argv = [*base, flag, str(value)]
        config = config_from_args(SSLConfig, parser.parse_args(argv))
        assert config == dataclasses.replace(baseline, **{f.name: value}), f.name


def test_documented_train_flag_names_still_work() -> None:
    from core.cli import build_parser
    from core.cli.config_options import config_from_args
    from core.ssl import SSLConfig

    args = build_parser().parse_args(["ssl", "train", "--data", "d", "--out", "o", "--epochs", "3",
                                      "--embedding-dim", "32", "--resume"])
    config = config_from_args(SSLConfig, args)
    assert (config.data_dir, config.out_dir, config.num_epochs) == (Path("d"), Path("o"), 3)
    assert config.embedding_dim == 32 and config.resume is True
