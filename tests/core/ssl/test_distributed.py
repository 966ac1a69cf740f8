"""Two real processes on the CPU (gloo): the DDP path of core.ssl.training and the gathered NT-Xent.

Each test spawns 2 workers that join a gloo process group through a ``file://`` rendezvous; a
worker's failed assertion is re-raised in the test by ``torch.multiprocessing.spawn``. A short
collective timeout turns a deadlock (ranks running different numbers of steps) into an error.
"""

from __future__ import annotations

import copy
import datetime
import importlib
import json
import multiprocessing
import os
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from core.ssl import SSLConfig, load_encoder
from core.ssl.loss import NTXentLoss, distributed_gather, nt_xent_loss
from core.ssl.models import build_model
from tests.core.ssl.conftest import make_folder

pytestmark = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()),
    reason="torch.distributed with the gloo backend is not available in this build",
)

WORLD = 2
# Workers fork from one server process that imported torch and this module once, instead of each
# being a fresh interpreter that imports them again (seconds per worker, 16 workers here).
multiprocessing.set_forkserver_preload(["torch", "torch.distributed", "core.ssl.training", __name__])


def _spawn(fn, *args) -> None:
    """``torch.multiprocessing.spawn(fn, args, WORLD)`` through the preloaded forkserver."""
    mp.start_processes(fn, args=args, nprocs=WORLD, join=True, start_method="forkserver")


def _config(data: Path, out: Path, **kw) -> SSLConfig:
    base = dict(data_dir=data, out_dir=out, img_size=32, batch_size=4, num_epochs=2,
                projection_dim=16, embedding_dim=32, device="cpu", lr=1e-3, augment="loader")
    base.update(kw)
    return SSLConfig(**base)


def _init(rank: int, store: Path) -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=WORLD,
                            timeout=datetime.timedelta(seconds=60))


def _all(t: torch.Tensor) -> list[torch.Tensor]:
    out = [torch.empty_like(t) for _ in range(WORLD)]
    dist.all_gather(out, t.contiguous())
    return out


def _models(cfg: SSLConfig) -> tuple[torch.nn.Module, torch.nn.Module, torch.nn.Module]:
    """The seeded model, a copy with the same weights and no DDP (the single-process reference),
    and the model wrapped in DDP."""
    torch.manual_seed(0)
    model = build_model(cfg)
    return model, copy.deepcopy(model), torch.nn.parallel.DistributedDataParallel(model)


def _gather_worker(rank: int, store: Path) -> None:
    """Gathered loss and DDP gradients == single-process loss and gradient over the union batch."""
    _init(rank, store)
    try:
        cfg = _config(Path("unused"), Path("unused"))
        model, ref, net = _models(cfg)
        b = 3  # local pairs per rank; global batch 6
        gen = torch.Generator().manual_seed(123)  # every rank knows every rank's inputs
        views = torch.rand(WORLD, 2, b, 3, cfg.img_size, cfg.img_size, generator=gen)  # (rank, view, ...)

        # The training step of core.ssl.training: one forward over both views, gathered NT-Xent.
        _, z = net(torch.cat([views[rank, 0], views[rank, 1]]))
        criterion = NTXentLoss(cfg.temperature, gather=distributed_gather(), rank=rank)
        loss = criterion(z[:b], z[b:])
        loss.backward()

        # Reference: each rank's chunk through its own forward (as on that rank), then the
        # plain NT-Xent over the concatenated global batch (rank 0's rows first).
        z1s, z2s = [], []
        for r in range(WORLD):
            _, zr = ref(torch.cat([views[r, 0], views[r, 1]]))
            z1s.append(zr[:b])
            z2s.append(zr[b:])
        global_loss = nt_xent_loss(torch.cat(z1s), torch.cat(z2s), cfg.temperature)
        global_loss.backward()

        # This rank's z equals the reference's rows for this rank.
        torch.testing.assert_close(z.detach(), torch.cat([z1s[rank], z2s[rank]]).detach(),
                                   rtol=0, atol=1e-6)
        # The gather matters: the local loss sees the other rank's negatives...
        local_only = nt_xent_loss(z1s[rank], z2s[rank], cfg.temperature)
        assert abs(loss.item() - local_only.item()) > 1e-3, (loss.item(), local_only.item())
        # ...and the mean of the per-rank losses is the loss over the union batch.
        losses = _all(loss.detach().reshape(1))
        mean = torch.cat(losses).mean()
        torch.testing.assert_close(mean, global_loss.detach(), rtol=1e-6, atol=1e-5)

        # DDP averages the per-rank gradients; all_gather's backward sums the gradients from
        # every rank's loss into the local rows, so the result is the gradient of the global mean.
        _assert_grads_match(model, ref)
    finally:
        dist.destroy_process_group()


