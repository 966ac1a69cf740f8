"""``RayOptions``: the settings of a Ray run that are not model settings (CLI flags come from it).

Torch-free on purpose: ``img2text caption --help`` builds its parser from these fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.datasets.sources import DEFAULT_SHARD_SIZE, Columns
from core.distributed.cluster import DEFAULT_CONNECT_TIMEOUT_S


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide a Ray run goes; each field's help text is its CLI flag's help."""

    ray: str | None = field(default=None, metadata={
        "help": "run on a Ray cluster: auto (the running one), local (start one for this run), "
                "or HOST:PORT of the head (not ray:// Ray Client addresses); writes OUT_DIR/part-NNNNN.parquet and manifest.json"})
    ray_connect_timeout: float = field(default=DEFAULT_CONNECT_TIMEOUT_S, metadata={
        "help": "seconds to wait for the cluster at --ray to answer before giving up (exit 2); "
                "nothing is written to the output folder before it has"})
    concurrency: int | None = field(default=None, metadata={
        "help": "actors in the pool; none: one per GPU, or on CPU nodes the CPUs less one per 8"})
    num_gpus_per_actor: float | None = field(default=None, metadata={
        "help": "GPUs each actor reserves; none: 1 on a cluster with GPUs, else 0"})
    num_cpus_per_actor: float | None = field(default=None, metadata={
        "help": "CPUs each actor reserves; none: 1"})
    shard_size: int = field(default=DEFAULT_SHARD_SIZE, metadata={
        "help": "images per shard (one part file each) of a folder or list source; tar and parquet "
                "sources have one shard per file; --format webdataset: samples per tar shard"})
    path_column: str = field(default="path", metadata={"help": "parquet sources: the image path column"})
    image_column: str = field(default="image", metadata={"help": "parquet sources: the image bytes column"})
    key_column: str = field(default="key", metadata={"help": "parquet sources: the key column"})

    def run_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``caption_to_parts`` / ``embed_to_parts`` (``verbose`` comes from
        the every-command ``--verbose`` flag)."""
        return {"address": self.ray, "connect_timeout": self.ray_connect_timeout,
                "concurrency": self.concurrency,
                "num_gpus_per_actor": self.num_gpus_per_actor,
                "num_cpus_per_actor": self.num_cpus_per_actor, "shard_size": self.shard_size,
                "columns": Columns(self.path_column, self.image_column, self.key_column)}
