"""Find a training set on disk: Tiny COCO, the original notebook's layout, or a plain image folder.

Layouts, tried in this order (``S`` is the split, e.g. ``train2017``):

* ``tiny_coco``: ``DIR/annotations/instances_S.json`` + ``DIR/S/`` (captions from
  ``DIR/annotations/captions_S.json`` when present) - Tiny COCO as published.
* ``notebook``: ``DIR/tiny_coco_dataset-master/annotations/instances.json`` +
  ``DIR/tiny_coco_dataset-master/images/S/``, or the same with DIR already inside
  ``tiny_coco_dataset-master``.
* ``folder``: every image file under DIR, recursively, without labels
  (``image_id`` = path relative to DIR).

The two-view torch dataset (:class:`TwoViewDataset`) lives in :mod:`core.ssl.views` and is
re-exported here.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from pycocotools.coco import COCO

from core.images import IMAGE_EXTENSIONS, iter_image_files
from core.ssl.views import TwoViewDataset, collate_views

__all__ = [
    "DatasetInfo",
    "ImageRecord",
    "TwoViewDataset",
    "collate_views",
    "find_dataset",
    "sibling_split",
]

NOTEBOOK_ROOT = "tiny_coco_dataset-master"


@dataclass
class ImageRecord:
    """One image of a data set and its labels (empty lists when unlabelled)."""

    image_id: int | str
    path: Path
    captions: list[str] = field(default_factory=list)
    categories: list[int] = field(default_factory=list)  # COCO category ids of its instances


@dataclass
class DatasetInfo:
    """What :func:`find_dataset` found."""

    layout: str  # "tiny_coco" | "notebook" | "folder"
    root: Path
    split: str | None
    records: list[ImageRecord]
    category_names: dict[int, str] = field(default_factory=dict)


def _load_coco(path: Path) -> COCO:
    """Parse a COCO annotation file; pycocotools' progress prints are swallowed."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return COCO(os.fspath(path))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: malformed annotation JSON ({exc})") from exc
    except (AssertionError, KeyError, TypeError, AttributeError) as exc:
        # pycocotools asserts the top level is a dict and indexes fields without checks.
        raise ValueError(f"{path}: not a COCO annotation file ({type(exc).__name__}: {exc})") from exc


def _load_captions(path: Path) -> list[dict]:
    """Caption annotations; read as plain JSON (pycocotools' index wants instance fields)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        anns = data["annotations"]
        if not all(isinstance(a, dict) and "image_id" in a for a in anns):
            raise TypeError("an annotation lacks image_id")
        return anns
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: malformed caption JSON ({exc})") from exc
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not a COCO captions file ({type(exc).__name__}: {exc})") from exc


def _coco_records(
    instances: Path, images_dir: Path, captions: Path | None, strict: bool
) -> tuple[list[ImageRecord], dict[int, str]]:
    coco = _load_coco(instances)
    caps: dict[int, list[str]] = {}
    if captions is not None and captions.is_file():
        for ann in _load_captions(captions):
            caps.setdefault(ann["image_id"], []).append(str(ann.get("caption", "")).strip())
    records: list[ImageRecord] = []
    missing: list[Path] = []
    root = images_dir.resolve()
    for image_id in sorted(coco.getImgIds()):
        info = coco.imgs[image_id]
        path = images_dir / str(info.get("file_name", ""))
        if not path.resolve().is_relative_to(root):
            # "../x" or an absolute name would read files outside the data set.
            raise ValueError(f"{instances}: image {image_id} has file_name {info.get('file_name')!r} "
                             f"outside {images_dir}")
        if not path.is_file():
            missing.append(path)
            continue
        cats = sorted({int(a["category_id"]) for a in coco.imgToAnns.get(image_id, [])})
        records.append(ImageRecord(image_id, path, caps.get(image_id, []), cats))
    if missing:
        msg = (
            f"{instances}: {len(missing)} annotated image(s) are missing from {images_dir} "
            f"(first: {missing[0].name})"
        )
        if strict:
            raise FileNotFoundError(msg)
        warnings.warn(msg + "; skipped", stacklevel=3)
    names = {int(c["id"]): str(c.get("name", c["id"])) for c in coco.dataset.get("categories", [])}
    return records, names


def _candidates(data_dir: Path, split: str) -> list[tuple[str, Path, Path, Path | None]]:
    """(layout, instances file, images folder, captions file) for each annotated layout."""
    out: list[tuple[str, Path, Path, Path | None]] = [
        (
            "tiny_coco",
            data_dir / "annotations" / f"instances_{split}.json",
            data_dir / split,
            data_dir / "annotations" / f"captions_{split}.json",
        )
    ]
    for root in (data_dir / NOTEBOOK_ROOT, data_dir):
        out.append(
            (
                "notebook",
                root / "annotations" / "instances.json",
                root / "images" / split,
                root / "annotations" / "captions.json",
            )
        )
    return out


def find_dataset(data_dir: str | os.PathLike, split: str = "train2017", *, strict: bool = False) -> DatasetInfo:
    """Detect the layout of ``data_dir`` and list its images with their labels.

    Args:
        data_dir: the data folder (see the module docstring for the layouts).
        split: split folder name for the annotated layouts (ignored for a plain folder).
        strict: raise instead of warning when annotations name image files that are absent.

    Returns:
        A :class:`DatasetInfo` with records sorted by image id (by path for a folder).

    Raises:
        FileNotFoundError: ``data_dir`` is missing, nothing matched (the message lists every path
            looked for), or (``strict``) annotated images are missing.
        ValueError: an annotation file is not valid COCO JSON (the message names it).
    """
    root = Path(data_dir).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"data folder not found: {root}")
    if not root.is_dir():
        raise NotADirectoryError(f"data path is not a folder: {root}")
    looked: list[str] = []
    partial = False
    for layout, instances, images_dir, captions in _candidates(root, split):
        if instances.is_file() and images_dir.is_dir():
            records, names = _coco_records(instances, images_dir, captions, strict)
            return DatasetInfo(layout, root, split, records, names)
        partial = partial or instances.is_file() or any(instances.parent.glob("instances*.json"))
        for p, kind in ((instances, "file"), (images_dir, "folder")):
            state = "found" if p.exists() else "missing"
            looked.append(f"  [{layout}] {kind} {p} ({state})")
    # Half an annotated layout (e.g. a wrong --split) must not silently become "all images here".
    files = [] if partial else sorted(iter_image_files([root], recursive=True))
    if files:
        records = [ImageRecord(f.relative_to(root).as_posix(), f) for f in files]
        return DatasetInfo("folder", root, None, records, {})
    exts = ", ".join(sorted(IMAGE_EXTENSIONS))
    looked.append(f"  [folder] image files ({exts}) anywhere under {root} (none)")
    raise FileNotFoundError(
        f"no data set found in {root} for split {split!r}; looked for:\n" + "\n".join(looked)
    )


def sibling_split(split: str | None) -> str | None:
    """The held-out split paired with ``split`` (train2017 <-> val2017), or None."""
    if not split:
        return None
    if "train" in split:
        return split.replace("train", "val")
    if "val" in split:
        return split.replace("val", "train")
    return None
