"""Batched SimCLR augmentations on tensors, with fresh random parameters per image, on any device.

The same pipeline as :func:`core.ssl.transforms.train_transform`, for a whole batch at once:
RandomResizedCrop(S, scale=(0.2, 1), ratio=(3/4, 4/3)), RandomHorizontalFlip(0.5),
ColorJitter(0.4, 0.4, 0.4, 0.1) with the four adjustments in a random order per image,
RandomGrayscale(0.2), GaussianBlur(9, sigma in [0.1, 2]) and ImageNet normalisation.
Parameters follow torchvision's sampling rules (tests compare the distributions); pixels differ
slightly from the PIL pipeline (bilinear sampling without antialiasing, tensor colour maths).
On a GPU this removes the per-image CPU work that limits the DataLoader.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from core.ssl.transforms import IMAGENET_MEAN, IMAGENET_STD

SCALE, RATIO = (0.2, 1.0), (3 / 4, 4 / 3)
JITTER, HUE, GRAY_P, FLIP_P = 0.4, 0.1, 0.2, 0.5
BLUR_K, SIGMA = 9, (0.1, 2.0)
_GRAY = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale weights


@dataclass
class AugmentParams:
    """Per-image parameters. Shape: every field has B rows."""

    boxes: torch.Tensor  # (B, 4) crop top, left, height, width in source pixels
    flip: torch.Tensor  # (B,) bool
    jitter: torch.Tensor  # (B, 4) brightness, contrast, saturation factors and hue shift
    order: torch.Tensor  # (B, 4) permutation of the four jitter operations
    gray: torch.Tensor  # (B,) bool
    sigma: torch.Tensor  # (B,) blur sigma


def _uniform(lo: float, hi: float, shape: tuple[int, ...], gen: torch.Generator | None,
             device: torch.device) -> torch.Tensor:
    return torch.rand(shape, generator=gen, device=device) * (hi - lo) + lo


def sample_params(sizes: torch.Tensor, generator: torch.Generator | None = None) -> AugmentParams:
    """Draw parameters for images of the given sizes, as torchvision's ``get_params`` would.

    Shape:
        sizes: ``(B, 2)`` (height, width) per image.
    """
    device = sizes.device
    b = sizes.shape[0]
    h_img, w_img = sizes[:, 0:1].float(), sizes[:, 1:2].float()
    area = h_img * w_img
    # RandomResizedCrop: up to 10 tries of (area fraction, log-uniform aspect), first fit wins.
    target = area * _uniform(*SCALE, (b, 10), generator, device)
    aspect = torch.exp(_uniform(math.log(RATIO[0]), math.log(RATIO[1]), (b, 10), generator, device))
    w = torch.round(torch.sqrt(target * aspect))
    h = torch.round(torch.sqrt(target / aspect))
    fits = (w > 0) & (w <= w_img) & (h > 0) & (h <= h_img)
    first = torch.where(fits.any(1), fits.float().argmax(1), torch.zeros(b, dtype=torch.long, device=device))
    w = w.gather(1, first[:, None])[:, 0]
    h = h.gather(1, first[:, None])[:, 0]
    # No fit in 10 tries: torchvision's central crop with the aspect ratio clamped.
    in_ratio = (w_img / h_img)[:, 0]
    fb_w = torch.where(in_ratio < RATIO[0], w_img[:, 0],
                       torch.where(in_ratio > RATIO[1], torch.round(h_img[:, 0] * RATIO[1]), w_img[:, 0]))
    fb_h = torch.where(in_ratio < RATIO[0], torch.round(w_img[:, 0] / RATIO[0]), h_img[:, 0])
    ok = fits.any(1)
    w, h = torch.where(ok, w, fb_w), torch.where(ok, h, fb_h)
    r_top, r_left = torch.rand(b, generator=generator, device=device), torch.rand(b, generator=generator, device=device)
    top = torch.where(ok, torch.floor(r_top * (h_img[:, 0] - h + 1)), torch.div(h_img[:, 0] - h, 2, rounding_mode="floor"))
    left = torch.where(ok, torch.floor(r_left * (w_img[:, 0] - w + 1)), torch.div(w_img[:, 0] - w, 2, rounding_mode="floor"))
    lo, hi = 1 - JITTER, 1 + JITTER
    jitter = torch.stack([_uniform(lo, hi, (b,), generator, device) for _ in range(3)]
                         + [_uniform(-HUE, HUE, (b,), generator, device)], dim=1)
    return AugmentParams(
        boxes=torch.stack([top, left, h, w], dim=1),
        flip=torch.rand(b, generator=generator, device=device) < FLIP_P,
        jitter=jitter,
        order=torch.rand((b, 4), generator=generator, device=device).argsort(dim=1),
        gray=torch.rand(b, generator=generator, device=device) < GRAY_P,
        sigma=_uniform(*SIGMA, (b,), generator, device),
    )


def pad_batch(images: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack differently sized ``(3, H, W)`` uint8 images top-left aligned, with their sizes.

    Shape:
        output: ``(B, 3, H_max, W_max)`` uint8 and sizes ``(B, 2)``.
    """
    h = max(im.shape[1] for im in images)
    w = max(im.shape[2] for im in images)
    batch = images[0].new_zeros((len(images), 3, h, w))
    for i, im in enumerate(images):
        batch[i, :, : im.shape[1], : im.shape[2]] = im
    sizes = torch.tensor([[im.shape[1], im.shape[2]] for im in images], device=batch.device)
    return batch, sizes


