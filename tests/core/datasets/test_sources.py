"""core.datasets as a library: error types, plain folders, and the Tiny COCO archive helpers."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

import core
from core.datasets import (
    DatasetNotFoundError,
    describe_dataset,
    extract_zip,
    find_dataset,
    folder_dataset,
    verify_tiny_coco,
)
from tests.fixtures.datasets import build_tiny_coco, make_folder


def test_every_dataset_error_is_a_project_error_and_keeps_its_builtin_base(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as missing:
        find_dataset(tmp_path / "absent")
    assert isinstance(missing.value, core.DatasetError) and isinstance(missing.value, core.Img2TextError)
    assert isinstance(missing.value, FileNotFoundError)  # what callers caught before
    bad = build_tiny_coco(tmp_path / "tc", n=2)
    (bad / "annotations" / "instances_train2017.json").write_text("{not json")
    with pytest.raises(core.DatasetError, match="instances_train2017.json") as malformed:
        find_dataset(bad, "train2017")
    assert isinstance(malformed.value, ValueError)


def test_folder_dataset_lists_images_recursively_without_labels(tmp_path: Path) -> None:
    make_folder(tmp_path / "a", 2)
    make_folder(tmp_path / "a" / "deeper", 1)
    (tmp_path / "a" / "notes.txt").write_text("not an image")
    info = folder_dataset(tmp_path / "a")
    assert info.layout == "folder" and info.split is None
    assert [r.image_id for r in info.records] == ["deeper/img_000.png", "img_000.png", "img_001.png"]
    assert all(r.captions == [] and r.categories == [] for r in info.records)
    assert folder_dataset(tmp_path / "a" / "deeper").records[0].path.name == "img_000.png"


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_extract_refuses_the_whole_archive_when_one_member_escapes(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "evil.zip", {"ok/a.txt": b"a", "../escaped.txt": b"b"})
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(core.DatasetError, match="outside"):
        extract_zip(archive, dest)
    assert not (tmp_path / "escaped.txt").exists() and not (dest / "ok").exists()
    with pytest.raises(core.DatasetError, match="not a readable zip"):
        extract_zip(tmp_path / "evil.zip.missing", dest)


def test_verify_and_describe_an_extracted_tiny_coco(tmp_path: Path) -> None:
    root = build_tiny_coco(tmp_path / "tiny_coco", n=3, splits=("train2017", "val2017"))
    report = verify_tiny_coco(tmp_path)  # finds DEST/tiny_coco
    assert report["root"] == str(root)
    assert {s: c["images"] for s, c in report["splits"].items()} == {"train2017": 3, "val2017": 3}
    assert report["splits"]["val2017"]["with_captions"] == 3
    (root / "annotations" / "captions_val2017.json").unlink()
    with pytest.raises(DatasetNotFoundError, match="val2017 has no captions"):
        verify_tiny_coco(tmp_path)
    counts = describe_dataset(root, ("val2017",))["splits"]["val2017"]
    assert (counts["layout"], counts["with_captions"], counts["categories"]) == ("tiny_coco", 0, 3)
    json.dumps(counts)  # the CLI prints it as JSON
