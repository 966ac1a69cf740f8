"""Per-shard work: caption or embed one shard into part-file bytes, and the Ray actor classes.

:func:`caption_shard` and :func:`embed_shard` are plain functions (the Ray actors call them, and
so can a test or a single process). Each returns the part's parquet bytes; the driver writes
them atomically, so a retried shard simply produces the same part again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from core.datasets.shards import SourceItem, iter_shard
from core.datasets.sources import Shard
from core.distributed.parts import PartInfo, encode_caption_part, encode_embedding_part
from core.errors import CheckpointError, InvalidImageError
from core.images import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, load_image

RESULT_COLUMNS = ("index", "part", "rows", "errors", "info", "ready_at", "init_s")


@dataclass(frozen=True)
class CaptionJob:
    """What decides a caption run's results (all of it is checked on resume)."""

    model: str | None  # hub id, "id@revision" or a save_pretrained folder readable on every node
    dtype: str | None = None  # None/"auto": bfloat16 on a capable GPU, else float32
    batch_size: int = 16  # images per forward pass
    max_pixels: int = DEFAULT_MAX_PIXELS  # refuse larger images (checked from the header)
    max_bytes: int = DEFAULT_MAX_BYTES  # refuse larger encoded inputs
    generation: dict[str, Any] = field(default_factory=dict)  # options of core.GenerationOptions
    device: str | None = None  # where each actor runs; None: its GPU if it has one, else CPU
    trust_remote_code: bool = False  # let the checkpoint run its own model code (opt-in)

    def settings(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("device")  # where it runs does not decide the text (dtype does, and is kept)
        if not out["trust_remote_code"]:
            out.pop("trust_remote_code")  # runs from before the option resume as they were
        return json.loads(json.dumps(out, sort_keys=True, default=str))


@dataclass(frozen=True)
class EmbedJob:
    """What decides an embedding run's results (checked on resume, with the weights' sha256)."""

    checkpoint: str  # SSL run folder or .safetensors file readable on every node
    sha256: str  # of the weights, read by the driver
    batch_size: int = 64
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_bytes: int = DEFAULT_MAX_BYTES
    device: str | None = None
    encoder: str | None = None  # a pretrained encoder (id@commit or folder) instead of checkpoint
    encoder_dtype: str = "auto"  # the pretrained encoder's dtype ("int8": CPU, opt-in)

    def settings(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("device")
        if out["encoder"] is None:  # runs from before pretrained encoders resume unchanged
            out.pop("encoder")
        if out["encoder_dtype"] == "auto":  # and runs from before int8 encoders
            out.pop("encoder_dtype")
        return out


def caption_shard(captioner: Any, shard: Shard, job: CaptionJob, digest: str) -> tuple[bytes, int, int]:
    """Caption every item of ``shard`` through ``core.iter_caption_records``.

    Args:
        captioner: a loaded ``core.Captioner``.
        shard: the shard to read.
        job: the settings; ``job.batch_size`` images per forward pass.
        digest: the run's settings digest, stored in the part.

    Returns:
        ``(part parquet bytes, rows, error rows)``.
    """
    from core.captioning import iter_caption_records

    rows: list[list[Any]] = []
    pending: list[tuple[int, str | bytes]] = []

    def flush() -> None:
        inputs = [(str(row), image) for row, image in pending]
        records = iter_caption_records(captioner, inputs, batch_size=job.batch_size,
                                       max_pixels=job.max_pixels, max_bytes=job.max_bytes,
                                       **job.generation)
        for (row, _), record in zip(pending, records, strict=True):
            rows[row][2], rows[row][3] = record.caption, record.error
        pending.clear()

    for item in iter_shard(shard, max_bytes=job.max_bytes):
        rows.append([item.key, item.path, "", item.error])
        if item.error is None:
            pending.append((len(rows) - 1, item.image))  # type: ignore[arg-type]
            if len(pending) == job.batch_size:
                flush()
    if pending:
        flush()
    errors = sum(r[3] is not None for r in rows)
    info = PartInfo(shard.index, shard.fingerprint, digest, len(rows), errors)
    return encode_caption_part([tuple(r) for r in rows], info), len(rows), errors  # type: ignore[misc]


def warm_up(captioner: Any, job: CaptionJob) -> list[str]:
    """Caption one small batch of a generated JPEG with the job's settings, before any shard.

    A fresh process pays one-off costs on its first batch (on a GPU: cuBLAS and nvJPEG set-up and
    loading each kernel on first use; on a CPU: oneDNN kernel selection). Paying them here makes
    them part of the actor's start-up, which the run reports separately, as a single process that
    is warmed up before timing does; the first shard then runs at the steady rate.

    Returns:
        The captions of the warm-up batch (``min(job.batch_size, 4)`` images).
    """
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (120, 140, 160)).save(buffer, format="JPEG")
    images = [buffer.getvalue()] * min(job.batch_size, 4)
    captions = captioner.caption_batch(images, batch_size=len(images), max_pixels=job.max_pixels,
                                       max_bytes=job.max_bytes, **job.generation)
    return [str(text) for text in captions]


def embed_shard(encoder: Any, shard: Shard, job: EmbedJob, digest: str, dim: int) -> tuple[bytes, int, int]:
    """Embed every item of ``shard`` with ``core.search.embed_images`` (unit-norm rows).

    Decoding goes through ``core.load_image`` with the job's caps; failures become error rows.
    At most ``job.batch_size`` decoded images are held at a time.

    Returns:
        ``(part parquet bytes, rows, error rows)``.
    """
    from core.search import content_hash, embed_images

    keys: list[str] = []
    paths: list[str | None] = []
    errors: list[str | None] = []
    hashes: list[str | None] = []  # sha256 of each readable image's encoded bytes
    chunks: list[tuple[list[int], np.ndarray]] = []
    pending: list[tuple[int, Any]] = []

    def flush() -> None:
        result = embed_images(encoder, [image for _, image in pending], batch_size=len(pending),
                              device=job.device, on_error="raise", progress=False)
        chunks.append(([row for row, _ in pending], result.embeddings.numpy()))
        pending.clear()

    for item, image, error in _decoded(iter_shard(shard, max_bytes=job.max_bytes), job):
        keys.append(item.key)
        paths.append(item.path)
        errors.append(error)
        hashes.append(content_hash(item.image) if image is not None else None)
        if image is not None:
            pending.append((len(keys) - 1, image))
            if len(pending) == job.batch_size:
                flush()
    if pending:
        flush()
    vectors = np.zeros((len(keys), dim), np.float32)
    for rows, block in chunks:
        vectors[rows] = block
    n_errors = sum(e is not None for e in errors)
    info = PartInfo(shard.index, shard.fingerprint, digest, len(keys), n_errors)
    return encode_embedding_part(keys, paths, vectors, errors, info, hashes), len(keys), n_errors


def _decoded(items: Iterator[SourceItem], job: EmbedJob) -> Iterator[tuple[SourceItem, Any, str | None]]:
    for item in items:
        if item.error is not None:
            yield item, None, item.error
            continue
        try:
            yield item, load_image(item.image, max_pixels=job.max_pixels, max_bytes=job.max_bytes), None  # type: ignore[arg-type]
        except InvalidImageError as exc:
            yield item, None, exc.reason


class _ShardWorker:
    """Base of the Ray actors: ``__call__`` takes a batch of shard JSON strings."""

    info: dict[str, Any]
    init_s: float
    ready_at: float

    def run_shard(self, shard: Shard) -> tuple[bytes, int, int]:
        raise NotImplementedError

    def __call__(self, batch: dict[str, Any]) -> Any:
        import pyarrow as pa

        out: dict[str, list[Any]] = {name: [] for name in RESULT_COLUMNS}
        for text in list(batch["shard"]):
            shard = Shard.from_json(str(text))
            data, rows, errors = self.run_shard(shard)
            for name, value in zip(RESULT_COLUMNS, (shard.index, data, rows, errors, json.dumps(self.info),
                                                     self.ready_at, self.init_s), strict=True):
                out[name].append(value)
        return pa.table({**out, "part": pa.array(out["part"], pa.binary())})


class CaptionWorker(_ShardWorker):
    """One ``core.Captioner`` per Ray actor (loaded once, reused for every shard it gets)."""

    def __init__(self, job: CaptionJob, digest: str) -> None:
        from transformers.utils import logging as hf_logging

        from core.captioning import get_captioner

        hf_logging.disable_progress_bar()  # one "Loading weights" bar per actor is noise in the driver's log
        start = time.perf_counter()
        self.job, self.digest = job, digest
        self.captioner = get_captioner(job.model, device=job.device, dtype=job.dtype,
                                       trust_remote_code=job.trust_remote_code)
        self.info = {k: v for k, v in self.captioner.info.items() if k != "device"}
        warm_up(self.captioner, job)
        self.init_s, self.ready_at = time.perf_counter() - start, time.time()

    def run_shard(self, shard: Shard) -> tuple[bytes, int, int]:
        return caption_shard(self.captioner, shard, self.job, self.digest)


class EmbedWorker(_ShardWorker):
    """One SSL encoder (``core.ssl.load_encoder``) per Ray actor."""

    def __init__(self, job: EmbedJob, digest: str) -> None:
        from PIL import Image

        from core.search import embed_images, load_index_encoder

        start = time.perf_counter()
        self.job, self.digest = job, digest
        self.encoder = load_index_encoder(job.checkpoint or None, pretrained=job.encoder, device=job.device,
                                          dtype=job.encoder_dtype)
        if self.encoder.sha256 != job.sha256:
            raise CheckpointError(f"{job.encoder or job.checkpoint}: weights on this node have sha256 {self.encoder.sha256}, "
                               f"the driver read {job.sha256}; every node must see the same file")
        probe = Image.new("RGB", (8, 8))
        self.dim = int(embed_images(self.encoder, [probe], device=job.device, progress=False).embeddings.shape[1])
        self.info = {"checkpoint": job.encoder or job.checkpoint, "sha256": self.encoder.sha256, "dim": self.dim}
        self.init_s, self.ready_at = time.perf_counter() - start, time.time()

    def run_shard(self, shard: Shard) -> tuple[bytes, int, int]:
        return embed_shard(self.encoder, shard, self.job, self.digest, self.dim)
