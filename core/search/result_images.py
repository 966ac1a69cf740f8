"""The picture of a search result: its file, or its member of a webdataset tar shard.

An index built from files records each image's path. An index built from webdataset tar
shards (``img2text ssl embed 'shards/{00000..00099}.tar'``, locally or with ``--ray``) has no
file per image: its rows record the shard (``SearchResult.source``) and the webdataset key (the
image id), and :func:`result_image` reads that one member back, headers only up to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from PIL import Image

from core.datasets import find_tar_item
from core.errors import DatasetError, InvalidImageError
from core.images import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, load_image

TAR_SUFFIX = ".tar"


def _is_tar(source: Any) -> bool:
    return bool(source) and str(source).lower().endswith(TAR_SUFFIX)


def tar_source(path: str | Path | None, source: str | None) -> str | None:
    """What a gallery row records as its ``source``: the tar shard (absolute) of an image that
    has no file of its own (``path`` is ``None``), else ``source`` unchanged."""
    if path is None and source and _is_tar(source):
        return str(Path(source).resolve())
    return source


def result_image(
    hit: Any, *, max_pixels: int = DEFAULT_MAX_PIXELS, max_bytes: int = DEFAULT_MAX_BYTES,
) -> Image.Image | None:
    """The image of a search result, decoded through ``core.load_image`` with the given caps.

    Args:
        hit: a ``SearchResult`` or its ``to_dict()`` form.

    Returns:
        The RGB image; ``None`` when it cannot be shown (the file or shard has moved since
        indexing, or the image is refused): a result without a picture, never an error.
    """
    fields = hit if isinstance(hit, Mapping) else hit.to_dict()
    path = Path(str(fields["path"]))
    try:
        if path.is_file():
            return load_image(path, max_pixels=max_pixels, max_bytes=max_bytes)
        data = _tar_member(fields, max_bytes)
        return None if data is None else load_image(data, max_pixels=max_pixels, max_bytes=max_bytes)
    except (InvalidImageError, DatasetError, OSError):
        return None


def result_bytes(hit: Any, *, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes | None:
    """The encoded bytes of a search result's image (its file, or its tar shard member), undecoded;
    ``None`` when they cannot be read (moved since indexing, over ``max_bytes``, no picture)."""
    fields = hit if isinstance(hit, Mapping) else hit.to_dict()
    path = Path(str(fields["path"]))
    try:
        if path.is_file():
            return path.read_bytes() if path.stat().st_size <= max_bytes else None
        return _tar_member(fields, max_bytes)
    except (DatasetError, OSError):
        return None


def _tar_member(fields: Mapping[str, Any], max_bytes: int) -> bytes | None:
    """The bytes of a tar-member row's image (headers read only up to it), else None.

    Raises:
        DatasetError: the shard cannot be read.
    """
    source = fields.get("source")
    if not _is_tar(source) or not Path(str(source)).is_file():
        return None
    item = find_tar_item(str(source), str(fields["image_id"]), max_bytes=max_bytes)
    return None if item is None or not isinstance(item.image, bytes) else item.image


def gallery_entry(index: Any, image_id: Any) -> dict[str, Any]:
    """``path``, ``image_id`` and ``source`` of gallery image ``image_id`` of ``index``: a result's
    fields, as :func:`result_image` (and the apps' ``core.workflows.hit_picture``) take them.

    Raises:
        QueryError: ``image_id`` is not in the index.
    """
    row = index.row_of_id(image_id)
    return {"path": str(index.paths[row]), "image_id": index.image_ids[row], "source": index.sources[row]}


def gallery_image(index: Any, image_id: Any, **caps: int) -> Image.Image | None:
    """The image of gallery image ``image_id`` of ``index`` (its file or its tar member), or None.

    Raises:
        QueryError: ``image_id`` is not in the index.
    """
    return result_image(gallery_entry(index, image_id), **caps)
