"""Caption or embed a whole source on a Ray cluster: shards in, one part file per shard out.

The driver plans the shards, skips the finished ones (``resume``), hands the rest to a Ray Data
actor pool (``map_batches`` over one row per shard, one model per actor) and, as each part's
bytes come back, writes the part atomically and records it in the manifest. Parts are written
by the driver only: the output folder needs to exist on the driver's machine alone (the inputs
and the model must be readable on every node), and a shard that Ray retries after a lost worker
produces the same part again, so every key ends up exactly once.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from core.datasets.shards import count_shard
from core.datasets.sources import DEFAULT_SHARD_SIZE, Columns, ImageSource, open_source
from core.distributed.cluster import PoolSize, connect, size_pool
from core.distributed.manifest import Manifest, plan_resume
from core.distributed.parts import write_part
from core.distributed.workers import CaptionJob, CaptionWorker, EmbedJob, EmbedWorker
from core.errors import ConfigError, Img2TextError
from core.fileio import sha256_bytes
from core.images import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS


class RunInterruptedError(Img2TextError, RuntimeError):
    """The Ray job stopped before every part was written; finished parts are kept."""


@dataclass
class RunSummary:
    """What one run did."""

    out_dir: Path
    images: int  # rows written by this run
    errors: int  # error rows among them
    parts_written: int
    parts_skipped: int  # already finished before this run
    wall_s: float  # from connecting to the last part
    actor_startup_s: float | None  # from submitting to the first actor being ready (None: no work)
    nothing_to_do: bool = False
    connect_s: float = 0.0  # connecting to (or, for "local", starting) the cluster, within wall_s

    @property
    def images_per_s(self) -> float:
        return self.images / self.wall_s if self.wall_s > 0 else 0.0

    def line(self) -> str:
        if self.nothing_to_do:
            return (f"img2text: nothing to do: all {self.parts_skipped} parts in {self.out_dir} are "
                    "finished")
        startup = f", actor start-up {self.actor_startup_s:.1f} s" if self.actor_startup_s is not None else ""
        return (f"img2text: {self.images} images, {self.errors} errors, {self.parts_written} parts "
                f"written ({self.parts_skipped} already done) in {self.wall_s:.1f} s, "
                f"{self.images_per_s:.1f} images/s{startup} -> {self.out_dir}")


def caption_to_parts(
    source: str | Path | ImageSource,
    out_dir: str | Path,
    *,
    address: str | None = "auto",
    model: str | None = None,
    dtype: str | None = None,
    device: str | None = None,
    batch_size: int = 16,
    concurrency: int | None = None,
    num_cpus_per_actor: float | None = None,
    num_gpus_per_actor: float | None = None,
    shard_size: int = DEFAULT_SHARD_SIZE,
    columns: Columns | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    resume: bool = False,
    progress: bool = True,
    trust_remote_code: bool = False,
    **generation: Any,
) -> RunSummary:
    """Caption ``source`` on Ray into ``out_dir/part-NNNNN.parquet`` (key, path, caption, error).

    Args:
        source: a folder, list file, tar pattern or parquet file/folder (see
            ``core.datasets.open_source``), or an already planned ``ImageSource``.
        out_dir: the output folder (created); holds the parts and ``manifest.json``.
        address: ``"auto"``, ``"local"``, ``"host:port"`` or ``"ray://..."`` (see ``connect``).
        model, dtype, device: as for ``core.get_captioner``; the model must be readable on every node.
        batch_size: images per forward pass inside an actor.
        concurrency, num_cpus_per_actor, num_gpus_per_actor: the actor pool (see ``size_pool``).
        shard_size: images per shard of folder and list sources.
        columns: column names of a parquet source.
        max_pixels, max_bytes: caps applied to every image.
        resume: continue an unfinished run in ``out_dir`` (same settings only).
        progress: show a progress bar and print the summary line on stderr.
        trust_remote_code: let the checkpoint run its own model code (as for ``core.Captioner``).
        **generation: options of ``core.GenerationOptions``.

    Returns:
        The :class:`RunSummary`.

    Raises:
        ConfigError: bad settings, another run's output in ``out_dir``, or no cluster at ``address``.
        DatasetError: the source is missing or matches nothing.
        RunInterruptedError: the Ray job failed; finished parts are kept, rerun with ``resume``.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    from core.captioning import model_family, resolve_model_spec

    spec = str(resolve_model_spec(model))
    if Path(spec).is_dir():
        spec = str(Path(spec).resolve())  # actors run in another working directory
    # Every option spelled out, the model family's defaults and prompt filled in (read from its
    # config.json): the CLI and the library name the same run the same way on resume.
    family = model_family(spec, trust_remote_code=trust_remote_code)
    options = family.options(generation).to_dict()  # bad options fail here, first
    job = CaptionJob(spec, dtype or "auto", batch_size, max_pixels, max_bytes, options, device,
                     trust_remote_code)
    return _run("caption", CaptionWorker, job, job.settings(), source, out_dir, address=address,
                pool=(concurrency, num_cpus_per_actor, num_gpus_per_actor), shard_size=shard_size,
                columns=columns, resume=resume, progress=progress)


