"""Weight files from strangers: SSL checkpoints never unpickle code and fail with the file's name.

The captioner's side (a pickled ``pytorch_model.bin``) is covered in
tests/core/captioning/test_loading.py; here: ``core.ssl.load_encoder`` and ``--resume``.
"""

from __future__ import annotations

import json
import pickle
import shutil
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import save as st_save

from core.errors import CheckpointError
from core.ssl import SSLConfig, load_encoder, train
from core.ssl.models import build_model
from tests.reliability.datagen import make_images


class Payload:
    """Unpickling this runs code: it creates a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def config(data: Path, out: Path, **kw) -> SSLConfig:
    base = dict(data_dir=data, out_dir=out, img_size=32, batch_size=4, num_epochs=1,
                projection_dim=8, embedding_dim=16, device="cpu")
    base.update(kw)
    return SSLConfig(**base)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ssl-weights")
    make_images(root / "imgs", 8, size=32)
    return train(config(root / "imgs", root / "run"), progress=False)


def pickle_files(folder: Path, marker: Path) -> dict[str, Path]:
    """Malicious files in the formats people pass around: raw pickle, torch.save zip, renamed."""
    folder.mkdir(parents=True, exist_ok=True)
    raw = folder / "evil.bin"
    raw.write_bytes(pickle.dumps({"encoder.fc.weight": Payload(marker)}))
    zipped = folder / "evil.pt"
    torch.save({"encoder.fc.weight": Payload(marker)}, zipped)
    renamed = folder / "evil.safetensors"
    renamed.write_bytes(zipped.read_bytes())
    return {"bin": raw, "pt": zipped, "renamed": renamed}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["bin", "pt", "renamed"])
def test_pickled_payload_is_never_executed(kind: str, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = pickle_files(tmp_path / "files", marker)[kind]
    with pytest.raises(CheckpointError) as info:
        load_encoder(path, device="cpu")
    assert str(path) in str(info.value)
    assert not marker.exists(), "the pickle payload ran"


@pytest.mark.timeout(60)
def test_plain_torch_state_dict_is_refused_not_unpickled(run_dir: Path, tmp_path: Path) -> None:
    """Even an honest ``torch.save`` state dict is refused: weights load from safetensors only."""
    state = load_encoder(run_dir, device="cpu")
    path = tmp_path / "encoder.pt"
    torch.save(state.encoder.state_dict(), path)
    with pytest.raises(CheckpointError, match="safetensors") as info:
        load_encoder(path, device="cpu")
    assert str(path) in str(info.value)


@pytest.mark.timeout(120)
def test_pickle_in_a_run_folder_is_refused_on_load_and_resume(run_dir: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    evil = pickle_files(tmp_path / "files", marker)
    # 1. The weights file of a run folder is a pickle.
    (run / "checkpoint.safetensors").write_bytes(evil["pt"].read_bytes())
    with pytest.raises(CheckpointError, match="checkpoint.safetensors"):
        load_encoder(run, device="cpu")
    saved = json.loads((run / "config.json").read_text())["ssl_config"]
    resume_cfg = SSLConfig.from_dict({**saved, "num_epochs": 2, "out_dir": str(run)})
    with pytest.raises(CheckpointError, match="checkpoint.safetensors"):
        train(resume_cfg, resume=True, progress=False)
    # 2. The optimizer state (read with torch.load(weights_only=True)) is a pickle.
    shutil.copy(run_dir / "checkpoint.safetensors", run / "checkpoint.safetensors")
    for name in ("pt", "bin"):
        (run / "optimizer.pt").write_bytes(evil[name].read_bytes())
        with pytest.raises(CheckpointError, match="optimizer.pt"):
            train(resume_cfg, resume=True, progress=False)
    assert not marker.exists(), "the pickle payload ran"


def _safetensors_with(tensors: dict[str, torch.Tensor], ssl_config: dict | str) -> bytes:
    meta = {"ssl_config": ssl_config if isinstance(ssl_config, str) else json.dumps(ssl_config)}
    return st_save(tensors, metadata=meta)


@pytest.mark.timeout(60)
def test_mismatched_checkpoints_name_the_file(run_dir: Path, tmp_path: Path) -> None:
    good = load_encoder(run_dir, device="cpu")
    cfg = good.config.to_dict()
    model = build_model(good.config)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    cases = {
        # weights of a 16-d encoder, metadata saying 32-d
        "wider.safetensors": _safetensors_with(state, {**cfg, "embedding_dim": 32}),
        # one tensor missing, one extra
        "keys.safetensors": _safetensors_with(
            {**{k: v for k, v in list(state.items())[1:]}, "extra.weight": torch.zeros(1)}, cfg),
        # a resnet18 config over conv weights
        "backbone.safetensors": _safetensors_with(state, {**cfg, "backbone": "resnet18"}),
        # config metadata that is not valid JSON / not a config / an unknown field
        "json.safetensors": _safetensors_with(state, "{not json"),
        "null.safetensors": _safetensors_with(state, "null"),
        "field.safetensors": _safetensors_with(state, {**cfg, "evil": 1}),
        "value.safetensors": _safetensors_with(state, {**cfg, "img_size": 2}),
    }
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(CheckpointError) as info:
            load_encoder(path, device="cpu")
        assert str(path) in str(info.value), (name, str(info.value))


@pytest.mark.timeout(60)
def test_broken_safetensors_headers_fail_fast(run_dir: Path, tmp_path: Path) -> None:
    data = (run_dir / "checkpoint.safetensors").read_bytes()
    header_len = struct.unpack("<Q", data[:8])[0]
    cases = {
        "huge-header.safetensors": struct.pack("<Q", 1 << 62) + data[8:],
        "header-past-end.safetensors": struct.pack("<Q", len(data)) + data[8:],
        "cut-in-header.safetensors": data[: 8 + header_len // 2],
        "cut-in-tensors.safetensors": data[: len(data) - 7],
        "not-json-header.safetensors": data[:8] + b"\xff" * header_len + data[8 + header_len:],
        "zero.safetensors": b"",
    }
    for name, blob in cases.items():
        path = tmp_path / name
        path.write_bytes(blob)
        with pytest.raises(CheckpointError) as info:
            load_encoder(path, device="cpu")
        assert str(path) in str(info.value), (name, str(info.value))


@pytest.mark.timeout(60)
def test_hostile_config_in_metadata_is_a_checkpoint_error(run_dir: Path, tmp_path: Path) -> None:
    cfg = load_encoder(run_dir, device="cpu").config.to_dict()
    path = tmp_path / "giant.safetensors"
    path.write_bytes(_safetensors_with({"x": torch.zeros(2)}, {**cfg, "embedding_dim": 2**40}))
    with pytest.raises(CheckpointError, match="giant.safetensors"):
        load_encoder(path, device="cpu")
