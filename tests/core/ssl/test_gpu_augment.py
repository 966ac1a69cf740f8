"""Batched tensor augmentations: torchvision's parameter distributions, any device, sane pixels."""

from __future__ import annotations

import torch
from torchvision import transforms as T

from core.ssl.gpu_augment import augment, pad_batch, sample_params

N, H, W = 4000, 300, 400


def _close(a: torch.Tensor, b: torch.Tensor, tol: float) -> bool:
    qs = torch.tensor([0.1, 0.25, 0.5, 0.75, 0.9])
    return bool((torch.quantile(a.float(), qs) - torch.quantile(b.float(), qs)).abs().max() <= tol)


def test_crop_parameters_follow_random_resized_crop() -> None:
    p = sample_params(torch.tensor([[H, W]] * N), torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    img = torch.zeros(3, H, W)
    ref = torch.tensor([T.RandomResizedCrop.get_params(img, scale=[0.2, 1.0], ratio=[3 / 4, 4 / 3])
                        for _ in range(N)], dtype=torch.float)
    top, left, h, w = p.boxes.unbind(1)
    assert (top >= 0).all() and (left >= 0).all() and (top + h <= H).all() and (left + w <= W).all()
    assert _close(h * w / (H * W), ref[:, 2] * ref[:, 3] / (H * W), 0.05)  # area fraction
    assert _close(w / h, ref[:, 3] / ref[:, 2], 0.05)  # aspect ratio
    assert _close(top / (H - h + 1), ref[:, 0] / (H - ref[:, 2] + 1), 0.06)  # position
    assert _close(left / (W - w + 1), ref[:, 1] / (W - ref[:, 3] + 1), 0.06)


def test_colour_blur_flip_gray_follow_the_pipeline() -> None:
    p = sample_params(torch.tensor([[H, W]] * N), torch.Generator().manual_seed(1))
    jitter = T.ColorJitter(0.4, 0.4, 0.4, 0.1)
    for col, (lo, hi) in enumerate([jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue]):
        vals = p.jitter[:, col]
        assert lo <= vals.min() and vals.max() <= hi
        assert abs(vals.mean() - (lo + hi) / 2) < 0.02 * (hi - lo) + 1e-3
    lo, hi = T.GaussianBlur(kernel_size=9).sigma
    assert lo <= p.sigma.min() and p.sigma.max() <= hi
    assert abs(p.flip.float().mean() - 0.5) < 0.03
    assert abs(p.gray.float().mean() - 0.2) < 0.03
    assert sorted(p.order[0].tolist()) == [0, 1, 2, 3]
    # Every jitter operation lands in every slot about a quarter of the time (a random order).
    counts = torch.stack([(p.order == op).float().mean(0) for op in range(4)])
    assert (counts - 0.25).abs().max() < 0.03


def test_augment_gives_normalised_views_on_cpu() -> None:
    gen = torch.Generator().manual_seed(0)
    images = [torch.randint(0, 256, (3, 90, 120), dtype=torch.uint8, generator=gen),
              torch.randint(0, 256, (3, 64, 48), dtype=torch.uint8, generator=gen)]
    batch, sizes = pad_batch(images)
    assert batch.shape == (2, 3, 90, 120) and sizes.tolist() == [[90, 120], [64, 48]]
    out = augment(batch, sizes, 32, generator=gen)
    assert out.shape == (2, 3, 32, 32) and out.dtype == torch.float32 and torch.isfinite(out).all()
    two = augment(batch, sizes, 32, generator=gen)
    assert not torch.equal(out, two)  # fresh parameters per call


def test_neutral_parameters_are_a_plain_resize() -> None:
    img = torch.full((1, 3, 40, 40), 128, dtype=torch.uint8)
    img[:, 0, :, :20] = 250  # left half red-ish
    p = sample_params(torch.tensor([[40, 40]]))
    p.boxes = torch.tensor([[0.0, 0.0, 40.0, 40.0]])
    p.flip[:] = False
    p.gray[:] = False
    p.jitter = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    p.sigma = torch.tensor([0.1])
    out = augment(img, torch.tensor([[40, 40]]), 40, params=p)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    assert torch.allclose(out * std + mean, img.float() / 255, atol=2e-3)
    p.flip[:] = True
    flipped = augment(img, torch.tensor([[40, 40]]), 40, params=p)
    assert torch.allclose(flipped, out.flip(-1), atol=1e-4)


def test_two_views_pads_mixed_sizes_and_draws_independent_views() -> None:
    from core.ssl.gpu_augment import two_views

    gen = torch.Generator().manual_seed(0)
    images = [(torch.rand(3, h, w, generator=gen) * 255).to(torch.uint8) for h, w in ((60, 80), (90, 50))]
    v1, v2 = two_views(images, 32, torch.device("cpu"), torch.Generator().manual_seed(1))
    assert v1.shape == v2.shape == (2, 3, 32, 32) and v1.dtype == torch.float32
    assert not torch.allclose(v1, v2)  # each call draws fresh parameters
    again = two_views(images, 32, torch.device("cpu"), torch.Generator().manual_seed(1))
    assert torch.equal(v1, again[0]) and torch.equal(v2, again[1])  # seeded: reproducible
