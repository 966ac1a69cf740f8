"""Is the trained encoder any good? Retrieval on a held-out split against two baselines.

Methods compared on the same images (Tiny COCO ``val2017``, encoder trained on ``train2017``):

* the trained encoder;
* the same architecture at random init (seed from the checkpoint's config): what training adds;
* raw pixels: each image resized to ``PIXEL_SIZE`` x ``PIXEL_SIZE`` RGB, flattened,
  mean-centred over the gallery and L2-normalised: what plain colour layout already gives.

Relevant = shares at least one COCO instance category (see :mod:`core.search.metrics`).
Nothing here is tuned on the evaluation split: ``PIXEL_SIZE`` and ``k`` are fixed up front.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from core.errors import ConfigError, DatasetError
from core.images import load_image
from core.search.embed import DEFAULT_BATCH_SIZE, OnError, embed_images
from core.search.encoder import EncoderLike, config_dict
from core.search.metrics import retrieval_metrics

PIXEL_SIZE = 32  # small enough to blur away detail, large enough to keep colour layout


@dataclass(frozen=True)
class MethodScores:
    """One row of the table: a method's retrieval quality."""

    method: str
    p_at_1: float
    p_at_k: float
    map_at_k: float
    chance: float


@dataclass
class RetrievalTable:
    """Scores of every method on one split, with what they were measured on."""

    k: int
    split: str | None
    data_dir: str
    checkpoint: str
    n_images: int
    n_without_relevant: int
    rows: list[MethodScores]
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)

    def format_text(self) -> str:
        """A plain-text table plus the facts needed to read it."""
        head = f"{'method':<28} {'P@1':>6} {'P@' + str(self.k):>6} {'mAP@' + str(self.k):>7} {'chance':>7}"
        lines = [
            f"Retrieval on {self.split or 'the data set'} of {self.data_dir}: {self.n_images} images, "
            "each queried against the others; relevant = shares a COCO instance category",
            head,
            "-" * len(head),
        ]
        for r in self.rows:
            lines.append(
                f"{r.method:<28} {r.p_at_1:>6.3f} {r.p_at_k:>6.3f} {r.map_at_k:>7.3f} {r.chance:>7.3f}"
            )
        lines.append(
            f"mAP@{self.k} leaves out {self.n_without_relevant} queries with no relevant image; "
            "chance = mean fraction of relevant images (the expected P@k of a random ranking)."
        )
        if self.skipped:
            lines.append(
                f"{len(self.skipped)} unreadable images skipped (first: {self.skipped[0]})"
            )
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)


def raw_pixel_embeddings(images: Sequence[Any], size: int = PIXEL_SIZE) -> torch.Tensor:
    """The raw-pixel baseline: tiny RGB thumbnails, mean-centred over the gallery, unit norm.

    Returns:
        Shape: (N, 3 * size * size), float32.
    """
    rows = []
    for src in images:
        img = load_image(src).resize((size, size), Image.Resampling.BILINEAR)
        rows.append(np.asarray(img, dtype=np.float32).reshape(-1) / 255.0)
    pixels = torch.from_numpy(np.stack(rows))
    # Centring removes the mean image, which would otherwise make every pair look similar.
    return F.normalize(pixels - pixels.mean(dim=0, keepdim=True), dim=1)


