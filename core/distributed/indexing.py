"""An ``EmbeddingIndex`` from a finished embedding run's parts, without re-encoding.

``img2text ssl embed SOURCE --ray ADDRESS -o OUT`` ends here: the index is written into ``OUT``
itself (``index.json`` and its data files next to ``manifest.json`` and the parts), so
``img2text ssl search --index OUT`` works as on a local index. The build streams the parts
(``core.search.streaming.build_from_parts``), records the encoder (so image queries can be
embedded), and joins captions from an ``img2text caption`` output file and/or the parts of a
caption run over the same source (by key). A rebuild with the same parts and settings is
skipped: the manifest's ``build`` entry records what the index was made from.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.datasets import open_source
from core.distributed.manifest import Manifest
from core.distributed.parts import part_files, read_parts
from core.distributed.runner import _exclusive
from core.errors import CheckpointError, ConfigError, DatasetError

CAPTIONS_DIR = "captions"  # OUT/captions: the caption run of `ssl embed --ray --caption`


@dataclass
class IndexBuild:
    """What :func:`build_index` did."""

    folder: Path  # the index folder
    built: bool  # False when the index there was already made from these parts and settings
    index: Any  # the EmbeddingIndex, loaded with memory-mapped vectors


def caption_parts(folder: str | os.PathLike) -> dict[str, str]:
    """``{key: caption}`` of a finished caption run's parts (error rows left out).

    Raises:
        ConfigError: not a finished caption run.
    """
    manifest = Manifest.load(folder)
    if manifest is None or manifest.task != "caption" or not manifest.complete:
        raise ConfigError(f"{folder}: not a finished caption run (img2text caption SOURCE --ray ... "
                          "-o DIR --format parquet); finish it with --resume first")
    table = read_parts(folder)
    ok = table.filter(table["error"].is_null())
    return {str(k): str(c) for k, c in zip(ok["key"].to_pylist(), ok["caption"].to_pylist(), strict=True) if c}


def build_index(
    out_dir: str | os.PathLike,
    *,
    checkpoint: str | os.PathLike | None = None,
    encoder: str | None = None,
    kind: str = "auto",
    memory_budget: str | int | None = None,
    target_recall: float = 0.95,
    captions_file: str | os.PathLike | None = None,
    captions_dir: str | os.PathLike | None = None,
    index_dir: str | os.PathLike | None = None,
) -> IndexBuild:
    """Build (or keep, when up to date) the index of a finished embedding run in ``out_dir``.

    Args:
        out_dir: the ``-o`` folder of ``embed_to_parts`` / ``img2text ssl embed --ray``.
        checkpoint: the encoder of the run (its weights' sha256 must match the run's).
        encoder: or the run's pretrained encoder (hub id or folder), instead of ``checkpoint``.
        kind, memory_budget, target_recall: as for ``EmbeddingIndex.from_arrays``.
        captions_file: an ``img2text caption`` output (jsonl, csv, text), joined by path.
        captions_dir: a finished caption run over the same source, joined by key.
        index_dir: where to write the index; ``None`` means ``out_dir``.

    Raises:
        ConfigError: not a finished embedding run, or bad index settings.
        CheckpointError: ``checkpoint`` is not the encoder the run used.
    """
    from core.search import EmbeddingIndex, IndexFormatError, load_index_encoder
    from core.search.captionfile import read_caption_file
    from core.search.streaming import build_from_parts

    out = Path(out_dir)
    manifest = Manifest.load(out)
    if manifest is None or manifest.task != "embed" or not part_files(out):
        raise ConfigError(f"{out}: not the output folder of an embedding run (no manifest.json of an "
                          "embed run with parts); run img2text ssl embed SOURCE --ray ADDRESS -o DIR")
    if not manifest.complete:
        raise ConfigError(f"{out}: the embedding run is unfinished ({len(manifest.parts)} of "
                          f"{manifest.shards} parts); finish it with --resume, then index it")
    loaded = load_index_encoder(checkpoint, pretrained=encoder, device="cpu")
    if loaded.sha256 != manifest.settings.get("sha256"):
        raise CheckpointError(f"{encoder or checkpoint}: weights sha256 {loaded.sha256[:12]}... but the run in {out} "
                              f"was embedded with {str(manifest.settings.get('sha256'))[:12]}...; pass "
                              "the run's checkpoint")
    if manifest.settings.get("encoder_dtype") == "int8":  # the index records how its vectors were made
        loaded.preprocessing["precision"] = "int8"  # (the float32 encoder here searches it)
    captions: dict[str, str] = {}
    if captions_file is not None:
        captions.update(read_caption_file(Path(captions_file)))
    if captions_dir is not None:
        captions.update(caption_parts(captions_dir))
    record = _build_record(manifest, kind, memory_budget, target_recall, captions)
    folder = Path(index_dir) if index_dir is not None else out
    with _exclusive(out):
        if _recorded_build(folder) == record:
            try:
                return IndexBuild(folder, False, EmbeddingIndex.load(folder, mmap=True))
            except IndexFormatError:
                pass  # damaged since: build it again
        build_from_parts(out, folder, encoder=loaded, kind=kind, memory_budget=memory_budget,
                         target_recall=target_recall, captions=captions, build=record,
                         shard_files=_shard_files(manifest))
    return IndexBuild(folder, True, EmbeddingIndex.load(folder, mmap=True, verify=False))


def _shard_files(manifest: Manifest) -> dict[str, str]:
    """Part name -> the tar shard it was made from (runs over tar shards; else, or when the
    shards can no longer be listed, empty: the index then shows no pictures for those rows)."""
    if manifest.source.get("kind") != "tar":
        return {}
    try:
        shards = open_source(str(manifest.source["location"]), kind="tar").shards
    except (DatasetError, KeyError):
        return {}
    return {name: shards[int(entry["shard"])].location for name, entry in manifest.parts.items()
            if int(entry["shard"]) < len(shards)}


def _build_record(manifest: Manifest, kind: str, memory_budget: str | int | None,
                  target_recall: float, captions: Mapping[str, str]) -> dict[str, Any]:
    """What decides the index: the parts (by sha256), the index settings and the captions."""
    parts = sorted((name, entry["sha256"]) for name, entry in manifest.parts.items())
    blob = json.dumps(sorted(captions.items()), ensure_ascii=False).encode()
    return {"parts_sha256": hashlib.sha256(json.dumps(parts).encode()).hexdigest(),
            "kind": kind, "memory_budget": None if memory_budget is None else str(memory_budget),
            "target_recall": float(target_recall),
            "captions_sha256": hashlib.sha256(blob).hexdigest() if captions else None}


def _recorded_build(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / "index.json").read_text(encoding="utf-8")).get("build")
    except (OSError, ValueError, AttributeError):
        return None
