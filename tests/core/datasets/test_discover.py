"""Data set discovery: the three layouts, helpful errors, missing and malformed files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.datasets import (
    DatasetInfo,
    DatasetNotFoundError,
    ImageRecord,
    caption_layout,
    find_caption_images,
    find_dataset,
    sibling_split,
)
from tests.fixtures.datasets import build_notebook, build_tiny_coco, captions_json, make_folder


def test_tiny_coco_layout_generated(tmp_path: Path) -> None:
    root = build_tiny_coco(tmp_path / "tc", n=6, splits=("train2017", "val2017"))
    info = find_dataset(root, "train2017")
    assert isinstance(info, DatasetInfo)
    assert (info.layout, info.split, info.root) == ("tiny_coco", "train2017", root)
    assert len(info.records) == 6
    rec = info.records[0]
    assert isinstance(rec, ImageRecord)
    assert rec.image_id == 1 and rec.path == root / "train2017" / "train2017_0.png"
    assert rec.captions == ["picture number 0"]
    assert rec.categories == [1]
    assert info.category_names == {1: "cat1", 2: "cat2", 3: "cat3"}
    assert find_dataset(root, "val2017").records[0].path.parent.name == "val2017"


def test_tiny_coco_layout_real(tiny_coco_dir: Path) -> None:
    info = find_dataset(tiny_coco_dir, "train2017")
    assert info.layout == "tiny_coco"
    assert len(info.records) == 50
    assert all(r.path.is_file() for r in info.records)
    assert all(len(r.captions) >= 1 for r in info.records)
    assert sum(1 for r in info.records if r.categories) >= 45
    assert "person" in info.category_names.values()


@pytest.mark.parametrize("inside", [False, True])
def test_notebook_layout(tmp_path: Path, inside: bool) -> None:
    build_notebook(tmp_path, n=5)
    data_dir = tmp_path / "tiny_coco_dataset-master" if inside else tmp_path
    info = find_dataset(data_dir, "train2017")
    assert info.layout == "notebook"
    assert len(info.records) == 5
    assert info.records[0].categories == [2]
    assert info.records[0].captions == []


def test_plain_folder_layout_recursive(tmp_path: Path) -> None:
    make_folder(tmp_path / "a", 2)
    make_folder(tmp_path / "a" / "deeper", 1)
    (tmp_path / "a" / "notes.txt").write_text("not an image")
    info = find_dataset(tmp_path / "a")
    assert info.layout == "folder" and info.split is None
    assert [r.image_id for r in info.records] == ["deeper/img_000.png", "img_000.png", "img_001.png"]
    assert all(r.captions == [] and r.categories == [] for r in info.records)


def test_no_match_lists_every_path(tmp_path: Path) -> None:
    (tmp_path / "annotations").mkdir()
    (tmp_path / "readme.txt").write_text("nothing here")
    with pytest.raises(FileNotFoundError) as err:
        find_dataset(tmp_path, "train2017")
    msg = str(err.value)
    for expected in (
        tmp_path / "annotations" / "instances_train2017.json",
        tmp_path / "train2017",
        tmp_path / "tiny_coco_dataset-master" / "annotations" / "instances.json",
        tmp_path / "tiny_coco_dataset-master" / "images" / "train2017",
        tmp_path / "annotations" / "instances.json",
        tmp_path / "images" / "train2017",
    ):
        assert str(expected) in msg
    assert "image files" in msg


def test_missing_data_dir(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="data folder not found"):
        find_dataset(tmp_path / "nope")


def test_missing_annotated_files_skip_or_strict(tmp_path: Path) -> None:
    root = build_tiny_coco(tmp_path, n=4)
    (root / "train2017" / "train2017_1.png").unlink()
    (root / "train2017" / "train2017_2.png").unlink()
    with pytest.warns(UserWarning, match="2 annotated image"):
        info = find_dataset(root)
    assert [r.image_id for r in info.records] == [1, 4]
    with pytest.raises(FileNotFoundError, match="2 annotated image"):
        find_dataset(root, strict=True)


@pytest.mark.parametrize("name", ["../outside.png", "/etc/passwd"])
def test_file_names_escaping_the_split_folder_are_refused(tmp_path: Path, name: str) -> None:
    root = build_tiny_coco(tmp_path, n=2)
    (tmp_path / "outside.png").write_bytes((root / "train2017" / "train2017_0.png").read_bytes())
    ann = root / "annotations" / "instances_train2017.json"
    data = json.loads(ann.read_text())
    data["images"][0]["file_name"] = name
    ann.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="outside"):
        find_dataset(root)


def test_malformed_annotation_json_names_file(tmp_path: Path) -> None:
    root = build_tiny_coco(tmp_path, n=2)
    bad = root / "annotations" / "instances_train2017.json"
    bad.write_text('{"images": [')
    with pytest.raises(ValueError, match="instances_train2017.json"):
        find_dataset(root)
    bad.write_text(json.dumps([1, 2, 3]))
    with pytest.raises(ValueError, match="instances_train2017.json"):
        find_dataset(root)


def test_sibling_split() -> None:
    assert sibling_split("train2017") == "val2017"
    assert sibling_split("val2017") == "train2017"
    assert sibling_split("images") is None and sibling_split(None) is None


def test_wrong_split_of_an_annotated_layout_is_an_error_not_a_folder(tmp_path: Path) -> None:
    root = build_tiny_coco(tmp_path, n=2)
    with pytest.raises(FileNotFoundError, match="instances_test2017.json"):
        find_dataset(root, "test2017")


def test_caption_images_of_each_layout(tmp_path: Path) -> None:
    """Caption scoring's discovery: the split's images and the captions file that goes with them."""
    root = build_tiny_coco(tmp_path / "tc", n=3, splits=("train2017", "val2017"))
    (root / "annotations" / "instances_val2017.json").unlink()  # captions are enough here
    images, captions = find_caption_images(root, "val2017")
    assert captions == root / "annotations" / "captions_val2017.json"
    assert images == sorted((root / "val2017").glob("*.png")) and len(images) == 3
    layout = caption_layout(root, "train2017")
    assert layout is not None and (layout.name, layout.images_dir) == ("tiny_coco", root / "train2017")

    base = tmp_path / "nb" / "tiny_coco_dataset-master"  # the notebook's layout, DIR outside or inside it
    make_folder(base / "images" / "val2017", 2)
    (base / "annotations").mkdir()
    (base / "annotations" / "captions.json").write_text(json.dumps(captions_json(["img_000.png"])))
    for data_dir in (tmp_path / "nb", base):
        images, captions = find_caption_images(data_dir, "val2017")
        assert captions == base / "annotations" / "captions.json" and len(images) == 2

    make_folder(tmp_path / "plain" / "sub", 2)  # a plain folder: its images, no captions file
    images, captions = find_caption_images(tmp_path / "plain", "val2017")
    assert captions is None and [p.name for p in images] == ["img_000.png", "img_001.png"]


def test_caption_images_wrong_split_is_an_error_not_every_image(tmp_path: Path) -> None:
    root = build_tiny_coco(tmp_path, n=2, splits=("val2017",))
    (root / "annotations" / "instances_val2017.json").unlink()
    with pytest.raises(DatasetNotFoundError, match="not with an image folder for split 'test2017'") as err:
        find_caption_images(root, "test2017")
    assert str(root / "annotations" / "captions_test2017.json") in str(err.value)
    with pytest.raises(DatasetNotFoundError, match="data folder not found"):
        find_caption_images(tmp_path / "absent", "val2017")
    assert caption_layout(tmp_path / "absent", "val2017") is None
