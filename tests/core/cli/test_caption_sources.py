"""``img2text caption`` (single process) reads every batch source the ``--ray`` path reads.

Tar shards, parquet files (bytes and path tables) and a text file of paths are written here from
Tiny COCO with hostile members mixed in; their captions must equal ``Captioner.caption_batch`` on
the same images, and each hostile member must be one reported failure (exit status 1).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import core
from core.cli import main
from tests.core.distributed.helpers import write_parquet_files, write_tar_shards

GREEDY = ("--greedy", "--max-new-tokens", "8", "--quiet")


@pytest.fixture(scope="module")
def images(tiny_coco_dir: Path) -> list[Path]:
    return sorted((tiny_coco_dir / "val2017").glob("*.jpg"))[:6]


@pytest.fixture(scope="module")
def reference(tiny_model_dir: Path, images: list[Path]) -> dict[str, str]:
    """stem -> caption from the library on the original files."""
    cap = core.get_captioner(str(tiny_model_dir), device="cpu")
    captions = cap.caption_batch(images, num_beams=1, max_new_tokens=8)
    return {p.stem: c for p, c in zip(images, captions, strict=True)}


def _caption(capsys, source: str, model: Path, out: Path) -> tuple[int, dict[str, str], str]:
    code = main(["caption", source, "--model", str(model), "--format", "jsonl", "-o", str(out), *GREEDY])
    err = capsys.readouterr().err
    rows = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    return code, {Path(r["path"]).stem: r["caption"] for r in rows}, err


def test_tar_shards_by_brace_pattern(capsys, tmp_path, tiny_model_dir, images, reference) -> None:
    hostile = write_tar_shards(images, tmp_path / "shards", per_shard=3)
    code, rows, err = _caption(capsys, str(tmp_path / "shards" / "{00000..00001}.tar"),
                               tiny_model_dir, tmp_path / "out.jsonl")
    assert code == 1  # the hostile members failed
    assert rows == reference
    for key in hostile:
        assert f"skipped {key}" in err


def test_parquet_folder(capsys, tmp_path, tiny_model_dir, images, reference) -> None:
    hostile = write_parquet_files(images, tmp_path / "tables", per_file=3)
    code, rows, err = _caption(capsys, str(tmp_path / "tables"), tiny_model_dir, tmp_path / "out.jsonl")
    assert code == 1
    assert {k: v for k, v in rows.items() if k in reference} == reference
    assert set(rows) <= set(reference) | set(hostile)
    assert all(f"skipped {key}" in err for key in hostile if key not in rows)


def test_text_file_of_paths(capsys, tmp_path, tiny_model_dir, images, reference) -> None:
    listing = tmp_path / "paths.txt"
    listing.write_text("".join(f"{p}\n" for p in images))
    code, rows, err = _caption(capsys, str(listing), tiny_model_dir, tmp_path / "out.jsonl")
    assert code == 0, err
    assert rows == reference
