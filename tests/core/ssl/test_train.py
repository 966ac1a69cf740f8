"""Training on generated images: loss goes down, exact resume, checkpoints load and fail clearly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from core.errors import CheckpointError
from core.ssl import LoadedEncoder, SSLConfig, load_encoder, train
from core.ssl.checkpoint import random_encoder
from tests.core.ssl.conftest import make_folder


def _config(data: Path, out: Path, **kw) -> SSLConfig:
    base = dict(data_dir=data, out_dir=out, img_size=32, batch_size=8, num_epochs=2,
                projection_dim=16, embedding_dim=32, device="cpu", lr=1e-3)
    base.update(kw)
    return SSLConfig(**base)


def _history(run: Path) -> list[dict]:
    return json.loads((run / "history.json").read_text())


def test_short_training_lowers_the_loss(tmp_path: Path) -> None:
    data = tmp_path / "imgs"
    make_folder(data, 12, size=40)
    # 3 steps per epoch; 24 steps at lr 3e-4 bring the loss well below its start (deterministic).
    run = train(_config(data, tmp_path / "run", num_epochs=8, batch_size=4, lr=3e-4), progress=False)
    losses = [h["loss"] for h in _history(run)]
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.1, losses
    for name in ("checkpoint.safetensors", "config.json", "history.json", "loss.png"):
        assert (run / name).is_file()
    # Finished: the optimizer state is kept by default, so the run can be extended.
    assert (run / "optimizer.pt").is_file()
    assert json.loads((run / "config.json").read_text())["optimizer"] == "optimizer.pt"
    row = _history(run)[-1]
    assert set(row) >= {"epoch", "loss", "pos_top1", "emb_std", "precision_at_k"}
    assert row["precision_at_k"] is None  # a plain folder has no labels to judge neighbours
    assert not list(run.glob("*.tmp"))  # atomic writes leave no temporaries behind


def test_resume_equals_uninterrupted_run(tmp_path: Path) -> None:
    data = tmp_path / "imgs"
    make_folder(data, 10, size=40)  # batch 8 -> one batch of 8 per epoch (remainder dropped)
    full = train(_config(data, tmp_path / "full", num_epochs=3), progress=False)
    part = train(_config(data, tmp_path / "part", num_epochs=2), progress=False)
    assert (part / "optimizer.pt").is_file()
    with pytest.raises(ValueError, match="--resume"):
        train(_config(data, tmp_path / "part", num_epochs=3), progress=False)
    train(_config(data, tmp_path / "part", num_epochs=3, keep_optimizer=False), resume=True, progress=False)
    assert not (part / "optimizer.pt").exists()  # finished again, this time dropping it (the opt-in)
    a, b = _history(full), _history(part)
    assert [h["epoch"] for h in b] == [1, 2, 3]
    for x, y in zip(a, b, strict=True):
        assert x["loss"] == pytest.approx(y["loss"], abs=1e-6)
    wa, wb = load_encoder(full), load_encoder(part)
    for (ka, va), (kb, vb) in zip(wa.encoder.state_dict().items(), wb.encoder.state_dict().items(), strict=True):
        assert ka == kb and torch.allclose(va, vb, atol=1e-6)


def test_same_config_twice_gives_the_same_losses(tmp_path: Path) -> None:
    data = tmp_path / "imgs"
    make_folder(data, 6, size=40)
    a = train(_config(data, tmp_path / "a", num_epochs=2, batch_size=4), progress=False)
    b = train(_config(data, tmp_path / "b", num_epochs=2, batch_size=4), progress=False)
    assert [h["loss"] for h in _history(a)] == [h["loss"] for h in _history(b)]


def test_checkpoint_round_trip_and_errors(tmp_path: Path) -> None:
    data = tmp_path / "imgs"
    make_folder(data, 4, size=40)
    run = train(_config(data, tmp_path / "run", num_epochs=1, batch_size=4), progress=False)
    loaded = load_encoder(run)
    assert isinstance(loaded, LoadedEncoder) and not loaded.encoder.training
    assert loaded.weights_path == run / "checkpoint.safetensors"
    assert len(loaded.sha256) == 64 and loaded.config.embedding_dim == 32
    from PIL import Image

    x = loaded.transform(Image.new("RGB", (50, 40), (1, 2, 3)))
    assert x.shape == (3, 32, 32) and loaded.embed(x[None]).shape == (1, 32)
    # The weights file alone carries its config in the safetensors metadata.
    alone = tmp_path / "alone" / "enc.safetensors"
    alone.parent.mkdir()
    alone.write_bytes((run / "checkpoint.safetensors").read_bytes())
    assert load_encoder(alone).sha256 == loaded.sha256

    with pytest.raises(CheckpointError, match="not found"):
        load_encoder(tmp_path / "missing")
    truncated = tmp_path / "trunc.safetensors"
    truncated.write_bytes(alone.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="trunc.safetensors"):
        load_encoder(truncated)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="garbage.safetensors"):
        load_encoder(garbage)

    # Corrupt weights make resuming fail with a CheckpointError naming the file.
    (run / "checkpoint.safetensors").write_bytes(b"broken")
    with pytest.raises(CheckpointError, match="checkpoint.safetensors"):
        train(_config(data, run, num_epochs=2, batch_size=4), resume=True, progress=False)


def test_resume_refuses_changed_settings(tmp_path: Path) -> None:
    data = tmp_path / "imgs"
    make_folder(data, 4, size=40)
    run = train(_config(data, tmp_path / "run", num_epochs=1, batch_size=4), progress=False)
    with pytest.raises(CheckpointError, match="temperature"):
        train(_config(data, run, num_epochs=2, batch_size=4, temperature=0.5), resume=True, progress=False)


def test_random_encoder_baseline() -> None:
    cfg = SSLConfig(img_size=32, embedding_dim=32)
    a, b = random_encoder(cfg, seed=3), random_encoder(cfg, seed=3)
    assert a.sha256 == "random-init-seed-3"
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(a.embed(x), b.embed(x))


def test_weights_that_do_not_fit_the_config_are_a_checkpoint_error(tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    data = tmp_path / "imgs"
    make_folder(data, 4, size=40)
    run = train(_config(data, tmp_path / "run", num_epochs=1, batch_size=4), progress=False)
    wrong = _config(data, run, num_epochs=1, batch_size=4, embedding_dim=64)
    odd = tmp_path / "odd.safetensors"
    save_file(load_file(run / "checkpoint.safetensors"), odd,
              metadata={"ssl_config": json.dumps(wrong.to_dict())})
    with pytest.raises(CheckpointError, match="odd.safetensors.*do not fit"):
        load_encoder(odd)


def test_unreadable_image_mid_run_is_skipped_and_counted(tmp_path: Path) -> None:
    data = tmp_path / "imgs"
    make_folder(data, 5, size=40)
    (data / "zz_broken.png").write_bytes(b"\x89PNG but not really")  # found, fails to decode
    with pytest.warns(UserWarning, match="zz_broken.png"):
        run = train(_config(data, tmp_path / "run", num_epochs=1, batch_size=8), progress=False)
    row = _history(run)[0]
    assert row["skipped_images"] == 1 and row["loss"] > 0


def test_auto_augment_is_recorded_as_the_pipeline_it_chose(tmp_path: Path) -> None:
    data = tmp_path / "imgs"
    make_folder(data, 4, size=40)
    run = train(_config(data, tmp_path / "run", num_epochs=1, batch_size=4, keep_optimizer=True), progress=False)
    saved = json.loads((run / "config.json").read_text())["ssl_config"]
    assert saved["augment"] == "loader"  # auto on a CPU: the notebook's per-image pipeline
    # Resuming with the default "auto" keeps that pipeline; an explicit switch is refused.
    train(_config(data, run, num_epochs=2, batch_size=4, keep_optimizer=True), resume=True, progress=False)
    with pytest.raises(CheckpointError, match="augment"):
        train(_config(data, run, num_epochs=3, batch_size=4, augment="batched"), resume=True, progress=False)


def test_batched_augmentation_trains_resumes_exactly_and_skips_bad_images(tmp_path: Path) -> None:
    data = tmp_path / "imgs"
    make_folder(data, 10, size=40)
    full = train(_config(data, tmp_path / "full", num_epochs=3, augment="batched"), progress=False)
    train(_config(data, tmp_path / "part", num_epochs=2, augment="batched", keep_optimizer=True), progress=False)
    train(_config(data, tmp_path / "part", num_epochs=3, augment="batched"), resume=True, progress=False)
    a, b = _history(full), _history(tmp_path / "part")
    assert [h["loss"] for h in a] == pytest.approx([h["loss"] for h in b], abs=1e-6)
    # Different views from the loader pipeline, so different losses (the switch really switches).
    loader = train(_config(data, tmp_path / "loader", num_epochs=1, augment="loader"), progress=False)
    assert _history(loader)[0]["loss"] != pytest.approx(a[0]["loss"], abs=1e-6)

    (data / "zz_broken.png").write_bytes(b"\x89PNG but not really")
    with pytest.warns(UserWarning, match="zz_broken.png"):
        run = train(_config(data, tmp_path / "bad", num_epochs=1, batch_size=16, augment="batched"),
                    progress=False)
    row = _history(run)[0]
    assert row["skipped_images"] == 1 and row["loss"] > 0


def test_channels_last_changes_only_rounding(tmp_path: Path) -> None:
    data = tmp_path / "imgs"
    make_folder(data, 8, size=40)
    nhwc = train(_config(data, tmp_path / "nhwc", num_epochs=2, channels_last=True), progress=False)
    nchw = train(_config(data, tmp_path / "nchw", num_epochs=2, channels_last=False), progress=False)
    a, b = _history(nhwc), _history(nchw)
    assert [h["loss"] for h in a] == pytest.approx([h["loss"] for h in b], abs=1e-4)
    wa, wb = load_encoder(nhwc).encoder.state_dict(), load_encoder(nchw).encoder.state_dict()
    for key in wa:
        # Adam normalises each update: a near-zero gradient whose sign flips with rounding moves
        # a weight by up to lr per step (2 steps here), so weights agree to 2 * lr, not to 1e-6.
        assert torch.allclose(wa[key], wb[key], atol=2.5e-3), key
    # Saved weights are plain contiguous tensors whatever the training layout.
    from safetensors.torch import load_file

    assert all(t.is_contiguous() for t in load_file(nhwc / "checkpoint.safetensors").values())


def test_a_finished_run_without_its_optimizer_state_is_not_extended_inexactly(tmp_path: Path) -> None:
    data = tmp_path / "imgs"
    make_folder(data, 8, size=40)
    run = train(_config(data, tmp_path / "run", num_epochs=1, batch_size=4, keep_optimizer=False), progress=False)
    before = (run / "checkpoint.safetensors").read_bytes()
    # Nothing left to do: resuming the finished run needs no optimizer state and changes nothing.
    train(_config(data, run, num_epochs=1, batch_size=4), resume=True, progress=False)
    assert (run / "checkpoint.safetensors").read_bytes() == before
    with pytest.raises(CheckpointError, match="trained with --no-keep-optimizer") as err:
        train(_config(data, run, num_epochs=2, batch_size=4), resume=True, progress=False)
    assert "optimizer.pt" in str(err.value) and "finished at epoch 1" in str(err.value)
    assert len(_history(run)) == 1 and (run / "checkpoint.safetensors").read_bytes() == before


def test_the_train_export_stays_the_function_once_its_module_is_imported() -> None:
    import importlib

    importlib.import_module("core.ssl.training")  # a submodule import sets the package attribute
    from core.ssl import train

    assert callable(train) and train.__module__ == "core.ssl.training" and train.__name__ == "train"
