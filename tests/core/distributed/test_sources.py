"""Sources, shards, manifests and pool sizing without a cluster (fast)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.datasets import iter_source_items, open_source
from core.datasets.shards import webdataset_key
from core.datasets.sources import expand_braces
from core.distributed import size_pool
from core.distributed.manifest import Manifest, plan_resume
from core.distributed.parts import part_name, write_part
from core.errors import ConfigError, DatasetError
from tests.core.distributed.helpers import val_images, write_tar_shards


def test_brace_patterns_expand_like_webdataset() -> None:
    assert expand_braces("s/{00000..00002}.tar") == ["s/00000.tar", "s/00001.tar", "s/00002.tar"]
    assert expand_braces("{a,b}/{8..10}.tar") == ["a/8.tar", "a/9.tar", "a/10.tar", "b/8.tar", "b/9.tar", "b/10.tar"]


def test_webdataset_key_is_the_name_up_to_the_first_dot_of_the_base_name() -> None:
    assert webdataset_key("000123.jpg") == "000123"
    assert webdataset_key("dir.v2/000123.seg.png") == "dir.v2/000123"


def test_folder_and_list_sources_cut_sorted_paths_into_fixed_shards(tiny_coco_dir, tmp_path) -> None:
    folder = open_source(tiny_coco_dir / "val2017", shard_size=8)
    assert folder.kind == "folder" and [len(s.keys) for s in folder.shards] == [8] * 6 + [2]
    keys = [k for s in folder.shards for k in s.keys]
    assert keys == sorted(keys) and len(keys) == 50
    listing = tmp_path / "images.txt"
    names = [p.name for p in val_images(tiny_coco_dir)]
    listing.write_text("# a comment\n\n" + "\n".join(reversed(names)) + "\n")
    (tmp_path / names[0]).symlink_to(tiny_coco_dir / "val2017" / names[0])
    listed = open_source(listing, shard_size=8)
    assert listed.kind == "list" and [k for s in listed.shards for k in s.keys] == keys
    assert listed.shards[0].paths[0] == str(tmp_path / names[0])  # relative to the list's folder
    assert [s.fingerprint for s in listed.shards] == [s.fingerprint for s in folder.shards]


def test_a_missing_brace_member_or_an_empty_glob_is_a_dataset_error(tmp_path) -> None:
    with pytest.raises(DatasetError, match="00001.tar: file not found"):
        (tmp_path / "00000.tar").write_bytes(b"")
        open_source(str(tmp_path / "{00000..00001}.tar"))
    with pytest.raises(DatasetError, match="matches no .parquet"):
        open_source(str(tmp_path / "*.parquet"))


def test_a_corrupt_tar_becomes_error_items_not_an_exception(tiny_coco_dir, tmp_path) -> None:
    write_tar_shards(val_images(tiny_coco_dir)[:3], tmp_path, per_shard=3)
    data = (tmp_path / "00000.tar").read_bytes()
    (tmp_path / "cut.tar").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.tar").write_bytes(b"not a tar at all" * 10)
    items = list(iter_source_items(open_source(str(tmp_path / "*.tar"))))
    by_file = [it for it in items if it.error and ("cut" in it.error or "junk" in it.error)]
    assert by_file and all("tar" in it.error for it in by_file)
    assert {it.key for it in items if it.error is None} >= {p.stem for p in val_images(tiny_coco_dir)[:3]}


def test_parquet_without_path_or_image_column_names_the_columns_and_the_flags(tmp_path) -> None:
    pq.write_table(pa.table({"url": ["http://x/a.jpg"]}), tmp_path / "t.parquet")
    with pytest.raises(DatasetError, match=r"'url'.*--path-column"):
        list(iter_source_items(open_source(tmp_path / "t.parquet")))


def test_resume_plan_refuses_changed_sources_and_adopts_unrecorded_parts(tiny_coco_dir, tmp_path) -> None:
    source = open_source(tiny_coco_dir / "val2017", shard_size=20)
    out = tmp_path / "out"
    out.mkdir()
    manifest, todo = plan_resume(out, "caption", source, {"batch_size": 4}, resume=False)
    assert todo == [0, 1, 2]
    from core.distributed.parts import PartInfo, encode_caption_part

    for index in (0, 1):  # part 0 recorded; part 1 written, then the driver died
        shard = source.shards[index]
        info = PartInfo(index, shard.fingerprint, manifest.digest, 1, 0)
        path = write_part(out, index, encode_caption_part([("k", None, "c", None)], info))
        if index == 0:
            from core.fileio import sha256_file

            manifest.record(index, shard.fingerprint, 1, 0, sha256_file(path))
    manifest.save(out)
    (out / ".part-00002.parquet.123.abc.tmp").write_bytes(b"half")
    with pytest.raises(ConfigError, match="unfinished run") as err:
        plan_resume(out, "caption", source, {"batch_size": 4}, resume=False)
    assert "pass --resume to finish it" in str(err.value) and "resume=True" not in str(err.value)
    with pytest.raises(ConfigError, match="batch_size: 4 before, 8 now"):
        plan_resume(out, "caption", source, {"batch_size": 8}, resume=True)
    resumed, todo = plan_resume(out, "caption", source, {"batch_size": 4}, resume=True)
    assert todo == [2] and set(resumed.parts) == {part_name(0), part_name(1)}
    assert not list(out.glob(".part-*"))
    other = open_source(tiny_coco_dir / "val2017", shard_size=10)
    with pytest.raises(ConfigError, match="shard_size"):
        plan_resume(out, "caption", other, {"batch_size": 4}, resume=True)
    assert Manifest.load(out) is not None


def test_pool_defaults_leave_cpus_for_reading_and_use_one_actor_per_gpu() -> None:
    assert size_pool({"CPU": 16}).concurrency == 14  # 2 of 16 CPUs left for reading and Ray
    assert size_pool({"CPU": 2}).concurrency == 1
    gpu = size_pool({"CPU": 32, "GPU": 4})
    assert (gpu.concurrency, gpu.num_gpus, gpu.num_cpus) == (4, 1.0, 1.0)
    assert size_pool({"CPU": 32, "GPU": 4}, device="cpu").num_gpus == 0
    with pytest.raises(ConfigError, match="GPUs"):
        size_pool({"CPU": 4, "GPU": 1}, num_gpus=2)


def test_embed_shard_streams_batches_and_keeps_row_order(tiny_encoder_dir, tiny_coco_dir, tmp_path) -> None:
    """The actor's per-shard function, in-process: hostile rows in place, vectors as embed_images."""
    import numpy as np

    from core.distributed import EmbedJob, embed_shard
    from core.distributed.parts import read_embedding_parts, write_part
    from core.search import embed_images
    from core.ssl import load_encoder

    images = val_images(tiny_coco_dir)[:7]
    hostile = write_tar_shards(images, tmp_path / "shards", per_shard=7)
    shard = open_source(str(tmp_path / "shards" / "*.tar")).shards[0]
    encoder = load_encoder(tiny_encoder_dir, device="cpu")
    job = EmbedJob(str(tiny_encoder_dir), encoder.sha256, batch_size=3)
    data, rows, errors = embed_shard(encoder, shard, job, "digest", dim=16)
    assert (rows, errors) == (7 + len(hostile), len(hostile))
    write_part(tmp_path / "out", 0, data)
    vectors, keys, _ = read_embedding_parts(tmp_path / "out")
    assert keys == [p.stem for p in images]
    np.testing.assert_allclose(vectors, embed_images(encoder, images, batch_size=3).embeddings.numpy(),
                               atol=1e-5, rtol=0)


