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
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.datasets.shards import count_shard
from core.datasets.sources import DEFAULT_SHARD_SIZE, Columns, ImageSource, open_source
from core.distributed.cluster import (
    DEFAULT_CONNECT_TIMEOUT_S,
    LOST_AFTER_S,
    connect,
    size_pool,
    watch_cluster,
)
from core.distributed.console import project_stderr, ray_log_note
from core.distributed.manifest import Manifest, plan_resume, remove_run_files
from core.distributed.pipeline import RunSummary, execute, kept_line
from core.distributed.workers import CaptionJob, CaptionWorker, EmbedJob, EmbedWorker
from core.errors import ConfigError
from core.images import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS

EXIT_CLUSTER_LOST = 2  # the CLI's setup-error status (core.cli.EXIT_ERROR)


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
    overwrite: bool = False,
    progress: bool = True,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S,
    verbose: bool = False,
    trust_remote_code: bool = False,
    **generation: Any,
) -> RunSummary:
    """Caption ``source`` on Ray into ``out_dir/part-NNNNN.parquet`` (key, path, caption, error).

    Args:
        source: a folder, list file, tar pattern or parquet file/folder (see
            ``core.datasets.open_source``), or an already planned ``ImageSource``.
        out_dir: the output folder (created); holds the parts and ``manifest.json``.
        address: ``"auto"``, ``"local"`` or ``"host:port"`` (see ``connect``).
        model, dtype, device: as for ``core.get_captioner``; the model must be readable on every node.
        batch_size: images per forward pass inside an actor.
        concurrency, num_cpus_per_actor, num_gpus_per_actor: the actor pool (see ``size_pool``).
        shard_size: images per shard of folder and list sources.
        columns: column names of a parquet source.
        max_pixels, max_bytes: caps applied to every image.
        resume: continue an unfinished run in ``out_dir`` (same settings only).
        overwrite: start over: remove what an earlier run wrote in ``out_dir`` (its parts, listed in
            its manifest or carrying the parts' metadata, temporary parts and the manifest; nothing
            else) once connected.
        progress: show a progress bar and print the summary line on stderr.
        connect_timeout: seconds to wait for the cluster at ``address`` to answer; nothing is
            created in ``out_dir`` before it has.
        verbose: let Ray's own output through (else it goes to a log file, named if the run fails).
        trust_remote_code: let the checkpoint run its own model code (as for ``core.Captioner``).
        **generation: options of ``core.GenerationOptions``.

    Returns:
        The :class:`RunSummary`.

    Raises:
        ConfigError: bad settings, another run's output in ``out_dir``, or no cluster at ``address``.
        DatasetError: the source is missing or matches nothing.
        RunInterruptedError: the Ray job failed; finished parts are kept, rerun with ``resume``.

    If the whole cluster stops answering mid-run, the process ends with status 2 after saying how
    many parts are kept (Ray would end it itself a little later, with status 1).
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
                columns=columns, run=_Run(resume, overwrite, progress, connect_timeout, verbose))


def embed_to_parts(
    source: str | Path | ImageSource,
    out_dir: str | Path,
    *,
    checkpoint: str | Path | None = None,
    encoder: str | None = None,
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
    overwrite: bool = False,
    progress: bool = True,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S,
    verbose: bool = False,
    encoder_dtype: str = "auto",
) -> RunSummary:
    """Embed ``source`` with an SSL encoder on Ray into parts (key, path, embedding, error).

    Embeddings are unit-norm float32 rows, as ``core.search.embed_images`` makes them;
    :func:`core.distributed.read_embedding_parts` reads them back for an index. The other
    arguments, the return value and the errors are those of :func:`caption_to_parts`;
    ``checkpoint`` (an SSL run folder or ``.safetensors`` file) must be readable on every node;
    or ``encoder``, a pretrained encoder (hub id, pinned here to the commit the driver resolved,
    or a folder every node can read; see :func:`core.search.load_pretrained`); ``encoder_dtype``
    its dtype on each actor (``"int8"``: CPU actors, :mod:`core.search.int8_encoder`).
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    from core.search import load_index_encoder

    # fails here, with its message, if unusable
    loaded = load_index_encoder(checkpoint, pretrained=encoder, device="cpu")  # float32: the sha256 is the same
    if encoder_dtype == "int8":
        _check_int8_actors(encoder, device, num_gpus_per_actor)
    if encoder is not None:
        record = loaded.record
        spec = (f"{record['id']}@{record['revision']}" if record.get("revision")
                else str(Path(encoder).resolve()))
        job = EmbedJob("", loaded.sha256, batch_size, max_pixels, max_bytes, device, encoder=spec,
                       encoder_dtype=encoder_dtype)
    else:
        job = EmbedJob(str(Path(str(checkpoint)).resolve()), loaded.sha256, batch_size, max_pixels,
                       max_bytes, device)
    return _run("embed", EmbedWorker, job, job.settings(), source, out_dir, address=address,
                pool=(concurrency, num_cpus_per_actor, num_gpus_per_actor), shard_size=shard_size,
                columns=columns, run=_Run(resume, overwrite, progress, connect_timeout, verbose))


