"""Find a data set on disk: Tiny COCO, the original notebook's layout, or a plain image folder.

Layouts, tried in this order (``S`` is the split, e.g. ``train2017``; see
:mod:`core.datasets.coco` for the annotated ones):

* ``tiny_coco``: ``DIR/annotations/instances_S.json`` + ``DIR/S/``.
* ``notebook``: ``DIR/[tiny_coco_dataset-master/]annotations/instances.json`` + ``.../images/S/``.
* ``folder``: every image file under DIR, recursively, without labels
  (``image_id`` = path relative to DIR).
"""

from __future__ import annotations

import os
from pathlib import Path

from core.datasets.base import DatasetInfo, DatasetNotFoundError
from core.datasets.coco import caption_layout, coco_layouts, coco_records
from core.datasets.folders import folder_dataset
from core.images import IMAGE_EXTENSIONS


def find_dataset(data_dir: str | os.PathLike, split: str = "train2017", *, strict: bool = False) -> DatasetInfo:
    """Detect the layout of ``data_dir`` and list its images with their labels.

    Args:
        data_dir: the data folder (see the module docstring for the layouts).
        split: split folder name for the annotated layouts (ignored for a plain folder).
        strict: raise instead of warning when annotations name image files that are absent.

    Returns:
        A :class:`DatasetInfo` with records sorted by image id (by path for a folder).

    Raises:
        DatasetNotFoundError: ``data_dir`` is missing or not a folder, nothing matched (the
            message lists every path looked for), or (``strict``) annotated images are missing.
            It is a ``FileNotFoundError`` too.
        DatasetError: an annotation file is not valid COCO JSON (the message names it).
    """
    root = Path(data_dir).expanduser()
    if not root.exists():
        raise DatasetNotFoundError(f"data folder not found: {root}")
    if not root.is_dir():
        raise DatasetNotFoundError(f"data path is not a folder: {root}")
    looked: list[str] = []
    partial = False
    for layout in coco_layouts(root, split):
        if layout.present():
            records, names = coco_records(layout, strict=strict)
            return DatasetInfo(layout.name, root, split, records, names)
        partial = partial or layout.instances.is_file() or any(layout.instances.parent.glob("instances*.json"))
        for p, kind in ((layout.instances, "file"), (layout.images_dir, "folder")):
            state = "found" if p.exists() else "missing"
            looked.append(f"  [{layout.name}] {kind} {p} ({state})")
    # Half an annotated layout (e.g. a wrong --split) must not silently become "all images here".
    if not partial:
        info = folder_dataset(root)
        if info.records:
            return info
    exts = ", ".join(sorted(IMAGE_EXTENSIONS))
    looked.append(f"  [folder] image files ({exts}) anywhere under {root} (none)")
    raise DatasetNotFoundError(
        f"no data set found in {root} for split {split!r}; looked for:\n" + "\n".join(looked)
    )


def find_caption_images(data_dir: str | os.PathLike, split: str) -> tuple[list[Path], Path | None]:
    """The image files of ``split`` in ``data_dir`` and the caption annotations that go with them.

    For caption scoring. A COCO layout with caption annotations and an image folder for
    ``split`` (:func:`~core.datasets.caption_layout`; instance annotations are not needed) gives
    every image file in that folder and its captions file. Otherwise :func:`find_dataset`
    decides: an annotated layout without captions, or a plain image folder (captions: None).

    Args:
        data_dir: the data folder.
        split: split folder name for the annotated layouts (ignored for a plain folder).

    Returns:
        ``(image files sorted by path, the COCO captions file or None)``.

    Raises:
        DatasetNotFoundError: nothing found (the message lists what was looked for), or caption
            annotations that are not for ``split`` or lack its image folder (a wrong split must
            not silently become every image under ``data_dir``).
    """
    root = Path(data_dir).expanduser()
    layout = caption_layout(root, split)
    if layout is not None:
        return [r.path for r in folder_dataset(layout.images_dir).records], layout.captions
    layouts = coco_layouts(root, split)
    if any(next(lay.captions.parent.glob("captions*.json"), None) for lay in layouts):
        looked = [f"  [{lay.name}] {kind} {p} ({'found' if p.exists() else 'missing'})"
                  for lay in layouts for p, kind in ((lay.captions, "file"), (lay.images_dir, "folder"))]
        raise DatasetNotFoundError(f"{root}: caption annotations found, but not with an image folder for split "
                                   f"{split!r}; check --split. Looked for:\n" + "\n".join(looked))
    return [r.path for r in find_dataset(root, split).records], None


def sibling_split(split: str | None) -> str | None:
    """The held-out split paired with ``split`` (train2017 <-> val2017), or None."""
    if not split:
        return None
    if "train" in split:
        return split.replace("train", "val")
    if "val" in split:
        return split.replace("val", "train")
    return None
