"""Model shapes: the notebook's conv encoder, other sizes, the ResNet-18 option, the config."""

from __future__ import annotations

import pytest
import torch

from core.ssl.config import SSLConfig
from core.ssl.models import ConvEncoder, build_model


def test_conv_encoder_at_128_has_the_notebook_flatten() -> None:
    enc = ConvEncoder(128, 256)
    assert enc.fc.in_features == 128 * 16 * 16 and enc.fc.out_features == 256
    convs = [m for m in enc.features if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(3, 64), (64, 128), (128, 128)]


@pytest.mark.parametrize("size", [32, 40, 57])
def test_conv_model_shapes_for_other_sizes(size: int) -> None:
    model = build_model(SSLConfig(img_size=size, projection_dim=16))
    h, z = model(torch.randn(2, 3, size, size))
    assert h.shape == (2, 256) and z.shape == (2, 16)
    assert model.encoder(torch.randn(3, 3, size, size)).shape == (3, 256)


def test_resnet18_backbone() -> None:
    model = build_model(SSLConfig(img_size=32, backbone="resnet18"))
    h, z = model(torch.randn(2, 3, 32, 32))
    assert h.shape == (2, 256) and z.shape == (2, 64)


def test_config_round_trip_and_validation(tmp_path) -> None:
    cfg = SSLConfig(data_dir=tmp_path, img_size=64, loss="cross_view")
    again = SSLConfig.from_dict(cfg.to_dict())
    assert again == cfg
    for kwargs, match in [
        ({"batch_size": 1}, "batch_size"),
        ({"temperature": 0}, "temperature"),
        ({"backbone": "vit"}, "backbone"),
        ({"loss": "triplet"}, "loss"),
        ({"img_size": 4}, "img_size"),
        ({"num_epochs": 0}, "num_epochs"),
        ({"lr": -1.0}, "lr"),
        ({"workers": -1}, "workers"),
    ]:
        with pytest.raises(ValueError, match=match):
            SSLConfig(**kwargs)
    with pytest.raises(ValueError, match="unknown"):
        SSLConfig.from_dict({"batchsize": 3})


def _notebook_encoder(img_size: int) -> torch.nn.Module:
    """The notebook's CNN written as it was (ReLU before each max-pool), for parity."""
    nn = torch.nn
    side = img_size // 8
    return nn.Sequential(
        nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(128, 128, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(128 * side * side, 256),
    )


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_pool_before_relu_matches_the_notebook_order_and_its_gradients(layout: torch.memory_format) -> None:
    torch.manual_seed(0)
    ours = ConvEncoder(32, 256).to(memory_format=layout)
    ref = _notebook_encoder(32)
    convs = [m for m in ours.features if isinstance(m, torch.nn.Conv2d)] + [ours.fc]
    theirs = [m for m in ref if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    with torch.no_grad():
        for a, b in zip(convs, theirs, strict=True):
            b.weight.copy_(a.weight)
            b.bias.copy_(a.bias)
    x = torch.randn(4, 3, 32, 32)
    out_a = ours(x.contiguous(memory_format=layout))
    out_b = ref(x)
    assert torch.allclose(out_a, out_b, atol=1e-5)
    weight = torch.randn_like(out_a)
    (out_a * weight).sum().backward()
    (out_b * weight).sum().backward()
    for a, b in zip(convs, theirs, strict=True):
        assert torch.allclose(a.weight.grad, b.weight.grad, atol=1e-4, rtol=1e-4)
    # Checkpoint compatibility: the parameter names are the notebook order's.
    assert [k for k in ours.state_dict() if k.startswith("features")] == [
        f"features.{i}.{p}" for i in (0, 3, 6) for p in ("weight", "bias")]