def _gray(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x.unbind(dim=1)
    return (_GRAY[0] * r + _GRAY[1] * g + _GRAY[2] * b).unsqueeze(1)


def _hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate hue by ``shift`` (fraction of a turn) per image, via HSV like torchvision."""
    r, g, b = x.unbind(dim=1)
    maxc, minc = x.max(dim=1).values, x.min(dim=1).values
    v, delta = maxc, maxc - minc
    s = delta / torch.where(maxc == 0, torch.ones_like(maxc), maxc)
    d = torch.where(delta == 0, torch.ones_like(delta), delta)
    rc, gc, bc = (maxc - r) / d, (maxc - g) / d, (maxc - b) / d
    hr = (maxc == r) * (bc - gc)
    hg = ((maxc == g) & (maxc != r)) * (2.0 + rc - bc)
    hb = ((maxc != g) & (maxc != r)) * (4.0 + gc - rc)
    hue = torch.fmod((hr + hg + hb) / 6.0 + 1.0, 1.0)
    hue = torch.remainder(hue + shift[:, None, None], 1.0)
    i = torch.floor(hue * 6.0)
    f = hue * 6.0 - i
    i = i.to(torch.int64) % 6
    p, q, t = (v * (1 - s)).clamp(0, 1), (v * (1 - s * f)).clamp(0, 1), (v * (1 - s * (1 - f))).clamp(0, 1)
    table = torch.stack([torch.stack(c, 1) for c in ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))], 1)
    return table.gather(1, i[:, None, None].expand(-1, 1, 3, -1, -1)).squeeze(1)


def _jitter(x: torch.Tensor, params: AugmentParams) -> torch.Tensor:
    for slot in range(4):
        for op in range(4):
            idx = (params.order[:, slot] == op).nonzero().squeeze(1)
            if idx.numel() == 0:
                continue
            sub, f = x[idx], params.jitter[idx, op].view(-1, 1, 1, 1)
            if op == 0:
                sub = sub * f
            elif op == 1:
                sub = f * sub + (1 - f) * _gray(sub).mean(dim=(1, 2, 3), keepdim=True)
            elif op == 2:
                sub = f * sub + (1 - f) * _gray(sub)
            else:
                sub = _hue(sub, params.jitter[idx, 3])
            x = x.index_copy(0, idx, sub.clamp(0, 1))
    return x


def _blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    half = (BLUR_K - 1) / 2
    pos = torch.linspace(-half, half, BLUR_K, device=x.device)
    k = torch.exp(-0.5 * (pos[None, :] / sigma[:, None]) ** 2)
    k = (k / k.sum(dim=1, keepdim=True)).repeat_interleave(3, dim=0)  # (B*3, K)
    b, c, h, w = x.shape
    y = F.pad(x.reshape(1, b * c, h, w), (BLUR_K // 2,) * 4, mode="reflect")
    y = F.conv2d(y, k[:, None, None, :], groups=b * c)
    y = F.conv2d(y, k[:, None, :, None], groups=b * c)
    return y.reshape(b, c, h, w)


def augment(images: torch.Tensor, sizes: torch.Tensor, out_size: int,
            params: AugmentParams | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """One random view of every image, normalised like the train transform.

    Shape:
        images: ``(B, 3, H, W)`` uint8 (padded, see :func:`pad_batch`); sizes: ``(B, 2)``;
        output: ``(B, 3, out_size, out_size)`` float32 on the images' device.
    """
    params = params or sample_params(sizes, generator)
    x = images.float() / 255.0
    b, _, hp, wp = x.shape
    top, left, h, w = params.boxes.float().unbind(dim=1)
    sign = 1.0 - 2.0 * params.flip.float()
    theta = torch.zeros((b, 2, 3), device=x.device)
    theta[:, 0, 0] = sign * w / wp
    theta[:, 0, 2] = (2 * left + w) / wp - 1
    theta[:, 1, 1] = h / hp
    theta[:, 1, 2] = (2 * top + h) / hp - 1
    grid = F.affine_grid(theta, [b, 3, out_size, out_size], align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    x = _jitter(x, params)
    x = torch.where(params.gray.view(-1, 1, 1, 1), _gray(x).expand_as(x), x)
    x = _blur(x, params.sigma)
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def two_views(images: list[torch.Tensor], out_size: int, device: torch.device,
              generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Two independent random views of every image, made on ``device`` in two batched passes.

    Shape:
        images: B tensors ``(3, H_i, W_i)`` uint8 (any device) -> two ``(B, 3, S, S)`` float32.
    """
    batch, sizes = pad_batch([im.to(device, non_blocking=True) for im in images])
    return (augment(batch, sizes, out_size, generator=generator),
            augment(batch, sizes, out_size, generator=generator))