def test_caption_actors_warm_up_with_the_jobs_settings_before_their_first_shard(tiny_model_dir) -> None:
    """One small batch at start-up (counted in the actor's start-up, not in its first shard)."""
    from core.captioning import get_captioner
    from core.distributed import CaptionJob
    from core.distributed.workers import warm_up

    captioner = get_captioner(str(tiny_model_dir), device="cpu")
    beams = CaptionJob(str(tiny_model_dir), batch_size=3, generation={"num_beams": 2, "max_new_tokens": 4})
    captions = warm_up(captioner, beams)
    assert len(captions) == 3 and len(set(captions)) == 1 and captions[0].strip()
    assert len(warm_up(captioner, CaptionJob(str(tiny_model_dir), batch_size=64))) == 4
    with pytest.raises(ConfigError, match="num_beams"):
        warm_up(captioner, CaptionJob(str(tiny_model_dir), generation={"num_beams": 0}))


def test_find_tar_item_reads_the_member_a_run_used_and_nothing_else(tiny_coco_dir, tmp_path) -> None:
    from core.datasets import find_tar_item, iter_shard

    images = val_images(tiny_coco_dir)[:4]
    hostile = write_tar_shards(images, tmp_path / "shards", per_shard=4)
    shard = open_source(str(tmp_path / "shards" / "00000.tar")).shards[0]
    every = {item.key: item for item in iter_shard(shard)}
    for key in [p.stem for p in images] + hostile:
        assert find_tar_item(shard.location, key) == every[key]  # same bytes, same error rows
    assert find_tar_item(shard.location, "not-a-key") is None
    assert find_tar_item(shard.location, images[0].stem, max_bytes=10).error  # the cap holds here too
    with pytest.raises(DatasetError, match="cannot read tar shard"):
        find_tar_item(images[0], images[0].stem)  # a JPEG is not a tar


def test_a_resume_refusal_names_only_the_nested_fields_that_differ(tiny_coco_dir, tmp_path) -> None:
    # Issue 24: the refusal printed the two whole generation dicts.
    source = open_source(tiny_coco_dir / "val2017", shard_size=20)
    out = tmp_path / "out"
    out.mkdir()
    before = {"batch_size": 4, "generation": {"num_beams": 4, "max_new_tokens": 16, "do_sample": False}}
    plan_resume(out, "caption", source, before, resume=False)[0].save(out)
    now = {"batch_size": 4, "generation": {**before["generation"], "num_beams": 1}}
    with pytest.raises(ConfigError) as err:
        plan_resume(out, "caption", source, now, resume=True)
    assert "settings num_beams: 4 before, 1 now" in str(err.value)
    assert "max_new_tokens" not in str(err.value) and "{" not in str(err.value)
