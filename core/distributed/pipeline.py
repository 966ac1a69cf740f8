"""The Ray Data part of a run: one actor per model, one row per shard, parts written as they come.

``core.distributed.runner`` plans the run (shards, resume, the pool's size) and calls
:func:`execute`, which streams each shard's part back to the driver, writes it atomically,
records it in the manifest and shows the progress; :class:`RunSummary` is what the run did.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from core.distributed.cluster import PoolSize
from core.distributed.console import project_stderr
from core.distributed.manifest import Manifest
from core.distributed.parts import write_part
from core.errors import Img2TextError
from core.fileio import sha256_bytes


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


def kept_line(manifest: Manifest, out: Path) -> str:
    """``N of M parts kept in OUT; rerun with --resume``."""
    return (f"{len(manifest.parts)} of {manifest.shards} parts kept in {out}; rerun with --resume "
            "(resume=True) to do the rest")



def execute(worker: type, job: Any, manifest: Manifest, shards: list, size: PoolSize,
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
               file=project_stderr(), dynamic_ncols=True)
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
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0]}" if str(exc) else type(exc).__name__
        raise RunInterruptedError(f"the Ray job stopped ({reason}): {kept_line(manifest, out)}") from exc
    finally:
        bar.close()
    manifest.complete = len(manifest.parts) == manifest.shards
    manifest.save(out)
    startup = max(0.0, first_ready - submitted) if first_ready is not None else None
    return RunSummary(out, images, errors, written, 0, time.perf_counter() - start, startup)
