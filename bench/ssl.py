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

import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from bench.common import AreaResult, Row, sync

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


def run(device: torch.device, quick: bool, coco_dir: Path | None, workers: int) -> AreaResult:
    from core.ssl.loss import NTXentLoss
    from core.ssl.models import ConvEncoder, SimCLRModel
    from core.ssl.transforms import train_transform
    from core.ssl.views import TwoViewDataset, collate_views

    steps = 2 if quick else 5
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
    model = SimCLRModel(ConvEncoder(IMG)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=1e-4)
    criterion = NTXentLoss(0.1)
    loader = DataLoader(TwoViewDataset(paths, IMG, 0), batch_size=BATCH, shuffle=True,
                        num_workers=workers, drop_last=True, collate_fn=collate_views)

    def project_step(batch) -> int:  # type: ignore[no-untyped-def]
        v1, v2, _, _ = batch
        b = v1.shape[0]
        _, z = model(torch.cat([v1, v2]).to(device))  # one pass over both views (core.ssl.train)
        loss = criterion(z[:b], z[b:])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return b

    res.add(Row("core.ssl loop", "project", _time_steps(loader, project_step, steps)), vs="notebook loop")

    try:
        from core.ssl.gpu_augment import augment, pad_batch
    except ImportError:  # written after this benchmark; absent in older checkouts
        augment = None
    if augment is not None:
        loader = DataLoader(DecodedImages(paths), batch_size=BATCH, shuffle=True, num_workers=workers,
                            drop_last=True, collate_fn=list)
        gen = torch.Generator(device=device).manual_seed(0)

        def batched_step(batch) -> int:  # type: ignore[no-untyped-def]
            images, sizes = pad_batch([im.to(device) for im in batch])
            v1 = augment(images, sizes, IMG, generator=gen)  # per-image parameters, on the device
            v2 = augment(images, sizes, IMG, generator=gen)
            return project_step((v1, v2, None, 0))

        res.add(Row("core.ssl loop + batched tensor augment", "project",
                    _time_steps(loader, batched_step, steps), notes="core.ssl.gpu_augment"),
                vs="notebook loop")

    # Where the time goes: augmentation alone vs the model step alone.
    ds = TwoViewDataset(paths, IMG, 0)
    t0 = time.perf_counter()
    for i in range(16):
        ds[i]
    aug = 16 / (time.perf_counter() - t0)
    x = torch.randn(2 * BATCH, 3, IMG, IMG, device=device)

    def model_only() -> None:
        _, z = model(x)
        loss = criterion(z[:BATCH], z[BATCH:])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    model_only()
    sync(device)
    t0 = time.perf_counter()
    model_only()
    sync(device)
    res.add(Row("PIL augmentation only (1 process)", "floor", aug, notes="2 views per image"))
    res.add(Row("model step only (no data)", "floor", BATCH / (time.perf_counter() - t0)))
    return res
