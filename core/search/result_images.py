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
    path, source = Path(str(fields["path"])), fields.get("source")
    try:
        if path.is_file():
            return load_image(path, max_pixels=max_pixels, max_bytes=max_bytes)
        if not _is_tar(source) or not Path(str(source)).is_file():
            return None
        item = find_tar_item(str(source), str(fields["image_id"]), max_bytes=max_bytes)
        if item is None or item.image is None:
            return None
        return load_image(item.image, max_pixels=max_pixels, max_bytes=max_bytes)
    except (InvalidImageError, DatasetError, OSError):
        return None


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
