"""Caption and embed large sources on a Ray cluster: shards in, parquet parts out, resumable.

    >>> from core.distributed import caption_to_parts
    >>> caption_to_parts("shards/{00000..00099}.tar", "out/", address="auto")  # doctest: +SKIP

Built on Ray Data (``map_batches`` with one model per actor). Sources and shards are in
``core.datasets``; see ``docs/distributed.md``.
"""

from core.distributed.cluster import PoolSize, connect, size_pool
from core.distributed.indexing import CAPTIONS_DIR, IndexBuild, build_index, caption_parts
from core.distributed.manifest import MANIFEST_NAME, Manifest
from core.distributed.options import RayOptions
from core.distributed.parts import error_rows, part_name, read_embedding_parts, read_parts
from core.distributed.pipeline import RunInterruptedError, RunSummary
from core.distributed.runner import caption_to_parts, embed_to_parts
from core.distributed.webdataset_parts import parts_to_shards
from core.distributed.workers import CaptionJob, EmbedJob, caption_shard, embed_shard

__all__ = [
    "CAPTIONS_DIR",
    "IndexBuild",
    "build_index",
    "caption_parts",
    "MANIFEST_NAME",
    "CaptionJob",
    "EmbedJob",
    "Manifest",
    "PoolSize",
    "RayOptions",
    "RunInterruptedError",
    "RunSummary",
    "caption_shard",
    "caption_to_parts",
    "connect",
    "embed_shard",
    "embed_to_parts",
    "error_rows",
    "part_name",
    "parts_to_shards",
    "read_embedding_parts",
    "read_parts",
    "size_pool",
]
