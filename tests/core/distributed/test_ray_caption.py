"""Captioning on a real two-node Ray cluster equals the local path, for every source kind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import core
from core.datasets.shards import iter_source_items
from core.datasets.sources import open_source
from core.distributed import MANIFEST_NAME, caption_to_parts, read_parts
from core.errors import ConfigError
from tests.core.distributed.helpers import val_images, write_parquet_files, write_tar_shards

BATCH = 4
SHARD = 8  # a multiple of BATCH: every shard's model batches are the local run's batches


def _run(source, out: Path, cluster, model: Path, **kw):
    return caption_to_parts(source, out, address=cluster.address, model=str(model), batch_size=BATCH,
                            shard_size=SHARD, concurrency=2, progress=False, **kw)


def _rows(out: Path) -> dict[str, dict]:
    rows = read_parts(out).to_pylist()
    keys = [r["key"] for r in rows]
    assert len(keys) == len(set(keys)), "a key appears twice"
    return {r["key"]: r for r in rows}


@pytest.fixture(scope="module")
def folder_run(ray_cluster, tiny_model_dir, tiny_coco_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("folder-run") / "out"
    summary = _run(tiny_coco_dir / "val2017", out, ray_cluster, tiny_model_dir)
    return out, summary


def test_every_val2017_caption_equals_caption_batch(folder_run, tiny_model_dir, tiny_coco_dir):
    out, summary = folder_run
    images = val_images(tiny_coco_dir)
    expected = core.caption_batch([str(p) for p in images], model=str(tiny_model_dir), batch_size=BATCH)
    rows = _rows(out)
    assert sorted(rows) == [p.name for p in images]  # folder keys: paths relative to the folder
    assert [rows[p.name]["caption"] for p in images] == expected
    assert all(rows[p.name]["path"] == str(p) and rows[p.name]["error"] is None for p in images)
    assert (summary.images, summary.errors, summary.parts_written) == (50, 0, 7)
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert manifest["complete"] and len(manifest["parts"]) == 7
    assert sum(p["rows"] for p in manifest["parts"].values()) == 50
    assert manifest["provenance"][0]["model"] == str(tiny_model_dir.resolve())
    assert manifest["settings"]["batch_size"] == BATCH


def test_rerun_over_a_finished_output_does_nothing_and_says_so(folder_run, ray_cluster, tiny_model_dir,
                                                               tiny_coco_dir, capsys):
    out, _ = folder_run
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("part-*.parquet")}
    summary = caption_to_parts(tiny_coco_dir / "val2017", out, address=ray_cluster.address,
                               model=str(tiny_model_dir), batch_size=BATCH, shard_size=SHARD)
    assert summary.nothing_to_do and summary.parts_written == 0 and summary.parts_skipped == 7
    assert "nothing to do" in capsys.readouterr().err
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("part-*.parquet")} == before


def test_resume_refuses_other_settings(folder_run, ray_cluster, tiny_model_dir, tiny_coco_dir):
    out, _ = folder_run
    with pytest.raises(ConfigError, match="batch_size: 4 before, 8 now"):
        caption_to_parts(tiny_coco_dir / "val2017", out, address=ray_cluster.address,
                         model=str(tiny_model_dir), batch_size=8, shard_size=SHARD, resume=True)
    with pytest.raises(ConfigError, match="num_beams"):
        _run(tiny_coco_dir / "val2017", out, ray_cluster, tiny_model_dir, resume=True, num_beams=2)


def _check_against_folder(out: Path, folder_out: Path, hostile: list[str]) -> dict[str, dict]:
    rows, reference = _rows(out), _rows(folder_out)
    by_stem = {Path(k).stem: r["caption"] for k, r in reference.items()}
    good = {k: r for k, r in rows.items() if not k.startswith("bad")}
    assert sorted(good) == sorted(by_stem)
    assert {k: r["caption"] for k, r in good.items()} == by_stem
    assert all(r["error"] is None for r in good.values())
    assert sorted(k for k in rows if k.startswith("bad")) == sorted(hostile)
    for key in hostile:
        assert rows[key]["error"] and rows[key]["caption"] == "", key
    return rows


def test_tar_shards_give_the_folder_results_and_error_rows(folder_run, ray_cluster, tiny_model_dir,
                                                           tiny_coco_dir, tmp_path):
    hostile = write_tar_shards(val_images(tiny_coco_dir), tmp_path / "shards", per_shard=SHARD)
    out = tmp_path / "out"
    summary = _run(str(tmp_path / "shards" / "{00000..00006}.tar"), out, ray_cluster, tiny_model_dir)
    rows = _check_against_folder(out, folder_run[0], hostile)
    assert summary.errors == len(hostile) == 7 * 4
    assert "not a regular file" in rows["bad0_link"]["error"]
    assert "empty" in rows["bad0_empty"]["error"]
    assert all(r["path"] is None for r in rows.values())  # tar members have no file of their own


def test_parquet_files_give_the_folder_results_and_error_rows(folder_run, ray_cluster, tiny_model_dir,
                                                              tiny_coco_dir, tmp_path):
    hostile = write_parquet_files(val_images(tiny_coco_dir), tmp_path / "tables", per_file=SHARD)
    out = tmp_path / "out"
    _run(tmp_path / "tables", out, ray_cluster, tiny_model_dir)
    rows = _check_against_folder(out, folder_run[0], hostile)
    assert "no image bytes and no path" in rows["bad0_null"]["error"]
    assert "not found" in rows["bad1_missing"]["error"]


def test_local_path_reads_every_source_like_the_ray_path(folder_run, tiny_model_dir, tiny_coco_dir,
                                                         tmp_path):
    """The single-process path (iter_source_items -> iter_caption_records) over a tar source."""
    images = val_images(tiny_coco_dir)[: 2 * SHARD]  # two shards keep it short
    hostile = write_tar_shards(images, tmp_path / "shards", per_shard=SHARD)
    source = open_source(str(tmp_path / "shards" / "*.tar"))
    captioner = core.get_captioner(str(tiny_model_dir))
    records = []
    for shard in source.shards:  # per shard, as an actor does: the same model batches
        items = [it for it in iter_source_items([shard]) if it.error is None]
        records += core.iter_caption_records(captioner, [(it.key, it.image) for it in items],
                                             batch_size=BATCH)
    reference = {Path(k).stem: r["caption"] for k, r in _rows(folder_run[0]).items()
                 if Path(k).stem in {p.stem for p in images}}
    ok = {r.path: r.caption for r in records if r.ok}
    assert ok == reference
    failed = {r.path for r in records if not r.ok} | {it.key for it in iter_source_items(source) if it.error}
    assert sorted(failed) == sorted(hostile)