def _check_int8_actors(encoder: str | None, device: str | None, num_gpus_per_actor: float | None) -> None:
    """int8 is for pretrained encoders on CPU actors."""
    if encoder is None:
        raise ConfigError("encoder dtype int8 is for pretrained encoders (--encoder ID); an SSL run's "
                          "encoder runs in float32: leave out --encoder-dtype")
    if device not in (None, "auto", "cpu") or num_gpus_per_actor:
        raise ConfigError("encoder dtype int8 runs on CPU actors: leave out --device and "
                          "--num-gpus-per-actor (GPU actors embed in bfloat16 with dtype auto)")


@dataclass(frozen=True)
class _Run:
    """How a run treats its output folder, the connection and the terminal."""

    resume: bool
    overwrite: bool
    progress: bool
    connect_timeout: float
    verbose: bool


def resolve_location(source: str | Path) -> str:
    """The source as an absolute path (``~`` expanded, links resolved, patterns kept): the same
    shards typed relative, absolute or from another directory are the same run on resume."""
    return str(Path(os.path.expanduser(str(source))).resolve())


def _run(task: str, worker: type, job: Any, settings: dict[str, Any], source: Any, out_dir: Any, *,
         address: str | None, pool: tuple, shard_size: int, columns: Columns | None,
         run: _Run) -> RunSummary:
    if run.resume and run.overwrite:
        raise ConfigError("resume continues the run in the output folder, overwrite starts it over: "
                          "choose one")
    typed = str(source) if not isinstance(source, ImageSource) else source.location
    if not isinstance(source, ImageSource):
        source = open_source(resolve_location(source), shard_size=shard_size, columns=columns)
    out = Path(out_dir)
    start = time.perf_counter()
    with connect(address, timeout_s=run.connect_timeout, verbose=run.verbose) as ray:
        connected = time.perf_counter()  # nothing in OUT before this: an unreachable address leaves no trace
        out.mkdir(parents=True, exist_ok=True)
        with _exclusive(out):
            if run.overwrite:
                remove_run_files(out)
            summary = _plan_and_run(task, worker, job, settings, source, out, ray=ray, pool=pool,
                                    resume=run.resume, progress=run.progress, typed=typed,
                                    start=start, address=address)
    summary.connect_s = connected - start
    if run.progress:
        print(summary.line(), file=sys.stderr)
    return summary


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
                  out: Path, *, ray: Any, pool: tuple, resume: bool, progress: bool, typed: str,
                  start: float, address: str | None) -> RunSummary:
    manifest, todo = plan_resume(out, task, source, settings, resume=resume, typed=typed)
    skipped = len(source.shards) - len(todo)
    if not todo:
        manifest.complete = True
        manifest.save(out)
        return RunSummary(out, 0, 0, 0, skipped, 0.0, None, nothing_to_do=True)
    manifest.save(out)
    shards = [source.shards[i] for i in todo]
    total = sum(count_shard(s) for s in shards)
    size = size_pool(ray.cluster_resources(), concurrency=pool[0], num_cpus=pool[1],
                     num_gpus=pool[2], device=getattr(job, "device", None))
    with watch_cluster(ray, lambda: _cluster_lost(address, manifest, out)):
        summary = execute(worker, job, manifest, shards, size, out, total, progress, start)
    summary.parts_skipped = skipped
    return summary


def _cluster_lost(address: str | None, manifest: Manifest, out: Path) -> None:
    """The whole cluster is gone: say what is kept and end with the setup-error status now,
    before Ray ends the process itself (status 1, after its own pages of log)."""
    stream = project_stderr()
    stream.write(f"\nimg2text: error: the Ray cluster at {address or 'auto'} stopped answering "
                 f"(no answer for {LOST_AFTER_S:g} s): {kept_line(manifest, out)}{ray_log_note()}\n")
    stream.flush()
    os._exit(EXIT_CLUSTER_LOST)