def embed_to_parts(
    source: str | Path | ImageSource,
    out_dir: str | Path,
    *,
    checkpoint: str | Path,
    address: str | None = "auto",
    device: str | None = None,
    batch_size: int = 64,
    concurrency: int | None = None,
    num_cpus_per_actor: float | None = None,
    num_gpus_per_actor: float | None = None,
    shard_size: int = DEFAULT_SHARD_SIZE,
    columns: Columns | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    resume: bool = False,
    progress: bool = True,
) -> RunSummary:
    """Embed ``source`` with an SSL encoder on Ray into parts (key, path, embedding, error).

    Embeddings are unit-norm float32 rows, as ``core.search.embed_images`` makes them;
    :func:`core.distributed.read_embedding_parts` reads them back for an index. The other
    arguments, the return value and the errors are those of :func:`caption_to_parts`;
    ``checkpoint`` (an SSL run folder or ``.safetensors`` file) must be readable on every node.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    from core.ssl import load_encoder

    sha = load_encoder(checkpoint, device="cpu").sha256  # fails here, with its message, if unusable
    job = EmbedJob(str(Path(checkpoint).resolve()), sha, batch_size, max_pixels, max_bytes, device)
    return _run("embed", EmbedWorker, job, job.settings(), source, out_dir, address=address,
                pool=(concurrency, num_cpus_per_actor, num_gpus_per_actor), shard_size=shard_size,
                columns=columns, resume=resume, progress=progress)


def _run(task: str, worker: type, job: Any, settings: dict[str, Any], source: Any, out_dir: Any, *,
         address: str | None, pool: tuple, shard_size: int, columns: Columns | None, resume: bool,
         progress: bool) -> RunSummary:
    if not isinstance(source, ImageSource):
        source = open_source(source, shard_size=shard_size, columns=columns)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with _exclusive(out):
        return _plan_and_run(task, worker, job, settings, source, out, address=address, pool=pool,
                             resume=resume, progress=progress)


@contextlib.contextmanager
def _exclusive(out: Path) -> Iterator[None]:
    """One driver per output folder: a second one would write the same parts and manifest."""
    with open(out / ".lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            raise ConfigError(f"{out}: another run is writing to this folder right now; wait for it "
                              "or choose another output folder") from exc
        yield


def _plan_and_run(task: str, worker: type, job: Any, settings: dict[str, Any], source: ImageSource,
                  out: Path, *, address: str | None, pool: tuple, resume: bool,
                  progress: bool) -> RunSummary:
    manifest, todo = plan_resume(out, task, source, settings, resume=resume)
    skipped = len(source.shards) - len(todo)
    if not todo:
        manifest.complete = True
        manifest.save(out)
        summary = RunSummary(out, 0, 0, 0, skipped, 0.0, None, nothing_to_do=True)
        if progress:
            print(summary.line(), file=sys.stderr)
        return summary
    manifest.save(out)
    shards = [source.shards[i] for i in todo]
    total = sum(count_shard(s) for s in shards)
    start = time.perf_counter()
    with connect(address) as ray:
        connected = time.perf_counter()
        size = size_pool(ray.cluster_resources(), concurrency=pool[0], num_cpus=pool[1],
                         num_gpus=pool[2], device=getattr(job, "device", None))
        summary = _execute(worker, job, manifest, shards, size, out, total, progress, start)
    summary.parts_skipped = skipped
    summary.connect_s = connected - start
    if progress:
        print(summary.line(), file=sys.stderr)
    return summary


def _execute(worker: type, job: Any, manifest: Manifest, shards: list, size: PoolSize,
             out: Path, total: int, progress: bool, start: float) -> RunSummary:
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # the driver's own bar counts images, not blocks
    ctx.print_on_execution_start = False
    items = [{"shard": s.to_json()} for s in shards]
    ds = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
        worker, fn_constructor_args=(job, manifest.digest), batch_size=1, batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=size.concurrency),
        num_cpus=size.num_cpus, num_gpus=size.num_gpus or None,
    )
    by_index = {s.index: s for s in shards}
    images = errors = written = 0
    first_ready: float | None = None
    submitted = time.time()
    bar = tqdm(total=total, unit="img", desc=f"{manifest.task} (ray)", disable=not progress,
               file=sys.stderr, dynamic_ncols=True)
    try:
        for row in ds.iter_rows():
            shard = by_index[int(row["index"])]
            data = bytes(row["part"])
            write_part(out, shard.index, data)
            manifest.record(shard.index, shard.fingerprint, int(row["rows"]), int(row["errors"]),
                            sha256_bytes(data))
            manifest.add_provenance(json.loads(row["info"]))
            manifest.save(out)
            images, errors, written = images + int(row["rows"]), errors + int(row["errors"]), written + 1
            ready = float(row["ready_at"])
            first_ready = ready if first_ready is None else min(first_ready, ready)
            bar.update(int(row["rows"]))
            bar.set_postfix(errors=errors, parts=f"{written}/{len(shards)}")
    except Exception as exc:  # a Ray job failure (lost node past retries, actor crash): process boundary
        left = len(shards) - written
        raise RunInterruptedError(
            f"the Ray job stopped after {written} of {len(shards)} parts ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); the {written} finished parts in {out} are "
            f"kept: rerun with --resume (resume=True) to do the other {left}"
        ) from exc
    finally:
        bar.close()
    manifest.complete = len(manifest.parts) == manifest.shards
    manifest.save(out)
    startup = max(0.0, first_ready - submitted) if first_ready is not None else None
    return RunSummary(out, images, errors, written, 0, time.perf_counter() - start, startup)
