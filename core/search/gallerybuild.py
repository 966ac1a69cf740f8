"""Embed a gallery chunk by chunk: records, paths or a batch source's items, captions optional.

What ``EmbeddingIndex.build`` runs. A batch source (``core.datasets.open_source``: a folder, a
text file of paths, webdataset tar shards, parquet) is read item by item through the readers of
``core.datasets`` (the ones ``img2text caption`` and the Ray path use) and embedded
:data:`CHUNK` items at a time, so only one chunk's encoded bytes are held. An item its reader
could not read becomes a skipped entry naming its key. Tar members and byte rows have no file:
their recorded path is their key. ``caption_images`` (a captioner wrapped by the caller, e.g.
``img2text ssl embed --caption``) captions each chunk's readable images while they are at hand.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from core.errors import DatasetError, InvalidImageError
from core.fileio import sha256_bytes, sha256_file
from core.images import ImageInput
from core.search.embed import OnError, embed_images
from core.search.encoder import EncoderLike
from core.search.result_images import tar_source

CHUNK = 1024  # items embedded (and captioned) at a time; bounds the encoded bytes held
_PROGRESS_MIN_ITEMS = 256  # as core.search.embed: no bar for small galleries unless asked

#: Captions for a list of images (paths or encoded bytes), one per image; None when it failed.
CaptionImages = Callable[[Sequence[ImageInput]], Sequence[str | None]]


@dataclass
class EmbeddedGallery:
    """What :func:`embed_gallery` kept and skipped."""

    embeddings: torch.Tensor  # unit rows of the kept items, in order. Shape: (N_kept, D)
    items: list[dict[str, Any]]  # kept items: image_id, path, captions, categories
    skipped: list[dict[str, str]]  # {"path", "reason"} per item that could not be embedded


def source_entries(source: Any) -> Iterator[dict[str, Any]]:
    """Gallery entries of an ``ImageSource``, read lazily (id = the item's key; a tar member
    records its shard as ``source``, see :func:`core.search.result_image`)."""
    from core.datasets import iter_shard

    for shard in source.shards:
        for item in iter_shard(shard):
            yield {"image_id": item.key, "path": Path(item.path or item.key), "image": item.image,
                   "error": item.error, "captions": [], "categories": [],
                   "source": tar_source(item.path, shard.location if shard.kind == "tar" else None)}


def source_size(source: Any) -> int:
    """How many items a source yields (tar: member headers; parquet: metadata), for the bar."""
    from core.datasets.shards import count_shard

    return sum(count_shard(shard) for shard in source.shards)


def embed_gallery(
    encoder: EncoderLike,
    entries: Iterable[dict[str, Any]],
    *,
    total: int,
    batch_size: int,
    device: str | torch.device | None,
    on_error: OnError,
    progress: bool | None,
    caption_images: CaptionImages | None = None,
    desc: str = "indexing",
) -> EmbeddedGallery:
    """Embed ``entries`` (dicts with ``image_id``, ``path``, ``captions``, ``categories`` and
    optionally ``image``, what to decode, and ``error``) :data:`CHUNK` at a time.

    Raises:
        ValueError: nothing could be embedded.
        InvalidImageError: an item failed and ``on_error="raise"``.
    """
    show = total >= _PROGRESS_MIN_ITEMS if progress is None else progress
    blocks: list[torch.Tensor] = []
    kept: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    seen = 0
    with tqdm(total=total, desc=desc, unit="img", disable=not show, file=sys.stderr) as bar:
        for chunk in _chunks(entries, CHUNK):
            seen += len(chunk)
            readable = _readable(chunk, on_error, skipped)
            if readable:
                images = [it.get("image", it["path"]) for it in readable]
                result = embed_images(encoder, images, batch_size=batch_size, device=device,
                                      on_error=on_error, progress=False, allow_empty=True)
                done = [readable[i] for i in result.kept]
                skipped += [_failure(readable[i], why) for i, why in result.failures]
                if caption_images is not None and done:
                    _add_captions(done, caption_images([images[i] for i in result.kept]))
                for it in done:
                    it["sha256"] = content_hash(it.get("image", it["path"]))
                    it.pop("image", None)  # the encoded bytes are not kept past their chunk
                    it.pop("error", None)
                kept += done
                if len(done):
                    blocks.append(result.embeddings)
            bar.update(len(chunk))
    if not kept:
        what = f"all {seen} images failed to load" if seen else "no images given"
        detail = f" (first: {skipped[0]['reason']})" if skipped else ""
        raise DatasetError(f"nothing to embed: {what}{detail}")
    return EmbeddedGallery(torch.cat(blocks), kept, skipped)


def content_hash(image: Any) -> str | None:
    """sha256 of an item's encoded bytes (its file's, for a path), so that a query with the same
    bytes is known to be this image whatever the source; None when there are no bytes to hash."""
    try:
        if isinstance(image, (bytes, bytearray, memoryview)):
            return sha256_bytes(bytes(image))
        if isinstance(image, (str, Path)) and Path(image).is_file():
            return sha256_file(Path(image))
    except OSError:
        return None
    return None


def _chunks(entries: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    it = iter(entries)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


def _readable(chunk: list[dict[str, Any]], on_error: OnError, skipped: list[dict[str, str]]) -> list[dict[str, Any]]:
    """The entries whose reader succeeded; the others are skipped (or raised)."""
    out = []
    for it in chunk:
        if it.get("error") is None:
            out.append(it)
        elif on_error == "raise":
            raise InvalidImageError(str(it["image_id"]), str(it["error"]))
        else:
            skipped.append({"path": str(it["path"]), "reason": f"{it['image_id']}: {it['error']}"})
    return out


def _failure(item: dict[str, Any], why: str) -> dict[str, str]:
    """A skipped entry; a batch source's item is named by its key (tar members and byte rows
    have no path to name, and a parquet row's key is how its table knows it)."""
    key = str(item["image_id"])
    reason = f"{key}: {why}" if "image" in item and not why.startswith(key) else why
    return {"path": str(item["path"]), "reason": reason}


def _add_captions(items: list[dict[str, Any]], captions: Sequence[str | None]) -> None:
    if len(captions) != len(items):
        raise ValueError(f"the captioner returned {len(captions)} captions for {len(items)} images")
    for it, caption in zip(items, captions, strict=True):
        if caption and caption not in it["captions"]:
            it["captions"] = [*it["captions"], caption]
            it["generated"] = [*it.get("generated", []), caption]
