"""What every data source returns: image records, a data set description, and its errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from core.errors import DatasetNotFoundError

__all__ = ["DatasetInfo", "DatasetNotFoundError", "ImageRecord"]  # the error lives in core.errors


@dataclass
class ImageRecord:
    """One image of a data set and its labels (empty lists when unlabelled)."""

    image_id: int | str  # COCO image id, or the path relative to the folder for a plain folder
    path: Path  # the image file
    captions: list[str] = field(default_factory=list)  # reference captions, in file order
    categories: list[int] = field(default_factory=list)  # COCO category ids of its instances


@dataclass
class DatasetInfo:
    """What :func:`core.datasets.find_dataset` found."""

    layout: str  # "tiny_coco" | "notebook" | "folder"
    root: Path  # the data folder that was searched
    split: str | None  # the split read (None for a plain folder)
    records: list[ImageRecord]  # sorted by image id (by path for a folder)
    category_names: dict[int, str] = field(default_factory=dict)  # COCO category id -> name
