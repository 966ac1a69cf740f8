"""Contrastive losses: symmetric SimCLR NT-Xent and the notebook's one-directional cross-view loss.

Both take raw projections ``z1, z2`` (row i of each is a view of image i) and L2-normalise them,
so the logits are cosine similarities divided by the temperature.

Distributed training (DDP) is prepared for but not required: pass the projections gathered from
all processes as ``z1_all, z2_all`` (with gradients, e.g. ``torch.distributed.nn.all_gather``) and
the local batch's ``offset`` in them; each process then contrasts its local positives against the
global batch. :class:`NTXentLoss` with :func:`distributed_gather` does this for per-process batches
of any sizes (e.g. after unreadable images were dropped on one rank) and weights each process's
loss by its share of the rows, so the mean of the per-process losses (what DDP's gradient averaging
differentiates) equals the single-process loss on the union batch.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from core.errors import ConfigError

Gather = Callable[[torch.Tensor], torch.Tensor]


def _check_pair(z1: torch.Tensor, z2: torch.Tensor, what: str = "z1, z2") -> None:
    if not isinstance(z1, torch.Tensor) or not isinstance(z2, torch.Tensor):
        raise ValueError(f"{what} must be tensors")
    if z1.dim() != 2 or z2.dim() != 2:
        raise ValueError(f"{what} must be 2-D (N, D), got shapes {tuple(z1.shape)} and {tuple(z2.shape)}")
    if z1.shape != z2.shape:
        raise ValueError(f"{what} must have the same shape, got {tuple(z1.shape)} and {tuple(z2.shape)}")
    if z1.shape[0] < 1 or z1.shape[1] < 1:
        raise ValueError(f"{what} need N >= 1 rows and D >= 1 columns, got {tuple(z1.shape)}")


def _check_temperature(temperature: float) -> None:
    if not temperature > 0:
        raise ConfigError(f"temperature must be > 0, got {temperature}; try 0.1 (SimCLR's usual value)")


def nt_xent_loss(
    z1: torch.Tensor,
    z2: torch.Tensor,
    temperature: float = 0.1,
    *,
    z1_all: torch.Tensor | None = None,
    z2_all: torch.Tensor | None = None,
    offset: int = 0,
) -> torch.Tensor:
    """SimCLR NT-Xent: each of the 2N views must pick its partner among all other views.

    For anchor view a with positive p, ``loss_a = -log(exp(s_ap/T) / sum_{k != a} exp(s_ak/T))``
    with ``s`` the cosine similarity; the result is the mean over all 2N anchors (both directions).
    With N = 1 the only other view is the positive, so the loss is exactly 0 (no negatives, no
    learning signal); chance level for N >= 2 is ``ln(2N - 1)``.

    Args:
        z1: projections of the first views, not normalised.
        z2: projections of the second views, row-aligned with ``z1``.
        temperature: softmax temperature T > 0.
        z1_all: optional global (gathered) first-view projections containing ``z1`` at ``offset``;
            every row of it that is not the anchor or its positive is an extra negative.
        z2_all: the matching global second-view projections (required with ``z1_all``).
        offset: row of ``z1`` inside ``z1_all`` (``rank * N`` for equal per-process batches).

    Returns:
        Scalar loss tensor.

    Shape:
        z1, z2: (N, D); z1_all, z2_all: (M, D) with M >= offset + N; output: ().
    """
    _check_pair(z1, z2)
    _check_temperature(temperature)
    n = z1.shape[0]
    if (z1_all is None) != (z2_all is None):
        raise ValueError("pass both z1_all and z2_all, or neither")
    if z1_all is None or z2_all is None:
        z1_all, z2_all, offset = z1, z2, 0
    else:
        _check_pair(z1_all, z2_all, "z1_all, z2_all")
        if z1_all.shape[1] != z1.shape[1]:
            raise ValueError(f"z1_all has D={z1_all.shape[1]} but z1 has D={z1.shape[1]}")
        if not 0 <= offset <= z1_all.shape[0] - n:
            raise ValueError(f"offset {offset} does not fit N={n} rows into M={z1_all.shape[0]}")
    m = z1_all.shape[0]
    anchors = F.normalize(torch.cat([z1, z2]), dim=1)  # (2N, D)
    candidates = F.normalize(torch.cat([z1_all, z2_all]), dim=1)  # (2M, D)
    logits = anchors @ candidates.T / temperature  # (2N, 2M)
    local = torch.arange(n, device=z1.device) + offset
    self_idx = torch.cat([local, local + m])  # where each anchor sits among the candidates
    pos_idx = torch.cat([local + m, local])  # its partner view
    rows = torch.arange(2 * n, device=z1.device)
    # A view is never its own negative: mask it out of the softmax denominator.
    is_self = torch.zeros_like(logits, dtype=torch.bool)
    is_self[rows, self_idx] = True
    logits = logits.masked_fill(is_self, float("-inf"))
    return F.cross_entropy(logits, pos_idx)


def cross_view_loss(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """The notebook's variant: ``CE(z1 @ z2.T / T, arange(N))``, one direction, cosine similarity.

    Each first view picks its partner among the N second views only (chance level ``ln N``).

    Shape:
        z1, z2: (N, D) -> ().
    """
    _check_pair(z1, z2)
    _check_temperature(temperature)
    logits = F.normalize(z1, dim=1) @ F.normalize(z2, dim=1).T / temperature  # (N, N)
    return F.cross_entropy(logits, torch.arange(z1.shape[0], device=z1.device))


class DistributedGather:
    """All-gather of per-process rows that keeps gradients and allows different row counts.

    ``torch.distributed`` all-gathers need equal shapes, so the row counts are all-gathered first,
    the local rows zero-padded to the largest count, gathered, and each process's block cut back
    to its true size. The backward of the gather sums every process's gradient for a block into
    that process's rows (the padding rows get none), as with equal sizes.
    """

    def __init__(self) -> None:
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            raise RuntimeError("torch.distributed is not initialised")

    def sizes(self, n: int, device: torch.device | str = "cpu") -> list[int]:
        """Every process's row count, in rank order (one collective; all ranks must call it)."""
        import torch.distributed as dist

        local = torch.tensor([n], dtype=torch.long, device=device)
        out = [torch.zeros_like(local) for _ in range(dist.get_world_size())]
        dist.all_gather(out, local)
        return [int(t.item()) for t in out]

    def __call__(self, z: torch.Tensor, sizes: list[int] | None = None) -> torch.Tensor:
        """Rows of all processes concatenated in rank order; ``sizes`` from :meth:`sizes`.

        Shape:
            z: (N_rank, D) -> (sum of N over ranks, D).
        """
        import torch.distributed.nn.functional as dist_fn

        if sizes is None:
            sizes = self.sizes(z.shape[0], z.device)
        top = max(sizes)
        padded = F.pad(z, (0, 0, 0, top - z.shape[0])) if z.shape[0] < top else z
        parts = dist_fn.all_gather(padded)
        if all(s == top for s in sizes):
            return torch.cat(list(parts), dim=0)
        return torch.cat([part[:s] for part, s in zip(parts, sizes, strict=True)], dim=0)


