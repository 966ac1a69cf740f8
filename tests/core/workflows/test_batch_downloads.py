"""The batch tab's downloads (both apps): CSV/JSONL as the CLI writes them, a zip of sidecar files."""

from __future__ import annotations

import io
import zipfile

from core.captioning import CaptionRecord, to_string
from core.workflows import batch_downloads

RECORDS = [CaptionRecord("a/dog.jpg", "a dog"), CaptionRecord("broken.jpg", "", "not an image"),
           CaptionRecord("b/dog.png", "another dog"), CaptionRecord("ünï cødé.webp", "a café")]


def test_downloads_are_the_cli_files_and_a_zip_of_caption_files() -> None:
    csv, jsonl, sidecars = batch_downloads(RECORDS)
    assert csv.data.decode() == to_string(RECORDS, "csv") and "not an image" in csv.data.decode()
    assert jsonl.data.decode() == to_string(RECORDS, "jsonl")
    with zipfile.ZipFile(io.BytesIO(sidecars.data)) as zf:
        files = {n: zf.read(n).decode("utf-8") for n in zf.namelist()}
    # Failed files have none; two images with one stem keep both captions.
    assert files == {"dog.txt": "a dog\n", "dog-2.txt": "another dog\n", "ünï cødé.txt": "a café\n"}
    assert sidecars.file_name.endswith(".zip") and sidecars.mime == "application/zip"


def test_zip_takes_the_caption_extension() -> None:
    (_, _, sidecars) = batch_downloads(RECORDS[:1], extension="caption")
    with zipfile.ZipFile(io.BytesIO(sidecars.data)) as zf:
        assert zf.namelist() == ["dog.caption"]
