"""Broken data sets for SSL training: clear errors (exit 2) or counted skips, never a traceback.

Rules (docs of core.datasets / core.ssl.two_views): malformed annotation JSON is a ValueError naming
the file; annotated images that are absent are skipped with a warning (an error with strict);
images that cannot be read when an epoch reaches them are skipped and counted per epoch in
history.json (``skipped_images``); an epoch with no usable batch stops with a clear error.
"""

from __future__ import annotations

import importlib
import json
import subprocess
from pathlib import Path

import pytest

from core.cli import main
from core.ssl import SSLConfig, find_dataset, train
from tests.reliability.conftest import cli
from tests.reliability.datagen import make_images

train_module = importlib.import_module("core.ssl.training")

TRAIN_ARGS = ["--img-size", "16", "--batch-size", "4", "--epochs", "1", "--device", "cpu", "--quiet"]


def tiny_coco(root: Path, n: int = 6) -> Path:
    files = [p.name for p in make_images(root / "train2017", n, size=24)]
    images = [{"id": i + 1, "file_name": f, "width": 24, "height": 24} for i, f in enumerate(files)]
    anns = [{"id": i + 1, "image_id": i + 1, "category_id": 1, "bbox": [0, 0, 4, 4], "area": 16,
             "iscrowd": 0} for i in range(n)]
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "annotations" / "instances_train2017.json").write_text(json.dumps(
        {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "thing"}]}))
    return root


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> subprocess.CompletedProcess[str]:
    """``img2text ARGV`` in this process (fast); one test below runs the real command."""
    capsys.readouterr()
    code = main(list(argv))
    out = capsys.readouterr()
    return subprocess.CompletedProcess(list(argv), code, out.out, out.err)


def assert_clean_exit_2(proc, *needles: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.stderr.startswith("img2text: error: ") or "\nimg2text: error: " in proc.stderr, proc.stderr
    for needle in needles:
        assert needle in proc.stderr, (needle, proc.stderr[-2000:])


@pytest.mark.timeout(240)
@pytest.mark.parametrize("content", ['{"images": [', "[1, 2, 3]", '{"images": "nope"}',
                                     '{"images": [{"file_name": "a.png"}]}', "\xff\xfe garbage"])
def test_training_cli_on_malformed_annotations_exits_2_naming_the_file(
        content: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tiny_coco(tmp_path / "data")
    ann = root / "annotations" / "instances_train2017.json"
    ann.write_text(content, encoding="latin-1")
    proc = run_cli(capsys, "ssl", "train", "--data", str(root), "--out", str(tmp_path / "run"), *TRAIN_ARGS)
    assert_clean_exit_2(proc, str(ann))
    assert not (tmp_path / "run" / "config.json").exists()


@pytest.mark.timeout(240)
def test_training_cli_on_missing_or_empty_data_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    proc = run_cli(capsys, "ssl", "train", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "run"), *TRAIN_ARGS)
    assert_clean_exit_2(proc, "data folder not found", str(tmp_path / "nope"))
    # Annotations whose every image is absent: nothing to train on.
    root = tiny_coco(tmp_path / "data", n=3)
    for path in (root / "train2017").iterdir():
        path.unlink()
    proc = run_cli(capsys, "ssl", "train", "--data", str(root), "--out", str(tmp_path / "run"), *TRAIN_ARGS)
    assert_clean_exit_2(proc, "found 0 image(s)")


def test_missing_instances_file_falls_back_to_the_image_folder(tmp_path: Path) -> None:
    """No instances_S.json: the documented fallback is the plain-folder layout, not a crash."""
    root = tiny_coco(tmp_path / "data", n=4)
    (root / "annotations" / "instances_train2017.json").unlink()
    info = find_dataset(root)
    assert info.layout == "folder" and len(info.records) == 4


@pytest.mark.timeout(240)
def test_entries_pointing_at_absent_files_are_skipped_and_reported(tmp_path: Path) -> None:
    """The real command: a warning on stderr names the count and the first missing file."""
    root = tiny_coco(tmp_path / "data", n=8)
    for name in ("img_00001.png", "img_00004.png"):
        (root / "train2017" / name).unlink()
    proc = cli("ssl", "train", "--data", str(root), "--out", str(tmp_path / "run"), *TRAIN_ARGS)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "2 annotated image(s) are missing" in proc.stderr and "img_00001.png" in proc.stderr
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert len(history) == 1 and history[0]["skipped_images"] == 0


@pytest.mark.timeout(240)
def test_images_that_break_mid_run_are_skipped_and_counted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Files corrupted or deleted after discovery, and more after epoch 1: counted per epoch."""
    data = tmp_path / "imgs"
    paths = make_images(data, 12, size=24)
    paths[0].write_bytes(b"not an image any more")  # broken from the start
    real_find, real_save = train_module.find_dataset, train_module.save_checkpoint

    def find_then_break(*args, **kwargs):
        info = real_find(*args, **kwargs)
        paths[1].unlink()  # vanishes between discovery and the first epoch
        paths[2].write_bytes(paths[2].read_bytes()[:40])  # truncated
        return info

    def save_then_break(run_dir, model, optimizer, config, epoch, rng_state, **kw):
        real_save(run_dir, model, optimizer, config, epoch, rng_state, **kw)
        if epoch == 1:
            for p in paths[3:5]:
                p.write_text("<html>replaced by a web page</html>")

    monkeypatch.setattr(train_module, "find_dataset", find_then_break)
    monkeypatch.setattr(train_module, "save_checkpoint", save_then_break)
    cfg = SSLConfig(data_dir=data, out_dir=tmp_path / "run", img_size=16, batch_size=4, num_epochs=2,
                    projection_dim=8, embedding_dim=16, device="cpu")
    with pytest.warns(UserWarning, match="skipping unreadable image"):
        run = train(cfg, progress=False)
    history = json.loads((run / "history.json").read_text())
    # 12 images, batch 4, drop_last: 3 batches; unreadable ones shrink their batch.
    assert [h["skipped_images"] for h in history] == [3, 5], history
    assert all(h["loss"] == h["loss"] and h["loss"] > 0 for h in history)  # finite, not NaN


@pytest.mark.timeout(240)
def test_an_epoch_with_no_readable_image_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "imgs"
    for path in make_images(data, 4, size=24):
        path.write_bytes(b"GIF89a" + b"\0" * 10)
    proc = run_cli(capsys, "ssl", "train", "--data", str(data), "--out", str(tmp_path / "run"), *TRAIN_ARGS)
    assert_clean_exit_2(proc, "no usable batch", "4 image(s) unreadable")
