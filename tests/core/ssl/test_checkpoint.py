"""``read_weights`` bounds what it reads: a size cap checked before reading, a sane header length."""

from __future__ import annotations

import inspect
import struct
from pathlib import Path

import pytest
import torch

from core.errors import CheckpointError
from core.ssl.checkpoint import (
    MAX_WEIGHTS_BYTES,
    WEIGHTS_NAME,
    load_encoder,
    read_weights,
    save_checkpoint,
)
from core.ssl.config import SSLConfig
from core.ssl.models import build_model


def _config(tmp_path: Path, **kw: object) -> SSLConfig:
    base: dict = dict(data_dir=tmp_path / "imgs", out_dir=tmp_path / "run", img_size=32,
                      projection_dim=8, embedding_dim=16, device="cpu")
    base.update(kw)
    return SSLConfig(**base)


@pytest.fixture
def weights(tmp_path: Path) -> Path:
    """A real (small) checkpoint written by ``save_checkpoint``."""
    config = _config(tmp_path)
    model = build_model(config)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    save_checkpoint(tmp_path / "run", model, optimizer, config, 1, torch.get_rng_state())
    return tmp_path / "run" / WEIGHTS_NAME


def test_file_over_max_bytes_is_refused_with_size_and_cap(weights: Path) -> None:
    size = weights.stat().st_size
    tensors, meta, digest = read_weights(weights, max_bytes=size)  # exactly at the cap: fine
    assert tensors and "ssl_config" in meta and len(digest) == 64
    with pytest.raises(CheckpointError) as info:
        read_weights(weights, max_bytes=size - 1)
    message = str(info.value)
    assert str(weights) in message
    assert f"{size:,} bytes" in message and f"cap of {size - 1:,} bytes" in message
    assert "max_bytes" in message  # says what to do about it


def test_size_cap_is_checked_before_reading(weights: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[int] = []
    real_open = Path.open

    def spying_open(self: Path, *args, **kwargs):  # type: ignore[no-untyped-def]
        fh = real_open(self, *args, **kwargs)
        real_read = fh.read

        def read(n: int = -1) -> bytes:
            reads.append(n)
            return real_read(n)

        fh.read = read
        return fh

    monkeypatch.setattr(Path, "open", spying_open)
    with pytest.raises(CheckpointError, match="over the cap"):
        read_weights(weights, max_bytes=100)
    assert reads == []
    read_weights(weights, max_bytes=weights.stat().st_size)
    assert reads == [weights.stat().st_size + 1]  # even a read never goes past the cap


def test_default_cap_is_generous_above_a_resnet18_checkpoint(tmp_path: Path) -> None:
    assert inspect.signature(read_weights).parameters["max_bytes"].default == MAX_WEIGHTS_BYTES
    with torch.device("meta"):  # sizes only: nothing allocated
        model = build_model(_config(tmp_path, backbone="resnet18", embedding_dim=512))
    resnet_bytes = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    assert 40e6 < resnet_bytes < 60e6  # the ~45 MB the cap is sized against
    assert MAX_WEIGHTS_BYTES >= 20 * resnet_bytes


@pytest.mark.parametrize(
    "damage, match",
    [
        (lambda data: struct.pack("<Q", len(data) - 7) + data[8:], "header claims"),
        (lambda data: struct.pack("<Q", 1 << 63) + data[8:], "header claims"),
        (lambda data: data[:5], "shorter than the 8-byte header length"),
        (lambda data: b"", "0 bytes, shorter than"),
    ],
)
def test_header_length_past_the_end_is_refused_before_parsing(
    weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage, match: str
) -> None:  # type: ignore[no-untyped-def]
    import core.ssl.checkpoint as checkpoint

    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(damage(weights.read_bytes()))

    def never(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("the header was parsed")

    monkeypatch.setattr(checkpoint, "st_load", never)
    with pytest.raises(CheckpointError, match=match) as info:
        read_weights(bad)
    assert str(bad) in str(info.value)


def test_header_length_that_fits_exactly_is_accepted(weights: Path) -> None:
    # The check is <= the bytes after the length field, not stricter: a real file still loads.
    data = weights.read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    assert n <= len(data) - 8
    assert load_encoder(weights, device="cpu").config.embedding_dim == 16
