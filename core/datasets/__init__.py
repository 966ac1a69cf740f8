"""Data sets on disk: COCO layouts (Tiny COCO, the notebook's), plain image folders, Tiny COCO download.

    >>> from core.datasets import find_dataset
    >>> info = find_dataset("data/tiny_coco", "val2017")     # doctest: +SKIP
    >>> info.layout, len(info.records)                        # doctest: +SKIP
    ('tiny_coco', 50)

One module per kind of source (:mod:`~core.datasets.coco`, :mod:`~core.datasets.folders`);
:func:`find_dataset` picks the one a folder holds. Every error is a :class:`core.DatasetError`.
Used by SSL training, image search and caption evaluation.
"""

from core.datasets.base import DatasetInfo, DatasetNotFoundError, ImageRecord
from core.datasets.captionsets import is_caption_set, read_caption_set
from core.datasets.coco import NOTEBOOK_ROOT, CocoLayout, caption_layout, coco_layouts, coco_records
from core.datasets.discover import find_caption_images, find_dataset, sibling_split
from core.datasets.folders import folder_dataset
from core.datasets.shards import SourceItem, find_tar_item, iter_shard, iter_source_items
from core.datasets.sources import (
    LIST_SUFFIXES,
    SOURCE_KINDS,
    Columns,
    ImageSource,
    Shard,
    open_source,
)
from core.datasets.tiny_coco import (
    EXPECTED_IMAGES,
    SPLITS,
    TINY_COCO_URL,
    describe_dataset,
    download,
    extract_zip,
    verify_tiny_coco,
)

__all__ = [
    "EXPECTED_IMAGES",
    "NOTEBOOK_ROOT",
    "SPLITS",
    "TINY_COCO_URL",
    "CocoLayout",
    "DatasetInfo",
    "DatasetNotFoundError",
    "ImageRecord",
    "caption_layout",
    "coco_layouts",
    "coco_records",
    "describe_dataset",
    "download",
    "extract_zip",
    "find_caption_images",
    "find_dataset",
    "folder_dataset",
    "is_caption_set",
    "read_caption_set",
    "sibling_split",
    "verify_tiny_coco",
    # batch sources (folders, path lists, webdataset tar shards, parquet), see core.datasets.sources
    "LIST_SUFFIXES",
    "SOURCE_KINDS",
    "Columns",
    "ImageSource",
    "Shard",
    "SourceItem",
    "find_tar_item",
    "iter_shard",
    "iter_source_items",
    "open_source",
]