def distributed_gather() -> DistributedGather:
    """An all-gather that keeps gradients (for NTXentLoss(gather=...) under torch.distributed).

    Per-process batches may differ in size; see :class:`DistributedGather`.
    """
    return DistributedGather()


class NTXentLoss(nn.Module):
    """SimCLR contrastive loss as a module (``variant="cross_view"`` for the notebook's loss).

    Args:
        temperature: softmax temperature, > 0.
        variant: ``"nt_xent"`` (symmetric, 2N views) or ``"cross_view"`` (one direction, N x N).
        gather: optional function returning a tensor concatenated over processes; used for extra
            negatives with ``nt_xent`` only. With :func:`distributed_gather` the ranks' batch sizes
            may differ: the local rows sit after those of the lower ranks, and the local loss is
            scaled by ``N * world / sum(N)`` so the mean over ranks is the union-batch loss (the
            scale is exactly 1 for equal sizes). Any other function must return equal-sized
            blocks per rank (the local rows at ``rank * N``); its loss is not rescaled.
        rank: this process's index in the gathered tensor.

    Shape:
        z1, z2: (N, D) raw projections -> scalar loss.
    """

    def __init__(
        self,
        temperature: float = 0.1,
        variant: str = "nt_xent",
        gather: Gather | None = None,
        rank: int = 0,
    ) -> None:
        super().__init__()
        _check_temperature(temperature)
        if variant not in ("nt_xent", "cross_view"):
            raise ConfigError(f"variant must be 'nt_xent' or 'cross_view', got {variant!r}")
        if gather is not None and variant != "nt_xent":
            raise ConfigError("gather is only supported with variant='nt_xent'; use it for distributed runs")
        self.temperature = float(temperature)
        self.variant = variant
        self.gather = gather
        self.rank = int(rank)

    def forward(self, z1: torch.Tensor, z2: torch.Tensor, sizes: list[int] | None = None) -> torch.Tensor:
        """The loss of the local pairs; ``sizes``: every rank's pair count when the caller already
        gathered it (:meth:`DistributedGather.sizes`), which saves that collective here."""
        if self.variant == "cross_view":
            return cross_view_loss(z1, z2, self.temperature)
        if self.gather is None:
            return nt_xent_loss(z1, z2, self.temperature)
        _check_pair(z1, z2)
        n = z1.shape[0]
        if not isinstance(self.gather, DistributedGather):
            return nt_xent_loss(
                z1, z2, self.temperature, z1_all=self.gather(z1), z2_all=self.gather(z2), offset=self.rank * n
            )
        if sizes is None:
            sizes = self.gather.sizes(n, z1.device)
        if sizes[self.rank] != n:
            raise ValueError(f"rank {self.rank} holds {n} rows but the gather says {sizes[self.rank]}")
        loss = nt_xent_loss(
            z1,
            z2,
            self.temperature,
            z1_all=self.gather(z1, sizes),
            z2_all=self.gather(z2, sizes),
            offset=sum(sizes[: self.rank]),
        )
        total = sum(sizes)
        if total != n * len(sizes):
            # Mean over the 2N local anchors -> this rank's share of the mean over all 2*total.
            loss = loss * (n * len(sizes) / total)
        return loss

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, variant={self.variant!r}"


@torch.no_grad()
def positive_top1(z1: torch.Tensor, z2: torch.Tensor) -> float:
    """Fraction of the 2N views whose most similar other view is their own partner.

    Shape:
        z1, z2: (N, D) -> python float in [0, 1].
    """
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    sim = z @ z.T
    sim.fill_diagonal_(float("-inf"))
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(sim.device)
    return float((sim.argmax(dim=1) == partner).float().mean())
