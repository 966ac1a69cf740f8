"""A Ray caption run's parquet parts as webdataset tar shards (``--ray ... --format webdataset``).

The Ray run writes ``OUT_DIR/parts/part-NNNNN.parquet`` as usual (resumable, one per shard);
then the driver turns each finished part into ``OUT_DIR/shard-NNNNN.tar`` (same number), reading
each input's original bytes again from the source and pairing them with the part's rows by key.
``OUT_DIR/webdataset.json`` records, per shard, the sha256 of the part it was made from and the
trigger words, so a rerun only makes the shards whose part is new or changed, and refuses other
``--prefix``/``--suffix`` than the shards were written with.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from core.captioning import Sample, image_extension, shard_name, write_shard
from core.datasets import Columns, iter_shard, open_source
from core.distributed.manifest import Manifest
from core.distributed.parts import part_name
from core.errors import ConfigError, DatasetError
from core.fileio import atomic_write_json

INDEX_NAME = "webdataset.json"


def _load_index(out_dir: Path, triggers: dict[str, str]) -> dict[str, Any]:
    path = out_dir / INDEX_NAME
    if not path.is_file():
        return {**triggers, "shards": {}}
    index = json.loads(path.read_text(encoding="utf-8"))
    diffs = [f"{k}: {index.get(k, '')!r} before, {v!r} now" for k, v in triggers.items()
             if index.get(k, "") != v]
    if diffs:
        raise ConfigError(f"{out_dir}: its shards were written with other trigger words ("
                          + "; ".join(diffs) + "); repeat them, or write to another folder")
    return index


def parts_to_shards(parts_dir: str | Path, out_dir: str | Path, triggers: dict[str, str]) -> int:
    """Write a tar shard for every finished part that has none (or an outdated one).

    Args:
        parts_dir: the Ray run's output folder (parts and ``manifest.json``).
        out_dir: where the shards go.
        triggers: ``{"prefix": ..., "suffix": ...}`` put around every caption.

    Returns:
        The number of shards written by this call.

    Raises:
        DatasetError: no manifest, or the source no longer holds what a part was made from.
        ConfigError: other trigger words than the shards already there.
    """
    import pyarrow.parquet as pq

    parts_dir, out_dir = Path(parts_dir), Path(out_dir)
    manifest = Manifest.load(parts_dir)
    if manifest is None:
        raise DatasetError(f"{parts_dir}: no manifest.json; run the caption job first")
    index = _load_index(out_dir, triggers)
    desc = manifest.source
    source = open_source(desc["location"], kind=desc["kind"], shard_size=desc["shard_size"],
                         columns=Columns(**desc["columns"]) if "columns" in desc else None)
    info = {"model": manifest.provenance[0].get("model") if manifest.provenance else manifest.settings.get("model"),
            "prompt": manifest.settings.get("generation", {}).get("prompt")}
    written = 0
    for shard in source.shards:
        entry = manifest.parts.get(part_name(shard.index))
        name = shard_name(shard.index)
        if entry is None or (index["shards"].get(name) == entry["sha256"] and (out_dir / name).is_file()):
            continue
        if entry["fingerprint"] != shard.fingerprint:
            raise DatasetError(f"{desc['location']}: shard {shard.index} changed since its part was "
                               "written; caption it again into a new folder")
        rows = pq.read_table(parts_dir / part_name(shard.index)).to_pylist()
        samples = _samples(shard, rows, triggers)
        write_shard(out_dir / name, shard.index, samples, info)
        index["shards"][name] = entry["sha256"]
        atomic_write_json(out_dir / INDEX_NAME, index)
        written += 1
    return written


def _samples(shard: Any, rows: list[dict[str, Any]], triggers: dict[str, str]) -> list[Sample]:
    samples = []
    for item, row in zip(iter_shard(shard), rows, strict=True):
        if item.key != row["key"]:
            raise DatasetError(f"shard {shard.index}: item {item.key!r} where its part has {row['key']!r}; "
                               "the source changed: caption it again into a new folder")
        source = row["path"] or row["key"]
        if row["error"] is not None or item.image is None:
            samples.append(Sample(source, "", row["error"] or item.error))
            continue
        try:
            data = Path(item.image).read_bytes() if isinstance(item.image, str) else item.image
        except OSError as exc:
            samples.append(Sample(source, "", f"cannot read it again: {exc}"))
            continue
        caption = f"{triggers.get('prefix', '')}{row['caption']}{triggers.get('suffix', '')}"
        name = item.image if isinstance(item.image, str) else None
        samples.append(Sample(source, caption, None, data, image_extension(data, name)))
    return samples