def _assert_grads_match(model: torch.nn.Module, ref: torch.nn.Module) -> None:
    """DDP gradients: identical on every rank and equal to the single-process ``ref`` gradients."""
    for (name, p), (_, q) in zip(model.named_parameters(), ref.named_parameters(), strict=True):
        assert p.grad is not None, name
        for other in _all(p.grad):
            torch.testing.assert_close(other, p.grad, rtol=0, atol=0, msg=f"{name}: ranks differ")
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-6,
                                   msg=lambda m, name=name: f"{name}: DDP grad != global grad\n{m}")


def _train_worker(rank: int, store: Path, data: Path, out: Path, epochs: int) -> None:
    """Run core.ssl.training.train on this rank; check the parameters agree across ranks after it."""
    _init(rank, store)
    try:
        train_mod = importlib.import_module("core.ssl.training")

        built: list[torch.nn.Module] = []
        steps = [0]
        real_build, real_forward = train_mod.build_model, NTXentLoss.forward

        def build(config: SSLConfig, **kwargs: Any) -> torch.nn.Module:
            built.append(real_build(config, **kwargs))
            return built[-1]

        def counting_forward(self: NTXentLoss, z1: torch.Tensor, z2: torch.Tensor,
                             sizes: list[int] | None = None) -> torch.Tensor:
            assert self.gather is not None and self.rank == rank  # the distributed path is taken
            assert sizes is not None and sizes[rank] == z1.shape[0]  # train passes the gathered sizes
            steps[0] += 1
            return real_forward(self, z1, z2, sizes)

        train_mod.build_model = build  # type: ignore[assignment]
        NTXentLoss.forward = counting_forward  # type: ignore[method-assign]
        run = train_mod.train(_config(data, out, num_epochs=epochs), progress=False)
        assert run == out and len(built) == 1
        # Every rank ran the same number of steps, and the parameters stayed in lockstep.
        assert [int(s) for s in _all(torch.tensor([steps[0]]))] == [steps[0]] * WORLD
        for name, p in built[0].named_parameters():
            for other in _all(p.detach()):
                torch.testing.assert_close(other, p.detach(), rtol=0, atol=0, msg=f"{name}: ranks differ")
        if rank == 0:
            saved = load_encoder(out).encoder.state_dict()
            for name, v in built[0].encoder.state_dict().items():  # type: ignore[union-attr]
                torch.testing.assert_close(saved[name], v.detach(), rtol=0, atol=0)
            (out.parent / "steps.json").write_text(json.dumps(steps[0]))
    finally:
        dist.destroy_process_group()


def test_gathered_loss_and_ddp_grads_match_single_process(tmp_path: Path) -> None:
    _spawn(_gather_worker, tmp_path / "store")


@pytest.mark.parametrize(
    ("n_images", "steps_per_epoch"),
    [
        (16, 2),  # 8 images per rank, 2 full batches of 4
        (15, 1),  # odd: rank 0 would get 8 images (2 batches), rank 1 only 7 (1 batch)
        (5, 1),  # fewer than a batch per rank: rank 0 would get 3 images, rank 1 only 2
    ],
)
def test_two_process_training(tmp_path: Path, n_images: int, steps_per_epoch: int) -> None:
    data = tmp_path / "imgs"
    make_folder(data, n_images, size=40)
    out = tmp_path / "run"
    epochs = 2
    _spawn(_train_worker, tmp_path / "store", data, out, epochs)
    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in history] == list(range(1, epochs + 1))
    assert all(h["loss"] > 0 for h in history)
    assert json.loads((tmp_path / "steps.json").read_text()) == steps_per_epoch * epochs
    loaded = load_encoder(out)
    assert loaded.config.embedding_dim == 32
    assert loaded.embed(torch.rand(2, 3, 32, 32)).shape == (2, 32)
    assert not list(out.glob("*.tmp"))


def _too_few_worker(rank: int, store: Path, data: Path, out: Path) -> None:
    _init(rank, store)
    try:
        with pytest.raises(ValueError, match="each needs >= 2"):
            importlib.import_module("core.ssl.training").train(_config(data, out), progress=False)
    finally:
        dist.destroy_process_group()


def test_too_few_images_for_the_processes_fail_clearly(tmp_path: Path) -> None:
    data = tmp_path / "imgs"
    make_folder(data, 3, size=40)  # 1 image per rank: no negatives anywhere
    _spawn(_too_few_worker, tmp_path / "store", data, tmp_path / "run")


