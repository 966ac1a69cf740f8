"""Run-folder helpers and upload loading, on a real 2-epoch run, its index and real files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from core import InvalidImageError
from core.search import EmbeddingIndex
from core.workflows import (
    HISTORY_COLUMNS,
    example_files,
    history_rows,
    index_for_run,
    load_upload,
    load_uploads,
    read_run,
    run_summary,
    sample_retrievals,
    weights_sha256,
)
from tests.browser.support import AppData


def test_run_summary_and_history_come_from_the_run_files(apps_data: AppData) -> None:
    info = read_run(apps_data.run)
    history = json.loads((apps_data.run / "history.json").read_text())
    s = run_summary(info)
    assert s.epochs == history[-1]["epoch"] == 2
    assert s.loss == pytest.approx(history[-1]["loss"])
    assert s.loss_change == pytest.approx(history[-1]["loss"] - history[0]["loss"])
    assert s.settings.startswith("backbone conv, 32 px, batch 8") and s.problems == ()
    rows = history_rows(info)
    assert len(rows) == 2 and len(rows[0]) == len(HISTORY_COLUMNS)
    assert rows[1][HISTORY_COLUMNS.index("loss")] == round(history[1]["loss"], 4)


def test_summary_of_a_broken_run_lists_problems(tmp_path: Path) -> None:
    (tmp_path / "history.json").write_text("{not json")
    s = run_summary(read_run(tmp_path))
    assert s.loss is None and s.precision == "-" and s.settings == ""
    assert any("history.json is unreadable" in p for p in s.problems)
    assert any("config.json is missing" in p for p in s.problems)


def test_index_for_run_matches_by_weights_hash(apps_data: AppData, tmp_path: Path) -> None:
    info = read_run(apps_data.run)
    loaded: list[Path] = []

    def load(path: Path) -> EmbeddingIndex:
        loaded.append(path)
        return EmbeddingIndex.load(path)

    index = index_for_run(info, [tmp_path / "missing", apps_data.index], load)
    assert index is not None and index.checkpoint.sha256 == weights_sha256(info.weights)
    assert loaded == [tmp_path / "missing", apps_data.index]  # the broken folder is passed over
    other = tmp_path / "other-run"
    other.mkdir()
    (other / "checkpoint.safetensors").write_bytes(b"different weights")
    assert index_for_run(read_run(other), [apps_data.index], load) is None


def test_sample_retrievals_leave_each_query_out(apps_data: AppData) -> None:
    index = EmbeddingIndex.load(apps_data.index)
    samples = sample_retrievals(index, queries=2, k=3)
    assert [s.image_id for s in samples] == index.image_ids[:2]
    for s in samples:
        assert [h.image_id for h in s.hits] == [h.image_id for h in index.find_similar(s.image_id, k=3)]
        assert s.image_id not in [h.image_id for h in s.hits] and s.path.is_file()


def test_example_files_are_images_only_sorted_and_capped(tmp_path: Path) -> None:
    for name in ("b.png", "a.JPG", "c.jpeg"):
        Image.new("RGB", (4, 4)).save(tmp_path / name, format="PNG")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "sub.png").mkdir()
    assert [p.name for p in example_files(tmp_path)] == ["a.JPG", "b.png", "c.jpeg"]
    assert [p.name for p in example_files(tmp_path, limit=2)] == ["a.JPG", "b.png"]
    assert example_files(None) == [] and example_files(tmp_path / "nope") == []


def test_load_upload_names_the_file_and_keeps_the_caps(tmp_path: Path) -> None:
    path = tmp_path / "wide.png"
    Image.new("RGB", (200, 100)).save(path)
    assert load_upload(path, max_pixels=20_000).size == (200, 100)
    with pytest.raises(InvalidImageError) as err:
        load_upload(path.read_bytes(), "holiday.png", max_pixels=19_999)
    assert err.value.source == "holiday.png" and "over the limit of 19,999" in err.value.reason
    with pytest.raises(InvalidImageError, match="wide.png"):
        load_upload(path, max_bytes=10)


def test_load_uploads_keeps_order_and_per_file_errors(tmp_path: Path) -> None:
    good = [tmp_path / f"{i}.png" for i in range(5)]
    for i, p in enumerate(good):
        Image.new("RGB", (8 + i, 8)).save(p)
    bad = tmp_path / "bad.jpg"
    bad.write_text("text")
    out = load_uploads([good[0], bad, *good[1:]], workers=3)
    assert isinstance(out[1], InvalidImageError) and out[1].source == "bad.jpg"
    assert [im.size[0] for im in out if isinstance(im, Image.Image)] == [8, 9, 10, 11, 12]
