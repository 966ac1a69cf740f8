"""Result files: every format writes and reads back; a torn last line is repaired on resume."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from core.captioning.outputs import CaptionRecord, ResultWriter, coco_image_id, read_done, to_string

RECORDS = [
    CaptionRecord("/data/000000000042.jpg", "a cat, on a mat"),
    CaptionRecord('/data/weird "name"\t.jpg'.replace("\t", ""), "two dogs"),
]


@pytest.mark.parametrize("fmt", ["text", "jsonl", "csv"])
def test_line_formats_round_trip(tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"out.{fmt}"
    with open(out, "w", encoding="utf-8", newline="") as fh:
        writer = ResultWriter(fh, fmt)
        for r in RECORDS:
            writer.write(r)
        writer.close()
    assert read_done(out, fmt) == RECORDS


def test_csv_is_valid_csv_with_header() -> None:
    text = to_string(RECORDS + [CaptionRecord("x.png", "", "not an image")], "csv")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["path", "caption", "error"]
    assert rows[1] == ["/data/000000000042.jpg", "a cat, on a mat", ""]
    assert rows[3] == ["x.png", "", "not an image"]


def test_jsonl_rows() -> None:
    rows = [json.loads(line) for line in to_string(RECORDS, "jsonl").splitlines()]
    assert rows[0] == {"path": "/data/000000000042.jpg", "caption": "a cat, on a mat"}


def test_coco_results_and_ids(tmp_path: Path) -> None:
    out = tmp_path / "res.json"
    writer = ResultWriter(open(out, "w"), "coco", target=out)
    writer.write(RECORDS[0])
    with pytest.raises(ValueError, match="not a COCO image id"):
        writer.write(RECORDS[1])
    writer.close()
    assert json.loads(out.read_text()) == [{"image_id": 42, "caption": "a cat, on a mat"}]
    assert coco_image_id("000000397133.jpg") == 397133


def test_torn_last_line_is_cut_on_resume(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    good = to_string(RECORDS, "jsonl")
    out.write_text(good + '{"path": "/data/half', encoding="utf-8")
    assert read_done(out, "jsonl") == RECORDS
    assert out.read_text(encoding="utf-8") == good


def test_unknown_format() -> None:
    with pytest.raises(ValueError, match="unknown format"):
        ResultWriter(io.StringIO(), "xml")