def _uneven_gather_worker(rank: int, store: Path) -> None:
    """Ranks with 3 and 2 pairs: the loss mean and DDP grads are still the union batch's."""
    _init(rank, store)
    try:
        cfg = _config(Path("unused"), Path("unused"))
        model, ref, net = _models(cfg)
        sizes = [3, 2]
        gen = torch.Generator().manual_seed(321)
        views = [torch.rand(2, s, 3, cfg.img_size, cfg.img_size, generator=gen) for s in sizes]
        b = sizes[rank]
        _, z = net(torch.cat([views[rank][0], views[rank][1]]))
        loss = NTXentLoss(cfg.temperature, gather=distributed_gather(), rank=rank)(z[:b], z[b:])
        loss.backward()

        z1s, z2s = [], []
        for r in range(WORLD):
            _, zr = ref(torch.cat([views[r][0], views[r][1]]))
            z1s.append(zr[: sizes[r]])
            z2s.append(zr[sizes[r] :])
        global_loss = nt_xent_loss(torch.cat(z1s), torch.cat(z2s), cfg.temperature)
        global_loss.backward()

        mean = torch.cat(_all(loss.detach().reshape(1))).mean()
        torch.testing.assert_close(mean, global_loss.detach(), rtol=1e-6, atol=1e-5)
        _assert_grads_match(model, ref)
    finally:
        dist.destroy_process_group()


def test_gathered_loss_and_ddp_grads_with_unequal_batches(tmp_path: Path) -> None:
    _spawn(_uneven_gather_worker, tmp_path / "store")


def _figures_worker(rank: int, store: Path, data: Path, out: Path) -> None:
    """One epoch of core.ssl.training.train; records this rank's per-step figures to rank{r}.json."""
    _init(rank, store)
    try:
        train_mod = importlib.import_module("core.ssl.training")
        built: list[torch.nn.Module] = []
        steps: list[dict[str, float]] = []
        real_build, real_forward = train_mod.build_model, NTXentLoss.forward
        real_top1, real_std = train_mod.positive_top1, train_mod.embedding_std

        def build(config: SSLConfig, **kwargs: Any) -> torch.nn.Module:
            built.append(real_build(config, **kwargs))
            return built[-1]

        def forward(self: NTXentLoss, z1: torch.Tensor, z2: torch.Tensor,
                    sizes: list[int] | None = None) -> torch.Tensor:
            loss = real_forward(self, z1, z2, sizes)
            steps.append({"b": z1.shape[0], "loss": loss.item()})
            return loss

        def top1(z1: torch.Tensor, z2: torch.Tensor) -> float:
            steps[-1]["pos_top1"] = real_top1(z1, z2)
            return steps[-1]["pos_top1"]

        def std(h: torch.Tensor) -> float:
            steps[-1]["emb_std"] = real_std(h)
            return steps[-1]["emb_std"]

        train_mod.build_model = build  # type: ignore[assignment]
        train_mod.positive_top1 = top1  # type: ignore[assignment]
        train_mod.embedding_std = std  # type: ignore[assignment]
        NTXentLoss.forward = forward  # type: ignore[method-assign]
        train_mod.train(_config(data, out, num_epochs=1), progress=False)
        for name, p in built[0].named_parameters():
            for other in _all(p.detach()):
                torch.testing.assert_close(other, p.detach(), rtol=0, atol=0, msg=f"{name}: ranks differ")
        (out.parent / f"rank{rank}.json").write_text(json.dumps(steps))
    finally:
        dist.destroy_process_group()


def _run_figures(tmp_path: Path, data: Path) -> tuple[dict, list[list[dict[str, float]]]]:
    out = tmp_path / "run"
    _spawn(_figures_worker, tmp_path / "store", data, out)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(WORLD)]
    return json.loads((out / "history.json").read_text())[0], ranks


def test_history_is_the_mean_over_ranks(tmp_path: Path) -> None:
    data = tmp_path / "imgs"
    make_folder(data, 8, size=40)  # one batch of 4 per rank
    row, ranks = _run_figures(tmp_path, data)
    assert [[s["b"] for s in r] for r in ranks] == [[4], [4]]
    assert ranks[0][0]["loss"] != pytest.approx(ranks[1][0]["loss"], abs=1e-6)  # rank 0 alone != mean
    for key in ("loss", "pos_top1", "emb_std"):
        assert row[key] == pytest.approx((ranks[0][0][key] + ranks[1][0][key]) / 2, rel=1e-6), key
    assert row["skipped_images"] == 0


def test_two_process_training_with_an_unreadable_image(tmp_path: Path) -> None:
    data = tmp_path / "imgs"
    make_folder(data, 7, size=40)
    (data / "zz_broken.png").write_bytes(b"\x89PNG but not really")  # found, fails to decode
    row, ranks = _run_figures(tmp_path, data)  # the workers check the weights agree across ranks
    # 4 images per rank; the broken one leaves its rank a batch of 3: unequal gathered batches.
    assert sorted(s["b"] for r in ranks for s in r) == [3, 4]
    assert row["skipped_images"] == 1  # counted on whichever rank read it
    # The per-rank losses are scaled to their share, so their mean is the union-batch loss,
    # and the history's pair-weighted epoch figures agree with it.
    assert row["loss"] == pytest.approx((ranks[0][0]["loss"] + ranks[1][0]["loss"]) / 2, rel=1e-6)
    for key in ("pos_top1", "emb_std"):
        want = sum(r[0][key] * r[0]["b"] for r in ranks) / 7
        assert row[key] == pytest.approx(want, rel=1e-6), key
