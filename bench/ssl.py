"""SSL training: the original notebook's contrastive loop vs the project's (``core.ssl``).

Both loops train the small conv encoder at 128 px, batch 64, AdamW, NT-Xent, with per-image PIL
augmentations in a DataLoader and the same number of workers. Throughput counts source images
(two views each) per second over a few steps after one warm-up step.
"""

from __future__ import annotations

import itertools
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from bench.common import AreaResult, Row, best_seconds

IMG, BATCH = 128, 64


class NotebookPairs(Dataset):
    """The notebook's dataset: open with PIL, convert to RGB, apply the transform twice."""

    def __init__(self, paths: list[Path], transform) -> None:  # type: ignore[no-untyped-def]
        self.paths, self.transform = paths, transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):  # type: ignore[no-untyped-def]
        image = Image.open(self.paths[i]).convert("RGB")
        return self.transform(image), self.transform(image)


class DecodedImages(Dataset):
    """JPEG files -> ``(3, H, W)`` uint8 tensors (torchvision decode); augmentation happens later."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths = paths

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        from torchvision.io import ImageReadMode, decode_image, read_file

        return decode_image(read_file(str(self.paths[i])), mode=ImageReadMode.RGB)


def notebook_nt_xent(z1: torch.Tensor, z2: torch.Tensor, t: float = 0.1) -> torch.Tensor:
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.T / t
    sim.fill_diagonal_(float("-inf"))
    n = z1.shape[0]
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(sim, target)


def _images(coco_dir: Path | None, n: int, folder: Path) -> list[Path]:
    found = sorted((coco_dir / "train2017").glob("*.jpg")) if coco_dir else []
    if not found:
        gen = torch.Generator().manual_seed(0)
        for i in range(16):
            arr = (torch.rand(360, 480, 3, generator=gen) * 255).to(torch.uint8).numpy()
            Image.fromarray(arr).save(folder / f"s{i}.jpg")
            found.append(folder / f"s{i}.jpg")
    return [found[i % len(found)] for i in range(n)]  # cycle: enough images for every step


def _time_steps(batches, step, steps: int) -> float:  # type: ignore[no-untyped-def]
    """Images/s over ``steps`` steps after one warm-up step (the loader is part of the cost)."""
    it = iter(batches)
    step(next(it))
    t0 = time.perf_counter()
    done = 0
    for batch in itertools.islice(it, steps):
        done += step(batch)
    return done / (time.perf_counter() - t0)


def forward_gflop(model: torch.nn.Module, img: int) -> float:
    """Forward FLOPs (2 x multiply-adds of convs and linears) of ``model`` for one image."""
    macs = 0

    def hook(mod: torch.nn.Module, _inp: Any, out: torch.Tensor) -> None:
        nonlocal macs
        if isinstance(mod, torch.nn.Conv2d):
            kh, kw = mod.kernel_size
            macs += out[0].numel() * (mod.in_channels // mod.groups) * kh * kw
        elif isinstance(mod, torch.nn.Linear):
            macs += mod.in_features * mod.out_features

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    with torch.no_grad():
        model(torch.zeros(1, 3, img, img, device=next(model.parameters()).device))
    for h in handles:
        h.remove()
    return 2 * macs / 1e9


def run(device: torch.device, quick: bool, coco_dir: Path | None, workers: int,
        peak_gflops: float | None = None) -> AreaResult:
    from core.ssl.loss import NTXentLoss
    from core.ssl.models import ConvEncoder, SimCLRModel
    from core.ssl.transforms import train_transform
    from core.ssl.two_views import TwoViewDataset, collate_views

    # A GPU step takes milliseconds: time enough of them that loader start-up does not dominate.
    steps = (10 if quick else 40) if device.type == "cuda" else (2 if quick else 5)
    tmp = Path(tempfile.mkdtemp(prefix="bench-ssl-"))
    paths = _images(coco_dir, BATCH * (steps + 1), tmp)
    res = AreaResult("ssl", {"encoder": "conv (3 blocks)", "img_size": IMG, "batch": BATCH,
                             "optimizer": "AdamW", "loss": "NT-Xent", "workers": workers,
                             "steps": steps, "cpu_cores": os.cpu_count()})

    torch.manual_seed(0)
    model = SimCLRModel(ConvEncoder(IMG)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=1e-4)
    loader = DataLoader(NotebookPairs(paths, train_transform(IMG)), batch_size=BATCH, shuffle=True,
                        num_workers=workers, drop_last=True)

    def notebook_step(batch) -> int:  # type: ignore[no-untyped-def]
        v1, v2 = (v.to(device) for v in batch)
        _, z1 = model(v1)  # two forward passes, as the notebook did
        _, z2 = model(v2)
        loss = notebook_nt_xent(z1, z2)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return v1.shape[0]

    res.add(Row("notebook loop", "reference", _time_steps(loader, notebook_step, steps)))

    torch.manual_seed(0)
    # As core.ssl.training does by default (SSLConfig.channels_last): NHWC layout for the convs.
    model = SimCLRModel(ConvEncoder(IMG)).to(device, memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=1e-4)
    criterion = NTXentLoss(0.1)
    loader = DataLoader(TwoViewDataset(paths, IMG, 0), batch_size=BATCH, shuffle=True,
                        num_workers=workers, drop_last=True, collate_fn=collate_views)

    def project_step(batch) -> int:  # type: ignore[no-untyped-def]
        v1, v2, _, _ = batch
        b = v1.shape[0]
        x = torch.cat([v1, v2]).to(device).contiguous(memory_format=torch.channels_last)
        _, z = model(x)  # one pass over both views (core.ssl.training)
        loss = criterion(z[:b], z[b:])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return b

    res.add(Row("core.ssl loop", "project", _time_steps(loader, project_step, steps)), vs="notebook loop")

    from core.ssl.gpu_augment import two_views

    loader = DataLoader(DecodedImages(paths), batch_size=BATCH, shuffle=True, num_workers=workers,
                        drop_last=True, collate_fn=list)
    gen = torch.Generator(device=device).manual_seed(0)

    def batched_step(batch) -> int:  # type: ignore[no-untyped-def]
        v1, v2 = two_views(batch, IMG, device, gen)  # per-image parameters, on the device
        return project_step((v1, v2, None, 0))

    res.add(Row("core.ssl loop, augment=batched", "project",
                _time_steps(loader, batched_step, steps), notes="core.ssl.gpu_augment"),
            vs="notebook loop")

    # Where the time goes: augmentation alone vs the model step alone.
    ds = TwoViewDataset(paths, IMG, 0)
    t0 = time.perf_counter()
    for i in range(16):
        ds[i]
    aug = 16 / (time.perf_counter() - t0)
    res.add(Row("PIL augmentation only (1 process)", "floor", aug, notes="2 views per image"))
    for layout, tag in ((torch.contiguous_format, "NCHW, as the notebook"), (torch.channels_last, "NHWC, core.ssl")):
        torch.manual_seed(0)
        model = SimCLRModel(ConvEncoder(IMG)).to(device, memory_format=layout)
        opt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=1e-4)
        x = torch.randn(2 * BATCH, 3, IMG, IMG, device=device).contiguous(memory_format=layout)

        def model_only(m: torch.nn.Module = model, o: torch.optim.Optimizer = opt, x: torch.Tensor = x) -> None:
            _, z = m(x)
            loss = criterion(z[:BATCH], z[BATCH:])
            o.zero_grad(set_to_none=True)
            loss.backward()
            o.step()

        sec = best_seconds(model_only, device, repeat=2)
        res.add(Row(f"model step only ({tag})", "floor", BATCH / sec, notes="no data loading"))
    # Training FLOPs: forward + backward ~ 3x forward, two views per image.
    gflop = 3 * 2 * forward_gflop(model, IMG)
    res.extra["training FLOPs per image (2 views, fwd+bwd)"] = f"{gflop:.2f} GFLOP"
    if peak_gflops:
        res.extra["fp32 ceiling (FLOPs / measured fp32 matmul peak)"] = (
            f"{peak_gflops / gflop:.1f} img/s for the step alone at {peak_gflops:.0f} GFLOP/s")
    return res
