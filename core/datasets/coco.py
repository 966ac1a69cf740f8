"""COCO-style annotated layouts: Tiny COCO as published and the original notebook's layout.

Layouts (``S`` is the split, e.g. ``train2017``):

* ``tiny_coco``: ``DIR/annotations/instances_S.json`` + ``DIR/S/`` (captions from
  ``DIR/annotations/captions_S.json`` when present) - Tiny COCO as published.
* ``notebook``: ``DIR/tiny_coco_dataset-master/annotations/instances.json`` +
  ``DIR/tiny_coco_dataset-master/images/S/``, or the same with DIR already inside
  ``tiny_coco_dataset-master``.

Annotation files are untrusted input: malformed JSON is a :class:`core.DatasetError` naming the
file, and a ``file_name`` that would leave the images folder (``../x``, an absolute path) is
refused.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.datasets.base import DatasetNotFoundError, ImageRecord
from core.errors import DatasetError

NOTEBOOK_ROOT = "tiny_coco_dataset-master"


@dataclass(frozen=True)
class CocoLayout:
    """Where one annotated layout keeps its files for one split."""

    name: str  # "tiny_coco" | "notebook"
    instances: Path  # instance annotations (image list and categories)
    images_dir: Path  # folder the annotations' file_name values are relative to
    captions: Path  # caption annotations (optional on disk)

    def present(self) -> bool:
        """Whether both the instance file and the images folder exist."""
        return self.instances.is_file() and self.images_dir.is_dir()


def coco_layouts(data_dir: Path, split: str) -> list[CocoLayout]:
    """The annotated layouts to try for ``split`` under ``data_dir``, in order."""
    out = [
        CocoLayout(
            "tiny_coco",
            data_dir / "annotations" / f"instances_{split}.json",
            data_dir / split,
            data_dir / "annotations" / f"captions_{split}.json",
        )
    ]
    for root in (data_dir / NOTEBOOK_ROOT, data_dir):
        out.append(
            CocoLayout(
                "notebook",
                root / "annotations" / "instances.json",
                root / "images" / split,
                root / "annotations" / "captions.json",
            )
        )
    return out


def caption_layout(data_dir: str | os.PathLike, split: str) -> CocoLayout | None:
    """The first layout of ``data_dir`` (in :func:`coco_layouts` order) that has caption
    annotations and an image folder for ``split``, or None.

    Caption scoring needs these two, not the instance annotations that :func:`find_dataset`
    requires, so a COCO folder with only ``captions_S.json`` works too.
    """
    return next((layout for layout in coco_layouts(Path(data_dir), split)
                 if layout.captions.is_file() and layout.images_dir.is_dir()), None)


def load_coco(path: Path) -> Any:
    """Parse a COCO annotation file with pycocotools (its progress prints are swallowed).

    Raises:
        DatasetError: malformed JSON or not a COCO annotation file (the message names it).
    """
    from pycocotools.coco import COCO

    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return COCO(os.fspath(path))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: malformed annotation JSON ({exc})") from exc
    except (AssertionError, KeyError, TypeError, AttributeError) as exc:
        # pycocotools asserts the top level is a dict and indexes fields without checks.
        raise DatasetError(f"{path}: not a COCO annotation file ({type(exc).__name__}: {exc})") from exc


def load_captions(path: Path) -> list[dict]:
    """Caption annotations, read as plain JSON (pycocotools' index wants instance fields).

    Raises:
        DatasetError: malformed JSON, or an annotation without ``image_id``.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        anns = data["annotations"]
        if not all(isinstance(a, dict) and "image_id" in a for a in anns):
            raise TypeError("an annotation lacks image_id")
        return anns
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: malformed caption JSON ({exc})") from exc
    except (KeyError, TypeError) as exc:
        raise DatasetError(f"{path}: not a COCO captions file ({type(exc).__name__}: {exc})") from exc


def _captions_by_image(path: Path) -> dict[int, list[str]]:
    caps: dict[int, list[str]] = {}
    if path.is_file():
        for ann in load_captions(path):
            caps.setdefault(ann["image_id"], []).append(str(ann.get("caption", "")).strip())
    return caps


def coco_records(layout: CocoLayout, *, strict: bool = False) -> tuple[list[ImageRecord], dict[int, str]]:
    """The images of one present layout with their captions and categories, by image id.

    Args:
        layout: a layout whose :meth:`CocoLayout.present` is true.
        strict: raise instead of warning when annotated image files are absent.

    Returns:
        ``(records, category_names)``; records of absent files are skipped (with a warning).

    Raises:
        DatasetError: malformed annotations, or a ``file_name`` outside the images folder.
        DatasetNotFoundError: (``strict``) annotated images are missing.
    """
    coco = load_coco(layout.instances)
    caps = _captions_by_image(layout.captions)
    records: list[ImageRecord] = []
    missing: list[Path] = []
    root = layout.images_dir.resolve()
    for image_id in sorted(coco.getImgIds()):
        info = coco.imgs[image_id]
        path = layout.images_dir / str(info.get("file_name", ""))
        if not path.resolve().is_relative_to(root):
            # "../x" or an absolute name would read files outside the data set.
            raise DatasetError(f"{layout.instances}: image {image_id} has file_name "
                               f"{info.get('file_name')!r} outside {layout.images_dir}")
        if not path.is_file():
            missing.append(path)
            continue
        cats = sorted({int(a["category_id"]) for a in coco.imgToAnns.get(image_id, [])})
        records.append(ImageRecord(image_id, path, caps.get(image_id, []), cats))
    if missing:
        msg = (
            f"{layout.instances}: {len(missing)} annotated image(s) are missing from "
            f"{layout.images_dir} (first: {missing[0].name})"
        )
        if strict:
            raise DatasetNotFoundError(msg)
        warnings.warn(msg + "; skipped", stacklevel=3)
    names = {int(c["id"]): str(c.get("name", c["id"])) for c in coco.dataset.get("categories", [])}
    return records, names
