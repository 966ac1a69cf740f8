"""SimCLR fine-tuning of a pretrained backbone (tiny random DINOv2): learns, resumes exactly, embeds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from core.ssl import SSLConfig, load_encoder, train
from tests.core.ssl.conftest import make_folder


def _config(data: Path, out: Path, backbone: Path, **kw) -> SSLConfig:
    base = dict(data_dir=data, out_dir=out, img_size=32, batch_size=4, num_epochs=2, projection_dim=16,
                device="cpu", lr=1e-3, backbone=str(backbone), channels_last=False)
    base.update(kw)
    return SSLConfig(**base)


def _losses(run: Path) -> list[float]:
    return [h["loss"] for h in json.loads((run / "history.json").read_text())]


def _pretrained(folder: Path) -> dict[str, torch.Tensor]:
    from transformers import Dinov2Model

    return Dinov2Model.from_pretrained(folder).state_dict()


def test_fine_tuning_dinov2_lowers_the_loss_and_embeds(tiny_encoders: dict[str, Path], tmp_path: Path) -> None:
    data = tmp_path / "imgs"
    make_folder(data, 8, size=40)
    run = train(_config(data, tmp_path / "run", tiny_encoders["dinov2"], num_epochs=8), progress=False)
    losses = _losses(run)
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.05, losses
    encoder = load_encoder(run, device="cpu")  # ssl embed --checkpoint RUN loads this
    assert encoder.encoder(torch.zeros(2, 3, 32, 32)).shape == (2, 32)  # the tower's hidden size
    # it started from the pretrained weights and moved away from them
    start = _pretrained(tiny_encoders["dinov2"])
    tuned = {k.removeprefix("tower."): v for k, v in encoder.encoder.state_dict().items()}
    key = "embeddings.patch_embeddings.projection.weight"
    assert not torch.equal(tuned[key], start[key])
    assert (tuned[key] - start[key]).abs().max() < 0.5  # lower backbone lr: near its start


def test_freezing_and_resume_are_exact(tiny_encoders: dict[str, Path], tmp_path: Path) -> None:
    data = tmp_path / "imgs"
    make_folder(data, 8, size=40)
    kw = dict(freeze_backbone_epochs=1)
    frozen = train(_config(data, tmp_path / "frozen", tiny_encoders["dinov2"], num_epochs=1, **kw),
                   progress=False)
    start = _pretrained(tiny_encoders["dinov2"])
    tower = {k.removeprefix("tower."): v for k, v in load_encoder(frozen).encoder.state_dict().items()}
    assert set(tower) == set(start)
    assert all(torch.equal(tower[k], v) for k, v in start.items())  # frozen: the backbone did not move
    full = train(_config(data, tmp_path / "full", tiny_encoders["dinov2"], num_epochs=3, **kw), progress=False)
    part = _config(data, tmp_path / "part", tiny_encoders["dinov2"], num_epochs=2, keep_optimizer=True, **kw)
    train(part, progress=False)
    train(_config(data, tmp_path / "part", tiny_encoders["dinov2"], num_epochs=3, **kw), resume=True,
          progress=False)
    assert _losses(tmp_path / "part") == pytest.approx(_losses(full), abs=1e-6)
    a, b = load_encoder(full).encoder.state_dict(), load_encoder(tmp_path / "part").encoder.state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