def evaluate_encoders(
    encoders: Sequence[tuple[str, EncoderLike]],
    records: Sequence[Any],
    *,
    k: int = 5,
    pixel_size: int | None = PIXEL_SIZE,
    batch_size: int = DEFAULT_BATCH_SIZE,
    device: str | torch.device | None = None,
    on_error: OnError = "skip",
    progress: bool | None = None,
) -> tuple[list[MethodScores], int, int, list[str]]:
    """Score each named encoder (and raw pixels) on ``records`` (``ImageRecord``-like).

    Images that fail to load are dropped for every method alike (or raise, with ``"raise"``).

    Returns:
        The rows, the number of images used, the queries without any relevant image, and the
        skipped images' messages.
    """
    if not encoders and pixel_size is None:
        raise ConfigError("nothing to evaluate: pass at least one encoder or a pixel baseline size")
    paths = [r.path for r in records]
    kept = list(range(len(paths)))
    skipped: list[str] = []
    embeddings: list[tuple[str, torch.Tensor]] = []
    for name, enc in encoders:
        use = [paths[i] for i in kept]
        result = embed_images(
            enc,
            use,
            batch_size=batch_size,
            device=device,
            on_error=on_error,
            progress=progress,
            desc=name,
        )
        if result.failures:  # only the first pass can fail; later ones see loadable images only
            skipped.extend(msg for _, msg in result.failures)
            kept = [kept[i] for i in result.kept]
            embeddings = [(n, e[result.kept]) for n, e in embeddings]
        embeddings.append((name, result.embeddings))
    if pixel_size is not None:
        embeddings.append(
            (
                f"raw pixels {pixel_size}x{pixel_size}",
                raw_pixel_embeddings([paths[i] for i in kept], pixel_size),
            )
        )
    categories = [records[i].categories for i in kept]
    rows: list[MethodScores] = []
    n_without = 0
    for name, emb in embeddings:
        m = retrieval_metrics(emb, categories, ks=(1, k), map_k=k)
        rows.append(MethodScores(name, m.precision[1], m.precision[k], m.mean_ap, m.chance))
        n_without = m.n_without_relevant
    return rows, len(kept), n_without, skipped


def evaluate_retrieval(
    checkpoint: str | Path | None,
    data_dir: str | Path,
    split: str = "val2017",
    *,
    encoder: str | Path | None = None,
    k: int = 5,
    batch_size: int = DEFAULT_BATCH_SIZE,
    device: str | torch.device | None = None,
    on_error: OnError = "skip",
    pixel_size: int = PIXEL_SIZE,
    progress: bool | None = None,
) -> RetrievalTable:
    """Trained encoder vs random init vs raw pixels on ``split`` of ``data_dir``.

    With ``encoder`` (a pretrained CLIP/SigLIP/DINOv2 id or folder) instead of ``checkpoint``:
    that encoder vs raw pixels (its random init is not a baseline anyone would use).

    Raises:
        FileNotFoundError: missing data folder or checkpoint.
        ValueError: the split has no COCO instance annotations, or too few images.
        CheckpointError: the checkpoint cannot be loaded.
    """
    from core.datasets import find_dataset

    data = Path(data_dir)
    if not data.is_dir():
        raise FileNotFoundError(f"data folder not found: {data}")
    info = find_dataset(data, split)
    if info.layout == "folder" or not any(r.categories for r in info.records):
        raise DatasetError(
            f"{data} has no COCO instance annotations for split {split!r} (expected "
            f"{data / 'annotations' / f'instances_{split}.json'}); retrieval evaluation needs "
            "category labels"
        )
    trained, methods = _methods(checkpoint, encoder, device)
    cfg = config_dict(trained)
    rows, n, n_without, skipped = evaluate_encoders(
        methods,
        info.records,
        k=k,
        pixel_size=pixel_size,
        batch_size=batch_size,
        device=device,
        on_error=on_error,
        progress=progress,
    )
    notes = []
    if cfg.get("split") == split and Path(str(cfg.get("data_dir", ""))).resolve() == data.resolve():
        notes.append(f"the encoder was trained on {split} itself: these are not held-out scores")
    return RetrievalTable(
        k=k,
        split=info.split,
        data_dir=str(data),
        checkpoint=str(trained.weights_path),
        n_images=n,
        n_without_relevant=n_without,
        rows=rows,
        skipped=skipped,
        notes=notes,
    )


def _methods(checkpoint: str | Path | None, encoder: str | Path | None,
             device: str | torch.device | None) -> tuple[Any, list[tuple[str, EncoderLike]]]:
    """The encoder under test and the named encoders to score (with its random init for a run)."""
    from core.search.pretrained import load_index_encoder
    from core.ssl.checkpoint import random_encoder

    trained = load_index_encoder(checkpoint, pretrained=encoder, device=device)
    if encoder is not None:
        record = trained.record
        return trained, [(f"pretrained ({record['family']})", trained)]
    cfg = config_dict(trained)
    baseline = random_encoder(trained.config, seed=int(cfg.get("seed", 0)), device=device)
    arch = cfg.get("backbone", "encoder")
    return trained, [(f"trained ({arch})", trained), (f"random init ({arch})", baseline)]


def print_table(table: RetrievalTable) -> None:
    """Print :meth:`RetrievalTable.format_text` to stdout."""
    sys.stdout.write(table.format_text() + "\n")
